"""Convert a GGUF file into safetensors shards one tensor at a time, in a compact dtype.

transformers' own GGUF load de-quantises every tensor of the file into one float32 state dict
and a float32 model: an 8B Q4_K_M file of 4.9 GB then needs about 32 GB of RAM. Here the
GGUF is memory-mapped (the ``gguf`` package's reader), and each tensor is de-quantised in
row chunks of at most ``_CHUNK_FLOAT32_BYTES``, cast to its stored dtype, added to the current
shard and written out when the shard is full. The peak is about one shard plus one tensor in
the stored dtype plus one float32 chunk, whatever the model's size.

Stored dtypes: a tensor the file keeps as F32, F16 or BF16 is stored as that type (it is
exact); a quantised one (Q8_0, Q4_1, Q4_K, ...) as bfloat16, which holds its de-quantised
values to within 2^-9 relative, far below the quantisation's own error. So a Q4 file takes
about 2 bytes per parameter on disk instead of 4.

Names and shapes follow transformers' GGUF mapping (``get_gguf_hf_weights_map`` on a model
built on the meta device) and its per-architecture tensor processors (the q/k row permutation
of Llama and the like), so the result equals transformers' own GGUF load, cast.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leverchat.engine.types import EngineError

# A float32 chunk of a tensor being de-quantised never exceeds this.
_CHUNK_FLOAT32_BYTES = 64 * 1024 * 1024
# Shards built in memory (architectures whose processor merges tensors) stay below this.
SHARD_BYTES = 256 * 1024 * 1024
# Streamed shards are never in memory: their size only bounds a file's size.
STREAMED_SHARD_BYTES = 2 * 1024 * 1024 * 1024
_SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16"}
# GGML types kept as they are; every other (quantised) type is stored as bfloat16.
_FLOAT_TYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}

# Reports (tensors done, tensors in all).
TensorProgress = Callable[[int, int], None]


@dataclass
class ConversionPlan:
    """What a conversion writes: the config, each tensor's name and dtype, the total size."""

    config: Any
    processor: Any
    names: dict[str, str]  # GGUF tensor name -> transformers parameter name
    stored_bytes: int = 0
    # GGML type name -> parameters of 2-D weights stored in it (decides the default quantisation).
    weight_types: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def stored_dtype_name(ggml_type_name: str) -> str:
    """The torch dtype name a tensor of this GGML type is stored as."""
    return _FLOAT_TYPES.get(ggml_type_name, "bfloat16")


def plan_conversion(gguf_path: Path, reader: Any) -> ConversionPlan:
    """Read the config and the tensor name map, allocating no weights (meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
        load_gguf_checkpoint,
    )

    config = AutoConfig.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, trust_remote_code=False
    )
    raw_config = load_gguf_checkpoint(str(gguf_path), return_tensors=False)["config"]  # type: ignore[no-untyped-call]
    architecture = _architecture(reader)
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=raw_config)  # type: ignore[no-untyped-call]
    with torch.device("meta"):
        meta_model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    names = get_gguf_hf_weights_map(meta_model, processor)
    plan = ConversionPlan(config=config, processor=processor, names=names)
    weight_types: Counter[str] = Counter()
    for tensor in reader.tensors:
        type_name = tensor.tensor_type.name
        size = torch.empty((), dtype=getattr(torch, stored_dtype_name(type_name))).element_size()
        plan.stored_bytes += int(tensor.n_elements) * size
        if len(tensor.shape) == 2:
            weight_types[type_name] += int(tensor.n_elements)
    plan.weight_types = dict(weight_types)
    return plan


def main_weight_type(weight_types: dict[str, int]) -> str | None:
    """The GGML type holding most of the 2-D weights' parameters (e.g. "Q4_1"), or None."""
    if not weight_types:
        return None
    return max(weight_types.items(), key=lambda item: item[1])[0]


def convert_tensors(
    reader: Any, plan: ConversionPlan, destination: Path, progress: TensorProgress
) -> None:
    """Write every mapped tensor of ``reader`` into safetensors shards in ``destination``.

    Where the architecture's processor keeps names and shapes (Llama and most others), each
    shard's header is computed from the GGUF header first and every tensor streamed into the
    file as soon as it is converted: at most one tensor is in memory. Other processors (they
    may merge experts) go through shards built in memory, ``SHARD_BYTES`` at most each.
    """
    if _streamable(plan.processor):
        _stream_shards(reader, plan, destination, progress)
    else:
        _buffered_shards(reader, plan, destination, progress)


