"""The lean one-token step computes exactly what the model's own forward computes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from leverchat.engine.generate import Generator
from leverchat.engine.lean_step import lean_step_for, unsupported_reason
from leverchat.engine.loading import load_model
from leverchat.engine.quantize import keep_float_parts_in, quantize_model
from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest, ModelSpec
from leverchat.levers import Levers

CPU = torch.device("cpu")


def random_model(model_type: str, **overrides: Any) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    settings: dict[str, Any] = {
        "vocab_size": 300,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "initializer_range": 0.3,
        **overrides,
    }
    config = AutoConfig.for_model(model_type, **settings)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def quantized(model: Any, method: str) -> Any:
    if method != "none":
        quantize_model(model, method)
        keep_float_parts_in(model, torch.float32)
    return model


def compare_steps(model: Any, steps: int = 12) -> None:
    """Prefill one cache with the model's forward, then feed the same tokens to both paths
    (each with its own copy of the cache): every step's logits must be equal."""
    from transformers import DynamicCache

    lean = lean_step_for(model, CPU)
    assert lean is not None
    prompt = torch.tensor([[5, 17, 42, 7, 99, 3, 250]])
    own_cache = DynamicCache(config=model.config)
    lean_cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        own = model(input_ids=prompt, cache=own_cache, use_cache=True).logits[0, -1]
        model(input_ids=prompt, cache=lean_cache, use_cache=True)
        position = prompt.shape[1]
        for _ in range(steps):
            token = int(own.argmax())
            own = model(
                input_ids=torch.tensor([[token]]),
                cache=own_cache,
                use_cache=True,
                logits_to_keep=1,
            ).logits[0, -1]
            mine = lean(token, position, lean_cache)
            assert torch.equal(mine, own), (position, (mine - own).abs().max())
            position += 1
    assert lean_cache.get_seq_length() == own_cache.get_seq_length() == position


@pytest.mark.parametrize("method", ["none", "int8", "int4"])
def test_llama_steps_equal_the_models_forward(method: str) -> None:
    compare_steps(quantized(random_model("llama"), method))


def test_qwen2_with_projection_biases() -> None:
    model = random_model("qwen2", use_sliding_window=False)
    assert model.model.layers[0].self_attn.q_proj.bias is not None
    compare_steps(quantized(model, "int8"))


def test_mistral_and_llama3_rope_scaling() -> None:
    compare_steps(random_model("mistral", sliding_window=None))
    scaling = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
        "rope_theta": 500000.0,
    }
    compare_steps(random_model("llama", rope_parameters=scaling))


def test_without_grouped_query_attention() -> None:
    compare_steps(random_model("llama", num_key_value_heads=4))


@pytest.mark.parametrize(
    ("model_type", "overrides", "reason"),
    [
        ("mistral", {"sliding_window": 16}, "sliding-window"),
        ("qwen3", {}, "model type 'qwen3'"),
        ("llama", {"hidden_act": "gelu"}, "activation"),
        ("llama", {"head_dim": 320}, "over 256"),
    ],
)
def test_other_architectures_keep_the_models_forward(
    model_type: str, overrides: dict[str, Any], reason: str
) -> None:
    model = random_model(model_type, **overrides)
    assert reason in (unsupported_reason(model) or "")
    assert lean_step_for(model, CPU) is None


@pytest.mark.parametrize("method", ["none", "int8", "int4"])
def test_a_chat_reply_is_the_same_token_for_token(tiny_model_dir: Path, method: str) -> None:
    """Through the real loader: float layers in the CPU layout it picked, or quantised."""
    loaded = load_model(ModelSpec(source=str(tiny_model_dir), device="cpu", quantize=method))
    lean = Generator(loaded.model, loaded.tokenizer, loaded.device, context_window=256)
    plain = Generator(loaded.model, loaded.tokenizer, loaded.device, context_window=256, lean=False)
    assert lean.lean is not None and plain.lean is None
    levers = Levers(temperature=0.9, top_p=0.95, repetition_penalty=1.2, seed=11)
    levers = levers.with_value("max_new_tokens", 40)
    messages = (ChatMessage("user", "Tell me about levers"),)
    first = lean.run(GenerationRequest(messages, FixedLevers(levers)), None)
    second = plain.run(GenerationRequest(messages, FixedLevers(levers)), None)
    assert len(first.token_ids) > 10
    assert first.token_ids == second.token_ids
    assert first.text == second.text
