"""The one policy for control characters: untrusted text is shown with its control, bidi and
zero-width characters visible (escapes, or one-cell glyphs in editors), never raw; the kept
text is neutralised by strip_control."""

from __future__ import annotations

import json
import re
import sys
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

from leverchat.safetext import (
    UNSAFE,
    plain,
    single_line,
    strip_control,
    visible,
    visible_glyphs,
    visible_json,
)

# Anything a terminal acts on: C0 except tab and newline, DEL, C1.
FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What the policy covers, by Unicode category (tab and newline aside).
UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
BIDI_AND_ZERO_WIDTH = (
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
    "\u200b\u200c\u200d\u2060\ufeff\u00ad\U000e0041"
)
# Random hostile text: controls, whole escape sequences, bidi and zero-width characters.
HOSTILE = st.lists(
    st.text(
        alphabet=st.characters(codec="utf-8")
        | st.characters(categories=["Cc", "Cf", "Zl", "Zp"])
        | st.sampled_from(BIDI_AND_ZERO_WIDTH)
    )
    | st.sampled_from(
        [
            "\x1b]0;t\x07",
            "\x1b]52;c;eA==\x07",
            "\x1b[2J",
            "\x1b[6n",
            "\x9b31m",
            "\x1bPq\x1b\\",
            "\udcff",
        ]
    )
).map("".join)


@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        ("\x1b]52;c;cm0gLXJmIH4=\x07after", "after"),  # OSC 52: write the clipboard
        ("\x1b]0;pwned title\x1b\\after", "after"),  # OSC 0 window title, ST-terminated
        ("\x1b]8;;https://evil.example\x07link\x1b]8;;\x07", "link"),  # OSC 8 hyperlink
        ("\x1b[2J\x1b[Hcleared", "cleared"),  # CSI clear screen, cursor home
        ("\x1b[31mred\x1b[0m", "red"),  # colours
        ("\x1b[?1049h\x1b[?25lhidden", "hidden"),  # alternate screen, hide cursor
        ("\x9b31mred\x9b0m", "red"),  # 8-bit CSI
        ("\x9d0;title\x9cafter", "after"),  # 8-bit OSC and ST
        ("\x1bPq#0;2;0;0;0\x1b\\after", "after"),  # DCS (sixel)
        ("\x1b7\x1b8\x1bcreset", "reset"),  # save/restore cursor, full reset
        ("bell\x07 back\x08space\r\x00nul\x7fdel", "bell backspacenuldel"),
        ("next\x85line", "nextline"),  # C1 NEL
    ],
)
def test_strip_control_removes_sequences_whole(payload: str, shown: str) -> None:
    assert strip_control(payload) == shown


@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        ("\x1b]52;c;cm0gLXJmIH4=\x07after", "\\x1b]52;c;cm0gLXJmIH4=\\x07after"),  # OSC 52
        ("\x1b]0;pwned\x1b\\after", "\\x1b]0;pwned\\x1b\\after"),  # OSC 0, ST-terminated
        ("\x1b]8;;https://evil.example\x07link", "\\x1b]8;;https://evil.example\\x07link"),
        ("\x1b[2J\x1b[6n", "\\x1b[2J\\x1b[6n"),  # clear screen; cursor position request
        ("\x9b31mred", "\\x9b31mred"),  # 8-bit CSI
        ("\x9d0;t\x9c", "\\x9d0;t\\x9c"),  # 8-bit OSC and ST
        ("\x1bPq#0\x1b\\", "\\x1bPq#0\\x1b\\"),  # DCS
        ("a\x00b\x07c\x08d\re\x7ff\x85g", "a\\x00b\\x07c\\x08d\\re\\x7ff\\x85g"),
        ("evil\u202eexe.txt", "evil\\u202eexe.txt"),  # right-to-left override
        ("a\u2066b\u2069c\u200ed\u200fe\u061c", "a\\u2066b\\u2069c\\u200ed\\u200fe\\u061c"),
        ("zero\u200bwidth\u200d\u2060\ufeff", "zero\\u200bwidth\\u200d\\u2060\\ufeff"),
        ("tag\U000e0041", "tag\\U000e0041"),  # invisible tag characters
        ("lone\udcff", "lone\\udcff"),  # a lone surrogate cannot even be encoded
        ("keeps\tthe tab\nand the newline", "keeps\tthe tab\nand the newline"),
    ],
)
def test_visible_shows_each_character_as_its_escape(payload: str, shown: str) -> None:
    assert visible(payload) == shown
    assert plain(payload).plain == shown


