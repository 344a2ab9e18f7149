"""Random Llama-3.2-shaped models written as safetensors and as GGUF Q8_0 / Q4_0, for scale_cpu.

One pass over the tensors writes all the files: each tensor is drawn (float32, normal with
std 0.02, seeded by its index), written as bf16 into ``model.safetensors`` (as Meta ships
Llama 3.2) and quantised with ``gguf.quants`` into each GGUF file, then dropped. So the peak
memory is one float32 tensor and its copies (the 3B embedding: 128256 x 3072 = 1.6 GB), never
the model: a 3B float32 build fits on a 24 GB machine.

The shapes are the real ones (``SHAPES``); the RoPE ``llama3`` frequency scaling of the real
configs is left out (it changes which frequencies rotate, not the work per token). The
tokenizer is the byte-level BPE of tests/tinymodel.py (a few hundred trained tokens and
merges, ChatML specials) padded with filler tokens up to the real vocabulary size, so the
embedding and output matrices keep their real shape. llama.cpp reads it from the GGUF
metadata (``gpt2`` model, ``gpt-2`` pre-tokenizer), transformers from the GGUF or
tokenizer.json.

The GGUF files are "pure": every 2-D weight in the one type (llama-quantize --pure), the
norms in F32; the tied embedding also serves as the output layer, as in Llama 3.2.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUILD_VERSION = 2  # bump when the files written change: a folder from another version is rebuilt
DONE_NAME = "build.json"
GGUF_TYPES = ("Q8_0", "Q4_0")


@dataclass(frozen=True)
class Shape:
    """A Llama config's size-relevant fields (as in the model's config.json)."""

    name: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    context: int = 8192
    rope_theta: float = 500000.0
    rms_norm_eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def tensors(self) -> Iterator[tuple[str, str, tuple[int, ...]]]:
        """(HF name, GGUF name, shape as (out, in)) of every weight, in file order."""
        hidden, kv = self.hidden_size, self.num_key_value_heads * self.head_dim
        yield "model.embed_tokens.weight", "token_embd.weight", (self.vocab_size, hidden)
        for layer in range(self.num_hidden_layers):
            hf, gg = f"model.layers.{layer}.", f"blk.{layer}."
            yield hf + "input_layernorm.weight", gg + "attn_norm.weight", (hidden,)
            yield hf + "self_attn.q_proj.weight", gg + "attn_q.weight", (hidden, hidden)
            yield hf + "self_attn.k_proj.weight", gg + "attn_k.weight", (kv, hidden)
            yield hf + "self_attn.v_proj.weight", gg + "attn_v.weight", (kv, hidden)
            yield hf + "self_attn.o_proj.weight", gg + "attn_output.weight", (hidden, hidden)
            yield hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight", (hidden,)
            yield (
                hf + "mlp.gate_proj.weight",
                gg + "ffn_gate.weight",
                (self.intermediate_size, hidden),
            )
            yield hf + "mlp.up_proj.weight", gg + "ffn_up.weight", (self.intermediate_size, hidden)
            yield (
                hf + "mlp.down_proj.weight",
                gg + "ffn_down.weight",
                (hidden, self.intermediate_size),
            )
        yield "model.norm.weight", "output_norm.weight", (hidden,)
        if not self.tie_word_embeddings:
            yield "lm_head.weight", "output.weight", (self.vocab_size, hidden)

    def parameters(self) -> int:
        total = 0
        for _hf, _gg, shape in self.tensors():
            count = 1
            for size in shape:
                count *= size
            total += count
        return total


# From the models' config.json (meta-llama/Llama-3.2-1B, -3B, Llama-3.1-8B).
SHAPES = {
    "1b": Shape("Llama-3.2-1B", 2048, 16, 32, 8, 8192, 128256, True),
    "3b": Shape("Llama-3.2-3B", 3072, 28, 24, 8, 8192, 128256, True),
    "8b": Shape("Llama-3.1-8B", 4096, 32, 32, 8, 14336, 128256, False),
    # --tiny: checks the whole path in seconds (rows a multiple of Q8_0/Q4_0's 32-value blocks).
    "tiny": Shape("tiny-llama", 64, 2, 4, 2, 128, 512, True, context=2048),
}


def folder_for(workdir: Path, size: str) -> Path:
    return workdir / f"random-{size}"


def is_built(folder: Path) -> bool:
    done = folder / DONE_NAME
    if not done.exists():
        return False
    try:
        return int(json.loads(done.read_text()).get("version", 0)) == BUILD_VERSION
    except (ValueError, OSError):
        return False


def build(workdir: Path, size: str, *, log: Any = None) -> dict[str, Any]:
    """Write the model of ``size`` under ``workdir`` (once) and return its build.json data."""
    folder = folder_for(workdir, size)
    if is_built(folder):
        return dict(json.loads((folder / DONE_NAME).read_text()))
    shape = SHAPES[size]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DONE_NAME).unlink(missing_ok=True)
    started = time.perf_counter()
    tokenizer = _build_tokenizer(shape.vocab_size)
    hf_dir = folder / "safetensors"
    hf_dir.mkdir(exist_ok=True)
    _write_hf_config(hf_dir, shape, tokenizer)
    tokenizer.save_pretrained(hf_dir)
    ggufs = {qtype: folder / f"{shape.name}-{qtype}.gguf" for qtype in GGUF_TYPES}
    _write_weights(shape, hf_dir / "model.safetensors", ggufs, tokenizer, log=log)
    info = {
        "version": BUILD_VERSION,
        "shape": asdict(shape),
        "parameters": shape.parameters(),
        "safetensors": str(hf_dir),
        "gguf": {qtype: str(path) for qtype, path in ggufs.items()},
        "bytes": {
            "safetensors_bf16": (hf_dir / "model.safetensors").stat().st_size,
            **{qtype: path.stat().st_size for qtype, path in ggufs.items()},
        },
        "build_s": round(time.perf_counter() - started, 1),
        # The builder's own peak (one float32 tensor and its copies; 3B: about 4.8 GB).
        "builder_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "long_prompt": _long_prompt_text(tokenizer, 512),
    }
    (folder / DONE_NAME).write_text(json.dumps(info, indent=2))
    return info


def _long_prompt_text(tokenizer: Any, target: int) -> str:
    """A user message whose chat-templated prompt is ``target`` tokens long (or just under)."""
    words = ["the", "cat", "sat", "on", "the", "mat", "and", "looked", "at", "the", "sea", "."]
    text = ""
    index = 0
    while True:
        candidate = (text + " " + words[index % len(words)]).strip()
        messages = [{"role": "user", "content": candidate}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding
            ids = ids["input_ids"]
        if len(ids) > target:
            return text
        text = candidate
        index += 1


def _build_tokenizer(vocab_size: int) -> Any:
    """tests/tinymodel.py's byte-level BPE, padded with filler tokens to ``vocab_size``."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    sys.path.insert(0, str(REPO / "tests"))
    from tinymodel import CHATML_TEMPLATE, build_tokenizer  # type: ignore[import-not-found]

    small = build_tokenizer()
    data = json.loads(small.backend_tokenizer.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    if len(vocab) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} is below the trained {len(vocab)} tokens")
    index = 0
    while len(vocab) < vocab_size:
        # "Ġ" is the byte-level space: fillers decode as " w123", never produced by merges.
        token = f"Ġw{index}"
        index += 1
        if token not in vocab:
            vocab[token] = len(vocab)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)),
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _write_hf_config(folder: Path, shape: Shape, tokenizer: Any) -> None:
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.num_hidden_layers,
        "num_attention_heads": shape.num_attention_heads,
        "num_key_value_heads": shape.num_key_value_heads,
        "head_dim": shape.head_dim,
        "vocab_size": shape.vocab_size,
        "max_position_embeddings": shape.context,
        "rms_norm_eps": shape.rms_norm_eps,
        "rope_theta": shape.rope_theta,
        "tie_word_embeddings": shape.tie_word_embeddings,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": None,
        "eos_token_id": eos,
        "pad_token_id": pad,
        "torch_dtype": "bfloat16",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    generation = {"eos_token_id": eos, "pad_token_id": pad}
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2))


