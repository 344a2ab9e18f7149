"""Imports behave as the persona did in its own tool, report everything they leave behind, and
stay bounded on hostile files (alias bombs, 40,000 stop lines, escapes, FIFOs)."""

from __future__ import annotations

import argparse
import os
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest

from leverchat.commands import profiles_cmd
from leverchat.engine.custom_format import CustomFormat
from leverchat.levers import MAX_STOP_STRINGS, Levers
from leverchat.profile_import import ProfileImportError, import_profile
from leverchat.profiles import ProfileError, ProfileStore, profile_from_toml_bytes

OLLAMA_DEFAULTS = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "repetition_penalty": 1.1,
}


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="leverchat")
    profiles_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["profiles", *argv])
    result: int = args.handler(args)
    return result


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def reports(path: Path) -> dict[str, str]:
    return {item.key: str(item) for item in import_profile(path).unmapped}


# --- #13: silent drops ------------------------------------------------------------------------


def test_every_parameter_that_is_not_imported_is_named(tmp_path: Path) -> None:
    modelfile = write(
        tmp_path / "Modelfile",
        'SYSTEM "hi"\nPARAMETER grammar root ::= "yes" | "no"\nPARAMETER penalize_newline true\n'
        "PARAMETER use_mmap false\nPARAMETER frobnicate on\nPARAMETER mirostat 0\n"
        "PARAMETER tfs_z 1\n",
    )
    result = import_profile(modelfile)
    keys = [item.key for item in result.unmapped]
    assert keys == [
        "PARAMETER penalize_newline",
        "PARAMETER use_mmap",
        "PARAMETER frobnicate",
    ]
    # The GBNF grammar is kept: the grammar lever reads it.
    assert result.profile.levers.grammar == 'root ::= "yes" | "no"'
    assert "leverchat has no 'frobnicate' lever" in str(result.unmapped[2])
    assert (
        "Not imported, as they only switch off a sampler leverchat does not have: tfs_z 1"
    ) in result.notes
    assert "Not imported, as mirostat is off: mirostat" in result.notes


def test_a_textgen_preset_names_its_inactive_samplers_too(tmp_path: Path) -> None:
    preset = write(tmp_path / "p.yaml", "temperature: 0.5\nmirostat_mode: 0\nmirostat_tau: 5\n")
    result = import_profile(preset)
    assert result.unmapped == ()
    assert any("mirostat_mode, mirostat_tau" in note for note in result.notes)


# --- #13: several FROM lines ------------------------------------------------------------------


@pytest.mark.parametrize("projector_first", [False, True])
def test_the_model_from_wins_over_a_projector_from(tmp_path: Path, projector_first: bool) -> None:
    lines = ["FROM ./qwen2.5-vl-7b-Q4_K_M.gguf", "FROM ./mmproj-qwen2.5-vl-7b-f16.gguf"]
    if projector_first:
        lines.reverse()
    result = import_profile(write(tmp_path / "Modelfile", "\n".join(lines) + "\n"))
    assert result.profile.model == str(tmp_path / "qwen2.5-vl-7b-Q4_K_M.gguf")
    (skipped,) = result.unmapped
    assert skipped.key == "FROM"
    assert skipped.value == "./mmproj-qwen2.5-vl-7b-f16.gguf"
    assert "projector" in skipped.reason and "skipped" in skipped.reason


def test_a_from_path_with_a_nul_is_reported_not_a_crash(tmp_path: Path) -> None:
    # Found by tests/hostile/test_loader_fuzz.py: os.path.realpath raised ValueError.
    modelfile = tmp_path / "Modelfile"
    modelfile.write_bytes(b"FROM \x00FROM ./m.gguf\n")
    result = import_profile(modelfile)
    assert result.profile.model is None
    (skipped,) = result.unmapped
    assert skipped.key == "FROM" and "not a usable path" in skipped.reason


def test_a_second_model_from_is_reported(tmp_path: Path) -> None:
    result = import_profile(write(tmp_path / "Modelfile", "FROM ./a.gguf\nFROM ./b.gguf\n"))
    assert result.profile.model == str(tmp_path / "a.gguf")
    assert [str(item) for item in result.unmapped] == [
        "FROM = ./b.gguf: another FROM: the first model FROM was used"
    ]


# --- #13: the source tool's defaults ----------------------------------------------------------


def test_a_modelfile_without_parameters_gets_ollamas_defaults(tmp_path: Path) -> None:
    result = import_profile(write(tmp_path / "Modelfile", 'SYSTEM "You are terse."\n'))
    assert result.profile.levers == Levers(**OLLAMA_DEFAULTS)
    assert (
        "Not set in the file, so Ollama's defaults were used: temperature 0.8, top_k 40, "
        "top_p 0.9, min_p 0.0, repetition_penalty 1.1." in result.notes
    )


