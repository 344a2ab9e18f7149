"""The samplers other tools' presets use (DRY, XTC, mirostat, dynamic temperature,
temperature_last) are imported now, and reach the servers that apply them by their names;
the servers that cannot are said to, with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from leverchat.engine.remote.dialects import DIALECTS
from leverchat.levers import Levers
from leverchat.profile_import import import_profile


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_textgen_preset_keeps_every_new_sampler(tmp_path: Path) -> None:
    preset = write(
        tmp_path / "creative.yaml",
        "temperature: 0.7\ndry_multiplier: 0.8\ndry_base: 2\ndry_allowed_length: 3\n"
        # As text-generation-webui saves it: the inside of a JSON list, in YAML single quotes.
        'dry_sequence_breakers: \'"\\n", ":", "\\"", "*"\'\n'
        "xtc_probability: 0.5\nxtc_threshold: 0.12\nmirostat_mode: 2\nmirostat_tau: 4\n"
        "mirostat_eta: 0.2\ndynamic_temperature: true\ndynatemp_low: 0.5\n"
        "dynatemp_high: 1.5\ndynatemp_exponent: 2\ntemperature_last: true\n",
    )
    result = import_profile(preset)
    assert result.unmapped == ()
    levers = result.profile.levers
    assert (levers.dry_multiplier, levers.dry_base, levers.dry_allowed_length) == (0.8, 2.0, 3)
    assert levers.dry_sequence_breakers == ("\n", ":", '"', "*")
    assert (levers.xtc_probability, levers.xtc_threshold) == (0.5, 0.12)
    assert (levers.mirostat_tau, levers.mirostat_eta) == (4.0, 0.2)
    # text-generation-webui's 0.5..1.5 is leverchat's 1.0 +/- 0.5.
    assert (levers.temperature, levers.dynatemp_range, levers.dynatemp_exponent) == (
        1.0,
        0.5,
        2.0,
    )
    assert levers.temperature_last == 1


def test_textgen_mirostat_v1_is_reported_by_name(tmp_path: Path) -> None:
    result = import_profile(write(tmp_path / "m.yaml", "mirostat_mode: 1\nmirostat_tau: 5\n"))
    assert [str(item) for item in result.unmapped] == [
        "mirostat_mode = 1: mirostat v1 is not supported: leverchat has mirostat v2 (mode 2)"
    ]
    assert not result.profile.levers.mirostat


def test_textgen_bad_breakers_are_reported(tmp_path: Path) -> None:
    result = import_profile(
        write(tmp_path / "b.yaml", "dry_multiplier: 1\ndry_sequence_breakers: '\"\\\\n\", oops'\n")
    )
    assert [item.key for item in result.unmapped] == ["dry_sequence_breakers"]
    assert "quoted strings" in result.unmapped[0].reason


def test_modelfile_mirostat_2_is_imported(tmp_path: Path) -> None:
    modelfile = write(
        tmp_path / "Modelfile",
        "PARAMETER mirostat 2\nPARAMETER mirostat_tau 3.5\nPARAMETER mirostat_eta 0.05\n",
    )
    result = import_profile(modelfile)
    assert result.unmapped == ()
    assert (result.profile.levers.mirostat_tau, result.profile.levers.mirostat_eta) == (3.5, 0.05)


def test_llm_template_options_map_the_llama_cpp_samplers(tmp_path: Path) -> None:
    template = write(
        tmp_path / "t.yaml",
        "system: Be brief.\noptions:\n  dry_multiplier: 0.5\n  xtc_probability: 0.3\n"
        "  mirostat: 2\n  dynatemp_range: 0.4\n",
    )
    levers = import_profile(template).profile.levers
    assert (levers.dry_multiplier, levers.xtc_probability) == (0.5, 0.3)
    assert (levers.mirostat_tau, levers.dynatemp_range) == (5.0, 0.4)


ACTIVE = Levers(
    dry_multiplier=0.8,
    dry_sequence_breakers=("\n",),
    xtc_probability=0.5,
    xtc_threshold=0.2,
    mirostat_tau=4.0,
    dynatemp_range=0.3,
    temperature_last=1,
    ban=("As an AI",),
)


def test_llama_server_gets_the_samplers_by_its_names() -> None:
    fields = DIALECTS["llama-server"].sampling(ACTIVE, 7)
    assert fields["dry_multiplier"] == 0.8
    assert fields["dry_sequence_breakers"] == ["\n"]
    assert fields["dry_penalty_last_n"] == -1
    assert (fields["xtc_probability"], fields["xtc_threshold"]) == (0.5, 0.2)
    assert (fields["mirostat"], fields["mirostat_tau"]) == (2, 4.0)
    assert fields["dynatemp_range"] == 0.3
    assert fields["samplers"][-1] == "temperature"
    first = DIALECTS["llama-server"].sampling(Levers(), 7)
    assert first["samplers"].index("temperature") < first["samplers"].index("top_k")
    assert first["mirostat"] == 0
    dropped = {lever.name for lever in DIALECTS["llama-server"].dropped(ACTIVE)}
    assert dropped == {"ban"}


@pytest.mark.parametrize("server", ["openai", "vllm", "sglang", "tgi", "transformers"])
def test_servers_without_the_samplers_say_so(server: str) -> None:
    dropped = {lever.name: lever.reason for lever in DIALECTS[server].dropped(ACTIVE)}
    assert {
        "dry_multiplier",
        "xtc_probability",
        "mirostat_tau",
        "dynatemp_range",
        "temperature_last",
        "ban",
    } <= set(dropped)
    fields = DIALECTS[server].sampling(ACTIVE, 7)
    assert not any(key.startswith(("dry", "xtc", "mirostat", "dynatemp")) for key in fields)
    assert all(reason for reason in dropped.values())


def test_ollama_applies_mirostat_only() -> None:
    dropped = {lever.name for lever in DIALECTS["ollama"].dropped(ACTIVE)}
    assert "mirostat_tau" not in dropped and "dry_multiplier" in dropped
    assert DIALECTS["ollama"].sampling(ACTIVE, 7)["options"]["mirostat"] == 2
