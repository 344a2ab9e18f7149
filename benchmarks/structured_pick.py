"""Pick the structured-output library by measurement: xgrammar, llguidance and outlines-core
on the bundled SmolLM2 tokenizer (49,152 tokens), all on the CPU.

For each library that is installed it measures:

- ``schema_compile_ms``: compiling a JSON Schema (an object with strings, an integer, an enum,
  an array and a nested object) into something that can compute masks;
- ``json_mode_compile_ms``: the same for "any JSON object" (JSON mode);
- ``mask_ms_median`` / ``mask_ms_p95``: one token mask (into a preallocated int32 bitmask),
  while the matcher follows a valid document of that schema token by token;
- ``cpu_only``: whether it ran with no GPU and no GPU package (triton, CUDA) imported.

Run it by hand (``python benchmarks/structured_pick.py``; install the candidates with
``pip install --no-deps xgrammar apache-tvm-ffi llguidance outlines-core`` first). It prints one
JSON object. A library that is not installed is reported as such, not measured.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "role": {"enum": ["pirate", "captain", "cook"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "ship": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "guns": {"type": "integer"}},
            "required": ["name", "guns"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "age", "role", "tags", "ship"],
    "additionalProperties": False,
}
DOCUMENT = json.dumps(
    {
        "name": "Anne Bonny",
        "age": 25,
        "role": "pirate",
        "tags": ["brave", "fast", "loud"],
        "ship": {"name": "Revenge", "guns": 12},
    }
)


def _timed(function: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = function()
    return result, (time.perf_counter() - started) * 1000.0


def _mask_times(
    tokens: list[int], fill: Callable[[], None], accept: Callable[[int], bool]
) -> list[float]:
    times: list[float] = []
    for token in tokens:
        _, ms = _timed(fill)
        times.append(ms)
        if not accept(token):
            raise RuntimeError(f"the matcher refused token {token} of a valid document")
    return times


def _summary(times: list[float]) -> dict[str, float | int]:
    ordered = sorted(times)
    return {
        "mask_ms_median": round(statistics.median(ordered), 4),
        "mask_ms_p95": round(ordered[int(0.95 * (len(ordered) - 1))], 4),
        "mask_steps": len(ordered),
        # The first mask after compiling: a library may finish compiling lazily there.
        "first_mask_ms": round(times[0], 4),
    }


def _gpu_used() -> list[str]:
    """What of a GPU stack the run touched: triton imported, or CUDA initialised."""
    import torch

    used = [name for name in ("triton",) if name in sys.modules]
    if torch.cuda.is_initialized():
        used.append("cuda")
    return used


def measure_llguidance(tokenizer: Any, vocab: int, tokens: list[int]) -> dict[str, Any]:
    import llguidance
    import llguidance.hf
    import torch

    lltok, tokenizer_ms = _timed(lambda: llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab))

    def compile_schema(schema: dict[str, Any]) -> Any:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema))
        matcher = llguidance.LLMatcher(lltok, grammar)
        if matcher.is_error():
            raise RuntimeError(matcher.get_error())
        return matcher

    matcher, schema_ms = _timed(lambda: compile_schema(SCHEMA))
    _, json_ms = _timed(lambda: compile_schema({"type": "object"}))
    bitmask = torch.full(((vocab + 31) // 32,), -1, dtype=torch.int32)

    def fill() -> None:
        matcher.unsafe_compute_mask_ptr(bitmask.data_ptr(), bitmask.numel() * 4)

    times = _mask_times(tokens, fill, matcher.consume_token)
    return {
        "version": llguidance.__version__,
        "tokenizer_setup_ms": round(tokenizer_ms, 1),
        "schema_compile_ms": round(schema_ms, 2),
        "json_mode_compile_ms": round(json_ms, 2),
        **_summary(times),
        "grammars": "JSON Schema, regex, Lark and GBNF (converted to Lark)",
    }


def measure_xgrammar(tokenizer: Any, vocab: int, tokens: list[int]) -> dict[str, Any]:
    import xgrammar

    info, tokenizer_ms = _timed(
        lambda: xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab)
    )
    # A fresh compiler for each measurement: its cache would hide the compile time.
    compiled, schema_ms = _timed(
        lambda: xgrammar.GrammarCompiler(info, cache_enabled=False).compile_json_schema(
            json.dumps(SCHEMA)
        )
    )
    _, json_ms = _timed(
        lambda: xgrammar.GrammarCompiler(info, cache_enabled=False).compile_builtin_json_grammar()
    )
    matcher = xgrammar.GrammarMatcher(compiled)
    bitmask = xgrammar.allocate_token_bitmask(1, vocab)
    times = _mask_times(
        tokens, lambda: matcher.fill_next_token_bitmask(bitmask), matcher.accept_token
    )
    return {
        "version": getattr(xgrammar, "__version__", "?"),
        "tokenizer_setup_ms": round(tokenizer_ms, 1),
        "schema_compile_ms": round(schema_ms, 2),
        "json_mode_compile_ms": round(json_ms, 2),
        **_summary(times),
        "grammars": "JSON Schema, regex, EBNF (GBNF) and structural tags",
    }


def measure_outlines_core(tokenizer: Any, vocab: int, tokens: list[int]) -> dict[str, Any]:
    import outlines_core
    import torch
    from outlines_core.json_schema import build_regex_from_schema

    def vocabulary() -> Any:
        eos = tokenizer.eos_token_id
        mapping: dict[str, list[int]] = {}
        for token, index in tokenizer.get_vocab().items():
            if index == eos or index >= vocab:
                continue
            text = tokenizer.convert_tokens_to_string([token])
            mapping.setdefault(text, []).append(index)
        return outlines_core.Vocabulary(eos, mapping)

    voc, tokenizer_ms = _timed(vocabulary)
    index, schema_ms = _timed(
        lambda: outlines_core.Index(build_regex_from_schema(json.dumps(SCHEMA)), voc)
    )
    # No grammars: "any JSON object" is the regex of {"type": "object"}, which bounds nesting.
    _, json_ms = _timed(
        lambda: outlines_core.Index(build_regex_from_schema('{"type": "object"}'), voc)
    )
    guide = outlines_core.Guide(index)
    bitmask = torch.full(((vocab + 31) // 32,), -1, dtype=torch.int32)

    def fill() -> None:
        guide.write_mask_into(bitmask.data_ptr(), bitmask.numel(), 4)

    def accept(token: int) -> bool:
        guide.advance(token, return_tokens=False)
        return True

    times = _mask_times(tokens, fill, accept)
    return {
        "version": "0.2.x",
        "tokenizer_setup_ms": round(tokenizer_ms, 1),
        "schema_compile_ms": round(schema_ms, 2),
        "json_mode_compile_ms": round(json_ms, 2),
        **_summary(times),
        "grammars": "JSON Schema (as a regex) and regex; no context-free grammars",
    }


def measure_leverchat(tokenizer: Any, vocab: int, tokens: list[int]) -> dict[str, Any]:
    """What the lever costs in leverchat's decode loop, per token: ``ReplyConstraint.apply``
    (llguidance's mask, unpacked to a boolean per token, applied to float32 logits) and
    ``accept``; and with no structured lever set (must be ~0: one identity check)."""
    import torch

    from leverchat.engine.structured import ConstraintTokenizer, ReplyConstraint
    from leverchat.levers import Levers

    shared = ConstraintTokenizer(tokenizer, vocab, [tokenizer.eos_token_id])
    shared.get()  # built once per model, outside the per-token cost
    logits = torch.randn(vocab)
    result: dict[str, Any] = {}
    for name, levers in (
        ("off", Levers()),
        ("json_mode", Levers(json_mode=1)),
        ("json_schema", Levers(json_schema=json.dumps(SCHEMA))),
    ):
        constraint = ReplyConstraint(shared)
        constraint.apply(logits, levers)  # compiles the grammar: not a per-token cost
        constraint = ReplyConstraint(shared)
        times: list[float] = []
        for token in tokens:
            started = time.perf_counter()
            constraint.apply(logits, levers)
            constraint.accept(token)
            times.append((time.perf_counter() - started) * 1000.0)
        result[f"apply_ms_median_{name}"] = round(statistics.median(times), 4)
    return result


CANDIDATES: dict[str, Callable[[Any, int, list[int]], dict[str, Any]]] = {
    "llguidance": measure_llguidance,
    "xgrammar": measure_xgrammar,
    "outlines-core": measure_outlines_core,
}


def main(argv: list[str] | None = None) -> None:
    arguments = _common.parser(__doc__ or "", tokens=2, runs=1)
    args = _common.start(arguments, argv)
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # prove CPU only
    from transformers import AutoTokenizer

    from leverchat.engine import bundled, gguf_cache

    if args.smoke:  # the tiny test model's 400-token tokenizer: checks the script runs
        tokenizer = AutoTokenizer.from_pretrained(str(_common.tiny_model_dir()))
        vocab = len(tokenizer)
    else:
        entry = gguf_cache.ensure_converted(bundled.bundled_gguf_path())
        tokenizer = AutoTokenizer.from_pretrained(str(entry.folder))
        vocab = 49152  # SmolLM2's output layer
    tokens = [*tokenizer.encode(DOCUMENT, add_special_tokens=False)]
    results: dict[str, Any] = {}
    try:
        leverchat_cost = measure_leverchat(tokenizer, vocab, tokens)
    except ImportError as error:
        leverchat_cost = {"error": str(error)}
    for name, measure in CANDIDATES.items():
        try:
            results[name] = measure(tokenizer, vocab, tokens)
            results[name]["cpu_only"] = not _gpu_used()
        except ImportError as error:
            results[name] = {"installed": False, "error": str(error)}
        except Exception as error:
            results[name] = {"error": f"{type(error).__name__}: {error}"}
    _common.emit(
        {
            "benchmark": "structured_pick",
            "model": "tiny test tokenizer" if args.smoke else "bundled SmolLM2-135M-Instruct",
            "vocab": vocab,
            "document_tokens": len(tokens),
            "threads": args.threads,
            "results": results,
            "leverchat_per_token": leverchat_cost,
        }
    )


if __name__ == "__main__":
    main()
