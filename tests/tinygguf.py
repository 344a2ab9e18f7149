"""Write a tiny random Llama model as a GGUF file, in-process, for fast conversion-cache tests.

Built from tests/tinymodel.py's tiny model and byte-level BPE tokenizer, written with the
``gguf`` package's writer the way llama.cpp's converter lays out a Llama: transformers reads it
back with ``from_pretrained(folder, gguf_file=name)`` in well under a second.
"""

from __future__ import annotations

import json
from pathlib import Path

from tinymodel import build_tiny_model_dir

# HF parameter name (per layer) -> GGUF tensor name, as llama.cpp names them.
_LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def _permute_for_gguf(weights, n_head: int):  # type: ignore[no-untyped-def]
    # llama.cpp stores q/k rows interleaved for its RoPE; transformers undoes this on load.
    rows = weights.shape[0]
    return (
        weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def build_tiny_gguf(
    folder: Path,
    *,
    name: str = "tiny-llama.gguf",
    seed: int = 0,
    tensor_type: str = "F32",
    hidden_size: int | None = None,
    layers: int | None = None,
) -> Path:
    """Write a tiny Llama GGUF (ChatML template) into ``folder``.

    ``tensor_type`` is the GGML type of the 2-D weights ("F32", "F16", "Q8_0", "Q4_0"...; the
    norms stay F32, as llama.cpp writes them). ``hidden_size``/``layers`` make a bigger model
    whose weights are drawn at random here (the tiny model's tokenizer is kept).
    """
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    hf_dir = build_tiny_model_dir(folder / "hf-source", seed=seed)
    config = json.loads((hf_dir / "config.json").read_text())
    tensors = load_file(hf_dir / "model.safetensors")
    if hidden_size is not None or layers is not None:
        config, tensors = _random_weights(config, hidden_size, layers, seed)
    ggml_type = gguf.GGMLQuantizationType[tensor_type]
    tokenizer_json = json.loads((hf_dir / "tokenizer.json").read_text())
    tokenizer_config = json.loads((hf_dir / "tokenizer_config.json").read_text())
    chat_template = (hf_dir / "chat_template.jinja").read_text()

    vocab: dict[str, int] = dict(tokenizer_json["model"]["vocab"])
    for added in tokenizer_json["added_tokens"]:
        vocab[added["content"]] = added["id"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = {added["content"] for added in tokenizer_json["added_tokens"]}
    token_types = [
        gguf.TokenType.CONTROL if token in special else gguf.TokenType.NORMAL for token in tokens
    ]
    merges = [
        merge if isinstance(merge, str) else " ".join(merge)
        for merge in tokenizer_json["model"]["merges"]
    ]

    path = folder / name
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny-llama")
    writer.add_vocab_size(config["vocab_size"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_dimension_count(config["hidden_size"] // config["num_attention_heads"])
    writer.add_rope_freq_base(float(config.get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_file_type(
        gguf.LlamaFileType.ALL_F32 if tensor_type == "F32" else gguf.LlamaFileType.GUESSED
    )
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(vocab[tokenizer_config["eos_token"]])
    writer.add_pad_token_id(vocab[tokenizer_config["pad_token"]])
    writer.add_add_bos_token(False)
    writer.add_chat_template(chat_template)

    def add(name: str, weights: np.ndarray) -> None:
        weights = np.ascontiguousarray(weights, dtype=np.float32)
        if weights.ndim == 1 or ggml_type == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, weights)
        elif ggml_type == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, weights.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quantize(weights, ggml_type), raw_dtype=ggml_type)

    add("token_embd.weight", tensors["model.embed_tokens.weight"])
    add("output_norm.weight", tensors["model.norm.weight"])
    for layer in range(config["num_hidden_layers"]):
        for hf_name, gguf_name in _LAYER_TENSORS.items():
            weights = tensors[f"model.layers.{layer}.{hf_name}"]
            if hf_name == "self_attn.q_proj.weight":
                weights = _permute_for_gguf(weights, config["num_attention_heads"])
            elif hf_name == "self_attn.k_proj.weight":
                weights = _permute_for_gguf(weights, config["num_key_value_heads"])
            add(f"blk.{layer}.{gguf_name}", weights)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _random_weights(config: dict, hidden_size: int | None, layers: int | None, seed: int):  # type: ignore[no-untyped-def,type-arg]
    """A bigger Llama config of the same family, with random weights (numpy, float32)."""
    import numpy as np

    config = dict(config)
    hidden = hidden_size or config["hidden_size"]
    config["hidden_size"] = hidden
    config["intermediate_size"] = hidden * 2
    config["num_hidden_layers"] = layers or config["num_hidden_layers"]
    head_dim = hidden // config["num_attention_heads"]
    kv = head_dim * config["num_key_value_heads"]
    rng = np.random.default_rng(seed)

    def normal(*shape: int) -> np.ndarray:  # type: ignore[type-arg]
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(0.05)

    tensors = {
        "model.embed_tokens.weight": normal(config["vocab_size"], hidden),
        "model.norm.weight": np.ones(hidden, dtype=np.float32),
    }
    shapes = {
        "input_layernorm.weight": None,
        "post_attention_layernorm.weight": None,
        "self_attn.q_proj.weight": (hidden, hidden),
        "self_attn.k_proj.weight": (kv, hidden),
        "self_attn.v_proj.weight": (kv, hidden),
        "self_attn.o_proj.weight": (hidden, hidden),
        "mlp.gate_proj.weight": (hidden * 2, hidden),
        "mlp.up_proj.weight": (hidden * 2, hidden),
        "mlp.down_proj.weight": (hidden, hidden * 2),
    }
    for layer in range(config["num_hidden_layers"]):
        for name, shape in shapes.items():
            value = np.ones(hidden, dtype=np.float32) if shape is None else normal(*shape)
            tensors[f"model.layers.{layer}.{name}"] = value
    return config, tensors
