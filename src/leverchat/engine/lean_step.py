"""A lean one-token forward for Llama-family decoders: the model's own arithmetic, less Python.

Decoding one token of a small model on the CPU spends much of its time outside the matrix
products: transformers' forward builds masks, output records and keyword arguments, and goes
through ~10 module calls per layer, each with its hooks. On the bundled SmolLM2-135M (int8,
one thread) that was 6.3 of 31 ms a token, measured with the products replaced by empty ones.
This step computes the same thing with the same tensors: the same operations in the same order
(RMSNorm, the projections through the same kernels and casts, RoPE from the model's own
rotary module, the cache's own ``update``, SDPA with the same arguments, the MLP), so its
logits equal the model's forward pass (tests/test_lean_step.py compares them step by step).

Only for architectures whose decoder layer is exactly that (:data:`SUPPORTED_MODEL_TYPES`, with
the checks in :func:`unsupported_reason`); anything else, or a prompt of several tokens, goes
through the model's own forward. It reads and writes the same KV cache object, so prefill,
prefix reuse and branching are untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import torch
import torch.nn.functional as F
from torch import nn
from transformers.models.llama.modeling_llama import rotate_half as _untyped_rotate_half

from leverchat.engine.quant_layers import (
    Int4WeightOnlyLinear,
    Int8WeightOnlyLinear,
    int4_product,
    int8_product,
)

log = logging.getLogger(__name__)

# Decoder layers that are exactly pre-norm RMSNorm -> attention (q/k/v/o projections, rotate-
# half RoPE, grouped-query SDPA) -> RMSNorm -> gated MLP, with nothing else in between.
SUPPORTED_MODEL_TYPES: Final = frozenset({"llama", "mistral", "qwen2"})

Product = Callable[[torch.Tensor], torch.Tensor]
# transformers' own RoPE helper (Mistral's and Qwen2's are copies of it).
rotate_half: Product = _untyped_rotate_half


def unsupported_reason(model: Any) -> str | None:
    """Why the lean step cannot run ``model`` (None when it can)."""
    config: Any = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        return f"model type {model_type!r} is not one of {sorted(SUPPORTED_MODEL_TYPES)}"
    body = getattr(model, "model", None)
    layers = getattr(body, "layers", None)
    if body is None or layers is None or getattr(body, "rotary_emb", None) is None:
        return "the model has no decoder layers or rotary embedding where Llama keeps them"
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return f"attention implementation {config._attn_implementation!r} is not sdpa"
    if getattr(config, "hidden_act", None) != "silu":
        return f"activation {config.hidden_act!r} is not silu"
    if getattr(config, "sliding_window", None) is not None and getattr(
        config, "use_sliding_window", True
    ):
        return "sliding-window attention"
    if getattr(config, "pretraining_tp", 1) != 1:
        return "pretraining_tp splits the projections"
    for layer in layers:
        attention: Any = getattr(layer, "self_attn", None)
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            if not hasattr(attention, name):
                return f"a layer's attention has no {name}"
        head_dim = getattr(attention, "head_dim", 0)
        if head_dim > 256:
            # transformers' SDPA path repeats the keys instead of grouping them there.
            return f"heads of {head_dim} dimensions (over 256)"
        for name in ("q_norm", "k_norm"):  # Qwen3-style query/key norms
            if getattr(attention, name, None) is not None:
                return f"a layer's attention has {name}"
        if not all(hasattr(layer.mlp, name) for name in ("gate_proj", "up_proj", "down_proj")):
            return "a layer's MLP is not gated (gate/up/down projections)"
        for norm in (layer.input_layernorm, layer.post_attention_layernorm):
            if not type(norm).__name__.endswith("RMSNorm"):
                return f"a layer's norm is {type(norm).__name__}, not RMSNorm"
    return None


def lean_step_for(model: Any, device: torch.device) -> LeanStep | None:
    """The lean step for ``model`` on ``device``, or None where the model's forward must run
    (another architecture, or a device other than the CPU, where it was not measured)."""
    if device.type != "cpu":
        return None
    reason = unsupported_reason(model)
    if reason is not None:
        log.info("one-token steps use the model's own forward: %s", reason)
        return None
    return LeanStep(model)


class _Layer:
    """One decoder layer's tensors and products, looked up once."""

    def __init__(self, layer: Any) -> None:
        attention, mlp = layer.self_attn, layer.mlp
        self.index: int = attention.layer_idx
        self.input_norm = _Norm(layer.input_layernorm)
        self.post_attention_norm = _Norm(layer.post_attention_layernorm)
        self.q = product_of(attention.q_proj)
        self.k = product_of(attention.k_proj)
        self.v = product_of(attention.v_proj)
        self.o = product_of(attention.o_proj)
        self.gate = product_of(mlp.gate_proj)
        self.up = product_of(mlp.up_proj)
        self.down = product_of(mlp.down_proj)
        self.scaling: float = attention.scaling
        self.head_dim: int = attention.head_dim