def test_a_textgen_preset_gets_the_web_uis_defaults_and_saves_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preset = write(tmp_path / "min_p.yaml", "min_p: 0.05\n")
    assert cli("import", str(preset)) == 0
    out = capsys.readouterr().out
    assert "Note: Not set in the file, so text-generation-webui's defaults were used: " in out
    saved = ProfileStore().load("min_p")
    assert saved.profile.levers == Levers(temperature=1.0, top_p=1.0, top_k=0, min_p=0.05)
    table = tomllib.loads(saved.path.read_text(encoding="utf-8"))["levers"]
    assert table == {"temperature": 1.0, "top_p": 1.0}  # min_p 0.05 is leverchat's default too


def test_an_llm_template_says_which_defaults_apply(tmp_path: Path) -> None:
    result = import_profile(write(tmp_path / "t.yaml", "system: Be brief.\n"))
    assert result.profile.levers == Levers()
    assert any("keep leverchat's defaults" in note for note in result.notes)


# --- #13: the persona's text ------------------------------------------------------------------

CHATML_PERSONA = '''FROM ./m.gguf
TEMPLATE """<|im_start|>system
You are Mario from Super Mario Bros.<|im_end|>
{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
'''
LEGACY_PROMPT = '''FROM ./m.gguf
PROMPT """
### System:
You are Luigi, Mario's brother.
### User:
{{ .Prompt }}
### Response:
"""
'''
LLAMA3_PERSONA = '''FROM ./m.gguf
TEMPLATE """<|start_header_id|>system<|end_header_id|>

You are Peach, ruler of the Mushroom Kingdom. {{ .System }}<|eot_id|>{{ range .Messages }}
<|start_header_id|>{{ .Role }}<|end_header_id|>{{ .Content }}<|eot_id|>{{ end }}"""
'''


@pytest.mark.parametrize(
    ("text", "persona", "key"),
    [
        (CHATML_PERSONA, "You are Mario from Super Mario Bros.", "TEMPLATE"),
        (LEGACY_PROMPT, "You are Luigi, Mario's brother.", "PROMPT"),
        (LLAMA3_PERSONA, "You are Peach, ruler of the Mushroom Kingdom.", "TEMPLATE"),
    ],
)
def test_a_persona_in_the_template_becomes_the_system_prompt(
    tmp_path: Path, text: str, persona: str, key: str
) -> None:
    result = import_profile(write(tmp_path / "Modelfile", text))
    assert result.profile.system_prompt == persona
    (item,) = result.unmapped
    assert item.key == key
    assert persona[:30] in item.reason and "is now the system prompt" in item.reason


def test_a_template_persona_beside_a_system_text_is_quoted_in_the_report(tmp_path: Path) -> None:
    result = import_profile(
        write(tmp_path / "Modelfile", CHATML_PERSONA + 'SYSTEM "Answer in French."\n')
    )
    assert result.profile.system_prompt == "Answer in French."
    (item,) = result.unmapped
    assert "'You are Mario" not in item.reason  # shown as text, not as a repr
    assert "(You are Mario from Super Mario Bros.) was not added" in item.reason


def test_a_template_without_persona_maps_to_a_prompt_format(tmp_path: Path) -> None:
    result = import_profile(Path(__file__).parent / "fixtures" / "import" / "pirate" / "Modelfile")
    assert not [item for item in result.unmapped if item.key == "TEMPLATE"]
    assert isinstance(result.profile.prompt_format, CustomFormat)


# --- #13: llm templates -----------------------------------------------------------------------


def test_llm_name_and_empty_options_are_valid(tmp_path: Path) -> None:
    template = write(tmp_path / "t.yaml", "name: summarizer\nsystem: Summarize.\noptions:\n")
    result = import_profile(template)
    assert result.unmapped == ()
    assert result.profile.name == "summarizer"
    assert import_profile(template, name="other").profile.name == "other"


# --- #15: control characters in imported text -------------------------------------------------

