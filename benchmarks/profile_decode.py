"""Where the time per decoded token goes, on the bundled model: a profile, not a target.

1. The Generator's decode loop, with its parts timed in place (thin wrappers around the model
   forward, ``TokenPicker.pick``, the detokenizer and the stop filter): per-token
   milliseconds of each part and the rest of the loop.
2. Inside one forward pass: torch.profiler's time in ATen operators against the forward's
   wall time (the difference is Python: transformers' module code, cache, masks, RoPE).
3. Micro-costs of the sampling steps on the real vocabulary (one full-vocabulary tensor).
4. The forward-only decode rate with 1 and with 2 intra-op threads.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import _common


def timed(
    store: dict[str, list[float]], name: str, function: Callable[..., Any]
) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            store[name].append(time.perf_counter() - started)

    return wrapper


def loop_split(generator: Any, messages: list[tuple[str, str]], levers: Any) -> dict[str, Any]:
    """Run one reply with the loop's parts timed; ms per decoded token for each."""
    from leverchat.engine import detokenize, sampling

    spent: dict[str, list[float]] = defaultdict(list)
    picker_class = sampling.TokenPicker
    decoder_class = detokenize.IncrementalDecoder
    filter_class = detokenize.StopStringFilter
    originals = (picker_class.pick, decoder_class.step, filter_class.feed)
    picker_class.pick = timed(spent, "sampling", picker_class.pick)  # type: ignore[method-assign]
    decoder_class.step = timed(spent, "detokenize", decoder_class.step)  # type: ignore[method-assign]
    filter_class.feed = timed(spent, "stop_filter", filter_class.feed)  # type: ignore[method-assign]
    # One decoded token's forward pass: the lean step where the model allows it, else the
    # model's own forward (Generator._step chooses, as in the app).
    generator._step = timed(spent, "forward", generator._step)
    try:
        generator.reset_cache()
        result = _common.check_result(generator.run(_common.request(messages, levers), None))
    finally:
        picker_class.pick, decoder_class.step, filter_class.feed = originals  # type: ignore[method-assign]
        del generator._step
    per_token = {name: sum(values) / len(values) for name, values in spent.items() if values}
    tokens = result.stats.new_tokens
    # The engine's decode window: first to last token, tokens - 1 steps.
    total = 1.0 / result.stats.tokens_per_s if result.stats.tokens_per_s else 0.0
    per_token["loop_rest"] = max(0.0, total - sum(per_token.values()))
    return {
        "tokens": tokens,
        "tokens_per_s": round(result.stats.tokens_per_s, 2),
        "ms_per_token": round(total * 1000, 3),
        "split_ms_per_token": {k: round(v * 1000, 3) for k, v in per_token.items()},
        "split_share": {k: round(v / total, 3) for k, v in per_token.items()} if total else {},
    }


