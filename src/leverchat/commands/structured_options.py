"""The structured-output options of `ask` and the TUI: ``--json-schema FILE`` reads a schema
file, ``--json-mode`` is a flag (``ask --json`` is the output format, not this lever)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from leverchat.levers import LeverError, LeverSpec, validate_lever
from leverchat.structured_specs import MAX_CONSTRAINT_TEXT
from leverchat.userfile import UserFileError, read_user_file


def read_schema_file(text: str) -> str:
    """``--json-schema FILE``: the schema's JSON text. Every refusal names the file and what is
    wrong with it (unreadable, not UTF-8, not JSON, not a usable schema)."""
    path = Path(text)
    try:
        raw = read_user_file(path, max_bytes=MAX_CONSTRAINT_TEXT, kind="JSON Schema")
    except UserFileError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    try:
        schema = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise argparse.ArgumentTypeError(
            f"{path}: is not UTF-8 text (byte {error.start}): save the schema as UTF-8 JSON"
        ) from None
    try:
        json.loads(schema)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(
            f"{path}: is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    try:
        return str(validate_lever("json_schema", schema))
    except LeverError as error:
        # "json_schema is not a usable ...": the file is what the user named.
        raise argparse.ArgumentTypeError(
            f"{path}: {error.message.removeprefix('json_schema ')}"
        ) from None


def add_structured_option(group: Any, spec: LeverSpec, option: str) -> bool:
    """Add the option of a structured-output lever that is not a plain value; False for the
    others (added the common way)."""
    if spec.name == "json_mode":
        group.add_argument(
            option,
            dest=f"lever_{spec.name}",
            action="store_const",
            const=1,
            help="the reply is one valid JSON object (any keys); see --json-schema to fix "
            "them. Not --json, which prints ask's result as JSON",
        )
        return True
    if spec.name == "json_schema":
        group.add_argument(
            option,
            dest=f"lever_{spec.name}",
            type=read_schema_file,
            metavar="FILE",
            help="the reply is JSON that matches the JSON Schema in FILE",
        )
        return True
    return False