ESCAPES = [
    "\x1b]0;pwned\x07",  # OSC 0: window title
    "\x1b]52;c;ZXZpbA==\x07",  # OSC 52: clipboard
    "\x1b[2J",  # clear screen
    "\x9b6n",  # 8-bit CSI cursor report
    "\x1bP1$r\x1b\\",  # DCS
    "\u202e",  # right-to-left override
    "\u2066",  # left-to-right isolate
    "\u200b",  # zero-width space
    "\x1b]8;;http://evil\x1b\\",  # OSC 8 link
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_control_characters_in_system_text_are_removed_and_reported(
    tmp_path: Path, escape: str, capsys: pytest.CaptureFixture[str]
) -> None:
    modelfile = write(tmp_path / "Modelfile", f'SYSTEM """Be {escape}nice."""\n')
    assert cli("import", str(modelfile), "--name", "clean") == 0
    out = capsys.readouterr().out
    assert "Note: Removed" in out and "terminal control character" in out
    assert not any(char in out for char in "\x1b\x9b\x07\u202e\u2066\u200b")
    assert ProfileStore().load("clean").profile.system_prompt == "Be nice."


def test_windows_line_endings_are_not_reported_as_control_characters(tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_bytes(b'SYSTEM """One\r\nTwo"""\r\nPARAMETER temperature 0.5\r\n')
    result = import_profile(modelfile)
    assert result.profile.system_prompt == "One\nTwo"
    assert not any("control" in note for note in result.notes)


# --- #15: alias bomb, deep YAML ---------------------------------------------------------------

ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
temperature: 0.5
"""


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    bomb = write(tmp_path / "bomb.yaml", ALIAS_BOMB)
    with pytest.raises(ProfileImportError) as caught:
        import_profile(bomb)
    assert str(caught.value).startswith(f"{bomb}:2:8: uses the YAML alias *a;")
    assert bomb.read_text(encoding="utf-8") == ALIAS_BOMB


def test_a_huge_unknown_value_is_reported_short(tmp_path: Path) -> None:
    preset = write(
        tmp_path / "p.yaml",
        "temperature: 0.5\nhuge: [" + ", ".join(['"' + "x" * 1000 + '"'] * 500) + "]\n",
    )
    (item,) = import_profile(preset).unmapped
    assert item.key == "huge" and len(item.value) <= 60


@pytest.mark.parametrize(
    "text",
    [
        "temperature: " + "[" * 20_000 + "]" * 20_000,
        "x:\n" + "".join("  " * i + "- \n" for i in range(200)),
    ],
)
def test_deep_yaml_is_a_clear_error(tmp_path: Path, text: str) -> None:
    preset = write(tmp_path / "deep.yaml", text)
    with pytest.raises(ProfileImportError) as caught:
        import_profile(preset)
    assert f"{preset}:" in str(caught.value) and "nests too deeply" in str(caught.value)


# --- #15: 40,000 stop lines -------------------------------------------------------------------


def test_forty_thousand_stop_lines_keep_the_first_few_and_say_so(tmp_path: Path) -> None:
    lines = "".join(f"PARAMETER stop s{i}\n" for i in range(40_000))
    result = import_profile(write(tmp_path / "Modelfile", lines))
    assert result.profile.levers.stop == tuple(f"s{i}" for i in range(MAX_STOP_STRINGS))
    assert [str(item) for item in result.unmapped] == [
        f"PARAMETER stop = {40_000 - MAX_STOP_STRINGS} more: leverchat keeps at most "
        f"{MAX_STOP_STRINGS} stop strings: the first {MAX_STOP_STRINGS} were kept"
    ]


def test_a_profile_with_too_many_stop_strings_is_refused(tmp_path: Path) -> None:
    strings = ", ".join(f'"s{i}"' for i in range(MAX_STOP_STRINGS + 1))
    raw = f'name = "many"\n[levers]\nstop = [{strings}]\n'.encode()
    with pytest.raises(ProfileError) as caught:
        profile_from_toml_bytes(raw, tmp_path / "many.toml")
    assert str(caught.value) == (
        f"{tmp_path / 'many.toml'}:3:1: stop has {MAX_STOP_STRINGS + 1} different strings; "
        f"the limit is {MAX_STOP_STRINGS}: keep the ones that matter"
    )


# --- #15: files that are not regular files ----------------------------------------------------


def _no_hang(function: Any) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    thread.join(60)
    assert result, "the import blocked"
    return result[0]


def test_a_fifo_or_dev_zero_given_to_import_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "Modelfile"
    os.mkfifo(fifo)
    zero = tmp_path / "preset.yaml"
    zero.symlink_to("/dev/zero")
    for path, kind in ((fifo, "a named pipe (FIFO)"), (zero, "a character device")):

        def attempt(path: Path = path) -> str:
            with pytest.raises(ProfileImportError) as caught:
                import_profile(path)
            return str(caught.value)

        assert _no_hang(attempt).startswith(f"{path}: is {kind}")
