"""Every benchmark runs in its tiny ``--smoke`` mode and prints one JSON object with its keys.

No timing is asserted: a benchmark's numbers are read by people, its shape by this test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run_benchmark(name: str, *options: str) -> dict[str, Any]:
    # Passive OpenMP waiting: on a shared, busy machine spinning torch threads make even the
    # tiny model crawl (benchmarks/cpu_threading.py); only the JSON's shape is checked here.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--smoke", *options],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout)  # exactly one JSON object, nothing else
    assert isinstance(result, dict)
    assert result["benchmark"] == name
    return result


def test_multiturn_ttft_reports_both_curves_and_reuses_the_prefix(tiny_model_dir: Path) -> None:
    result = run_benchmark("multiturn_ttft", "--model", str(tiny_model_dir))
    assert len(result["ttft_s_with_reuse"]) == len(result["ttft_s_without_reuse"]) == 3
    assert all(t > 0 for t in result["ttft_s_with_reuse"] + result["ttft_s_without_reuse"])
    assert isinstance(result["target_met"], bool)
    second_turn = result["turn_details"][1]
    assert second_turn["reused_prefix_tokens"] > 0
    assert second_turn["prefilled_tokens_with_reuse"] < second_turn["prefilled_tokens_without"]


def test_lever_overhead_compares_neutral_and_active_levers(tiny_model_dir: Path) -> None:
    result = run_benchmark("lever_overhead", "--model", str(tiny_model_dir))
    assert result["tokens_per_s_neutral"] > 0 and result["tokens_per_s_active"] > 0
    assert result["ratio_active_over_neutral"] > 0
    assert set(result["pick_us_per_token"]) == {"neutral", "active"}
    assert set(result["pick_us_per_sampler"]) == {
        "dry",
        "xtc",
        "mirostat",
        "dynatemp",
        "temperature_last",
        "ban",
        "boost",
    }
    assert all(cost > 0 for cost in result["pick_us_per_sampler"].values())
    assert result["levers"]["active"]["top_k"] > 0
    assert isinstance(result["target_met"], bool)


def test_stream_overhead_measures_bare_engine_and_app(tiny_model_dir: Path) -> None:
    result = run_benchmark("stream_overhead", "--model", str(tiny_model_dir))
    assert set(result["tokens_per_s"]) == {"bare", "engine", "app"}
    assert all(rate > 0 for rate in result["tokens_per_s"].values())
    assert result["ratio_app_over_bare"] > 0 and result["ratio_engine_over_bare"] > 0
    assert isinstance(result["target_met"], bool)


def test_startup_times_the_first_frame_without_torch(tiny_model_dir: Path) -> None:
    result = run_benchmark("startup", "--model", str(tiny_model_dir))
    assert result["first_frame_s_stub_engine"] > 0
    assert result["model_ready_s_warm"] > 0
    assert result["ask_warm"]["first_token_s"] > 0
    # The baseline of issue #12: a process that only imports torch and transformers.
    assert len(result["imports_only_samples_s"]) == result["runs"]
    assert result["imports_only_s"] > 0 and result["ask_warm_over_imports"] > 0
    assert isinstance(result["targets"]["ask_over_imports_met"], bool)
    # The UI's import and first frame never pull in torch: the layering, not a timing.
    assert result["torch_imported_on_ui_path"] is False


def test_ui_latency_reports_key_latencies_and_the_ui_threads_share(tiny_model_dir: Path) -> None:
    # Two-token replies end before a person could type a key, as a busy machine made the
    # 40-token ones do: the benchmark holds the reply open, so every smoke key (3) is typed
    # while it streams, however fast or slow the machine.
    result = run_benchmark("ui_latency", "--model", str(tiny_model_dir), "--tokens", "2")
    assert result["keys_while_streaming"] == 3
    assert 0 <= result["keys_while_engine_held"] <= 3
    assert set(result["key_latency_s_streaming"]) == {"p50", "p95", "max"}
    assert result["key_latency_s_streaming"]["max"] > 0
    # A share of a core: a number, whatever the machine's load (a two-token reply can end
    # before the UI thread has done measurable work).
    assert result["ui_thread_core_share_streaming"] >= 0
    assert isinstance(result["target_met"], bool)


def test_gpu_decode_runs_a_small_config_and_uses_the_given_bandwidth() -> None:
    result = run_benchmark("gpu_decode", "--device", "cpu", "--bandwidth", "50")
    assert set(result["tokens_per_s"]) == {"eager", "forward_only"}
    assert result["parameters"] > 0
    assert result["bandwidth_bytes_per_s"] == pytest.approx(50e9)
    expected = 50e9 / (result["weight_bytes_per_token"] + result["kv_bytes_per_token_mid_reply"])
    assert result["bound_tokens_per_s"] == pytest.approx(expected, rel=0.01)
    assert set(result["fraction_of_bound"]) == {"eager", "forward_only"}


def test_gpu_decode_compiled_variant_never_recompiles_between_turns() -> None:
    result = run_benchmark("gpu_decode", "--device", "cpu", "--compile", "--context", "512")
    assert "error" not in result["compile"], result["compile"]
    assert result["compile"]["how"] == "Generator(compile=True)"
    assert result["compile"]["graphs_built_after_warm_up"] == 0
    assert result["tokens_per_s"]["compiled"] > 0


def test_profile_decode_splits_the_time_per_token(tiny_model_dir: Path) -> None:
    result = run_benchmark("profile_decode", "--model", str(tiny_model_dir))
    split = result["decode_loop"]["split_ms_per_token"]
    assert {"forward", "sampling", "detokenize", "stop_filter", "loop_rest"} <= set(split)
    assert result["forward"]["aten_calls_per_forward"] > 0
    assert "top_p_0.9_sort" in result["sampling_micro_us"]


def test_cpu_variants_runs_every_variant_in_its_own_process(tiny_model_dir: Path) -> None:
    result = run_benchmark("cpu_variants", "--model", str(tiny_model_dir))
    assert set(result["forward_only_tokens_per_s"]) == set(result["variants"])
    assert result["torch_threads"]["omp_threads_1"] == 1  # the setting reached the child


needs_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed (the peer; see ../shared/wheels/README.md)",
)


@needs_llama_cpp
def test_peer_llamacpp_runs_each_engine_alone_and_reports_every_sample() -> None:
    result = run_benchmark("peer_llamacpp")
    variants = result["variants"]
    # The smoke run tries one thread count; leverchat's --quantize choices ride along.
    assert {"llama_cpp@1", "leverchat@1", "leverchat_int8@1"} <= set(variants)
    assert "int8" in variants["leverchat_int8@1"]["model_info"]["quantization"]
    for name, samples in result["samples"].items():
        assert samples, name
        for sample in samples:
            assert "error" not in sample, sample
            assert sample["peak_rss_bytes"] > 0 and sample["rss_end_bytes"] > 0
            assert sample["tokens_per_s"] > 0
            assert sample["new_tokens"] == result["tokens"]
    # Same prompt, same tokens: both engines tokenised the same chat-templated text.
    assert variants["llama_cpp@1"]["prompt_tokens"] == variants["leverchat@1"]["prompt_tokens"]
    assert result["best_thread_count"]["llama_cpp"] == "llama_cpp@1"
    assert result["over_llama_cpp"]["leverchat"]["tokens_per_s"] > 0
    assert isinstance(result["targets"]["default_met"], bool)


@pytest.mark.slow
def test_remote_overhead_compares_bare_client_engine_app_and_ask() -> None:
    pytest.importorskip("openai")
    result = run_benchmark("remote_overhead")
    assert set(result["tokens_per_s"]) == {"bare", "engine", "app"}
    assert result["ask"]["heavy_imported"] == []  # `ask` on a server never imports torch
    assert len(result["ask"]["first_byte_s"]) == 1


def test_inspector_overhead_compares_off_and_on_for_each_lever_set(tiny_model_dir: Path) -> None:
    result = run_benchmark("inspector_overhead", "--model", str(tiny_model_dir))
    assert set(result["tokens_per_s"]) == {"default_off", "default_on", "active_off", "active_on"}
    assert all(rate > 0 for rate in result["tokens_per_s"].values())
    assert set(result["ratio_on_over_off"]) == {"default", "active"}
    assert set(result["observe_us_per_token"]) == {"default", "active"}
    assert result["top_n"] == 10
    # The inspector only watches: the replies are the same tokens with it on.
    assert result["same_tokens_on_and_off"] is True
    assert isinstance(result["target_met"], bool)


def test_persona_switch_reports_each_variant_with_and_without_the_note(
    tiny_model_dir: Path,
) -> None:
    result = run_benchmark("persona_switch", "--model", str(tiny_model_dir))
    assert set(result["results"]) == {
        f"{persona}_{variant}"
        for persona in ("pirate", "french")
        for variant in ("new_chat", "mid_chat", "mid_chat_note")
    }
    assert all(item["of"] == result["seeds"] for item in result["results"].values())
    assert len(result["history"]) == 4


def test_peer_llamacpp_says_when_llama_cpp_is_missing() -> None:
    if importlib.util.find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed: the comparison runs instead")
    assert "llama" in run_benchmark("peer_llamacpp")["skipped"]


@needs_llama_cpp
def test_scale_cpu_tiny_compares_both_engines_on_one_gguf(tmp_path: Path) -> None:
    result = run_benchmark("scale_cpu", "--workdir", str(tmp_path))
    case = result["cases"]["tiny:Q8_0"]
    assert case["gguf_bytes"] > 0
    conversion = case["leverchat_conversion"]
    assert "error" not in conversion and conversion["cache_bytes"] > 0
    llama, lever = case["variants"]["llama_cpp@1"], case["variants"]["leverchat@1"]
    # The ~512-token prompt is the same number of tokens for both tokenisers.
    assert llama["long_prompt_tokens"] == lever["long_prompt_tokens"] > 400
    assert llama["median_long_ttft_s"] > 0 and lever["median_peak_rss_bytes"] > 0
    # Greedy on the same weights (Q8_0 in llama.cpp, de-quantised in leverchat): same start.
    first_llama = case["samples"]["llama_cpp@1"][0]["token_ids"]
    first_lever = case["samples"]["leverchat@1"][0]["token_ids"]
    assert first_llama[:2] == first_lever[:2]
    assert set(case["over_llama_cpp"]["leverchat"]) >= {"tokens_per_s", "peak_rss", "long_ttft_s"}
    assert result["models"]["tiny"]["bytes"]["safetensors_bf16"] > 0


def test_scale_cpu_plan_8b_accounts_for_a_q4_k_m_file() -> None:
    plan = run_benchmark("scale_cpu", "--plan-8b")["plan_8b"]
    assert plan["parameters"] == plan["parameters_meta_device"] == 8_030_261_248
    # Llama-3.1-8B Q4_K_M files are 4.92 GB: the computed mix lands there.
    assert 4.85e9 < plan["file_bytes_computed"] < 4.95e9
    schemes = plan["schemes"]
    assert schemes["float32_whole_model"]["cache_on_disk_bytes"] == 4 * plan["parameters"]
    peaks = [
        schemes[name]["load_peak_bytes"]
        for name in (
            "float32_whole_model",
            "bf16_tensor_by_tensor",
            "int8_weight_only",
            "int4_weight_only",
        )
    ]
    assert peaks == sorted(peaks, reverse=True)


def test_random_model_files_hold_the_same_weights(tmp_path: Path) -> None:
    """The bf16 safetensors and the Q8_0 GGUF of one random model agree (after llama.cpp's
    q/k row order is undone), so leverchat on either and llama.cpp run the same model."""
    import gguf
    import numpy as np
    from safetensors.torch import load_file

    sys.path.insert(0, str(BENCHMARKS))
    import _randmodel  # type: ignore[import-not-found]

    info = _randmodel.build(tmp_path, "tiny")
    shape = _randmodel.SHAPES["tiny"]
    weights = load_file(Path(info["safetensors"]) / "model.safetensors")
    assert len(weights) == len(list(shape.tensors()))
    reader = gguf.GGUFReader(info["gguf"]["Q8_0"])
    tensors = {t.name: t for t in reader.tensors}
    for hf_name, gguf_name, dims in shape.tensors():
        stored = weights[hf_name].float().numpy()
        assert tuple(stored.shape) == dims
        tensor = tensors[gguf_name]
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(dims)
        if gguf_name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = (
                shape.num_attention_heads if "attn_q" in gguf_name else shape.num_key_value_heads
            )
            values = values.reshape(heads, dims[0] // heads // 2, 2, dims[1]).swapaxes(1, 2)
            values = values.reshape(dims)
        np.testing.assert_allclose(values, stored, atol=0.01 * float(np.abs(stored).max()))


def test_a_child_over_the_memory_cap_is_stopped_and_reported(tmp_path: Path) -> None:
    """A sample that would take the shared machine's memory is killed, not waited for."""
    sys.path.insert(0, str(BENCHMARKS))
    import _peer  # type: ignore[import-not-found]
    import _randmodel

    info = _randmodel.build(tmp_path, "tiny")
    variant = _peer.Variant("leverchat@1", _peer.LEVERCHAT, info["gguf"]["Q8_0"], 1)
    sample = _peer.run_child(
        variant, {"prompt": "hi", "tokens": 2}, timeout_s=120, memory_cap_bytes=100_000_000
    )
    assert "over the cap of 0.1 GB" in sample["error"]
    assert "tokens_per_s" not in sample


def test_structured_pick_measures_each_installed_library_and_the_levers_cost() -> None:
    result = run_benchmark("structured_pick")
    assert set(result["results"]) == {"llguidance", "xgrammar", "outlines-core"}
    chosen = result["results"]["llguidance"]  # a dependency: always installed
    assert chosen["cpu_only"] is True
    assert chosen["mask_steps"] == result["document_tokens"]
    for key in ("schema_compile_ms", "json_mode_compile_ms", "mask_ms_median", "mask_ms_p95"):
        assert chosen[key] >= 0
    assert set(result["leverchat_per_token"]) == {
        "apply_ms_median_off",
        "apply_ms_median_json_mode",
        "apply_ms_median_json_schema",
    }
