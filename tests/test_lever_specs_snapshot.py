"""The lever declarations were rewritten in a compact form (lever_spec.py's constructors):
every lever declared before keeps each field, exactly (repr: 0 stays an int, 0.0 a float),
and its place in the order the side panel and `profiles show` use. The snapshot was taken
from the long-hand declarations before the rewrite. Levers added later are not in it and are
not checked here."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from leverchat.lever_spec import LeverSpec, float_lever, int_lever, strings_lever
from leverchat.levers import LEVER_SPECS, SPECS_BY_NAME
from leverchat.sampler_specs import SAMPLER_SPECS

SNAPSHOT = Path(__file__).parent / "fixtures" / "specs" / "lever_specs_before_refactor.json"


def snapshot() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    return rows


def fields_of(spec: LeverSpec) -> dict[str, str]:
    return {field.name: repr(getattr(spec, field.name)) for field in dataclasses.fields(spec)}


@pytest.mark.parametrize("row", snapshot(), ids=lambda row: row["name"])
def test_every_declared_lever_is_unchanged(row: dict[str, Any]) -> None:
    assert row["name"] in SPECS_BY_NAME, f"lever {row['name']} disappeared"
    now = fields_of(SPECS_BY_NAME[row["name"]])
    expected = {key: value for key, value in row.items() if key != "name"}
    assert {key: now[key] for key in expected} == expected


def test_the_declared_levers_keep_their_order() -> None:
    before = [row["name"] for row in snapshot()]
    assert [spec.name for spec in LEVER_SPECS if spec.name in before] == before
    samplers = [spec.name for spec in SAMPLER_SPECS if spec.name in before]
    assert samplers == [
        "dry_multiplier",
        "dry_base",
        "dry_allowed_length",
        "dry_sequence_breakers",
        "xtc_probability",
        "xtc_threshold",
        "mirostat_tau",
        "mirostat_eta",
        "dynatemp_range",
        "dynatemp_exponent",
        "temperature_last",
        "ban",
    ]


def test_the_compact_constructors_build_what_the_long_hand_declares() -> None:
    # An old-style LeverSpec(...) appended to a table is the same object as the compact one.
    assert float_lever("x", "X", 0.5, 0.0, 1.0, 0.1, help="h.", more=True) == LeverSpec(
        "x", "float", 0.5, 0.0, 1.0, 0.1, 0.5, "h.", "X", more=True
    )
    assert int_lever("n", "N", None, 0, 9, 1, neutral=3, help="h.", optional=True) == LeverSpec(
        "n", "optional_int", None, 0, 9, 1, 3, "h.", "N"
    )
    assert strings_lever("s", "S", help="h.") == LeverSpec(
        "s", "strings", (), None, None, 0, (), "h.", "S"
    )