def _stream_shards(
    reader: Any, plan: ConversionPlan, destination: Path, progress: TensorProgress
) -> None:
    import torch

    layout: list[list[tuple[Any, str, str, tuple[int, ...]]]] = [[]]
    shard_bytes = 0
    for tensor in reader.tensors:
        name = plan.names.get(tensor.name)
        if name is None:
            continue
        dtype_name = stored_dtype_name(tensor.tensor_type.name)
        shape = tuple(int(size) for size in reversed(tensor.shape))
        size = int(tensor.n_elements) * getattr(torch, dtype_name).itemsize
        if layout[-1] and shard_bytes + size > STREAMED_SHARD_BYTES:
            layout.append([])
            shard_bytes = 0
        layout[-1].append((tensor, name, dtype_name, shape))
        shard_bytes += size
    if not layout[-1]:
        raise EngineError("the GGUF file has no tensors this model uses")
    total = sum(len(entries) for entries in layout)
    done = 0
    files: list[str] = []
    weight_maps: list[dict[str, str]] = []
    for entries in layout:
        file_name = f"model-{len(files) + 1:05d}.safetensors"
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for _tensor, name, dtype_name, shape in entries:
            size = _numel(shape) * getattr(torch, dtype_name).itemsize
            header[name] = {
                "dtype": _SAFETENSORS_DTYPES[dtype_name],
                "shape": list(shape),
                "data_offsets": [offset, offset + size],
            }
            offset += size
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
        with (destination / file_name).open("wb") as stream:
            stream.write(struct.pack("<Q", len(encoded)))
            stream.write(encoded)
            for tensor, name, dtype_name, shape in entries:
                value = _convert_streamed(tensor, plan, dtype_name)
                if tuple(value.shape) != shape:
                    raise EngineError(
                        f"tensor {tensor.name} has shape {tuple(value.shape)}, "
                        f"expected {shape} for {name}"
                    )
                stream.write(value.contiguous().view(torch.uint8).numpy().data)
                del value
                done += 1
                progress(done, total)
        files.append(file_name)
        weight_maps.append({name: file_name for _tensor, name, _dtype, _shape in entries})
    _write_index(destination, weight_maps, files)


