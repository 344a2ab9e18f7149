"""Decode tokens/s of a randomly initialised Llama-shaped ~1B model through leverchat's
Generator, and its fraction of the memory-bandwidth bound.

The model has Llama-3.2-1B's shape (hidden 2048, 16 layers, 32 heads, 8 KV heads, MLP 8192,
vocabulary 128256, tied embeddings: 1.24 B parameters) in bfloat16. Decoding one token reads
every weight once, so the bound is ``device bandwidth / bytes read per token`` (the weights,
plus the KV cache read at the mid-reply length, reported separately). The tokenizer is
synthetic (byte-level, padded with filler tokens to the model's vocabulary): the model is
random, only the shapes and the work per token are real.

Variants: ``eager`` (the Generator as the engine runs it), ``forward_only`` (model forward
passes and an on-device argmax, no sampling, no detokenizing: the ceiling for the loop), and
with ``--compile`` also ``compiled``: ``Generator(compile=True)``, what ``leverchat --compile``
runs (a static KV cache of ``--context`` tokens allocated once, the one-token step compiled,
with CUDA graphs on a GPU). The JSON reports the compile time and how many graphs were built
after the warm-up (a recompile between turns would show there; the timed runs are separate
turns, each re-using the cache from the start).

``--shape 8b`` uses Llama-3.1-8B's shape instead (hidden 4096, 32 layers, 32 heads, 8 KV heads,
MLP 14336, untied output layer: 8.03 B parameters, 16 GB in bf16). ``--device cpu --small``
runs a tiny config as a smoke test.
"""

from __future__ import annotations

import time
from typing import Any

import _common

