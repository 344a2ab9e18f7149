"""`profiles import` over real public files (tests/data/real_imports/, sources and licences in
its README): Ollama's example Modelfiles, text-generation-webui's own presets and the
templates of llm's documentation. Every setting leverchat can apply is kept, with its value;
every other one is listed by name in the report, so nothing is dropped silently."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from leverchat.levers import Levers
from leverchat.profile_import import ImportResult, import_profile

DATA = Path(__file__).parent / "data" / "real_imports"
OLLAMA_DEFAULTS = {"top_k": 40, "top_p": 0.9, "min_p": 0.0, "repetition_penalty": 1.1}
# Keys another change may map (structured output: grammars, JSON schemas): each must be
# either applied or listed, whichever it is today.
EITHER = frozenset({"PARAMETER grammar", "schema_object"})


@dataclass(frozen=True)
class Expected:
    # source key -> {lever: value}: what the profile must hold because of that key
    levers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # source keys that set the profile's name, system prompt or nothing to apply (comments)
    fields: frozenset[str] = frozenset()
    # source keys the report must list by name
    unmapped: frozenset[str] = frozenset()
    system_prompt: str | None = None


def _ollama(temperature: float | None = None, **more: dict[str, Any]) -> dict[str, Any]:
    levers: dict[str, Any] = {"(Ollama defaults)": OLLAMA_DEFAULTS}
    if temperature is not None:
        levers["PARAMETER temperature"] = {"temperature": temperature}
    return {**levers, **more}


MARIO = "You are Mario from super mario bros, acting as an assistant."
EXPECTED: dict[str, Expected] = {
    "ollama/mario-llama2.Modelfile": Expected(
        levers=_ollama(1.0),
        unmapped=frozenset({"FROM", "PROMPT"}),
        system_prompt=MARIO,  # taken from the legacy PROMPT's fixed persona text
    ),
    "ollama/mario-llama3.1.Modelfile": Expected(
        levers=_ollama(1.0),
        fields=frozenset({"SYSTEM"}),
        unmapped=frozenset({"FROM"}),
        system_prompt=MARIO,
    ),
    "ollama/docs-mario.Modelfile": Expected(
        levers=_ollama(1.0),
        fields=frozenset({"SYSTEM"}),
        unmapped=frozenset({"FROM", "PARAMETER num_ctx"}),
        system_prompt=MARIO,
    ),
    "ollama/devops-engineer.Modelfile": Expected(
        levers=_ollama(1.0), fields=frozenset({"SYSTEM"}), unmapped=frozenset({"FROM"})
    ),
    "ollama/midjourney-prompter.Modelfile": Expected(
        levers=_ollama(), fields=frozenset({"SYSTEM"}), unmapped=frozenset({"FROM"})
    ),
    "ollama/10tweets.Modelfile": Expected(
        levers=_ollama(), fields=frozenset({"SYSTEM"}), unmapped=frozenset({"FROM"})
    ),
    "ollama/json-grammar.Modelfile": Expected(
        levers=_ollama(), unmapped=frozenset({"FROM", "PARAMETER grammar"})
    ),
    "textgen/Dynamic Temperature.yaml": Expected(
        levers={
            # low 0.01 .. high 2 = temperature 1.005 +/- 0.995
            "dynatemp_low": {"temperature": 1.005},
            "dynatemp_high": {"dynatemp_range": 0.995},
            "dynatemp_exponent": {"dynatemp_exponent": 1.0},
            "dynamic_temperature": {},
            "temperature_last": {"temperature_last": 1},
            "min_p": {"min_p": 0.07},
        }
    ),
    "textgen/Mirostat.yaml": Expected(
        levers={"mirostat_mode": {}, "mirostat_tau": {"mirostat_tau": 8.0, "mirostat_eta": 0.1}}
    ),
    "textgen/Creative.yaml": Expected(
        levers={"min_p": {"min_p": 0.02}, "xtc_probability": {"xtc_probability": 0.5}}
    ),
    "textgen/Divine Intellect.yaml": Expected(
        levers={
            "temperature": {"temperature": 1.31},
            "top_p": {"top_p": 0.14},
            "top_k": {"top_k": 49},
            "repetition_penalty": {"repetition_penalty": 1.17},
        },
        unmapped=frozenset({"epsilon_cutoff", "eta_cutoff", "top_a"}),
    ),
    "textgen/tfs-with-top-a.yaml": Expected(
        levers={
            "temperature": {"temperature": 0.7},
            "repetition_penalty": {"repetition_penalty": 1.15},
        },
        unmapped=frozenset({"tfs", "top_a"}),
    ),
    "textgen/Midnight Enigma.yaml": Expected(
        levers={
            "temperature": {"temperature": 0.98},
            "top_p": {"top_p": 0.37},
            "top_k": {"top_k": 100},
            "repetition_penalty": {"repetition_penalty": 1.18},
        }
    ),
    "textgen/Qwen3 - Thinking.yaml": Expected(
        levers={
            "temperature": {"temperature": 0.6},
            "top_p": {"top_p": 0.95},
            "top_k": {"top_k": 20},
        }
    ),
    "textgen/min_p.yaml": Expected(levers={"min_p": {"min_p": 0.05}}),
    "llm/wild-french.yaml": Expected(
        levers={"options.temperature": {"temperature": 1.8}},
        fields=frozenset({"name", "system"}),
        system_prompt="Speak in French",
    ),
    "llm/roast.yaml": Expected(fields=frozenset({"system"}), unmapped=frozenset({"model"})),
    "llm/victorian.yaml": Expected(fields=frozenset({"system"}), unmapped=frozenset({"prompt"})),
    "llm/summarize-voice.yaml": Expected(
        fields=frozenset({"system", "defaults"}),
        system_prompt="Summarize this text in the voice of GlaDOS",  # the default filled in
    ),
    "llm/steampunk.yaml": Expected(unmapped=frozenset({"prompt"})),
    "llm/dogs.yaml": Expected(fields=frozenset({"name"}), unmapped=frozenset({"schema_object"})),
}


def source_keys(path: Path) -> set[str]:
    """Every setting the file holds, named as the import report names it."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".Modelfile":
        keys = set()
        for line in text.splitlines():
            match = re.match(
                r"(FROM|PARAMETER|SYSTEM|TEMPLATE|PROMPT|ADAPTER|LICENSE)\s+(\S+)", line
            )
            if match:
                instruction, argument = match.groups()
                keys.add(f"PARAMETER {argument}" if instruction == "PARAMETER" else instruction)
        return keys
    data = yaml.safe_load(text)
    keys = {key for key in data if key != "options"}
    keys |= {f"options.{key}" for key in data.get("options", {})}
    return keys