class _Norm:
    """LlamaRMSNorm's forward, op for op."""

    def __init__(self, norm: Any) -> None:
        self.weight: torch.Tensor = norm.weight
        self.eps: float = norm.variance_epsilon

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        dtype = hidden.dtype
        hidden = hidden.to(torch.float32)
        variance = hidden.pow(2).mean(-1, keepdim=True)
        hidden = hidden * torch.rsqrt(variance + self.eps)
        return self.weight * hidden.to(dtype)


def product_of(module: nn.Module) -> Product:
    """``module``'s forward on one row, without the module call: the same kernel and casts."""
    bias = getattr(module, "bias", None)
    # The module's buffers are looked up once here, not at every token.
    if isinstance(module, Int8WeightOnlyLinear):
        weight, scales = module.weight, module.scales
        return lambda x: int8_product(x, weight, scales, bias)
    if isinstance(module, Int4WeightOnlyLinear) and not module.on_cuda:
        packed, group, scales_and_zeros = module.weight, module.group_size, module.scales_and_zeros
        return lambda x: int4_product(x, packed, group, scales_and_zeros, bias)
    if type(module) is nn.Linear and not module._forward_hooks and not module._forward_pre_hooks:
        linear_weight = module.weight
        return lambda x: F.linear(x, linear_weight, bias)
    return module  # another layout (cpu_layout's, say): its own forward


class LeanStep:
    """Logits after one more token, computed as the model's forward computes them."""

    def __init__(self, model: Any) -> None:
        body = model.model
        config = model.config
        self.embed = body.embed_tokens
        self.rotary = body.rotary_emb
        self.layers = [_Layer(layer) for layer in body.layers]
        self.final_norm = _Norm(body.norm)
        self.head = product_of(model.lm_head)
        # transformers' SDPA path groups the query heads over the key/value heads in the kernel.
        grouped = config.num_attention_heads != config.num_key_value_heads
        self._sdpa_options: dict[str, Any] = {"enable_gqa": True} if grouped else {}

    def __call__(self, token: int, position: int, cache: Any) -> torch.Tensor:
        """The next token's logits (1-D) after ``token`` at ``position``; ``cache`` (holding
        the ``position`` tokens before it) gains its keys and values."""
        device = self.embed.weight.device
        ids = torch.tensor([[token]], dtype=torch.long, device=device)
        hidden = self.embed(ids)[0]  # [1, hidden]
        positions = torch.tensor([[position]], dtype=torch.long, device=device)
        cos, sin = self.rotary(hidden[None], positions)  # [1, 1, head_dim]
        cos, sin = cos[:, None], sin[:, None]
        for layer in self.layers:
            hidden = hidden + self._attention(layer, layer.input_norm(hidden), cos, sin, cache)
            normed = layer.post_attention_norm(hidden)
            hidden = hidden + layer.down(F.silu(layer.gate(normed)) * layer.up(normed))
        return self.head(self.final_norm(hidden))[0]

    def _attention(
        self, layer: _Layer, normed: torch.Tensor, cos: Any, sin: Any, cache: Any
    ) -> torch.Tensor:
        head_dim = layer.head_dim
        query = layer.q(normed).view(1, 1, -1, head_dim).transpose(1, 2)
        key = layer.k(normed).view(1, 1, -1, head_dim).transpose(1, 2)
        value = layer.v(normed).view(1, 1, -1, head_dim).transpose(1, 2)
        query = query * cos + rotate_half(query) * sin
        key = key * cos + rotate_half(key) * sin
        keys, values = cache.update(key, value, layer.index)
        attended = F.scaled_dot_product_attention(
            query,
            keys,
            values,
            attn_mask=None,
            dropout_p=0.0,
            scale=layer.scaling,
            **self._sdpa_options,
        )
        attended = attended.transpose(1, 2).reshape(1, -1)
        return layer.o(attended)
