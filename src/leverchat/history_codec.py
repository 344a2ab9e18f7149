"""Provenance to and from the JSON-friendly mappings of the export and the history's columns
(split out of history.py; the store re-exports the public names)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

from leverchat import branch, reply_details
from leverchat import history_rows as rows
from leverchat.chat import ReplyProvenance
from leverchat.engine.types import LeverChange, RemoteProvenance, Stats, StopReason
from leverchat.levers import LeverError, Levers
from leverchat.remote_record import remote_from_mapping, remote_to_mapping


def levers_to_json(levers: Levers) -> str:
    return json.dumps(levers.to_mapping(), sort_keys=True)


def stats_to_mapping(stats: Stats) -> dict[str, Any]:
    return {field.name: getattr(stats, field.name) for field in fields(stats)}


def stats_from_mapping(mapping: Mapping[str, Any]) -> Stats:
    """Stats from a mapping; keys this version does not know are ignored (written later)."""
    values: dict[str, Any] = {}
    for field in fields(Stats):
        if field.name not in mapping:
            continue
        value = mapping[field.name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"stats.{field.name} must be a number, not {value!r}")
        values[field.name] = value
    return Stats(**values)


def lever_change_to_mapping(change: LeverChange) -> dict[str, Any]:
    return {
        "token_index": change.token_index,
        "levers": change.levers.to_mapping(),
        "changed": list(change.changed),
    }


def lever_change_from_mapping(mapping: Mapping[str, Any]) -> LeverChange:
    token_index = mapping.get("token_index")
    if isinstance(token_index, bool) or not isinstance(token_index, int) or token_index < 0:
        raise ValueError(f"lever change token_index must be a whole number >= 0: {token_index!r}")
    changed = mapping.get("changed", [])
    if not isinstance(changed, list) or not all(isinstance(name, str) for name in changed):
        raise ValueError(f"lever change 'changed' must be a list of lever names: {changed!r}")
    return LeverChange(
        token_index=token_index,
        levers=_levers_from(mapping.get("levers"), "lever change levers"),
        changed=tuple(changed),
    )


def provenance_to_mapping(provenance: ReplyProvenance) -> dict[str, Any]:
    return {
        "model": provenance.model,
        "profile": provenance.profile,
        "system_prompt": provenance.system_prompt,
        "levers": provenance.levers.to_mapping(),
        "seed": provenance.seed,
        "lever_changes": [lever_change_to_mapping(change) for change in provenance.lever_changes],
        "stats": stats_to_mapping(provenance.stats),
        "stop_reason": provenance.stop_reason.value if provenance.stop_reason else None,
        "error": provenance.error,
        **({"remote": remote_to_mapping(provenance.remote)} if provenance.remote else {}),
        **({"branch": branch.to_mapping(provenance.branch)} if provenance.branch else {}),
        **(
            {reply_details.KEY: details}
            if (details := reply_details.to_mapping(provenance))
            else {}
        ),
    }


def provenance_from_mapping(mapping: Mapping[str, Any]) -> ReplyProvenance:
    """The inverse of :func:`provenance_to_mapping`; ValueError names the bad key."""
    texts: dict[str, str] = {}
    for key in ("model", "profile", "system_prompt"):
        value = mapping.get(key, "")
        if not isinstance(value, str):
            raise ValueError(f"provenance {key} must be a string, not {value!r}")
        texts[key] = value
    seed = mapping.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"provenance seed must be a whole number or null, not {seed!r}")
    error = mapping.get("error")
    if error is not None and not isinstance(error, str):
        raise ValueError(f"provenance error must be a string or null, not {error!r}")
    changes = mapping.get("lever_changes", [])
    if not isinstance(changes, list) or not all(isinstance(item, dict) for item in changes):
        raise ValueError("provenance lever_changes must be a list of objects")
    stats = mapping.get("stats", {})
    if not isinstance(stats, dict):
        raise ValueError(f"provenance stats must be an object, not {stats!r}")
    return ReplyProvenance(
        model=texts["model"],
        profile=texts["profile"],
        system_prompt=texts["system_prompt"],
        levers=_levers_from(mapping.get("levers", {}), "provenance levers"),
        seed=seed,
        lever_changes=tuple(lever_change_from_mapping(item) for item in changes),
        stats=stats_from_mapping(stats),
        stop_reason=_stop_reason_from(mapping.get("stop_reason")),
        error=error,
        remote=_remote_from(mapping.get("remote")),
        branch=_branch_from(mapping.get("branch")),
        **reply_details.from_mapping(mapping.get(reply_details.KEY)),
    )


def _branch_from(value: Any) -> branch.BranchPoint | None:
    return None if value is None else branch.from_mapping(value, "provenance branch")


def _remote_from(value: Any) -> RemoteProvenance | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"provenance remote must be an object, not {value!r}")
    return remote_from_mapping(value)


def _levers_from(value: Any, what: str) -> Levers:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be an object of lever values, not {value!r}")
    try:
        return Levers.from_mapping(value)
    except LeverError as error:
        raise ValueError(f"{what}: {error.message}") from error


def _stop_reason_from(value: Any) -> StopReason | None:
    if value is None:
        return None
    try:
        return StopReason(value)
    except ValueError:
        known = ", ".join(reason.value for reason in StopReason)
        raise ValueError(f"unknown stop reason {value!r} (known: {known})") from None


def provenance_columns(provenance: ReplyProvenance) -> tuple[Any, ...]:
    """The provenance columns of a message row, then its branch point's (schema 4)."""
    return (
        provenance.model,
        provenance.profile,
        provenance.system_prompt,
        provenance.seed,
        provenance.stop_reason.value if provenance.stop_reason else None,
        provenance.error,
        levers_to_json(provenance.levers),
        json.dumps([lever_change_to_mapping(change) for change in provenance.lever_changes]),
        json.dumps(_stats_and_remote(provenance)),
        *branch.to_columns(provenance.branch),
    )


def _stats_and_remote(provenance: ReplyProvenance) -> dict[str, Any]:
    """The stats column; a remote reply's provenance rides in it under "remote", its details
    (reply_details.py) under "details" (no schema change: stats_from_mapping ignores keys it
    does not know)."""
    data = stats_to_mapping(provenance.stats)
    if provenance.remote is not None:
        data["remote"] = remote_to_mapping(provenance.remote)
    details = reply_details.to_mapping(provenance)
    if details:
        data[reply_details.KEY] = details
    return data


def provenance_from_columns(columns: Sequence[Any]) -> ReplyProvenance | None:
    """The inverse of :func:`provenance_columns` (ValueError when a value cannot be read)."""
    count = len(branch.COLUMN_NAMES)
    mapping = rows.provenance_mapping(columns[:-count])
    if mapping is None:
        return None
    # A remote reply's provenance and its details ride in the stats column (_stats_and_remote).
    stats = mapping["stats"]
    mapping["remote"] = stats.get("remote") if isinstance(stats, dict) else None
    mapping[reply_details.KEY] = stats.get(reply_details.KEY) if isinstance(stats, dict) else None
    return replace(provenance_from_mapping(mapping), branch=branch.from_columns(columns[-count:]))
