"""The structured-output levers as a user writes them: in a profile (a schema as a TOML table or
JSON text), on the command line (`ask --json-schema FILE`, `--json-mode`), and every refusal
names the lever or the file and says what is wrong. Nothing invalid reaches the engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from leverchat.levers import LeverError, Levers, validate_lever
from leverchat.profiles import ProfileError, profile_from_toml_bytes
from leverchat.structured_specs import active_constraint


def load_profile_file(path: Path):  # type: ignore[no-untyped-def]
    return profile_from_toml_bytes(path.read_bytes(), path)


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def test_a_schema_table_in_a_profile_becomes_the_json_schema_lever(tmp_path: Path) -> None:
    path = tmp_path / "extract.toml"
    path.write_text(
        'name = "extract"\n'
        "[levers]\njson_mode = true\n"
        '[levers.json_schema]\ntype = "object"\nrequired = ["name"]\n'
        '[levers.json_schema.properties.name]\ntype = "string"\n'
    )
    profile = load_profile_file(path)
    assert json.loads(profile.levers.json_schema) == SCHEMA
    assert profile.levers.json_mode == 1
    # The schema wins over JSON mode: a schema is JSON already.
    assert active_constraint(profile.levers) == ("json_schema", profile.levers.json_schema)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("json_schema = '{\"type\": '", "is not valid JSON"),
        ("json_schema = '[1, 2]'", "must be a JSON object"),
        ('json_schema = \'{"type": "strin"}\'', "is not a usable JSON Schema"),
        ("regex = '[a-'", "unclosed character class"),
        ("grammar = 'root ::= \"a'", "neither GBNF nor Lark"),
        ("json_mode = 2", "json_mode = 2 is out of range"),
    ],
)
def test_a_bad_constraint_in_a_profile_names_the_key(
    tmp_path: Path, toml: str, message: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "bad"\n[levers]\n{toml}\n')
    before = path.read_bytes()
    with pytest.raises(ProfileError) as caught:
        load_profile_file(path)
    assert message in str(caught.value)
    assert caught.value.key == "levers." + toml.split(" =")[0]
    assert str(path) in str(caught.value)
    assert path.read_bytes() == before


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(LeverError) as caught:
        validate_lever("json_schema", '{\n  "type": "object",\n}')
    assert caught.value.key == "json_schema"
    assert "is not valid JSON" in caught.value.message
    assert "line 3, column 1" in caught.value.message


def test_a_saved_profile_keeps_the_schema_and_loads_it_back(tmp_path: Path) -> None:
    from leverchat.profiles import Profile, profile_to_toml

    levers = Levers(json_schema=json.dumps(SCHEMA), grammar='root ::= "a" | "b"')
    path = tmp_path / "saved.toml"
    path.write_text(profile_to_toml(Profile(name="saved", levers=levers)))
    assert load_profile_file(path).levers == levers


def run_ask(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **{f"LEVERCHAT_{name}_DIR": str(home / name.lower()) for name in ("CONFIG", "DATA")},
    }
    return subprocess.run(
        [sys.executable, "-m", "leverchat", "ask", *args, "hi"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"type": "object",', "is not valid JSON: Expecting property name enclosed in double"),
        (b'{"type": "strin"}', "is not a usable JSON Schema"),
        (b"\xff\xfe{}", "is not UTF-8 text"),
        (b'["a"]', "must be a JSON object"),
    ],
)
def test_ask_json_schema_file_errors_name_the_file_and_problem(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    schema = tmp_path / "my [bold]schema.json"
    schema.write_bytes(content)
    result = run_ask("--json-schema", str(schema), home=tmp_path)
    assert result.returncode == 2
    assert f"argument --json-schema: {schema}: " in result.stderr
    assert problem in result.stderr
    assert schema.read_bytes() == content


def test_ask_json_schema_missing_file_and_folder(tmp_path: Path) -> None:
    result = run_ask("--json-schema", str(tmp_path / "none.json"), home=tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path / 'none.json'}: file not found" in result.stderr
    result = run_ask("--json-schema", str(tmp_path), home=tmp_path)
    assert result.returncode == 2
    assert f"{tmp_path}: is a folder" in result.stderr


def test_json_mode_is_a_flag_distinct_from_json_output() -> None:
    from leverchat.cli import build_parser

    args = build_parser().parse_args(["ask", "--json-mode", "--json", "hi"])
    assert args.lever_json_mode == 1 and args.json is True