def _convert_streamed(tensor: Any, plan: ConversionPlan, dtype_name: str) -> Any:
    rows = int(tensor.data.shape[0]) if tensor.data.ndim > 1 else 1
    row_elements = max(1, int(tensor.n_elements) // rows)
    chunk_rows = max(1, _CHUNK_FLOAT32_BYTES // (4 * row_elements))
    if rows > chunk_rows and _processor_leaves_alone(plan.processor, tensor.name):
        return _dequantize_in_chunks(tensor, dtype_name, rows, chunk_rows)
    converted = _convert_one(tensor, plan, {"tensors": {}, "config": {}})
    if converted is None:
        raise EngineError(f"tensor {tensor.name} was renamed by the GGUF processor")
    return converted[1]


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def _buffered_shards(
    reader: Any, plan: ConversionPlan, destination: Path, progress: TensorProgress
) -> None:
    from safetensors.torch import save_file

    shard: dict[str, Any] = {}
    shard_bytes = 0
    shards: list[dict[str, Any]] = []
    shard_files: list[str] = []
    # Processors of mixture-of-experts models merge tensors into parsed_parameters["tensors"]
    # themselves; those are collected here and written at the end.
    parsed_parameters: dict[str, Any] = {"tensors": {}, "config": {}}

    def flush() -> None:
        nonlocal shard, shard_bytes
        if not shard:
            return
        name = f"model-{len(shard_files) + 1:05d}.safetensors"
        save_file(shard, str(destination / name), metadata={"format": "pt"})
        shards.append({key: name for key in shard})
        shard_files.append(name)
        shard, shard_bytes = {}, 0

    total = len(reader.tensors)
    for index, tensor in enumerate(reader.tensors, start=1):
        converted = _convert_one(tensor, plan, parsed_parameters)
        if converted is not None:
            name, value = converted
            shard[name] = value
            shard_bytes += value.numel() * value.element_size()
            if shard_bytes >= SHARD_BYTES:
                flush()
        progress(index, total)
    for name, value in parsed_parameters["tensors"].items():
        shard[name] = _as_torch(value, "bfloat16").contiguous()
    flush()
    if not shard_files:
        raise EngineError("the GGUF file has no tensors this model uses")
    _write_index(destination, shards, shard_files)


def _streamable(processor: Any) -> bool:
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor, TensorProcessor

    return type(processor) in (TensorProcessor, LlamaTensorProcessor)


def _convert_one(tensor: Any, plan: ConversionPlan, parsed: dict[str, Any]) -> Any:
    """(parameter name, torch tensor in its stored dtype) for one GGUF tensor, or None."""
    import numpy as np
    from gguf import dequantize

    type_name = tensor.tensor_type.name
    dtype_name = stored_dtype_name(type_name)
    rows = int(tensor.data.shape[0]) if tensor.data.ndim > 1 else 1
    row_elements = max(1, int(tensor.n_elements) // rows)
    chunk_rows = max(1, _CHUNK_FLOAT32_BYTES // (4 * row_elements))
    if rows > chunk_rows and _processor_leaves_alone(plan.processor, tensor.name):
        # Large and untouched by the processor: de-quantise it piecewise into its final dtype.
        name = plan.names.get(tensor.name)
        if name is None:
            return None
        return name, _dequantize_in_chunks(tensor, dtype_name, rows, chunk_rows)
    weights = dequantize(tensor.data, tensor.tensor_type)
    result = plan.processor.process(
        weights=weights,
        name=tensor.name,
        tensor_key_mapping=plan.names,
        parsed_parameters=parsed,
    )
    if result.name not in plan.names:
        return None
    value = _as_torch(np.ascontiguousarray(result.weights), dtype_name)
    return plan.names[result.name], value


def _dequantize_in_chunks(tensor: Any, dtype_name: str, rows: int, chunk_rows: int) -> Any:
    import torch
    from gguf import dequantize

    out: torch.Tensor | None = None
    for start in range(0, rows, chunk_rows):
        piece = dequantize(tensor.data[start : start + chunk_rows], tensor.tensor_type)
        if out is None:
            shape = (rows, *piece.shape[1:])
            out = torch.empty(shape, dtype=getattr(torch, dtype_name))
        out[start : start + piece.shape[0]] = torch.from_numpy(piece)
        del piece
    assert out is not None
    return out


def _as_torch(weights: Any, dtype_name: str) -> Any:
    import numpy as np
    import torch

    array = np.asarray(weights)
    if array.dtype == np.float16 and dtype_name == "float16":
        return torch.from_numpy(array.copy())
    # A copy: the array may be a view of the read-only memory map.
    return torch.from_numpy(np.array(array, dtype=np.float32)).to(getattr(torch, dtype_name))


def _processor_leaves_alone(processor: Any, gguf_name: str) -> bool:
    """Whether ``processor`` returns this tensor unchanged, so it may be read piecewise."""
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor, TensorProcessor

    if type(processor) is TensorProcessor:
        return True
    if type(processor) is LlamaTensorProcessor:
        return ".attn_q." not in gguf_name and ".attn_k." not in gguf_name
    return False


def _architecture(reader: Any) -> str:
    from transformers.modeling_gguf_pytorch_utils import read_field

    values = read_field(reader, "general.architecture")  # type: ignore[no-untyped-call]
    if not values:
        raise EngineError("the GGUF file names no architecture (general.architecture)")
    return str(values[0])


def _write_index(destination: Path, shards: list[dict[str, str]], files: list[str]) -> None:
    """One shard is renamed to model.safetensors; several get transformers' index file."""
    if len(files) == 1:
        (destination / files[0]).rename(destination / "model.safetensors")
        return
    weight_map: dict[str, str] = {}
    total = 0
    for mapping in shards:
        weight_map.update(mapping)
    for name in files:
        total += (destination / name).stat().st_size
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (destination / "model.safetensors.index.json").write_text(
        json.dumps(index, indent=2) + "\n", encoding="utf-8"
    )
