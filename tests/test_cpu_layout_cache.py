"""The CPU layout decisions are cached per machine and shape: a second load does not probe."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from leverchat import paths
from leverchat.engine import cpu_layout
from leverchat.engine.loading import LAYOUT_CACHE_NAME, load_model
from leverchat.engine.types import ModelSpec


def fresh_model(folder: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(folder).eval()


def counting_probe(monkeypatch: pytest.MonkeyPatch, speed: float = 0.5) -> list[int]:
    """Column-major takes ``speed`` times row-major; returns the list of probed sizes."""
    probed: list[int] = []

    def probe(weights: list[torch.Tensor]) -> float:
        probed.append(len(weights))
        return 100.0 if weights[0].is_contiguous() else 100.0 * speed

    monkeypatch.setattr(cpu_layout, "_time_one_row", probe)
    return probed


def column_major(model: Any) -> list[bool]:
    return [
        not module.weight.is_contiguous()
        for module in model.modules()
        if isinstance(module, torch.nn.Linear)
    ]


def test_a_second_tuning_reuses_the_decisions_without_probing(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "layouts.json"
    probed = counting_probe(monkeypatch)
    first = cpu_layout.tune_linear_layouts(fresh_model(tiny_model_dir), cache)
    assert probed and not any(choice.cached for choice in first)
    assert cache.is_file()

    probed.clear()
    model = fresh_model(tiny_model_dir)
    second = cpu_layout.tune_linear_layouts(model, cache)
    assert probed == []
    assert all(choice.cached for choice in second)
    assert [c.switched for c in second] == [c.switched for c in first]
    assert all(column_major(model))  # the cached decision was applied, not just read


def test_decisions_are_per_machine(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "layouts.json"
    probed = counting_probe(monkeypatch)
    cpu_layout.tune_linear_layouts(fresh_model(tiny_model_dir), cache)
    probed.clear()
    monkeypatch.setattr(cpu_layout, "machine_key", lambda: "another CPU | torch 9 | 64 threads")
    cpu_layout.tune_linear_layouts(fresh_model(tiny_model_dir), cache)
    assert probed, "another machine (or thread count) probes afresh"
    machines = json.loads(cache.read_text())["machines"]
    assert len(machines) == 2


@pytest.mark.parametrize(
    "damage",
    [b"{not json", b"\xff\xfe", b"[1, 2]", b'{"format": 1, "machines": {"x": 3}}', b""],
)
def test_a_damaged_cache_is_ignored_and_rewritten(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes
) -> None:
    cache = tmp_path / "layouts.json"
    cache.write_bytes(damage)
    probed = counting_probe(monkeypatch)
    model = fresh_model(tiny_model_dir)
    cpu_layout.tune_linear_layouts(model, cache)
    assert probed
    assert all(column_major(model))
    data = json.loads(cache.read_text())
    assert data["format"] == 1
    assert cpu_layout.machine_key() in data["machines"]


def test_a_damaged_entry_for_one_shape_is_probed_again(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "layouts.json"
    counting_probe(monkeypatch)
    cpu_layout.tune_linear_layouts(fresh_model(tiny_model_dir), cache)
    data = json.loads(cache.read_text())
    shapes = data["machines"][cpu_layout.machine_key()]
    damaged = next(iter(shapes))
    shapes[damaged]["switched"] = "yes"
    cache.write_text(json.dumps(data))

    probed = counting_probe(monkeypatch)
    choices = cpu_layout.tune_linear_layouts(fresh_model(tiny_model_dir), cache)
    assert len(probed) == 2  # both layouts of that one shape
    assert sum(not choice.cached for choice in choices) == 1


def test_an_unwritable_cache_only_costs_time(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    counting_probe(monkeypatch)
    model = fresh_model(tiny_model_dir)
    cpu_layout.tune_linear_layouts(model, blocked / "layouts.json")
    assert all(column_major(model))


def test_loading_a_float_model_fills_the_user_cache(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probed = counting_probe(monkeypatch)
    load_model(ModelSpec(source=str(tiny_model_dir), device="cpu", quantize="none"))
    assert probed
    assert (paths.cache_dir() / LAYOUT_CACHE_NAME).is_file()
    probed.clear()
    load_model(ModelSpec(source=str(tiny_model_dir), device="cpu", quantize="none"))
    assert probed == []
