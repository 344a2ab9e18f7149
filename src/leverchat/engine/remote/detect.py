"""Which server is this? Read what it tells about itself, cheaply, else plain OpenAI.

- /v1/models ``owned_by``: "vllm" (vLLM), "sglang" (SGLang), "llamacpp" (llama-server),
  "library" (Ollama); `transformers serve` adds a non-OpenAI ``status`` object to each entry.
- TGI answers GET /info with its ``router`` name; Ollama answers GET /api/version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from leverchat.engine.remote.client import RemoteClient, RemoteError
from leverchat.engine.remote.dialects import DIALECTS
from leverchat.engine.types import EngineError

_OWNERS = {
    "vllm": "vllm",
    "sglang": "sglang",
    "llamacpp": "llama-server",
    "library": "ollama",
    "ollama": "ollama",
}
PROBE_TIMEOUT_S = 2.0


def server_from_models(entries: list[dict[str, Any]]) -> str | None:
    for entry in entries:
        owner = str(entry.get("owned_by", "")).lower()
        if owner in _OWNERS:
            return _OWNERS[owner]
        if isinstance(entry.get("status"), dict) and "value" in entry["status"]:
            return "transformers"
    return None


def _has(key: str) -> Callable[[Any], bool]:
    def check(body: Any) -> bool:
        return isinstance(body, dict) and key in body

    return check


def probe_server(client: RemoteClient) -> str | None:
    """Ask the server's own endpoints (each at most PROBE_TIMEOUT_S)."""
    for path, check, name in (
        ("/info", _has("router"), "tgi"),
        ("/api/version", _has("version"), "ollama"),
    ):
        try:
            status, _, body = client.get_json(path, at_root=True, timeout=PROBE_TIMEOUT_S)
        except RemoteError:
            continue
        if status == 200 and check(body):
            return name
    return None


def check_server_name(name: str) -> str:
    if name not in DIALECTS:
        raise EngineError(f"unknown server kind {name!r}: use one of {', '.join(sorted(DIALECTS))}")
    return name


def detect_server(client: RemoteClient, entries: list[dict[str, Any]]) -> str:
    return server_from_models(entries) or probe_server(client) or "openai"


def choose_model(entries: list[dict[str, Any]], wanted: str | None, where: str) -> str:
    from leverchat.engine.types import Fault

    ids = [str(entry["id"]) for entry in entries if "id" in entry]
    if wanted is not None:
        if ids and wanted not in ids:
            raise RemoteError(
                f"{where} does not serve a model named {wanted!r}; it lists: "
                + ", ".join(repr(i) for i in ids[:10]),
                Fault.UNKNOWN_MODEL,
            )
        return wanted
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise RemoteError(
            f"{where} lists no models: give the model's name with --model-name",
            Fault.UNKNOWN_MODEL,
        )
    raise RemoteError(
        f"{where} serves {len(ids)} models: choose one with --model-name (one of: "
        + ", ".join(repr(i) for i in ids[:10])
        + ")",
        Fault.UNKNOWN_MODEL,
    )
