"""Terminal control sequences in untrusted text never reach the terminal."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leverchat.safetext import single_line, strip_control

# Anything a terminal acts on: C0 except tab and newline, DEL, C1.
FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


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
def test_control_sequences_are_removed_whole(payload: str, shown: str) -> None:
    assert strip_control(payload) == shown


def test_unterminated_osc_keeps_the_text_after_it_visible() -> None:
    # A terminal would swallow the rest; the user should still see it, made harmless.
    assert strip_control("\x1b]0;title and the rest of the reply") == (
        "0;title and the rest of the reply"
    )


def test_ordinary_text_is_unchanged() -> None:
    text = "Line one\n\tindented: [bold]x[/] list[int] ünïcödé 你好 🙂 ~!@#$%^&*()"
    assert strip_control(text) == text


@given(st.text())
def test_output_never_contains_a_control_character(text: str) -> None:
    cleaned = strip_control(text)
    assert FORBIDDEN.search(cleaned) is None
    assert strip_control(cleaned) == cleaned


@given(st.text(alphabet=st.characters(exclude_categories=["Cc"]) | st.sampled_from("\n\t")))
def test_text_without_controls_passes_through(text: str) -> None:
    assert strip_control(text) == text


def test_single_line_joins_lines_and_cuts_with_an_ellipsis() -> None:
    assert single_line("  a title\nover\r\n two\tlines ") == "a title over two lines"
    assert single_line("abcdefghij", limit=5) == "abcd…"
    assert single_line("abc", limit=5) == "abc"
    assert single_line("\x1b]0;x\x07safe") == "safe"
