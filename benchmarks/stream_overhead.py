"""Tokens/s of leverchat's whole streaming path against bare ``model.generate``.

Three variants, alternating, same model object, prompt, seed, levers and number of tokens:

- ``bare``: ``model.generate`` (sampling with the same temperature/top-p/min-p, top-k off,
  exactly ``--tokens`` new tokens);
- ``engine``: leverchat's EngineThread + Generator, chunks into a no-op callback;
- ``app``: the real Textual app run headless (``App.run_test``): the message is sent as a user
  would, the reply streams through the chunk buffer into the chat view's Markdown, and the
  run ends when the app has shown the finished reply.

Every torch call of every variant runs on the engine's one thread (as in the app: a second
torch thread slows both down), and each run starts from an empty KV cache, so every variant
prefills the same prompt. Rate = tokens / wall time from request to result.

Target: app / bare at least 0.97 (engine / bare is reported too).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import _common
import _runs

TARGET_RATIO = 0.97
SEED = 1234


async def main_async(args: Any) -> dict[str, Any]:
    import torch

    from leverchat.engine.prompt import encode_messages
    from leverchat.engine.types import ModelSpec
    from leverchat.engine.worker import EngineThread
    from leverchat.levers import Levers

    engine = EngineThread()
    info = engine.load(ModelSpec(source=args.model, device=args.device)).result()
    generator: Any = engine.generator
    _common.never_end_of_turn(generator)
    model, tokenizer = generator.model, generator.tokenizer
    levers = Levers(
        temperature=0.7, top_p=0.95, min_p=0.05, top_k=0, seed=SEED, max_new_tokens=args.tokens
    )
    messages = _runs.MESSAGES
    chat_request = _common.request(messages, levers)
    prompt_ids = encode_messages(tokenizer, chat_request.messages, "auto")
    input_ids = torch.tensor([prompt_ids], device=generator.device)
    pad_id = next(iter(generator_eos(model, tokenizer)), 0)

    def bare_job() -> float:
        torch.manual_seed(SEED)
        started = time.perf_counter()
        output = model.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            do_sample=True,
            temperature=levers.temperature,
            top_p=levers.top_p,
            min_p=levers.min_p,
            top_k=0,
            max_new_tokens=args.tokens,
            min_new_tokens=args.tokens,
            pad_token_id=pad_id,
        )
        elapsed = time.perf_counter() - started
        produced = int(output.shape[1]) - len(prompt_ids)
        if produced != args.tokens:
            raise SystemExit(f"bare generate produced {produced} tokens, not {args.tokens}")
        return float(args.tokens / elapsed)

    async def bare() -> float:
        return float(await asyncio.wrap_future(_common.on_engine_thread(engine, bare_job)))

    async def fresh_cache() -> None:
        await asyncio.wrap_future(_common.on_engine_thread(engine, generator.reset_cache))

    decode_rates: dict[str, list[float]] = {"engine": [], "app": []}

    async def engine_only() -> float:
        await fresh_cache()
        started = time.perf_counter()
        future = engine.generate(_common.request(messages, levers), lambda piece: None)
        result = _common.check_result(await asyncio.wrap_future(future))
        elapsed = time.perf_counter() - started
        if result.stats.new_tokens != args.tokens:
            raise SystemExit(f"engine produced {result.stats.new_tokens} tokens")
        decode_rates["engine"].append(result.stats.tokens_per_s)
        return float(args.tokens / elapsed)

    variants: dict[str, Any] = {"bare": bare, "engine": engine_only}
    app_note = None
    try:
        if args.no_app:
            app_note = "skipped (--no-app)"
            samples = await _runs.alternate_async(variants, args.runs)
        else:
            spec = ModelSpec(args.model)
            async with _runs.headless_app(engine, info, spec, levers) as app:

                async def in_app() -> float:
                    elapsed, result = await app.reply(before=fresh_cache)
                    if result is None or result.stats.new_tokens != args.tokens:
                        raise SystemExit(f"the app's reply failed or was short: {result}")
                    decode_rates["app"].append(result.stats.tokens_per_s)
                    return float(args.tokens / elapsed)

                variants["app"] = in_app
                samples = await _runs.alternate_async(variants, args.runs)
    finally:
        engine.close()

    rates, summary = _runs.rate_summary(samples)
    app_ratio = _common.ratio(rates["app"], rates["bare"]) if "app" in rates else None
    return {
        "benchmark": "stream_overhead",
        "model": _common.model_name(args),
        "machine": _common.machine(args.device),
        "tokens": args.tokens,
        "runs": args.runs,
        "levers": levers.to_mapping(),
        **summary,
        "engine_decode_tokens_per_s": {
            name: round(_common.median(values), 2)
            for name, values in decode_rates.items()
            if values
        },
        "ratio_engine_over_bare": _common.ratio(rates["engine"], rates["bare"]),
        "ratio_app_over_bare": app_ratio,
        "app_variant": app_note or "headless LeverChatApp, reply streamed into the chat view",
        "target": f"app / bare >= {TARGET_RATIO}",
        "target_met": (app_ratio if app_ratio is not None else 0.0) >= TARGET_RATIO,
    }


def generator_eos(model: Any, tokenizer: Any) -> list[int]:
    value = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(value, int):
        return [value]
    if isinstance(value, list | tuple) and value:
        return [int(v) for v in value]
    return [int(tokenizer.eos_token_id)] if tokenizer.eos_token_id is not None else []


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=96, runs=3)
    arguments.add_argument("--no-app", action="store_true", help="skip the headless-app variant")
    args = _common.start(arguments)
    if args.smoke:
        args.tokens, args.runs = min(args.tokens, 8), 1
    _common.emit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
