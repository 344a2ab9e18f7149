"""`leverchat sweep` on the tiny model: the table, --json, reproducibility, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from leverchat.cli import main
from leverchat.levers import Levers
from leverchat.sweep import SweepCell, markdown_table


def run_sweep(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["sweep", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def table_rows(out: str) -> list[list[str]]:
    """The body rows of the printed Markdown table, split on unescaped pipes."""
    rows = []
    for line in out.splitlines():
        if not line.startswith("| ") or line.startswith("|---"):
            continue
        cells = [cell.strip() for cell in _split_row(line)]
        rows.append(cells)
    return rows[1:]  # without the header


def _split_row(line: str) -> list[str]:
    cells, current, index = [], "", 1
    while index < len(line) - 1:
        char = line[index]
        if char == "\\":
            current += line[index : index + 2]
            index += 2
            continue
        if char == "|":
            cells.append(current)
            current = ""
        else:
            current += char
        index += 1
    cells.append(current)
    return cells


def test_table_has_one_row_per_value_in_order(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_sweep(
        capsys,
        "--model",
        str(tiny_model_dir),
        "--lever",
        "temperature",
        "--values",
        "0,0.7,1.2",
        "--seed",
        "7",
        "--max-tokens",
        "8",
        "Hello",
    )
    assert code == 0, err
    assert "Sweep of temperature · seed 7 · profile default" in out
    assert "| temperature | reply |" in out
    rows = table_rows(out)
    assert [row[0] for row in rows] == ["0", "0.7", "1.2"]
    assert all(len(row) == 2 for row in rows)


def test_json_shape_and_the_same_seed_in_every_cell(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "--model",
        str(tiny_model_dir),
        "--lever",
        "top-p",
        "--values",
        "0.5,1",
        "--seed",
        "11",
        "--temperature",
        "1.5",
        "--max-tokens",
        "10",
        "--json",
        "Tell me a story",
    ]
    code, out, err = run_sweep(capsys, *args)
    assert code == 0, err
    data = json.loads(out)
    assert data["lever"] == "top_p"
    assert data["values"] == [0.5, 1.0]
    assert data["seed"] == 11
    assert data["prompt"] == "Tell me a story"
    assert [cell["value"] for cell in data["cells"]] == [0.5, 1.0]
    for cell in data["cells"]:
        assert cell["seed"] == 11
        assert cell["levers"]["seed"] == 11
        assert cell["levers"]["top_p"] == cell["value"]
        # Every other lever comes from the profile and the options, the same in each cell.
        assert cell["levers"]["temperature"] == 1.5
        assert cell["levers"]["max_new_tokens"] == 10
        assert 0 < cell["tokens"] <= 10
        assert cell["stop_reason"] in ("max_tokens", "end_of_turn")
        assert isinstance(cell["text"], str) and cell["error"] is None
        assert cell["tokens_per_s"] >= 0

    # Reproducible: the same sweep again gives the same text in every cell.
    code, again, _ = run_sweep(capsys, *args)
    assert code == 0
    assert [c["text"] for c in json.loads(again)["cells"]] == [c["text"] for c in data["cells"]]


def test_without_a_seed_one_random_seed_is_shared(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_sweep(
        capsys,
        "--model",
        str(tiny_model_dir),
        "--lever",
        "repetition_penalty",
        "--values",
        "1.0,1.5",
        "--max-tokens",
        "4",
        "--json",
        "Hi",
    )
    assert code == 0
    data = json.loads(out)
    assert {cell["seed"] for cell in data["cells"]} == {data["seed"]}


def test_sweeping_the_seed_gives_each_cell_its_own(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_sweep(
        capsys,
        "--model",
        str(tiny_model_dir),
        "--lever",
        "seed",
        "--values",
        "1,2",
        "--max-tokens",
        "4",
        "--json",
        "Hi",
    )
    assert code == 0
    assert [cell["seed"] for cell in json.loads(out)["cells"]] == [1, 2]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--lever", "temprature", "--values", "0,1"], "did you mean 'temperature'?"),
        (["--lever", "temp", "--values", "0,1"], "did you mean 'temperature'?"),
        (["--lever", "temperature", "--values", "0,hot"], "'hot' is not a number"),
        (["--lever", "temperature", "--values", "0,9"], "temperature = 9.0 is out of range"),
        (["--lever", "top_k", "--values", "1,2.5"], "'2.5' is not a whole number"),
        (["--lever", "top_p", "--values", "0.5,,1"], "an empty value"),
        (["--lever", "persona_role", "--values", "system,robot"], "persona_role must be one of"),
        (["--lever", "stop", "--values", "a,b"], "stop is a list of strings and cannot be swept"),
        (
            ["--lever", "temperature", "--temperature", "1", "--values", "0,1"],
            "drop --temperature",
        ),
        (["--lever", "seed", "--values", ",".join(map(str, range(17)))], "at most 16"),
    ],
)
def test_bad_lever_or_value_is_refused_before_loading(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str, tmp_path: Path
) -> None:
    # A model path that does not exist: a refusal must come before any loading.
    code, out, err = run_sweep(capsys, "--model", str(tmp_path / "missing"), *argv, "Hello")
    assert code == 2
    assert out == ""
    assert err.startswith("leverchat sweep: error: ")
    assert message in err


def test_missing_model_exits_like_ask(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run_sweep(
        capsys,
        "--model",
        str(tmp_path / "missing"),
        "--lever",
        "temperature",
        "--values",
        "0,1",
        "Hello",
    )
    assert code == 1
    assert out == ""
    assert "missing" in err


def test_markdown_cells_cannot_break_the_table() -> None:
    hostile = "a | b\nsecond line\\|x \x1b]52;c;aGk=\x07 [/] `|`"
    cell = SweepCell(
        value=0.5,
        text=hostile,
        stop_reason="max_tokens",
        tokens=3,
        tokens_per_s=1.0,
        levers=Levers(),
        seed=1,
    )
    table = markdown_table("top_p", [cell])
    lines = table.splitlines()
    assert len(lines) == 3  # header, rule, one row: the newline did not start a row
    assert "\x1b" not in table and "\x07" not in table
    row = _split_row(lines[2])
    assert len(row) == 2  # no unescaped pipe split the cell
    assert row[0].strip() == "0.5"
    assert "second line" in row[1] and "<br>" in row[1]
    assert "\\x1b" in row[1] and "[/]" in row[1]


def test_values_may_start_with_a_negative_number(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_sweep(
        capsys,
        "--model",
        str(tiny_model_dir),
        "--lever",
        "frequency_penalty",
        "--values",
        "-1,0,1",
        "--max-tokens",
        "3",
        "--json",
        "Hi",
    )
    assert code == 0, err
    assert json.loads(out)["values"] == [-1.0, 0.0, 1.0]
