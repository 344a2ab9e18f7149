"""A remote reply's provenance (endpoint, server, model id, the exact lever values sent, the
levers it could not apply) as JSON-friendly data for the history and exports. Pure data: no
torch, no Textual. A key is never part of it (the engine never puts one there)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leverchat.engine.types import RemoteProvenance, UnavailableLever


def remote_to_mapping(remote: RemoteProvenance) -> dict[str, Any]:
    return {
        "endpoint": remote.endpoint,
        "server": remote.server,
        "model_id": remote.model_id,
        "sent": [list(pair) for pair in remote.sent],
        "unavailable": [{"name": u.name, "reason": u.reason} for u in remote.unavailable],
        "requests": remote.requests,
        "continued": [
            {"token_index": index, "sent": [list(pair) for pair in sent]}
            for index, sent in remote.continued
        ],
        "note": remote.note,
    }


def _pairs(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
        for pair in value
    ):
        raise ValueError(f"{what} must be a list of [field, value] string pairs")
    return tuple((pair[0], pair[1]) for pair in value)


def remote_from_mapping(mapping: Mapping[str, Any]) -> RemoteProvenance:
    """The inverse of :func:`remote_to_mapping`; ValueError names the bad key."""
    texts: dict[str, str] = {}
    for key in ("endpoint", "server", "model_id", "note"):
        value = mapping.get(key, "")
        if not isinstance(value, str):
            raise ValueError(f"remote provenance {key} must be a string, not {value!r}")
        texts[key] = value
    unavailable = mapping.get("unavailable", [])
    if not isinstance(unavailable, list) or not all(
        isinstance(u, dict) and isinstance(u.get("name"), str) and isinstance(u.get("reason"), str)
        for u in unavailable
    ):
        raise ValueError("remote provenance unavailable must be a list of {name, reason}")
    requests = mapping.get("requests", 1)
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 0:
        raise ValueError(f"remote provenance requests must be a whole number, not {requests!r}")
    continued = mapping.get("continued", [])
    if not isinstance(continued, list) or not all(
        isinstance(c, dict) and isinstance(c.get("token_index"), int) for c in continued
    ):
        raise ValueError("remote provenance continued must be a list of {token_index, sent}")
    return RemoteProvenance(
        endpoint=texts["endpoint"],
        server=texts["server"],
        model_id=texts["model_id"],
        sent=_pairs(mapping.get("sent", []), "remote provenance sent"),
        unavailable=tuple(UnavailableLever(u["name"], u["reason"]) for u in unavailable),
        requests=requests,
        continued=tuple(
            (int(c["token_index"]), _pairs(c.get("sent", []), "remote provenance continued"))
            for c in continued
        ),
        note=texts["note"],
    )


def describe_remote(remote: RemoteProvenance) -> list[str]:
    """Lines for the provenance screen and exports."""
    lines = [
        f"Server: {remote.server} at {remote.endpoint}",
        f"Server model: {remote.model_id}",
        "Sent: " + (", ".join(f"{name}={value}" for name, value in remote.sent) or "nothing"),
    ]
    for index, sent in remote.continued:
        lines.append(
            f"Continued at token {index}: " + ", ".join(f"{name}={value}" for name, value in sent)
        )
    for lever in remote.unavailable:
        lines.append(f"Not applied: {lever.name} ({lever.reason})")
    if remote.note:
        lines.append(f"Note: {remote.note}")
    return lines
