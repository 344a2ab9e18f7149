"""Decode speed with the token inspector off against on, for the default levers and for an
active set with penalties (where the inspector also asks "did a penalty push it out?").

Every variant runs the same Generator on the same prompt with a fixed seed and produces exactly
``--tokens`` tokens (end-of-turn tokens do not stop them); the runs alternate. The rate is the
engine's own decode rate (tokens after the first, divided by the time between first and last
token), so the prefill is left out. Also measured: ``Inspector.observe`` alone per token on
the model's real logits, and whether the inspected replies are the same tokens as the plain
ones (they must be).

Target: on / off tokens/s at least 0.9 for each lever set.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import _common
import _runs

TARGET_RATIO = 0.9


def lever_sets(tokens: int) -> dict[str, Any]:
    from leverchat.levers import Levers

    return {"default": Levers(seed=7, max_new_tokens=tokens), "active": _runs.active_levers(tokens)}


def observe_cost_us(
    generator: Any, prompt_ids: list[int], levers: Any, top_n: int, repeats: int
) -> float:
    """Median microseconds of one Inspector.observe on the model's real next-token logits."""
    from leverchat.engine.inspector import Inspector

    inspector = Inspector(generator.tokenizer, top_n)

    def observe(picker: Any, logits: Any, rng: Any) -> tuple[int, float]:
        token = picker.pick(logits, levers, rng)
        started = time.perf_counter()
        inspector.observe(picker, logits, levers, token)
        return token, time.perf_counter() - started

    return _runs.step_cost_us(generator, prompt_ids, repeats, observe)


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=64, runs=5)
    arguments.add_argument(
        "--top-n", type=int, default=10, help="alternatives recorded per token (default 10)"
    )
    args, decoder = _runs.decoder(arguments)
    generator = decoder.generator
    levers = lever_sets(args.tokens)
    tokens: dict[str, tuple[int, ...]] = {}

    def variant(name: str, inspect: int) -> Any:
        def run() -> float:
            request = replace(_common.request(_runs.MESSAGES, levers[name]), inspect=inspect)
            result = decoder.run(name, request)
            if inspect and len(result.inspection) != args.tokens:
                raise SystemExit(f"{name}: {len(result.inspection)} records, not {args.tokens}")
            tokens[f"{name}_{'on' if inspect else 'off'}"] = result.token_ids
            return float(result.stats.tokens_per_s)

        return run

    variants = {
        f"{name}_{state}": variant(name, args.top_n if state == "on" else 0)
        for name in levers
        for state in ("off", "on")
    }
    samples = _common.alternate(variants, args.runs)
    _, summary = _runs.rate_summary(samples)
    rates = summary["tokens_per_s"]
    ratios = {name: _common.ratio(rates[f"{name}_on"], rates[f"{name}_off"]) for name in levers}

    prompt_ids = decoder.prompt_ids(levers["default"])
    repeats = 10 if args.smoke else 100
    observe_us = {
        name: observe_cost_us(generator, prompt_ids, levers[name], args.top_n, repeats)
        for name in levers
    }
    _common.emit(
        {
            "benchmark": "inspector_overhead",
            "model": _common.model_name(args),
            "machine": _common.machine(args.device),
            "tokens": args.tokens,
            "runs": args.runs,
            "top_n": args.top_n,
            "levers": {name: lever.to_mapping() for name, lever in levers.items()},
            **summary,
            "ratio_on_over_off": ratios,
            "observe_us_per_token": observe_us,
            "same_tokens_on_and_off": all(
                tokens[f"{name}_on"] == tokens[f"{name}_off"] for name in levers
            ),
            "target": f"on / off >= {TARGET_RATIO} for every lever set",
            "target_met": all(ratio >= TARGET_RATIO for ratio in ratios.values()),
        }
    )


if __name__ == "__main__":
    main()
