"""Random TOML-ish, YAML-ish and Modelfile-ish text and random bytes into every file loader.

Every loader either succeeds or fails with the project's own error type, naming the file; it
never raises anything else (RecursionError, TypeError, UnicodeDecodeError...), and the file is
left byte-for-byte as it was.

The example count is small for CI; set ``LEVERCHAT_FUZZ_EXAMPLES`` (say 5000) for a long run.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leverchat.profile_import import import_profile
from leverchat.profiles import ProfileError, ProfileStore, profile_from_toml_bytes
from leverchat.ui.config import load_config
from leverchat.ui.themes import load_themes

EXAMPLES = int(os.environ.get("LEVERCHAT_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # The same examples in every CI run; a LEVERCHAT_FUZZ_EXAMPLES run explores new ones.
    derandomize=os.environ.get("LEVERCHAT_FUZZ_EXAMPLES") is None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Odd characters every parser must survive: controls, C1, bidi, surrogates' neighbours, BOMs.
ODD_TEXT = st.text(
    alphabet=st.sampled_from(
        [
            *"ab1_-.=:[]{}\"'#,\n\t \\$*&!|>%",
            "\x00",
            "\x1b",
            "\x9b",
            "\x85",
            "\u202e",
            "\ufeff",
            "\u2028",
            "é",
            "日",
            "\U0001f600",
        ]
    ),
    max_size=12,
)


def nested(opening: str, closing: str) -> st.SearchStrategy[str]:
    return st.integers(0, 3_000).map(lambda n: opening * n + closing * n)


TOML_FRAGMENTS = st.one_of(
    st.sampled_from(
        [
            'name = "x"\n',
            "[levers]\n",
            "[colors]\n",
            "[keymap]\n",
            "[[a]]\n",
            "temperature = ",
            "stop = [",
            'primary = "#123456"\n',
            "theme = ",
            "dark = true\n",
            "0.7",
            "1e999",
            "nan",
            "-inf",
            "1979-05-27T07:32:00Z",
            '"""',
            "'''",
            '"\\u0000"',
            '"\\x"',
            "{a = 1, b = [1, 2]}",
            "a.b.c = 1\n",
            "= ",
            "\n",
            "]",
            "}",
        ]
    ),
    nested("[", "]").map(lambda s: f"x = {s}\n"),
    nested("{a=", "}").map(lambda s: f"x = {s}\n"),
    st.integers(0, 3_000).map(lambda n: ".".join(["k"] * (n + 1)) + " = 1\n"),
    ODD_TEXT,
)
YAML_FRAGMENTS = st.one_of(
    st.sampled_from(
        [
            "temperature: ",
            "top_p: 0.5\n",
            "min_p: ",
            "system: ",
            "options:\n",
            "  temperature: ",
            "name: ",
            "defaults:\n",
            "stop: ",
            "dry_multiplier: ",
            "do_sample: ",
            "prompt: $input\n",
            "- ",
            "&a ",
            "*a",
            "!!python/object:os.system ",
            "!!binary ",
            "!!set ",
            "? ",
            "<<: ",
            "|\n  ",
            ">\n  ",
            '"\\e"',
            "[1, 2]",
            "{a: 1}",
            "~",
            ".nan",
            "1e999",
            "\n",
            "\n  ",
            "---\n",
            "...\n",
        ]
    ),
    nested("[", "]"),
    nested("{a: ", "}"),
    ODD_TEXT,
)
MODELFILE_FRAGMENTS = st.one_of(
    st.sampled_from(
        [
            "FROM ",
            "FROM ./m.gguf\n",
            "FROM ./mmproj.gguf\n",
            "FROM hf.co/a/b:Q4\n",
            "SYSTEM ",
            'SYSTEM """',
            '"""',
            "PARAMETER ",
            "PARAMETER stop ",
            "PARAMETER temperature ",
            "PARAMETER seed -1\n",
            "PARAMETER num_predict -1\n",
            "PARAMETER mirostat 0\n",
            "PARAMETER grammar root\n",
            "TEMPLATE ",
            "PROMPT ",
            "{{ .System }}",
            "{{ .Prompt }}",
            "{{ range .Messages }}",
            "<|im_start|>system\n",
            "LICENSE ",
            "MESSAGE user hi\n",
            "ADAPTER ./x\n",
            "# comment\n",
            "0.5",
            "nan",
            "\n",
        ]
    ),
    ODD_TEXT,
)


def text_from(fragments: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return st.lists(fragments, max_size=25).map(lambda parts: "".join(parts).encode())


TOML_INPUT = st.one_of(text_from(TOML_FRAGMENTS), st.binary(max_size=300))
YAML_INPUT = st.one_of(text_from(YAML_FRAGMENTS), st.binary(max_size=300))
MODELFILE_INPUT = st.one_of(text_from(MODELFILE_FRAGMENTS), st.binary(max_size=300))


@contextmanager
def user_file(name: str, raw: bytes) -> Iterator[Path]:
    """``raw`` in a fresh folder as ``name``; checks that it is byte-for-byte unchanged after."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(raw)
        yield path
        assert path.read_bytes() == raw, f"{path} was changed"
        assert sorted(p.name for p in Path(folder).iterdir()) == [name], "stray files"


def names_the_file(error: Exception, path: Path) -> None:
    assert str(path) in str(error), f"the error does not name the file: {error}"


@FUZZ
@given(TOML_INPUT)
def test_profile_files(raw: bytes) -> None:
    with user_file("fuzzed.toml", raw) as path:
        try:
            profile_from_toml_bytes(raw, path)
        except ProfileError as error:
            names_the_file(error, path)
        entries = ProfileStore(path.parent).list()
        (fuzzed,) = [entry for entry in entries if entry.path == path]
        if fuzzed.error is not None:
            names_the_file(fuzzed.error, path)
        assert any(entry.builtin and not entry.broken for entry in entries)


@FUZZ
@given(TOML_INPUT)
def test_config_files(raw: bytes) -> None:
    with user_file("config.toml", raw) as path:
        config = load_config(path)
        for problem in config.problems:
            names_the_file(Exception(problem), path)


@FUZZ
@given(TOML_INPUT)
def test_theme_files(raw: bytes) -> None:
    with user_file("fuzzed.toml", raw) as path:
        themes = load_themes([path.parent])
        for problem in themes.problems:
            names_the_file(Exception(problem), path)
        if not themes.problems:
            assert [theme.name for theme in themes.themes] == ["fuzzed"]


def _import(name: str) -> Callable[[bytes], None]:
    def attempt(raw: bytes) -> None:
        with user_file(name, raw) as path:
            try:
                result = import_profile(path)
            except ProfileError as error:
                names_the_file(error, path)
                return
            assert result.profile.name
            for item in result.unmapped:
                assert len(item.value) <= 60
                assert "\x1b" not in item.key + item.value and "\x9b" not in item.value
            assert "\x1b" not in result.profile.system_prompt

    return attempt


@FUZZ
@given(MODELFILE_INPUT)
def test_import_modelfiles(raw: bytes) -> None:
    _import("Modelfile")(raw)


@FUZZ
@given(st.one_of(YAML_INPUT, MODELFILE_INPUT))
def test_import_yaml_presets_and_llm_templates(raw: bytes) -> None:
    _import("preset.yaml")(raw)


@FUZZ
@given(st.one_of(YAML_INPUT, MODELFILE_INPUT, TOML_INPUT))
def test_import_detects_the_format_of_anything(raw: bytes) -> None:
    _import("unknown.txt")(raw)
