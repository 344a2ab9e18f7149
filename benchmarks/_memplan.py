"""Memory accounting for loading a Llama-3.1-8B Q4_K_M GGUF, without the file or the RAM.

The tensor list is the real shape's (``_randmodel.SHAPES["8b"]``), checked against a
transformers LlamaForCausalLM built on the meta device (no memory). The file size follows
llama.cpp's Q4_K_M mix (``llama_tensor_get_type``: attn_v and ffn_down in Q6_K on the layers
``use_more_bits`` picks, output.weight Q6_K, the rest Q4_K, norms F32). leverchat's side is
the bytes each way of holding the weights needs, plus the peak while converting:

- ``float32_whole_model``: the conversion of main before issue #12 (transformers de-quantises
  the whole model to float32, then a second float32 model is rebuilt to save it);
- ``bf16_tensor_by_tensor``: a compact cache written one tensor at a time (the float32 copy of
  the largest tensor is the only extra);
- ``int8_weight_only`` / ``int4_weight_only``: every Linear weight quantised per output
  channel (int8) or in groups of 32 (int4, a bf16 scale and zero per group), embeddings bf16.

Plus what the run adds: the KV cache at the given context, and the process's own base
(torch + transformers imported, ~0.8 GB measured with the bundled model).
"""

from __future__ import annotations

from typing import Any

from _randmodel import SHAPES, Shape

PROCESS_BASE_BYTES = 800_000_000  # python + torch + transformers + tokenizer, measured here
INT4_GROUP = 32


def _use_more_bits(layer: int, layers: int) -> bool:
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def q4_k_m_type(name: str, layers: int) -> str:
    if len(name.split(".")) and name.endswith("norm.weight"):
        return "F32"
    if name == "output.weight":
        return "Q6_K"
    if name.endswith("attn_v.weight") or name.endswith("ffn_down.weight"):
        layer = int(name.split(".")[1])
        return "Q6_K" if _use_more_bits(layer, layers) else "Q4_K"
    return "Q4_K"


def _gguf_bytes(kind: str, count: int) -> int:
    import gguf

    block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[kind]]
    return count // block * size


def meta_parameter_count(shape: Shape) -> int:
    """Parameters of transformers' own LlamaForCausalLM of this shape, built on the meta device."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        vocab_size=shape.vocab_size,
        tie_word_embeddings=shape.tie_word_embeddings,
    )
    with torch.device("meta"):
        model = LlamaForCausalLM(config)
    return int(sum(p.numel() for p in model.parameters()))


def plan(size: str = "8b", context: int = 8192) -> dict[str, Any]:
    shape = SHAPES[size]
    tensors = [(name, dims, _count(dims)) for _hf, name, dims in shape.tensors()]
    params = sum(count for _n, _d, count in tensors)
    file_bytes = sum(
        _gguf_bytes(q4_k_m_type(name, shape.num_hidden_layers), count)
        if len(dims) == 2
        else 4 * count
        for name, dims, count in tensors
    )
    linear = [
        (name, dims, count)
        for name, dims, count in tensors
        if len(dims) == 2 and "token_embd" not in name
    ]
    embedding = sum(count for name, _d, count in tensors if "token_embd" in name)
    norms = sum(count for _n, dims, count in tensors if len(dims) == 1)
    largest = max(count for _n, _d, count in tensors)
    linear_params = sum(count for _n, _d, count in linear)
    out_channels = sum(dims[0] for _n, dims, _c in linear)
    kv_per_token = 2 * shape.num_hidden_layers * shape.num_key_value_heads * shape.head_dim
    weights = {
        "float32_whole_model": 4 * params,
        "bf16_tensor_by_tensor": 2 * params,
        "int8_weight_only": linear_params + 4 * out_channels + 2 * embedding + 4 * norms,
        "int4_weight_only": linear_params // 2
        + 2 * 2 * (linear_params // INT4_GROUP)
        + 2 * embedding
        + 4 * norms,
    }
    # Held while converting: two float32 models (main before #12: the de-quantised one and
    # the rebuilt one it saves), else one float32 tensor and its bf16 copy at a time.
    tensor_at_a_time = 4 * largest + 2 * largest
    conversion_held = {
        "float32_whole_model": 8 * params,
        "bf16_tensor_by_tensor": tensor_at_a_time,
        "int8_weight_only": tensor_at_a_time,
        "int4_weight_only": tensor_at_a_time,
    }
    kv_bytes = {"float32": 4 * kv_per_token * context, "bf16": 2 * kv_per_token * context}
    schemes: dict[str, Any] = {}
    for scheme, held in weights.items():
        kv = kv_bytes["float32" if scheme == "float32_whole_model" else "bf16"]
        conversion = PROCESS_BASE_BYTES + conversion_held[scheme]
        run = PROCESS_BASE_BYTES + held + kv
        schemes[scheme] = {
            "weights_in_memory_bytes": held,
            # The compact schemes keep a bf16 cache and quantise on load.
            "cache_on_disk_bytes": 4 * params if scheme == "float32_whole_model" else 2 * params,
            "conversion_peak_bytes": conversion,
            "run_peak_bytes": run,
            "load_peak_bytes": max(conversion, run),
            "load_peak_over_file": round(max(conversion, run) / file_bytes, 2),
        }
    result: dict[str, Any] = {
        "model": f"{shape.name} Q4_K_M (llama.cpp's mix, computed)",
        "parameters": params,
        "file_bytes_computed": file_bytes,
        "largest_tensor_parameters": largest,
        "context": context,
        "kv_cache_bytes": kv_bytes,
        "process_base_bytes": PROCESS_BASE_BYTES,
        "schemes": schemes,
        "llama_cpp_run_estimate_bytes": file_bytes + kv_bytes["bf16"] + 200_000_000,
    }
    try:
        result["parameters_meta_device"] = meta_parameter_count(shape)
    except ImportError:
        result["parameters_meta_device"] = None
    try:
        from leverchat.engine import gguf_cache

        per_parameter = getattr(gguf_cache, "_BYTES_PER_PARAMETER", None)
        if per_parameter is not None:
            # What this engine's own disk check expects the converted cache to take.
            result["engine_cache_estimate_bytes"] = int(params * per_parameter)
    except ImportError:
        pass
    return result


def _count(dims: tuple[int, ...]) -> int:
    total = 1
    for size in dims:
        total *= size
    return total
