"""Decode tokens/s of the bundled GGUF under llama.cpp beside leverchat's, in the same run.

Only where ``llama_cpp`` (llama-cpp-python) is importable; otherwise it prints a JSON object
with ``"skipped"``. It is neither a test nor a project dependency. Build it with
``CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF"
pip install llama-cpp-python`` (about 10 minutes on 2 cores; a native build crashed here).

Both run the same chat-templated prompt with the same sampling levers for exactly
``--tokens`` tokens (end-of-turn does not stop either); the rate is the decode rate (tokens
after the first over the time from first to last), so the prompt's prefill is left out. The
runs alternate. llama.cpp runs the Q4_1 weights as they are; leverchat the dequantised
float32 conversion (``leverchat``, the default) and, on the CPU, the same with its linear layers
quantised to int8 on load (``leverchat_int8``: ``leverchat --quantize int8``). Each side uses
its own default: llama.cpp every core (``n_threads``), leverchat one fewer than the cores
(the engine thread's policy, which leaves a core to the UI) unless ``--threads`` is given.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any

import _common

SEED = 5


def llama_cpp_rate(llm: Any, prompt_text: str, tokens: int, levers: Any) -> float:
    prompt = llm.tokenize(prompt_text.encode(), add_bos=False, special=True)
    llm.reset()
    stamps: list[float] = []
    for _token in llm.generate(
        prompt, temp=levers.temperature, top_p=levers.top_p, min_p=levers.min_p, top_k=0
    ):
        stamps.append(time.perf_counter())
        if len(stamps) >= tokens:
            break
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def main() -> None:
    args = _common.start(_common.parser(__doc__ or "", tokens=64, runs=3))
    base: dict[str, Any] = {"benchmark": "peer_llamacpp", "machine": _common.machine("cpu")}
    if importlib.util.find_spec("llama_cpp") is None:
        base["skipped"] = "llama_cpp (llama-cpp-python) is not installed"
        _common.emit(base)
        return
    if args.smoke:
        args.tokens, args.runs = min(args.tokens, 4), 1
        args.model = None  # llama.cpp needs the GGUF: the smoke run uses the bundled model too

    from llama_cpp import Llama  # type: ignore[import-not-found,unused-ignore]

    from leverchat.engine.bundled import bundled_gguf_path
    from leverchat.engine.worker import configure_cpu_threads
    from leverchat.levers import Levers

    # leverchat's own thread policy (one fewer than the cores unless --threads), as in the app.
    configure_cpu_threads(args.threads)

    gguf = str(bundled_gguf_path())
    loaded = _common.load(args)
    generator = _common.make_generator(loaded, endless=True)
    levers = Levers(temperature=0.7, top_p=0.95, min_p=0.05, top_k=0, seed=SEED)
    levers = levers.with_value("max_new_tokens", args.tokens)
    messages = [("system", _common.SYSTEM_PROMPT), ("user", _common.LONG_ANSWER_PROMPT)]
    chat = _common.request(messages, levers)
    prompt_text = loaded.tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in chat.messages],
        tokenize=False,
        add_generation_prompt=True,
    )
    threads = os.cpu_count() or 1
    llm = Llama(model_path=gguf, n_ctx=2048, n_threads=threads, seed=SEED, verbose=False)

    def rate_of(engine: Any) -> Callable[[], float]:
        def leverchat_rate() -> float:
            result = _common.check_result(engine.run(_common.request(messages, levers), None))
            return float(result.stats.tokens_per_s)

        return leverchat_rate

    variants = {
        "llama_cpp": lambda: llama_cpp_rate(llm, prompt_text, args.tokens, levers),
        "leverchat": rate_of(generator),
    }
    if args.device == "cpu":
        int8 = _common.make_generator(_common.load(args, quantize="int8"), endless=True)
        variants["leverchat_int8"] = rate_of(int8)
    samples = _common.alternate(variants, args.runs)
    rates = {name: _common.median(values) for name, values in samples.items()}
    base.update(
        {
            "model": "bundled SmolLM2-135M-Instruct (Q4_1 GGUF)",
            "tokens": args.tokens,
            "runs": args.runs,
            "llama_cpp_threads": threads,
            "leverchat_torch_threads": torch_threads(),
            "tokens_per_s": {name: round(rate, 2) for name, rate in rates.items()},
            "samples": {name: _common.rounded(values, 2) for name, values in samples.items()},
            "leverchat_over_llama_cpp": _common.ratio(rates["leverchat"], rates["llama_cpp"]),
            "leverchat_int8_over_llama_cpp": _common.ratio(
                rates.get("leverchat_int8", 0.0), rates["llama_cpp"]
            ),
            "goal": "toward 0.5 (half of llama.cpp's speed)",
        }
    )
    _common.emit(base)


if __name__ == "__main__":
    main()
