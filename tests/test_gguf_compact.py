"""The GGUF cache keeps weights compact and converts tensor by tensor.

A quantised GGUF is stored as bfloat16 (half of float32), a float one in its own type; the
stored weights equal transformers' own GGUF load, cast; converting never holds a float32 copy
of the whole model; entries of the float32 format are replaced and removed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from leverchat import paths
from leverchat.engine import gguf_cache
from leverchat.engine.gguf_cache import MANIFEST_NAME, ensure_converted
from tinygguf import build_tiny_gguf

TESTS = Path(__file__).parent


def stored_tensors(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as stream:
            for name in stream.keys():  # noqa: SIM118 (safe_open is not a mapping)
                tensors[name] = stream.get_tensor(name)
    return tensors


def transformers_gguf_state(gguf_path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
    )
    return {name: value.detach() for name, value in model.state_dict().items()}


@pytest.mark.parametrize(
    ("tensor_type", "weight_dtype"),
    [("Q8_0", torch.bfloat16), ("Q4_0", torch.bfloat16), ("F16", torch.float16)],
)
def test_stored_weights_are_compact_and_equal_transformers_load(
    tmp_path: Path, tensor_type: str, weight_dtype: torch.dtype
) -> None:
    gguf_path = build_tiny_gguf(tmp_path, tensor_type=tensor_type)
    entry = ensure_converted(gguf_path)

    stored = stored_tensors(entry.folder)
    reference = transformers_gguf_state(gguf_path)
    assert set(stored) <= set(reference)
    assert "model.layers.0.self_attn.q_proj.weight" in stored
    for name, value in stored.items():
        # 2-D weights in the compact type; the norms stay float32, as the file keeps them.
        expected_dtype = weight_dtype if value.dim() == 2 else torch.float32
        assert value.dtype == expected_dtype, name
        assert torch.equal(value, reference[name].to(expected_dtype)), name
    manifest = json.loads((entry.folder / MANIFEST_NAME).read_text())
    assert manifest["source"]["main_weight_type"] == tensor_type
    config = json.loads((entry.folder / "config.json").read_text())
    assert config["dtype"] == str(weight_dtype).removeprefix("torch.")
    # Other programs read the folder too: transformers serve needs the model class.
    assert config["architectures"] == ["LlamaForCausalLM"]


def test_a_quantised_file_takes_half_the_float32_size(tmp_path: Path) -> None:
    gguf_path = build_tiny_gguf(tmp_path, tensor_type="Q8_0", hidden_size=128, layers=2)
    entry = ensure_converted(gguf_path)
    stored = stored_tensors(entry.folder)
    parameters = sum(value.numel() for value in stored.values())
    weights_bytes = sum(path.stat().st_size for path in entry.folder.glob("*.safetensors"))
    assert weights_bytes < parameters * 2.1  # bfloat16 plus headers, not 4 bytes a parameter


def test_float32_entries_of_the_old_format_are_removed(tmp_path: Path) -> None:
    gguf_path = build_tiny_gguf(tmp_path)
    root = paths.converted_models_dir()
    old = root / "tiny-llama-old-format"
    old.mkdir(parents=True)
    (old / "model.safetensors").write_bytes(b"float32 weights")
    manifest = {"format": 1, "source": {"path": str(gguf_path.resolve())}, "files": {}}
    (old / MANIFEST_NAME).write_text(json.dumps(manifest))
    unrelated = root / "another-model"
    unrelated.mkdir()
    other = {"format": 1, "source": {"path": str(tmp_path / "other.gguf")}, "files": {}}
    (unrelated / MANIFEST_NAME).write_text(json.dumps(other))

    entry = ensure_converted(gguf_path)

    assert entry.converted_now
    assert not old.exists()
    assert unrelated.exists()  # another file's entry is its own business
    assert gguf_cache.FORMAT_VERSION >= 2
    assert json.loads((entry.folder / MANIFEST_NAME).read_text())["format"] == 2


def test_conversion_reports_progress_per_tensor(tmp_path: Path) -> None:
    gguf_path = build_tiny_gguf(tmp_path, tensor_type="Q8_0")
    reports: list[tuple[str, float | None]] = []
    ensure_converted(gguf_path, lambda message, fraction: reports.append((message, fraction)))
    dequantising = [fraction for message, fraction in reports if "De-quantising" in message]
    assert len(dequantising) >= 5
    assert dequantising == sorted(dequantising)
    assert reports[-1] == (f"Converted {gguf_path.name}", 1.0)


_PEAK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    import torch, transformers, gguf, safetensors.torch  # noqa: F401
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: F401
    from leverchat.engine import gguf_cache, gguf_convert  # noqa: F401
    def kib(key):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith(key)).split()[1])
    # A tiny model first: every module the conversion imports is loaded before measuring.
    gguf_cache.ensure_converted(Path(sys.argv[4]), cache_root=Path(sys.argv[2]))
    # Reset the high-water mark, which the imports set (getrusage's ru_maxrss cannot be reset).
    Path("/proc/self/clear_refs").write_text("5")
    before = kib("VmRSS:")
    entry = gguf_cache.ensure_converted(Path(sys.argv[1]), cache_root=Path(sys.argv[2]))
    after = kib("VmHWM:")
    print(json.dumps({"grew_kib": after - before, "folder": str(entry.folder)}))
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_converting_never_holds_a_float32_copy_of_the_model(tmp_path: Path) -> None:
    """Peak resident memory of the conversion, measured in a fresh process: the growth over
    the imports stays far below the model in float32 (transformers' own load takes twice it)."""
    gguf_path = build_tiny_gguf(tmp_path, tensor_type="Q8_0", hidden_size=1024, layers=6)
    warm_up = build_tiny_gguf(tmp_path / "tiny", tensor_type="Q8_0")
    arguments = [str(gguf_path), str(tmp_path / "cache"), str(TESTS), str(warm_up)]
    completed = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    stored = stored_tensors(Path(result["folder"]))
    float32_bytes = 4 * sum(value.numel() for value in stored.values())
    assert float32_bytes > 200 * 1024 * 1024  # big enough for the difference to show
    grew_bytes = result["grew_kib"] * 1024
    # Measured: 67 MiB for 218 MiB of float32, most of it the memory-mapped 60 MB file's
    # pages (file-backed: the kernel drops them under pressure).
    assert grew_bytes < float32_bytes * 0.5, (grew_bytes, float32_bytes)