def test_visible_on_one_line_escapes_newline_and_tab() -> None:
    assert visible("a\tb\nc\x1b", multiline=False) == "a\\tb\\nc\\x1b"


def test_the_unsafe_set_is_these_unicode_categories() -> None:
    """The ranges in safetext are written out; they must be exactly Cc (less tab and newline),
    Cf, Cs, Zl and Zp of the Unicode version they were made from."""
    matched = {cp for cp in range(sys.maxunicode + 1) if UNSAFE.match(chr(cp))}
    by_category = {
        cp
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) in UNSAFE_CATEGORIES and chr(cp) not in "\t\n"
    }
    assert matched <= by_category
    if unicodedata.unidata_version == "14.0.0":  # Python 3.11; newer ones add characters
        assert matched == by_category


def test_unterminated_osc_keeps_the_text_after_it_visible() -> None:
    # A terminal would swallow the rest; the user should still see it, made harmless.
    assert strip_control("\x1b]0;title and the rest of the reply") == (
        "0;title and the rest of the reply"
    )


def test_ordinary_text_is_unchanged() -> None:
    text = "Line one\n\tindented: [bold]x[/] list[int] ünïcödé 你好 🙂 ~!@#$%^&*()"
    assert strip_control(text) == text


@given(HOSTILE)
def test_no_form_of_the_policy_lets_a_character_through(text: str) -> None:
    for shown in (visible(text), single_line(text), visible_glyphs(text), strip_control(text)):
        assert UNSAFE.search(shown) is None
        assert FORBIDDEN.search(shown) is None
    assert visible(visible(text)) == visible(text)
    assert "\n" not in single_line(text) and "\t" not in single_line(text)


@given(HOSTILE)
def test_editor_glyphs_keep_the_length_and_take_one_cell_each(text: str) -> None:
    glyphs = visible_glyphs(text)
    assert len(glyphs) == len(text)  # a column index means the same in both
    for real, shown in zip(text, glyphs, strict=True):
        if real != shown:
            assert cell_len(shown) == 1
            assert shown not in "\t\n"
        else:
            assert UNSAFE.match(real) is None and real != "\n"
    assert visible_glyphs("a\x1bb\x7f\x9b\u202e\n\tc") == "a␛b␡��␊\tc"


@given(HOSTILE)
def test_visible_json_is_the_same_data_with_nothing_raw(text: str) -> None:
    data = {"text": text, "list": [text, 1]}
    shown = visible_json(data)
    assert json.loads(shown) == data
    assert UNSAFE.search(shown) is None


@given(st.text(alphabet=st.characters(exclude_categories=["Cc", "Cf", "Cs", "Zl", "Zp"])))
def test_text_without_controls_passes_through(text: str) -> None:
    for form in (strip_control, visible, visible_glyphs, plain):
        shown = form(text)
        assert (shown.plain if not isinstance(shown, str) else shown) == text


def test_single_line_joins_lines_and_cuts_with_an_ellipsis() -> None:
    assert single_line("  a title\nover\r\n two\tlines ") == "a title over two lines"
    assert single_line("abcdefghij", limit=5) == "abcd…"
    assert single_line("abc", limit=5) == "abc"
    assert single_line("\x1b]0;x\x07safe") == "\\x1b]0;x\\x07safe"
    # \x1c-\x1f and \x85 count as whitespace for str.split(): shown, not turned into spaces
    assert single_line("a\x1cb\x85c") == "a\\x1cb\\x85c"
