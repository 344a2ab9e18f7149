"""What `ask` adds for remote engines: a distinct exit code for each server fault, and a
warning for every lever the server cannot apply (never dropped silently)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from typing import Any, TextIO

from leverchat.engine.types import Fault, GenerationResult, UnavailableLever
from leverchat.levers import SPECS_BY_NAME, Levers

# Distinct, documented exit codes (README: "Remote engines"); 1 stays "any other error".
FAULT_EXIT_CODES: dict[Fault, int] = {
    Fault.UNREACHABLE: 20,
    Fault.KEY_REFUSED: 21,
    Fault.UNKNOWN_MODEL: 22,
    Fault.BUSY: 23,
    Fault.STREAM_CUT: 24,
    Fault.MALFORMED: 25,
    Fault.TIMEOUT: 26,
    Fault.SERVER_ERROR: 27,
}


def exit_code_for(fault: Fault | None, default: int) -> int:
    return FAULT_EXIT_CODES.get(fault, default) if fault is not None else default


def dropped_levers(
    unavailable: Iterable[UnavailableLever], levers: Levers
) -> list[UnavailableLever]:
    """The unavailable levers whose value would change the reply (not at their neutral)."""
    return [
        lever
        for lever in unavailable
        if getattr(levers, lever.name) != SPECS_BY_NAME[lever.name].neutral
    ]


def warn_dropped(unavailable: Iterable[UnavailableLever], levers: Levers, stream: TextIO) -> None:
    for lever in dropped_levers(unavailable, levers):
        value = getattr(levers, lever.name)
        print(
            f"leverchat: warning: {lever.name} = {value!r} is not applied: {lever.reason}",
            file=stream,
        )


def remote_json(result: GenerationResult) -> dict[str, Any]:
    """The remote provenance and fault for `ask --json` (empty for a local reply)."""
    if result.remote is None:
        return {}
    remote = asdict(result.remote)
    remote["sent"] = dict(result.remote.sent)
    return {"remote": remote, "fault": result.fault.value if result.fault else None}
