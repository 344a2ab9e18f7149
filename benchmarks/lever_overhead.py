"""Decode speed with neutral levers against every lever active, plus the cost of picking alone.

Both variants run the same Generator on the same prompt with a fixed seed and produce exactly
``--tokens`` tokens (end-of-turn tokens do not stop them). The rate is the engine's own decode
rate (tokens after the first, divided by the time between first and last token), so the
prefill is left out. The runs alternate.

Also measured: the time of ``TokenPicker.pick`` alone per token for each lever set, on real
logits, which shows the sampling cost without the model's noise around it.

And the cost of each sampler of sampler_specs.py when it is on (alone, over neutral levers):
``pick_us_per_sampler``. Neutral, each of them is skipped with one comparison, so the neutral
pick above already includes them at no cost.

Target: active / neutral tokens/s at least 0.9.
"""

from __future__ import annotations

import time
from typing import Any

import _common
import _runs

TARGET_RATIO = 0.9


def lever_sets(tokens: int) -> dict[str, Any]:
    from dataclasses import replace

    from leverchat.levers import neutral_levers

    neutral = replace(neutral_levers(), seed=7, max_new_tokens=tokens)
    return {"neutral": neutral, "active": _runs.active_levers(tokens)}


def sampler_sets(neutral: Any) -> dict[str, Any]:
    """Neutral levers with one sampler beyond the common levers switched on."""
    from dataclasses import replace

    return {
        "dry": replace(neutral, dry_multiplier=0.8),
        "xtc": replace(neutral, xtc_probability=1.0, xtc_threshold=0.1),
        "mirostat": replace(neutral, mirostat_tau=5.0),
        "dynatemp": replace(neutral, dynatemp_range=0.5),
        "temperature_last": replace(neutral, temperature_last=1, temperature=0.8, min_p=0.05),
        "ban": replace(neutral, ban=("As an AI", "delve", "tapestry")),
        "boost": replace(neutral, boost=(("Arr", 2.0), ("matey", 1.5), ("As an AI", -100.0))),
    }


def pick_cost_us(generator: Any, prompt_ids: list[int], levers: Any, repeats: int) -> float:
    """Median microseconds of one TokenPicker.pick on the model's real next-token logits."""

    def pick(picker: Any, logits: Any, rng: Any) -> tuple[int, float]:
        started = time.perf_counter()
        token = picker.pick(logits, levers, rng)
        return token, time.perf_counter() - started

    return _runs.step_cost_us(generator, prompt_ids, repeats, pick)


def main() -> None:
    args, decoder = _runs.decoder(_common.parser(__doc__ or "", tokens=64, runs=5))
    generator = decoder.generator
    levers = lever_sets(args.tokens)

    def variant(name: str) -> Any:
        def run() -> float:
            result = decoder.run(name, _common.request(_runs.MESSAGES, levers[name]))
            return float(result.stats.tokens_per_s)

        return run

    samples = _common.alternate({name: variant(name) for name in levers}, args.runs)
    neutral_rate = _common.median(samples["neutral"])
    active_rate = _common.median(samples["active"])
    result_ratio = _common.ratio(active_rate, neutral_rate)

    prompt_ids = decoder.prompt_ids(levers["neutral"])
    repeats = 20 if args.smoke else 200
    pick_us = {name: pick_cost_us(generator, prompt_ids, levers[name], repeats) for name in levers}
    samplers = sampler_sets(levers["neutral"])
    sampler_us = {
        name: pick_cost_us(generator, prompt_ids, lever, repeats)
        for name, lever in samplers.items()
    }
    neutral_ms_per_token = 1000.0 / neutral_rate if neutral_rate else 0.0
    _common.emit(
        {
            "benchmark": "lever_overhead",
            "model": _common.model_name(args),
            "machine": _common.machine(args.device),
            "tokens": args.tokens,
            "runs": args.runs,
            "levers": {name: lever.to_mapping() for name, lever in levers.items()},
            "tokens_per_s_neutral": round(neutral_rate, 2),
            "tokens_per_s_active": round(active_rate, 2),
            "samples_neutral": _common.rounded(samples["neutral"], 2),
            "samples_active": _common.rounded(samples["active"], 2),
            "ratio_active_over_neutral": result_ratio,
            "pick_us_per_token": pick_us,
            "pick_us_per_sampler": sampler_us,
            "pick_share_of_token_neutral": _common.ratio(
                pick_us["neutral"] / 1000.0, neutral_ms_per_token
            ),
            "target": f"active / neutral >= {TARGET_RATIO}",
            "target_met": result_ratio >= TARGET_RATIO,
        }
    )


if __name__ == "__main__":
    main()