def _write_weights(
    shape: Shape, safetensors_path: Path, ggufs: dict[str, Path], tokenizer: Any, log: Any
) -> None:
    import gguf
    import numpy as np

    tensors = list(shape.tensors())
    writers = {qtype: _gguf_writer(path, shape, tokenizer) for qtype, path in ggufs.items()}
    for qtype, writer in writers.items():
        kind = gguf.GGMLQuantizationType[qtype]
        for _hf, name, dims in tensors:
            if len(dims) == 1:
                writer.add_tensor_info(name, dims, np.dtype(np.float32), 4 * dims[0])
            else:
                byte_shape = gguf.quants.quant_shape_to_byte_shape(dims, kind)
                writer.add_tensor_info(
                    name, byte_shape, np.dtype(np.uint8), _prod(byte_shape), kind
                )
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()

    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for hf, _name, dims in tensors:
        size = 2 * _prod(dims)
        header[hf] = {"dtype": "BF16", "shape": list(dims), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with safetensors_path.open("wb") as out:
        out.write(len(encoded).to_bytes(8, "little"))
        out.write(encoded)
        for index, (_hf, name, dims) in enumerate(tensors):
            values = _draw(index, dims)
            out.write(_to_bf16(values).tobytes())
            if len(dims) == 2:
                values = _permute_for_gguf(values, name, shape)
            for qtype, writer in writers.items():
                if len(dims) == 1:
                    writer.write_tensor_data(values)
                else:
                    kind = gguf.GGMLQuantizationType[qtype]
                    writer.write_tensor_data(gguf.quants.quantize(values, kind))
            del values
            if log is not None and len(dims) == 2 and dims[0] >= shape.vocab_size:
                log(f"wrote {name} {dims}")
    for writer in writers.values():
        writer.close()


def _gguf_writer(path: Path, shape: Shape, tokenizer: Any) -> Any:
    import gguf

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab: dict[str, int] = data["model"]["vocab"]
    tokens = [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]
    special = set(tokenizer.all_special_tokens)
    types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(shape.name + " (random weights)")
    writer.add_vocab_size(shape.vocab_size)
    writer.add_context_length(shape.context)
    writer.add_embedding_length(shape.hidden_size)
    writer.add_block_count(shape.num_hidden_layers)
    writer.add_feed_forward_length(shape.intermediate_size)
    writer.add_head_count(shape.num_attention_heads)
    writer.add_head_count_kv(shape.num_key_value_heads)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_layer_norm_rms_eps(shape.rms_norm_eps)
    file_type = (
        gguf.LlamaFileType.MOSTLY_Q8_0 if "Q8_0" in path.name else gguf.LlamaFileType.MOSTLY_Q4_0
    )
    writer.add_file_type(file_type)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_eos_token_id(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    writer.add_pad_token_id(tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(tokenizer.chat_template)
    return writer


def _draw(index: int, dims: tuple[int, ...]) -> Any:
    import numpy as np

    if len(dims) == 1:
        return np.ones(
            dims, dtype=np.float32
        )  # RMSNorm weights start at 1, as trained ones sit near
    generator = np.random.default_rng(1000 + index)
    values = generator.standard_normal(dims, dtype=np.float32)
    values *= 0.02
    return values


def _to_bf16(values: Any) -> Any:
    """float32 -> bfloat16 bits (round to nearest even), as uint16."""
    import numpy as np

    bits = values.view(np.uint32)
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return rounded.astype(np.uint16)


def _permute_for_gguf(values: Any, name: str, shape: Shape) -> Any:
    # llama.cpp stores q/k rows interleaved for its RoPE; transformers undoes it on load, so
    # the GGUF and the safetensors hold the same model.
    if name.endswith("attn_q.weight"):
        heads = shape.num_attention_heads
    elif name.endswith("attn_k.weight"):
        heads = shape.num_key_value_heads
    else:
        return values
    rows = values.shape[0]
    permuted = values.reshape(heads, 2, rows // heads // 2, values.shape[1]).swapaxes(1, 2)
    return permuted.reshape(values.shape).copy()


def _prod(dims: tuple[int, ...] | list[int]) -> int:
    total = 1
    for size in dims:
        total *= int(size)
    return total