def forward_profile(generator: Any, prompt_ids: list[int], steps: int) -> dict[str, Any]:
    """ATen operator time against wall time for single-token forward passes."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        generator.reset_cache()
        logits, _reused = generator._prefill(prompt_ids)
        token = int(logits.argmax())
        for _ in range(3):
            token = int(generator._step(token).argmax())
        started = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                token = int(generator._step(token).argmax())
        wall = (time.perf_counter() - started) / steps
    events = prof.key_averages()
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:8]
    op_total = sum(e.self_cpu_time_total for e in events) / 1e6 / steps
    ops_per_forward = sum(e.count for e in events) / steps
    matmul = sum(
        e.self_cpu_time_total for e in events if e.key in ("aten::addmm", "aten::mm", "aten::bmm")
    )
    generator.reset_cache()
    return {
        "forward_wall_ms_profiled": round(wall * 1000, 3),
        "aten_self_ms": round(op_total * 1000, 3),
        "matmul_ms": round(matmul / 1e3 / steps, 3),
        "aten_calls_per_forward": round(ops_per_forward),
        "top_ops_ms": {e.key: round(e.self_cpu_time_total / 1e3 / steps, 3) for e in top},
        "note": "profiler overhead inflates wall; compare aten_self_ms to it, not absolute",
    }


def micro_costs(vocab: int, repeats: int) -> dict[str, float]:
    """Microseconds per call of sampling steps on one full-vocabulary float32 vector."""
    import torch

    from leverchat.engine import sampling

    logits = torch.randn(vocab) * 3
    rng = torch.Generator()
    rng.manual_seed(0)
    seen = torch.zeros(vocab, dtype=torch.bool)
    seen[:200] = True
    counts = torch.zeros(vocab)
    counts[:200] = 1.0
    steps: dict[str, Callable[[], Any]] = {
        "slice_float_copy": lambda: logits[:vocab].float(),
        "divide_by_temperature": lambda: logits / 0.7,
        "isfinite_any_item": lambda: bool(torch.isfinite(logits).any()),
        "softmax": lambda: torch.softmax(logits, dim=-1),
        "multinomial_item": lambda: int(
            torch.multinomial(torch.softmax(logits, -1), 1, generator=rng).item()
        ),
        "argmax_item": lambda: int(torch.argmax(logits).item()),
        "top_k_40": lambda: sampling.filter_top_k(logits, 40),
        "top_p_0.9_sort": lambda: sampling.filter_top_p(logits, 0.9),
        "min_p_0.05": lambda: sampling.filter_min_p(logits, 0.05),
        "repetition_penalty": lambda: torch.where(
            seen, sampling.penalise_repeats(logits, 1.1), logits
        ),
        "frequency_presence": lambda: sampling.apply_frequency_presence(logits, counts, 0.3, 0.3),
        "top_p_after_top_k_40": lambda: sampling.filter_top_p(
            sampling.filter_top_k(logits, 40), 0.9
        ),
    }
    result = {}
    for name, step in steps.items():
        step()
        started = time.perf_counter()
        for _ in range(repeats):
            step()
        result[name] = round((time.perf_counter() - started) / repeats * 1e6, 1)
    return result


def forward_only_rate(generator: Any, prompt_ids: list[int], tokens: int) -> float:
    import torch

    with torch.inference_mode():
        generator.reset_cache()
        token = int(generator._prefill(prompt_ids)[0].argmax())
        started = time.perf_counter()
        for _ in range(tokens):
            token = int(generator._step(token).argmax())
        rate = tokens / (time.perf_counter() - started)
    generator.reset_cache()
    return rate


def main() -> None:
    args = _common.start(_common.parser(__doc__ or "", tokens=64, runs=2))
    if args.smoke:
        args.tokens, args.runs = min(args.tokens, 6), 1

    import torch

    from leverchat.engine.prompt import encode_messages
    from leverchat.levers import Levers

    loaded = _common.load(args)
    generator = _common.make_generator(loaded, endless=True)
    messages = [("system", _common.SYSTEM_PROMPT), ("user", _common.LONG_ANSWER_PROMPT)]
    default_levers = Levers(seed=3, max_new_tokens=args.tokens)  # the chat defaults
    prompt_ids = encode_messages(
        loaded.tokenizer, _common.request(messages, default_levers).messages, "auto"
    )
    loop_split(generator, messages, Levers(seed=3, max_new_tokens=4))  # warm-up
    splits = [loop_split(generator, messages, default_levers) for _ in range(args.runs)]
    best = min(splits, key=lambda s: s["ms_per_token"])  # the least disturbed run
    threads_default = torch.get_num_threads()
    thread_rates = {}
    for threads in sorted({1, threads_default}):
        torch.set_num_threads(threads)
        forward_only_rate(generator, prompt_ids, 4)
        thread_rates[str(threads)] = round(forward_only_rate(generator, prompt_ids, args.tokens), 2)
    torch.set_num_threads(threads_default)
    _common.emit(
        {
            "benchmark": "profile_decode",
            "model": _common.model_name(args),
            "machine": _common.machine(args.device),
            "levers": "chat defaults (temperature 0.7, top_p 0.95, min_p 0.05)",
            # The one-token step: lean_step.py's, or the model's own forward where it has none.
            "step": "lean" if generator.lean is not None else "model forward",
            "decode_loop": best,
            "all_runs_ms_per_token": [s["ms_per_token"] for s in splits],
            "forward": forward_profile(generator, prompt_ids, 8 if args.smoke else 24),
            "sampling_micro_us": micro_costs(generator.vocab_size, 20 if args.smoke else 300),
            "forward_only_tokens_per_s_by_threads": thread_rates,
        }
    )


if __name__ == "__main__":
    main()
