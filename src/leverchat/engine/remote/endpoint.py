"""Where a remote model lives: ``openai+http://host:8000/v1`` parsed into URLs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from leverchat.engine.types import REMOTE_PREFIX, EngineError, is_remote_source


@dataclass(frozen=True)
class Endpoint:
    """``base``: the OpenAI API root (ends in /v1); ``root``: the server's own root (for
    /version, /health, Ollama's /api)."""

    base: str
    root: str

    @property
    def display(self) -> str:
        return self.base


def parse_endpoint(source: str) -> Endpoint:
    """``openai+http://host:8000/v1`` (or https; /v1 is added when the path is empty).

    Raises EngineError naming the value when it is not such a URL."""
    if not is_remote_source(source):
        raise EngineError(
            f"{source!r} is not a remote model: write openai+http://HOST:PORT/v1 "
            "(or openai+https://...)"
        )
    url = source[len(REMOTE_PREFIX) :]
    parts = urlsplit(url)
    if not parts.hostname:
        raise EngineError(f"{source!r} has no host: write openai+http://HOST:PORT/v1")
    if parts.username or parts.password:
        # A key in the URL would end up in profiles, the history and the log.
        raise EngineError(
            f"{parts.scheme}://{parts.hostname}: do not put credentials in the model URL; "
            "set LEVERCHAT_API_KEY (or OPENAI_API_KEY) instead"
        )
    if parts.query or parts.fragment:
        raise EngineError(f"{source!r}: the model URL cannot have a query or fragment")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise EngineError(f"{source!r}: the port is not a number from 0 to 65535") from None
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1"
    base = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
    root_path = path[: -len("/v1")] if path.endswith("/v1") else path
    root = urlunsplit((parts.scheme, parts.netloc, root_path, "", ""))
    return Endpoint(base=base, root=root)
