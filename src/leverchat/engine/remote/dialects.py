"""Each server's dialect: how leverchat's levers are sent so that the server applies them with
leverchat's meaning, which levers it cannot apply (and why), and how it continues a reply.

A lever a server cannot apply is never dropped silently: when its value would change the
reply (it is not the lever's neutral value) it is listed in ``WireRequest.dropped``, and the
panel and `ask` show every unavailable lever with its reason.

Each mapping cites the documentation it follows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from leverchat.engine.remote.structured_wire import structured_fields, structured_unavailable
from leverchat.engine.types import ChatMessage, UnavailableLever
from leverchat.levers import SPECS_BY_NAME, Levers

StreamFormat = Literal["sse", "ndjson"]
# How a reply is continued after a lever change: the chat route with the partial reply as the
# final assistant message ("continue_final_message": vLLM's flag; "prefill": the server
# continues a final assistant message by itself), or /v1/completions with the conversation
# rendered by the model's chat template ("completions": needs the template).
Continuation = Literal["continue_final_message", "prefill", "completions"]

SERVERS = ("vllm", "sglang", "tgi", "llama-server", "ollama", "transformers", "openai")


@dataclass(frozen=True)
class WireRequest:
    """One HTTP request: ``path`` is relative to the API base (/v1) unless ``at_root``."""

    path: str
    body: dict[str, Any]
    sent: tuple[tuple[str, str], ...]
    dropped: tuple[UnavailableLever, ...]
    stream_format: StreamFormat = "sse"
    at_root: bool = False


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _flatten(prefix: str, mapping: dict[str, Any]) -> list[tuple[str, str]]:
    return [(prefix + key, _json(value)) for key, value in mapping.items()]


@dataclass(frozen=True)
class Dialect:
    name: str
    label: str
    # lever name -> why this server cannot apply it
    unavailable: dict[str, str]
    # levers (and the seed the reply uses) -> the body fields carrying them
    sampling: Callable[[Levers, int], dict[str, Any]]
    continuation: Continuation
    docs: str
    # Servers whose native chat route is not the OpenAI one (Ollama's /api/chat).
    chat_path: str = "/chat/completions"
    chat_at_root: bool = False
    stream_format: StreamFormat = "sse"
    extra_chat_fields: dict[str, Any] = field(default_factory=dict)

    def unavailable_levers(self) -> tuple[UnavailableLever, ...]:
        return tuple(UnavailableLever(name, reason) for name, reason in self.unavailable.items())

    def dropped(self, levers: Levers) -> tuple[UnavailableLever, ...]:
        """The unavailable levers whose value would have changed the reply."""
        return tuple(
            UnavailableLever(name, reason)
            for name, reason in self.unavailable.items()
            if getattr(levers, name) != SPECS_BY_NAME[name].neutral
        )

    def chat_request(
        self,
        model: str,
        messages: tuple[ChatMessage, ...],
        levers: Levers,
        seed: int,
        *,
        prefix: str | None = None,
    ) -> WireRequest:
        """A streaming chat request; ``prefix``: continue this partial assistant reply."""
        wire_messages = [{"role": m.role, "content": m.content} for m in messages]
        body: dict[str, Any] = {"model": model, "messages": wire_messages, "stream": True}
        body.update(self.extra_chat_fields)
        if prefix is not None:
            wire_messages.append({"role": "assistant", "content": prefix})
            if self.continuation == "continue_final_message":
                # vLLM: https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html
                # (chat extra parameters: continue_final_message, add_generation_prompt)
                body["continue_final_message"] = True
                body["add_generation_prompt"] = False
        sampling = {**self.sampling(levers, seed), **structured_fields(self.name, levers)}
        body.update(sampling)
        return WireRequest(
            path=self.chat_path,
            body=body,
            sent=tuple(_sent(sampling)),
            dropped=self.dropped(levers),
            stream_format=self.stream_format,
            at_root=self.chat_at_root,
        )

    def completion_request(self, model: str, prompt: str, levers: Levers, seed: int) -> WireRequest:
        """A streaming /v1/completions request continuing a raw ``prompt``."""
        sampling = {**self.sampling(levers, seed), **structured_fields(self.name, levers)}
        body: dict[str, Any] = {"model": model, "prompt": prompt, "stream": True, **sampling}
        return WireRequest(
            path="/completions",
            body=body,
            sent=tuple(_sent(sampling)),
            dropped=self.dropped(levers),
        )


def _sent(sampling: dict[str, Any]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in sampling.items():
        if key == "generation_config" and isinstance(value, str):
            out.extend(_flatten("generation_config.", json.loads(value)))
        elif isinstance(value, dict):
            out.extend(_flatten(key + ".", value))
        else:
            out.append((key, _json(value)))
    return out


# -- the plain OpenAI API ------------------------------------------------------------------
# https://platform.openai.com/docs/api-reference/chat/create: temperature, top_p,
# frequency_penalty, presence_penalty, seed, stop, max_tokens (same meaning as leverchat's:
# the penalties count the reply's own tokens).


def _openai_fields(levers: Levers, seed: int) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "temperature": levers.temperature,
        "top_p": levers.top_p,
        "frequency_penalty": levers.frequency_penalty,
        "presence_penalty": levers.presence_penalty,
        "seed": seed,
        "max_tokens": levers.max_new_tokens,
    }
    if levers.stop:
        fields["stop"] = list(levers.stop)
    return fields


_NOT_IN_OPENAI = "not part of the OpenAI API"
# The samplers of sampler_specs.py, by the words a reason uses for each.
_SAMPLER_WORDS = {
    "dry_multiplier": "DRY sampler",
    "dry_base": "DRY sampler",
    "dry_allowed_length": "DRY sampler",
    "dry_sequence_breakers": "DRY sampler",
    "xtc_probability": "XTC sampler",
    "xtc_threshold": "XTC sampler",
    "mirostat_tau": "mirostat sampler",
    "mirostat_eta": "mirostat sampler",
    "dynatemp_range": "dynamic temperature",
    "dynatemp_exponent": "dynamic temperature",
    "temperature_last": "choice of sampler order (temperature last)",
    "ban": "phrase banning (its logit bias works on single tokens)",
}
# The boost lever: its reason until a tokenizer maps it (see logit_bias.py).
_BOOST_NO_TOKENIZER = (
    "logit_bias takes token ids: leverchat maps the phrases with the model's tokenizer, which "
    "it can read only when the server's model id is a folder here with tokenizer.json"
)


def _lacks(server: str, *, but: tuple[str, ...] = ()) -> dict[str, str]:
    """A reason for each sampler of sampler_specs.py that ``server`` does not have."""
    return {
        name: f"{server} has no {words}"
        for name, words in _SAMPLER_WORDS.items()
        if not any(name.startswith(prefix) for prefix in but)
    }


_OPENAI_UNAVAILABLE = {
    "top_k": _NOT_IN_OPENAI,
    "min_p": _NOT_IN_OPENAI,
    "typical_p": _NOT_IN_OPENAI,
    "repetition_penalty": _NOT_IN_OPENAI,
    "no_repeat_ngram_size": _NOT_IN_OPENAI,
    **{name: _NOT_IN_OPENAI for name in _SAMPLER_WORDS},
    "boost": _BOOST_NO_TOKENIZER,
}

# -- vLLM and SGLang -----------------------------------------------------------------------
# vLLM: https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html#extra-parameters
# (top_k, min_p, repetition_penalty are extra body fields of /v1/chat/completions; top_k -1
# disables it). SGLang: https://docs.sglang.ai/backend/sampling_params.html (the same names;
# top_k -1 is off). Both otherwise default to the model's generation_config.json, so every
# lever is sent, neutral or not, to get leverchat's values rather than the model's.


def _vllm_fields(levers: Levers, seed: int) -> dict[str, Any]:
    fields = _openai_fields(levers, seed)
    fields["top_k"] = levers.top_k if levers.top_k > 0 else -1
    fields["min_p"] = levers.min_p
    fields["repetition_penalty"] = levers.repetition_penalty
    return fields


# Neither has DRY, XTC, mirostat or dynamic temperature among its sampling parameters, and
# both apply temperature before top-k/top-p/min-p.
_VLLM_UNAVAILABLE = {
    "typical_p": "vLLM has no typical-p sampling",
    "no_repeat_ngram_size": "vLLM has no n-gram blocking (it would need a logits processor)",
    **_lacks("vLLM"),
    "boost": _BOOST_NO_TOKENIZER,
}
_SGLANG_UNAVAILABLE = {
    "typical_p": "SGLang has no typical-p sampling",
    "no_repeat_ngram_size": "SGLang has no n-gram blocking",
    **_lacks("SGLang"),
    "boost": _BOOST_NO_TOKENIZER,
}

# -- llama.cpp's llama-server --------------------------------------------------------------
# https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md (POST /completion
# options, also read by /v1/chat/completions): top_k (0 or less: off), min_p, typical_p,
# repeat_penalty, repeat_last_n (-1: the whole context, as leverchat's penalty counts the
# whole conversation; its default is only the last 64 tokens), frequency_penalty,
# presence_penalty, seed, and the samplers leverchat shares with it under the same names:
# dry_* (dry_penalty_last_n -1: the whole context, as leverchat's DRY), xtc_*, mirostat
# (0 or 2), mirostat_tau/eta, dynatemp_range/exponent, and `samplers`, the order (its default
# puts temperature last; leverchat's order is sent, temperature first unless
# temperature_last). Its own defaults (top_k 40, min_p 0.05, ...) apply to any field not sent,
# so all are sent.


def _llama_server_fields(levers: Levers, seed: int) -> dict[str, Any]:
    fields = _openai_fields(levers, seed)
    fields["top_k"] = levers.top_k
    fields["min_p"] = levers.min_p
    fields["typical_p"] = levers.typical_p
    fields["repeat_penalty"] = levers.repetition_penalty
    fields["repeat_last_n"] = -1
    fields.update(
        dry_multiplier=levers.dry_multiplier,
        dry_base=levers.dry_base,
        dry_allowed_length=levers.dry_allowed_length,
        dry_penalty_last_n=-1,
        dry_sequence_breakers=list(levers.dry_sequence_breakers),
        xtc_probability=levers.xtc_probability,
        xtc_threshold=levers.xtc_threshold,
        mirostat=2 if levers.mirostat else 0,
        mirostat_tau=levers.mirostat_tau,
        mirostat_eta=levers.mirostat_eta,
        dynatemp_range=levers.dynatemp_range,
        dynatemp_exponent=levers.dynatemp_exponent,
    )
    truncation = ["top_k", "top_p", "min_p", "typ_p", "xtc"]
    fields["samplers"] = (
        ["penalties", "dry", *truncation, "temperature"]
        if levers.temperature_last
        else ["penalties", "dry", "temperature", *truncation]
    )
    return fields


_LLAMA_UNAVAILABLE = {
    "no_repeat_ngram_size": "llama-server has no n-gram blocking (its DRY sampler differs)",
    "ban": "llama-server's logit_bias by text biases every token of a phrase, not the phrase",
    "boost": _BOOST_NO_TOKENIZER,
}

# -- Ollama --------------------------------------------------------------------------------
# Its OpenAI route takes only the OpenAI fields
# (https://docs.ollama.com/api/openai-compatibility), so leverchat uses the native
# POST /api/chat with an `options` object (https://github.com/ollama/ollama/blob/main/docs/api.md
# #generate-a-chat-completion; names from docs/modelfile.md#valid-parameters-and-values):
# temperature, top_k, top_p, min_p, typical_p, repeat_penalty, repeat_last_n (-1: num_ctx),
# presence_penalty, frequency_penalty, seed, stop, num_predict. Streams JSON lines.


def _ollama_fields(levers: Levers, seed: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "temperature": levers.temperature,
        "top_k": levers.top_k,
        "top_p": levers.top_p,
        "min_p": levers.min_p,
        "typical_p": levers.typical_p,
        "repeat_penalty": levers.repetition_penalty,
        "repeat_last_n": -1,
        "presence_penalty": levers.presence_penalty,
        "frequency_penalty": levers.frequency_penalty,
        "seed": seed,
        "num_predict": levers.max_new_tokens,
        # docs/modelfile.md: mirostat (0 off, 2 v2), mirostat_tau, mirostat_eta.
        "mirostat": 2 if levers.mirostat else 0,
        "mirostat_tau": levers.mirostat_tau,
        "mirostat_eta": levers.mirostat_eta,
    }
    if levers.stop:
        options["stop"] = list(levers.stop)
    return {"options": options}


_OLLAMA_UNAVAILABLE = {
    "no_repeat_ngram_size": "Ollama has no n-gram blocking",
    **_lacks("Ollama", but=("mirostat",)),
    "boost": "Ollama has no logit bias",
}

# -- Text Generation Inference -------------------------------------------------------------
# https://huggingface.co/docs/text-generation-inference/en/messages_api: the Messages API
# (/v1/chat/completions) takes the OpenAI fields (its schema, shared by the HF inference
# clients: huggingface.js packages/tasks/src/tasks/chat-completion/spec/input.json, lists
# frequency_penalty, presence_penalty, seed, stop, temperature, top_p, max_tokens); top_k,
# typical_p and repetition_penalty exist only on TGI's own /generate route, which has no chat
# template.

_TGI_ONLY_GENERATE = "TGI's Messages API does not take it (only its /generate route)"
_TGI_UNAVAILABLE = {
    "top_k": _TGI_ONLY_GENERATE,
    "min_p": "TGI has no min-p sampling",
    "typical_p": _TGI_ONLY_GENERATE,
    "repetition_penalty": _TGI_ONLY_GENERATE,
    "no_repeat_ngram_size": "TGI has no n-gram blocking",
    **_lacks("TGI"),
    "boost": "TGI's Messages API does not apply logit_bias",
}

# -- transformers serve --------------------------------------------------------------------
# https://huggingface.co/docs/transformers/main/en/serve-cli/serving and
# transformers/cli/serve.py (5.x): unknown body fields are refused ("Unexpected fields"); the
# levers travel in `generation_config`, a JSON string of GenerationConfig fields. Its
# `frequency_penalty` field is turned into repetition_penalty = 1 + value (not OpenAI's
# meaning), so neither it nor presence_penalty is sent: transformers has no such penalties.


def _transformers_fields(levers: Levers, seed: int) -> dict[str, Any]:
    config: dict[str, Any] = {
        "max_new_tokens": levers.max_new_tokens,
        "top_k": levers.top_k,
        "top_p": levers.top_p,
        "min_p": levers.min_p if levers.min_p > 0 else None,
        "typical_p": levers.typical_p,
        "repetition_penalty": levers.repetition_penalty,
        "no_repeat_ngram_size": levers.no_repeat_ngram_size,
    }
    if levers.temperature == 0.0:
        config["do_sample"] = False  # transformers refuses temperature 0: greedy instead
    else:
        config["do_sample"] = True
        config["temperature"] = levers.temperature
    if levers.stop:
        config["stop_strings"] = list(levers.stop)
    fields: dict[str, Any] = {
        "seed": seed,
        "generation_config": json.dumps({k: v for k, v in config.items() if v is not None}),
    }
    return fields


_NO_OPENAI_PENALTY = (
    "transformers serve turns frequency_penalty into a repetition penalty, and transformers "
    "has no frequency or presence penalty"
)
_TRANSFORMERS_UNAVAILABLE = {
    "frequency_penalty": _NO_OPENAI_PENALTY,
    "presence_penalty": _NO_OPENAI_PENALTY,
    **_lacks("transformers"),
    "boost": "transformers serve has no logit_bias field",
}


DIALECTS: dict[str, Dialect] = {
    "openai": Dialect(
        "openai",
        "OpenAI-compatible",
        _OPENAI_UNAVAILABLE,
        _openai_fields,
        "completions",
        "https://platform.openai.com/docs/api-reference/chat/create",
    ),
    "vllm": Dialect(
        "vllm",
        "vLLM",
        _VLLM_UNAVAILABLE,
        _vllm_fields,
        "continue_final_message",
        "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html",
    ),
    "sglang": Dialect(
        "sglang",
        "SGLang",
        _SGLANG_UNAVAILABLE,
        _vllm_fields,
        "continue_final_message",
        "https://docs.sglang.ai/backend/sampling_params.html",
    ),
    "llama-server": Dialect(
        "llama-server",
        "llama.cpp server",
        _LLAMA_UNAVAILABLE,
        _llama_server_fields,
        "prefill",
        "https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md",
    ),
    "ollama": Dialect(
        "ollama",
        "Ollama",
        _OLLAMA_UNAVAILABLE,
        _ollama_fields,
        "prefill",
        "https://github.com/ollama/ollama/blob/main/docs/api.md",
        chat_path="/api/chat",
        chat_at_root=True,
        stream_format="ndjson",
    ),
    "tgi": Dialect(
        "tgi",
        "Text Generation Inference",
        _TGI_UNAVAILABLE,
        _openai_fields,
        "completions",
        "https://huggingface.co/docs/text-generation-inference/en/messages_api",
    ),
    "transformers": Dialect(
        "transformers",
        "transformers serve",
        _TRANSFORMERS_UNAVAILABLE,
        _transformers_fields,
        "completions",
        "https://huggingface.co/docs/transformers/main/en/serve-cli/serving",
    ),
}

# Structured output (structured_wire.py): each server's reasons, beside its samplers'.
for _dialect in DIALECTS.values():
    _dialect.unavailable.update(structured_unavailable(_dialect.name, _dialect.label))