def run(name: str) -> ImportResult:
    return import_profile(DATA / name)


def test_every_file_in_the_folder_is_checked() -> None:
    files = {str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file()}
    assert files - {"README.md"} == set(EXPECTED)
    kinds = [name.split("/")[0] for name in EXPECTED]
    assert kinds.count("ollama") >= 5 and kinds.count("textgen") >= 5 and kinds.count("llm") >= 3


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_setting_is_kept_or_listed_by_name(name: str) -> None:
    expected = EXPECTED[name]
    result = run(name)
    levers = result.profile.levers
    for source_key, values in expected.levers.items():
        for lever, value in values.items():
            assert getattr(levers, lever) == pytest.approx(value), (source_key, lever)
    listed = {item.key for item in result.unmapped}
    assert listed - EITHER == expected.unmapped - EITHER
    keys = source_keys(DATA / name)
    accounted = set(expected.levers) | expected.fields | expected.unmapped
    assert keys <= accounted | {"(Ollama defaults)"}, keys - accounted
    assert keys >= accounted - {"(Ollama defaults)"}, accounted - keys
    if expected.system_prompt is not None:
        assert result.profile.system_prompt == expected.system_prompt
    for item in result.unmapped:
        assert item.reason, item  # a reason for each


def test_the_reports_name_what_stays_behind() -> None:
    """The settings no real file could bring over, and the words that say why."""
    reasons = {(name, item.key): item.reason for name in EXPECTED for item in run(name).unmapped}
    assert reasons[("textgen/tfs-with-top-a.yaml", "tfs")] == "leverchat has no tail-free sampling"
    assert reasons[("textgen/Divine Intellect.yaml", "top_a")] == "leverchat has no top-a sampling"
    assert (
        "context window comes from the model"
        in reasons[("ollama/docs-mario.Modelfile", "PARAMETER num_ctx")]
    )
    assert "Ollama model name" in reasons[("ollama/10tweets.Modelfile", "FROM")]
    assert "no {{ .System }}" in reasons[("ollama/mario-llama2.Modelfile", "PROMPT")]


def test_imported_profiles_are_valid_levers_that_round_trip() -> None:
    for name in EXPECTED:
        levers = run(name).profile.levers
        assert Levers.from_mapping(levers.to_mapping()) == levers


def test_an_openai_logit_bias_option_is_reported_with_what_to_write_instead(
    tmp_path: Path,
) -> None:
    template = tmp_path / "biased.yaml"
    template.write_text(
        "system: Be brief\noptions:\n  logit_bias: {'15043': -100}\n  temperature: 0.2\n",
        encoding="utf-8",
    )
    result = import_profile(template)
    [item] = result.unmapped
    assert item.key == "options.logit_bias"
    assert "token ids" in item.reason and 'boost = {"word" = 2.0}' in item.reason
    assert result.profile.levers.temperature == 0.2
