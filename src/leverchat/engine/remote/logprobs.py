"""The token inspector over a server: what its ``logprobs``/``top_logprobs`` report.

A server tells less than the local engine knows: its own log-probability of each token and of
its top alternatives (at most :data:`MAX_TOP_LOGPROBS`), by text, without token ids. Whether
those come before or after its samplers is the server's choice (vLLM's default is the raw
model, llama.cpp can report either), so they are kept as ``reported``, never passed off as
``raw`` or ``after``, and each record says what is missing. The lever that removed an
alternative cannot be known from outside the server.
"""

from __future__ import annotations

import math
from typing import Any, Final

from leverchat.engine.inspection import Alternative, TokenInspection

# OpenAI's limit for top_logprobs, and vLLM's default max_logprobs.
MAX_TOP_LOGPROBS: Final = 20

# The dialects whose OpenAI chat route takes `logprobs: true` and `top_logprobs: N` and streams
# them back in `choices[0].logprobs.content` (Ollama's /api/chat and `transformers serve` are
# left out: their replies carry no log-probabilities that leverchat reads).
SUPPORTED: Final = frozenset({"vllm", "sglang", "tgi", "llama-server", "openai"})


def request_fields(top_n: int) -> dict[str, Any]:
    return {"logprobs": True, "top_logprobs": min(top_n, MAX_TOP_LOGPROBS)}


def note(server: str, top_n: int) -> str:
    capped = (
        f" (a server reports at most {MAX_TOP_LOGPROBS} alternatives)"
        if top_n > MAX_TOP_LOGPROBS
        else ""
    )
    return (
        f"reported by {server}: its own log-probabilities{capped}; the raw and after-lever "
        "probabilities and the lever that removed each alternative are not available from a "
        "server"
    )


def read(event: Any, server: str, top_n: int) -> list[TokenInspection]:
    """The records in one streamed chat event (none when it carries no log-probabilities)."""
    choices = event.get("choices") if isinstance(event, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return []
    logprobs = choices[0].get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return []
    text = note(server, top_n)
    out: list[TokenInspection] = []
    for entry in content:
        if not isinstance(entry, dict):
            continue
        top = entry.get("top_logprobs")
        alternatives = tuple(
            Alternative(None, _token(alt), None, None, reported=_probability(alt))
            for alt in (top if isinstance(top, list) else [])[:top_n]
            if isinstance(alt, dict)
        )
        out.append(
            TokenInspection(
                token_id=None,
                text=_token(entry),
                raw=None,
                after=None,
                raw_rank=None,
                after_rank=None,
                alternatives=alternatives,
                note=text,
                reported=_probability(entry),
            )
        )
    return out


def _token(entry: dict[str, Any]) -> str:
    token = entry.get("token")
    return token if isinstance(token, str) else ""


def _probability(entry: dict[str, Any]) -> float | None:
    value = entry.get("logprob")
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return min(1.0, math.exp(value)) if value < 0 else 1.0
