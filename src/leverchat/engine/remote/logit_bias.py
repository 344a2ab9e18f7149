"""The boost lever on a server: OpenAI's ``logit_bias`` takes token ids, not text, so the
phrases are mapped with the model's own tokenizer exactly as the local engine maps them
(engine/samplers/boost.py). leverchat has that tokenizer only when the server's model id is a
folder on this machine holding ``tokenizer.json`` (``vllm serve /path/to/model``,
``llama-server`` on a local folder...), read with the ``tokenizers`` library (no torch);
otherwise the lever is shown unavailable with the reason (dialects.py).

Which servers take ``logit_bias`` as {token id: bias}: the OpenAI API
(https://platform.openai.com/docs/api-reference/chat/create#chat-create-logit_bias, -100 to
100), vLLM and SGLang (the same field) and llama-server (tools/server/README.md: ``logit_bias``
as ``{"15043": 1.0}`` or pairs). Ollama has no logit bias; TGI's Messages API lists the field
but does not apply it; transformers serve refuses fields it does not know.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from leverchat.engine.remote.dialects import Dialect
from leverchat.engine.samplers.boost import boosted_phrases, token_biases
from leverchat.levers import Levers

Encode = Callable[[str], list[int]]

LOGIT_BIAS_SERVERS = frozenset({"openai", "vllm", "sglang", "llama-server"})
# OpenAI's bounds for one token's bias; two phrases that start alike add up, so clamp.
_LIMIT = 100.0


@dataclass(frozen=True)
class LocalTokenizer:
    """The server model's tokenizer, read here: text -> ids (no special tokens), one id ->
    its text, and the vocabulary size."""

    encode: Encode
    decode: Callable[[int], str]
    vocab_size: int


def load_encoder(model_id: str) -> LocalTokenizer | None:
    """The model's tokenizer, or None when the model id is not a local folder with a
    readable tokenizer.json."""
    path = Path(model_id) / "tokenizer.json"
    try:
        if not path.is_file():
            return None
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path))
    except Exception:  # an unreadable or foreign file: no mapping, the lever stays unavailable
        return None

    def encode(text: str) -> list[int]:
        return list(tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(token: int) -> str:
        return str(tokenizer.decode([token], skip_special_tokens=False))

    return LocalTokenizer(encode, decode, int(tokenizer.get_vocab_size(with_added_tokens=True)))


def logit_bias(levers: Levers, encode: Encode, vocab_size: int) -> dict[str, float]:
    """The boost as OpenAI's ``logit_bias``: token id (as text) -> bias in -100..100."""
    biases = token_biases(boosted_phrases(levers.boost, encode), vocab_size)
    return {
        str(token): -_LIMIT if math.isinf(bias) else max(-_LIMIT, min(_LIMIT, bias))
        for token, bias in biases.items()
    }


def tokenizer_for(dialect: Dialect, model_id: str) -> LocalTokenizer | None:
    """The tokenizer that maps the boost, when ``dialect``'s server takes logit_bias."""
    return load_encoder(model_id) if dialect.name in LOGIT_BIAS_SERVERS else None


def with_logit_bias(dialect: Dialect, tokenizer: LocalTokenizer | None) -> Dialect:
    """``dialect`` sending the boost as ``logit_bias`` when the server takes it and the
    model's tokenizer is here; else ``dialect`` as it is (the lever listed unavailable)."""
    if dialect.name not in LOGIT_BIAS_SERVERS or tokenizer is None:
        return dialect
    base = dialect.sampling

    def sampling(levers: Levers, seed: int) -> dict[str, Any]:
        fields = base(levers, seed)
        if levers.boost:
            bias = logit_bias(levers, tokenizer.encode, tokenizer.vocab_size)
            if bias:
                fields["logit_bias"] = bias
        return fields

    unavailable = {name: why for name, why in dialect.unavailable.items() if name != "boost"}
    return replace(dialect, sampling=sampling, unavailable=unavailable)