# Peak memory bandwidth in bytes/s by device-name fragment (vendor data sheets).
BANDWIDTH_BY_DEVICE = {
    "H200": 4.8e12,  # HBM3e, 141 GB
    "H100 PCIe": 2.0e12,
    "H100": 3.35e12,  # SXM5 HBM3
    "A100": 2.039e12,  # 80 GB SXM
    "L40S": 0.864e12,
    "L4": 0.3e12,
    "A10": 0.6e12,
    "4090": 1.008e12,
    "3090": 0.936e12,
}
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA_1B = {
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
}
# Llama-3.1-8B (8.03 B parameters, untied output layer), for --shape 8b: 16 GB in bf16.
LLAMA_8B = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
}
SHAPES = {
    "1b": (LLAMA_1B, True, "Llama-3.2-1B shape"),
    "8b": (LLAMA_8B, False, "Llama-3.1-8B shape"),
}
SMALL = {
    "vocab_size": 1024,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def synthetic_tokenizer(vocab_size: int) -> Any:
    """A byte-level tokenizer whose vocabulary covers every id the model can produce."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for token in [*SPECIAL_TOKENS, *sorted(pre_tokenizers.ByteLevel.alphabet())]:
        vocab.setdefault(token, len(vocab))
    filler = 0
    while len(vocab) < vocab_size:
        vocab[f"w{filler}"] = len(vocab)
        filler += 1
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def build_model(shape: dict[str, int], device: Any, dtype: Any, *, tied: bool = True) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **shape,  # type: ignore[arg-type]
        max_position_embeddings=4096,
        tie_word_embeddings=tied,
        eos_token_id=2,
        pad_token_id=0,
        bos_token_id=None,
    )
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()  # type: ignore[no-untyped-call]


def bytes_per_token(model: Any, context_tokens: int) -> tuple[int, int]:
    """(weight bytes, KV-cache bytes) read to decode one token at ``context_tokens``."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    config = model.config
    head_dim = config.hidden_size // config.num_attention_heads
    element = next(model.parameters()).element_size()
    kv = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * element
    return weights, kv * context_tokens


def default_bandwidth(device_name: str) -> float | None:
    for fragment, bandwidth in BANDWIDTH_BY_DEVICE.items():
        if fragment in device_name:
            return bandwidth
    return None


def synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def generator_rate(generator: Any, levers: Any, runs: int) -> list[float]:
    messages = [("system", _common.SYSTEM_PROMPT), ("user", _common.LONG_ANSWER_PROMPT)]
    rates = []
    for _ in range(runs):
        generator.reset_cache()
        result = _common.check_result(generator.run(_common.request(messages, levers), None))
        rates.append(float(result.stats.tokens_per_s))
    return rates


def forward_only_rate(model: Any, device: Any, tokens: int, runs: int) -> list[float]:
    """Forward passes with the next id chosen on the device: no host round trip per token."""
    import torch
    from transformers import DynamicCache

    rates = []
    with torch.inference_mode():
        for _ in range(runs):
            cache = DynamicCache(config=model.config)
            ids = torch.arange(3, 35, device=device).unsqueeze(0)
            logits = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1).logits
            next_id = logits[:, -1].argmax(-1, keepdim=True)
            synchronize(device)
            started = time.perf_counter()
            for _ in range(tokens):
                out = model(input_ids=next_id, cache=cache, use_cache=True, logits_to_keep=1)
                next_id = out.logits[:, -1].argmax(-1, keepdim=True)
            synchronize(device)
            rates.append(tokens / (time.perf_counter() - started))
    return rates


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=256, runs=3)
    arguments.add_argument("--small", action="store_true", help="a tiny config (CPU smoke run)")
    arguments.add_argument("--compile", action="store_true", help="also measure a compiled model")
    arguments.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="1b",
        help="1b: Llama-3.2-1B (default); 8b: Llama-3.1-8B (16 GB in bf16)",
    )
    arguments.add_argument(
        "--bandwidth",
        type=float,
        default=None,
        help="device memory bandwidth in GB/s (default: looked up by GPU name, e.g. H200 4800)",
    )
    arguments.add_argument("--dtype", default=None, help="default: bfloat16 on GPU, else float32")
    arguments.add_argument(
        "--context",
        type=int,
        default=4096,
        help="the context window; with --compile the static cache's size (default 4096, as "
        "leverchat --compile)",
    )
    args = _common.start(arguments)
    if args.smoke:
        args.small, args.tokens, args.runs = True, min(args.tokens, 8), 1

    import torch

    from leverchat.engine.compiled import compiled_graph_count
    from leverchat.engine.generate import Generator
    from leverchat.levers import Levers

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    dtype_name = args.dtype or ("bfloat16" if device.type == "cuda" else "float32")
    dtype = getattr(torch, dtype_name)
    shape, tied, shape_name = SHAPES[args.shape]
    if args.small:
        shape, tied, shape_name = SMALL, True, "small smoke config"
    model = build_model(shape, device, dtype, tied=tied)
    tokenizer = synthetic_tokenizer(shape["vocab_size"])
    parameters = sum(p.numel() for p in model.parameters())
    levers = Levers(seed=3, max_new_tokens=args.tokens)

    def make_generator(compiled: bool) -> Any:
        generator = Generator(model, tokenizer, device, args.context, compile=compiled)
        _common.never_end_of_turn(generator)
        return generator

    results: dict[str, Any] = {}
    eager = make_generator(False)
    generator_rate(eager, Levers(seed=3, max_new_tokens=4), 1)  # warm-up
    results["eager"] = generator_rate(eager, levers, args.runs)
    forward_only_rate(model, device, 4, 1)
    results["forward_only"] = forward_only_rate(model, device, args.tokens, args.runs)
    compile_info: dict[str, Any] = {"requested": args.compile}
    if args.compile:
        try:
            compiled = make_generator(True)
            compile_info.update(
                how="Generator(compile=True)",
                mode=compiled.compiled.mode,
                static_cache_tokens=args.context,
                warmup_s=round(compiled.warm_up(), 2),
            )
            graphs = compiled_graph_count()
            results["compiled"] = generator_rate(compiled, levers, args.runs)
            compile_info["graphs_built_after_warm_up"] = compiled_graph_count() - graphs
        except Exception as error:  # report it: the eager numbers still stand
            compile_info["error"] = f"{type(error).__name__}: {error}"[:500]

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    bandwidth = args.bandwidth * 1e9 if args.bandwidth else default_bandwidth(device_name)
    prompt_tokens = 40  # about the chat-templated prompt's length
    weight_bytes, kv_bytes = bytes_per_token(model, prompt_tokens + args.tokens // 2)
    bound = bandwidth / (weight_bytes + kv_bytes) if bandwidth else None
    static_kv_bytes = bytes_per_token(model, args.context)[1]
    rates = {name: round(_common.median(values), 2) for name, values in results.items()}
    _common.emit(
        {
            "benchmark": "gpu_decode",
            "model": f"random Llama, {shape_name}",
            "machine": _common.machine(args.device),
            "device_name": device_name,
            "dtype": dtype_name,
            "parameters": parameters,
            "tokens": args.tokens,
            "runs": args.runs,
            "tokens_per_s": rates,
            "samples": {name: _common.rounded(values, 2) for name, values in results.items()},
            "weight_bytes_per_token": weight_bytes,
            "kv_bytes_per_token_mid_reply": kv_bytes,
            "bandwidth_bytes_per_s": bandwidth,
            "bandwidth_source": (
                "--bandwidth" if args.bandwidth else ("table" if bandwidth else "unknown")
            ),
            "bound_tokens_per_s": round(bound, 1) if bound else None,
            "fraction_of_bound": (
                {name: round(rate / bound, 4) for name, rate in rates.items()} if bound else None
            ),
            # The compiled step's attention reads the whole static cache every token.
            "kv_bytes_per_token_static_cache": static_kv_bytes,
            "compiled_bound_tokens_per_s": (
                round(bandwidth / (weight_bytes + static_kv_bytes), 1) if bandwidth else None
            ),
            "compile": compile_info,
        }
    )


if __name__ == "__main__":
    main()
