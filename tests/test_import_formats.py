"""Modelfile TEMPLATEs and llm ``prompt`` fields become prompt formats where they map, and
the import report says exactly what did not."""

from __future__ import annotations

from pathlib import Path

import pytest

from leverchat.engine.custom_format import CustomFormat
from leverchat.importers.go_template import map_go_template
from leverchat.profile_import import import_profile
from leverchat.profiles import profile_from_toml_bytes, profile_to_toml

CHATML_WITH_RESPONSE = (
    "{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end -}}\n"
    "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
    "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n"
)


def test_chatml_with_trim_markers_and_response_maps_exactly() -> None:
    mapped = map_go_template(CHATML_WITH_RESPONSE, "t")
    assert mapped.problems == ()
    assert mapped.fmt == CustomFormat(
        name="t",
        system_prefix="<|im_start|>system\n",
        system_suffix="<|im_end|>\n",
        user_prefix="<|im_start|>user\n",
        user_suffix="<|im_end|>\n",
        assistant_prefix="<|im_start|>assistant\n",
        assistant_suffix="<|im_end|>\n",
        generation_prefix="<|im_start|>assistant\n",
    )
    # What the format renders for a two-turn chat is what Ollama renders turn by turn.
    text = mapped.fmt.render(
        ["system", "user", "assistant", "user"], ["S", "Q1", "A1", "Q2"], "", ""
    )
    assert text == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n"
        "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_a_bare_vicuna_template_maps_and_says_what_differs() -> None:
    mapped = map_go_template("{{ .System }}\nUSER: {{ .Prompt }}\nASSISTANT:", "v")
    assert mapped.fmt is not None
    fmt = mapped.fmt
    assert (fmt.system_suffix, fmt.user_prefix, fmt.user_suffix) == ("\n", "USER: ", "\n")
    assert (fmt.assistant_prefix, fmt.generation_prefix, fmt.assistant_suffix) == (
        "ASSISTANT:",
        "ASSISTANT:",
        "\n",
    )
    assert fmt.own_stops() == ("USER:",)
    assert mapped.problems == ()


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        (
            "{{ range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}",
            "Go template actions leverchat cannot map: {{ range .Messages }}, {{ .Role }}, "
            "{{ .Content }}",
        ),
        (
            "{{ if .Prompt }}[INST] {{ if .System }}{{ .System }} {{ end }}{{ .Prompt }} [/INST]"
            "{{ end }}",
            "its parts come in an order leverchat cannot map to prefixes and suffixes: "
            "{{ if .Prompt }} {{ if .System }}",
        ),
        ("{{ .System }} hello", "the template has no {{ .Prompt }}: where the user's text goes"),
        (
            "{{ if .Tools }}tools{{ else }}x{{ end }}{{ .Prompt }}",
            "Go template actions leverchat cannot map: {{ if .Tools }}, {{ else }}",
        ),
    ],
)
def test_templates_that_do_not_map_say_exactly_why(template: str, problem: str) -> None:
    mapped = map_go_template(template, "x")
    assert mapped.fmt is None
    assert mapped.problems == (problem,)


def test_a_bare_system_part_with_text_around_it_is_reported() -> None:
    mapped = map_go_template("[INST] <<SYS>>{{ .System }}<</SYS>>\n\n{{ .Prompt }} [/INST]", "l")
    assert mapped.fmt is not None
    assert mapped.problems == (
        "the text around {{ .System }} ('[INST] <<SYS>>' ... '<</SYS>>') is written only when "
        "there is a system prompt (Ollama writes it always): keep a system prompt in the profile",
    )


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_modelfile_that_does_not_map_keeps_auto_and_reports_the_template(
    tmp_path: Path,
) -> None:
    result = import_profile(
        write(
            tmp_path / "Modelfile",
            'FROM ./m.gguf\nTEMPLATE """{{ range .Messages }}{{ .Content }}{{ end }}"""\n',
        )
    )
    assert result.profile.prompt_format == "auto"
    (item,) = result.unmapped
    assert item.key == "TEMPLATE"
    assert "not mapped to a prompt format: Go template actions leverchat cannot map: " in (
        item.reason
    )


def test_an_imported_format_round_trips_through_the_profile_file(tmp_path: Path) -> None:
    path = write(tmp_path / "Modelfile", f'FROM ./m.gguf\nTEMPLATE """{CHATML_WITH_RESPONSE}"""\n')
    profile = import_profile(path).profile
    assert isinstance(profile.prompt_format, CustomFormat)
    text = profile_to_toml(profile)
    assert "[prompt_format]" in text
    assert profile_from_toml_bytes(text.encode(), tmp_path / "p.toml") == profile


def test_an_llm_prompt_with_role_markers_becomes_a_format(tmp_path: Path) -> None:
    path = write(
        tmp_path / "alpaca.yaml",
        "system: Be brief.\nprompt: |\n  ### Instruction:\n  $input\n\n  ### Response:\n",
    )
    result = import_profile(path)
    fmt = result.profile.prompt_format
    assert isinstance(fmt, CustomFormat)
    text = fmt.render(["system", "user", "assistant", "user"], ["S", "Q1", "A1", "Q2"], "", "")
    assert text == (
        "S\n\n### Instruction:\nQ1\n\n### Response:\nA1\n\n### Instruction:\nQ2\n\n### Response:\n"
    )
    assert fmt.own_stops() == ("### Instruction:",)
    assert "prompt" not in [item.key for item in result.unmapped]


def test_an_llm_prompt_that_only_wraps_the_input_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", "prompt: 'Summarize this: $input'\n")
    result = import_profile(path)
    assert result.profile.prompt_format == "auto"
    (item,) = result.unmapped
    assert item.key == "prompt"
    assert item.reason == (
        "it wraps what you type (Summarize this: $input) inside the model's own chat "
        "template; a prompt format replaces that template, so it was not mapped: type the "
        "wrapper text yourself"
    )
