"""Importing Ollama Modelfiles, text-generation-webui presets and llm templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from leverchat.engine.custom_format import CustomFormat
from leverchat.levers import Levers
from leverchat.profile_import import ProfileImportError, import_profile
from leverchat.profiles import ProfileError

FIXTURES = Path(__file__).parent / "fixtures" / "import"


def unmapped_keys(path: Path) -> list[str]:
    return [item.key for item in import_profile(path).unmapped]


def test_ollama_modelfile_maps_system_parameters_and_from_path() -> None:
    result = import_profile(FIXTURES / "pirate" / "Modelfile")
    profile = result.profile
    assert result.source_format == "ollama"
    assert profile.name == "pirate"
    assert profile.system_prompt == (
        "You are Captain Salty, a pirate of the seven seas.\n"
        'Always answer like a pirate: say "Arr!" and call the user "matey".'
    )
    assert profile.model == str(FIXTURES / "pirate" / "models" / "SmolLM2-135M-Instruct-Q8_0.gguf")
    assert profile.levers == Levers(
        temperature=0.9,
        top_k=40,
        top_p=0.92,
        min_p=0.05,
        repetition_penalty=1.1,
        max_new_tokens=256,
        seed=42,
        stop=("<|im_start|>", "<|im_end|>"),
    )
    reasons = {item.key: item.reason for item in result.unmapped}
    assert list(reasons) == ["PARAMETER repeat_last_n", "PARAMETER num_ctx", "MESSAGE"]
    # The ChatML TEMPLATE maps to the profile's own prompt format, exactly.
    assert profile.prompt_format == CustomFormat(
        name="Modelfile TEMPLATE",
        system_prefix="<|im_start|>system\n",
        system_suffix="<|im_end|>\n",
        user_prefix="<|im_start|>user\n",
        user_suffix="<|im_end|>\n",
        assistant_prefix="<|im_start|>assistant\n",
        assistant_suffix="<|im_end|>\n",
        generation_prefix="<|im_start|>assistant\n",
    )
    assert any(
        note.startswith("TEMPLATE became the profile's prompt format") for note in result.notes
    )
    # mirostat 0 switches Mirostat off: nothing is lost, so it is not reported.
    assert "PARAMETER mirostat" not in reasons


def test_ollama_model_name_and_bad_values_are_reported_not_mapped() -> None:
    result = import_profile(FIXTURES / "mario.modelfile")
    assert result.profile.name == "mario"
    assert result.profile.model is None
    assert result.profile.system_prompt == (
        "You are Mario from Super Mario Bros, acting as an assistant."
    )
    # What the file does not set (or sets wrongly) keeps Ollama's own defaults.
    assert result.profile.levers == Levers(
        temperature=1.0, top_k=40, top_p=0.9, min_p=0.0, repetition_penalty=1.1
    )
    assert [str(item) for item in result.unmapped] == [
        "FROM = llama3.2: an Ollama model name; set model to a Hugging Face id or a local path "
        "by hand",
        "PARAMETER num_ctx = 4096: the context window comes from the model itself",
        "PARAMETER top_p = 1.5: top_p = 1.5 is out of range: allowed 0 to 1",
        "PARAMETER num_predict = -1: an unlimited reply has no equivalent; max_new_tokens keeps "
        "its default",
        "LICENSE = \\nMIT License, (c) the Mario fan club\\n: a license text is not part of a "
        "profile",
    ]


def test_modelfile_details(tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile.tutor"
    modelfile.write_text(
        "from /models/tiny\n"
        'SYSTEM """One line only."""\n'
        "parameter seed -1\n"
        "PARAMETER stop User:\n"
        "PARAMETER temperature warm\n"
        'SYSTEM "Second system wins"\n'
    )
    result = import_profile(modelfile)
    assert result.profile.name == "tutor"
    assert result.profile.model == "/models/tiny"
    assert result.profile.system_prompt == "Second system wins"
    assert result.profile.levers == Levers(
        temperature=0.8, top_k=40, top_p=0.9, min_p=0.0, repetition_penalty=1.1, stop=("User:",)
    )
    assert [str(item) for item in result.unmapped] == ["PARAMETER temperature = warm: not a number"]


def test_textgen_preset_short() -> None:
    result = import_profile(FIXTURES / "Divine Intellect.yaml")
    assert result.source_format == "textgen-webui"
    assert result.profile.name == "Divine Intellect"
    assert result.profile.system_prompt == ""
    # min_p is not in the preset: text-generation-webui's default (0, off) applies, not ours.
    assert result.profile.levers == Levers(
        temperature=1.31, top_p=0.14, top_k=49, repetition_penalty=1.17, min_p=0.0
    )
    assert result.unmapped == ()


def test_textgen_full_preset_reports_only_active_unmapped_samplers() -> None:
    result = import_profile(FIXTURES / "textgen-full.yaml")
    assert result.profile.levers == Levers(
        temperature=0.8,
        min_p=0.05,
        top_p=1.0,
        top_k=0,
        typical_p=1.0,
        repetition_penalty=1.05,
        presence_penalty=0.1,
        dry_multiplier=0.8,
        dry_allowed_length=2,
        dry_base=1.75,
    )
    # DRY (on), XTC (off) and temperature_last are imported; mirostat and dynamic temperature
    # are off: named in one summary note. Only what leverchat cannot apply is reported.
    assert [item.key for item in result.unmapped] == [
        "repetition_penalty_range",
        "sampler_priority",
    ]
    assert any("mirostat_mode, mirostat_tau, mirostat_eta" in n for n in result.notes)


def test_textgen_do_sample_false_means_greedy() -> None:
    result = import_profile(FIXTURES / "textgen-greedy.yaml")
    assert result.profile.levers.is_greedy
    assert result.profile.levers.top_k == 4
    assert unmapped_keys(FIXTURES / "textgen-greedy.yaml") == ["penalty_alpha"]


def test_llm_template_fills_defaults_and_maps_options() -> None:
    result = import_profile(FIXTURES / "llm-pirate.yaml", name="Captain")
    assert result.source_format == "llm"
    assert result.profile.name == "Captain"
    assert result.profile.system_prompt == (
        "You are a pirate. Always answer in the voice of a pirate and keep answers under 100 "
        "words.\nNever break character."
    )
    assert result.profile.levers == Levers(
        temperature=0.9, top_p=0.95, max_new_tokens=300, stop=("\nUser:",)
    )
    assert [item.key for item in result.unmapped] == ["options.logit_bias"]


def test_llm_template_reports_prompt_model_and_missing_parameters() -> None:
    result = import_profile(FIXTURES / "llm-summarize.yaml")
    assert result.profile.system_prompt == "Summarize the text you are given for $audience."
    assert result.profile.levers == Levers(temperature=0.2, seed=7)
    assert [item.key for item in result.unmapped] == [
        "model",
        "system",
        "prompt",
        "extract",
        "options.json_object",
    ]
    assert result.unmapped[1].value == "$audience"


@pytest.mark.parametrize(
    ("file_name", "content", "expected"),
    [
        (
            "x.yaml",
            "temperature: [1,\n",
            "{path}:2:1: not valid YAML: expected the node content, but found '<stream end>'",
        ),
        (
            "x.yaml",
            "- just\n- a list\n",
            "{path}: not a recognised file: expected an Ollama Modelfile, or YAML with settings "
            "(found list)",
        ),
        (
            "x.yaml",
            "colour: blue\n",
            "{path}: not a recognised file: expected an Ollama Modelfile, a text-generation-webui "
            "preset or an llm template",
        ),
        (
            "x.bin",
            b"\x00\xffjunk",
            "{path}: not a text file: byte 0xff at offset 1 is not valid UTF-8",
        ),
    ],
)
def test_unreadable_imports_are_clear_errors(
    tmp_path: Path, file_name: str, content: str | bytes, expected: str
) -> None:
    path = tmp_path / file_name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ProfileImportError) as caught:
        import_profile(path)
    assert str(caught.value) == expected.format(path=path)


def test_missing_file_and_bad_name(tmp_path: Path) -> None:
    with pytest.raises(ProfileImportError, match="file not found"):
        import_profile(tmp_path / "nope.yaml")
    with pytest.raises(ProfileError, match="name cannot be empty"):
        import_profile(FIXTURES / "Divine Intellect.yaml", name="  ")


def test_ollama_grammar_and_format_json_become_structured_output(tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        "FROM /models/tiny\n"
        'PARAMETER grammar """root ::= answer\nanswer ::= "yes" | "no"\n"""\n'
        "FORMAT json\n"
    )
    result = import_profile(modelfile)
    assert result.profile.levers.grammar == 'root ::= answer\nanswer ::= "yes" | "no"\n'
    assert result.profile.levers.json_mode == 1
    assert result.unmapped == ()


def test_ollama_format_schema_and_bad_structured_values_are_reported(tmp_path: Path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text(
        'FROM /models/tiny\nFORMAT {"type": "object", "required": ["a"]}\n'
        'PARAMETER grammar root ::= "yes\nFORMAT yaml\n'
    )
    result = import_profile(modelfile)
    assert result.profile.levers.json_schema == '{"type": "object", "required": ["a"]}'
    messages = [str(item) for item in result.unmapped]
    assert messages[0].startswith(
        'PARAMETER grammar = root ::= "yes: grammar is neither GBNF nor Lark'
    )
    assert messages[1] == "FORMAT = yaml: FORMAT must be json or a JSON Schema object"


def test_textgen_grammar_string_becomes_the_grammar_lever(tmp_path: Path) -> None:
    preset = tmp_path / "json.yaml"
    preset.write_text("temperature: 0.5\ngrammar_string: 'root ::= \"a\"+'\n")
    result = import_profile(preset)
    assert result.profile.levers.grammar == 'root ::= "a"+'
    assert result.unmapped == ()
