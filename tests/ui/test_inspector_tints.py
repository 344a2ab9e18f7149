"""The token inspector's tints: buckets, every built-in theme's colours, readable text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from textual.color import Color
from textual.theme import BUILTIN_THEMES

from leverchat.engine.inspection import Alternative, TokenInspection
from leverchat.safetext import UNSAFE
from leverchat.ui import inspector_tints
from leverchat.ui.themes import load_themes

REPO = Path(__file__).resolve().parents[2]


def variables_of(theme) -> dict[str, str]:
    # What App.get_css_variables builds from a theme.
    return {**theme.to_color_system().generate(), **theme.variables}


@pytest.mark.parametrize(
    ("probability", "expected"),
    [(1.0, 0), (0.9, 0), (0.8999, 1), (0.5, 1), (0.4999, 2), (0.2, 2), (0.1999, 3), (0.0, 3)],
)
def test_buckets_have_inclusive_lower_bounds(probability: float, expected: int) -> None:
    assert inspector_tints.bucket(probability) == expected


def test_an_unknown_probability_has_no_bucket() -> None:
    assert inspector_tints.bucket(None) is None


def test_every_built_in_theme_names_its_tints_and_keeps_text_readable() -> None:
    themes = load_themes([REPO / "themes"])
    assert themes.problems == ()
    assert {theme.name for theme in themes.themes} >= {
        "leverchat-dark",
        "leverchat-light",
        "leverchat-high-contrast",
    }
    for theme in themes.themes:
        assert set(inspector_tints.TINT_VARIABLES) <= set(theme.variables), theme.name
        styles = inspector_tints.tint_styles(variables_of(theme))
        backgrounds = [style.background for style in styles.buckets]
        assert backgrounds == [
            Color.parse(theme.variables[v]) for v in inspector_tints.TINT_VARIABLES
        ]
        assert len(set(backgrounds)) == 4, f"{theme.name}: two buckets look the same"
        minimum = 7.0 if "high-contrast" in theme.name else inspector_tints.MIN_CONTRAST
        for style in styles.buckets:
            ratio = inspector_tints.contrast_ratio(style.foreground, style.background)
            assert ratio >= minimum, f"{theme.name}: {style.background.hex} is {ratio:.1f}:1"


@pytest.mark.parametrize("name", sorted(n for n in BUILTIN_THEMES if not n.startswith("ansi")))
def test_a_theme_without_tints_gets_readable_ones_from_its_colours(name: str) -> None:
    styles = inspector_tints.tint_styles(variables_of(BUILTIN_THEMES[name]))
    for style in styles.buckets:
        ratio = inspector_tints.contrast_ratio(style.foreground, style.background)
        assert ratio >= inspector_tints.MIN_CONTRAST, f"{name}: {ratio:.1f}:1"
    assert len({style.background for style in styles.buckets}) == 4


def test_a_bad_tint_colour_falls_back_to_a_blended_one() -> None:
    theme = BUILTIN_THEMES["textual-dark"]
    variables = {**variables_of(theme), "inspector-sure": "not a colour"}
    styles = inspector_tints.tint_styles(variables)
    assert styles.buckets[0].background != Color.parse("#000000")
    ratio = inspector_tints.contrast_ratio(
        styles.buckets[0].foreground, styles.buckets[0].background
    )
    assert ratio >= inspector_tints.MIN_CONTRAST


def _token(text: str, after: float) -> TokenInspection:
    return TokenInspection(1, text, after, after, 1, 1, (Alternative(1, text, after, after),))


def test_markup_and_controls_in_tokens_are_literal_and_visible() -> None:
    records = [_token("[bold]x[/]", 0.95), _token("\x1b[2J", 0.3), _token("\n", 0.6)]
    styles = inspector_tints.tint_styles(variables_of(BUILTIN_THEMES["textual-dark"]))
    content = inspector_tints.tinted_content(records, styles)
    assert content.plain == "[bold]x[/]\\x1b[2J\n"
    # On a newline the cursor shows a mark (a bare newline has nothing to highlight).
    with_cursor = inspector_tints.tinted_content(records, styles, cursor=2)
    assert with_cursor.plain.endswith("↵\n")
    assert inspector_tints.cursor_offset(records, 2) == len("[bold]x[/]\\x1b[2J")


def test_a_token_that_completed_a_stop_string_is_struck_through() -> None:
    from dataclasses import replace

    records = [_token("Hi", 0.95), replace(_token("STOP", 0.95), stopped_by="stop")]
    styles = inspector_tints.tint_styles(variables_of(BUILTIN_THEMES["textual-dark"]))
    spans = inspector_tints.tinted_content(records, styles).spans
    assert [bool(span.style.strike) for span in spans] == [False, True]


FUZZ_EXAMPLES = int(os.environ.get("LEVERCHAT_FUZZ_EXAMPLES", "60"))


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    # Fixed examples in CI; a LEVERCHAT_FUZZ_EXAMPLES run explores new ones.
    derandomize=os.environ.get("LEVERCHAT_FUZZ_EXAMPLES") is None,
)
@given(
    texts=st.lists(st.text(max_size=6), min_size=1, max_size=12),
    probabilities=st.lists(st.floats(0.0, 1.0), min_size=12, max_size=12),
    cursor=st.integers(0, 11),
)
def test_any_tokens_tint_one_span_each_and_show_nothing_raw(
    texts: list[str], probabilities: list[float], cursor: int
) -> None:
    """Whatever the token texts: the drawn text is the tokens made visible (plus a mark on an
    invisible token under the cursor), each non-empty token has exactly its bucket's span, and
    no unsafe character is left."""
    records = [_token(text, p) for text, p in zip(texts, probabilities, strict=False)]
    cursor = cursor % len(records)
    styles = inspector_tints.tint_styles(variables_of(BUILTIN_THEMES["textual-dark"]))
    content = inspector_tints.tinted_content(records, styles, cursor)
    assert UNSAFE.search(content.plain) is None
    shown = inspector_tints.token_spans(records, cursor)
    assert content.plain == "".join(shown)
    spans = iter(content.spans)
    offset = 0
    for index, (record, text) in enumerate(zip(records, shown, strict=True)):
        if text:
            span = next(spans)
            assert (span.start, span.end) == (offset, offset + len(text))
            bucket = inspector_tints.bucket(record.after)
            expected = styles.cursor if index == cursor else styles.buckets[bucket]
            assert span.style == expected
        offset += len(text)
    assert inspector_tints.cursor_offset(records, cursor) == sum(map(len, shown[:cursor]))
