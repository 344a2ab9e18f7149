"""The token inspector's tints: which bucket a probability falls in, the theme's colour for it,
and a reply drawn as tinted tokens.

Each token of an inspected reply gets the background of its bucket; the text keeps the theme's
foreground, so a tint never costs contrast (tests/ui/test_inspector_tints.py checks every built-in
theme for 4.5:1 or better). A theme names its tints in ``[variables]`` (:data:`TINT_VARIABLES`);
a theme without them (a Textual built-in, an older user theme) gets tints blended from its own
success, primary, warning and error colours.

Model text is untrusted: it goes through :func:`leverchat.safetext.visible` and into a
``Content`` with spans, never into markup.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from textual.color import Color, ColorParseError
from textual.content import Content, Span
from textual.style import Style

from leverchat.engine.inspection import TokenInspection
from leverchat.safetext import visible

# (lowest probability of the bucket, its label, the theme variable of its tint), likeliest first.
BUCKETS: Final = (
    (0.9, "≥90%", "inspector-sure"),
    (0.5, "≥50%", "inspector-likely"),
    (0.2, "≥20%", "inspector-unsure"),
    (0.0, "<20%", "inspector-unlikely"),
)
TINT_VARIABLES: Final = tuple(variable for _, _, variable in BUCKETS)
# The theme colour each tint is blended from when a theme does not name its tints.
_FALLBACK_SOURCES: Final = ("success", "primary", "warning", "error")
_FALLBACK_STRENGTH: Final = 0.35
# WCAG AA for normal text: what a tint must keep with the theme's text colour.
MIN_CONTRAST: Final = 4.5

# Shown in place of a token that has no visible text, while the cursor is on it.
_NEWLINE_MARK: Final = "↵"
_EMPTY_MARK: Final = "∅"


@dataclass(frozen=True)
class TintStyles:
    """The resolved styles of the buckets, likeliest first, and the theme's text colour."""

    buckets: tuple[Style, ...]
    cursor: Style
    untinted: Style


def bucket(probability: float | None) -> int | None:
    """The index in :data:`BUCKETS` of ``probability``; None when it is not known."""
    if probability is None:
        return None
    for index, (lowest, _label, _variable) in enumerate(BUCKETS):
        if probability >= lowest:
            return index
    return len(BUCKETS) - 1


def shown_probability(record: TokenInspection) -> float | None:
    """What a token is tinted by: its probability after the levers, or, for a remote reply
    (which knows no such thing), the probability the server reported."""
    return record.after if record.after is not None else record.reported


def tint_styles(variables: Mapping[str, str]) -> TintStyles:
    """The tints of the theme whose CSS variables are ``variables`` (App.theme_variables)."""
    foreground = _parse(variables.get("foreground")) or Color(224, 224, 224)
    background = _parse(variables.get("background")) or Color(0, 0, 0)
    styles: list[Style] = []
    for (_lowest, _label, variable), source in zip(BUCKETS, _FALLBACK_SOURCES, strict=True):
        tint = _parse(variables.get(variable))
        if tint is None:
            tint = _blended_tint(
                background, _parse(variables.get(source)) or foreground, foreground
            )
        styles.append(Style(background=tint, foreground=foreground))
    return TintStyles(
        tuple(styles),
        cursor=Style(background=foreground, foreground=background, bold=True, underline=True),
        untinted=Style(foreground=foreground),
    )


def _blended_tint(background: Color, source: Color, foreground: Color) -> Color:
    """``source`` blended into ``background``, faint enough to keep the text readable."""
    strength = _FALLBACK_STRENGTH
    tint = background.blend(source, strength)
    while strength > 0.05 and contrast_ratio(foreground, tint) < MIN_CONTRAST:
        strength -= 0.05
        tint = background.blend(source, strength)
    return tint


def _parse(value: str | None) -> Color | None:
    if not value:
        return None
    try:
        return Color.parse(value)
    except ColorParseError:
        return None


def contrast_ratio(first: Color, second: Color) -> float:
    """WCAG 2 contrast ratio of two opaque colours (1 to 21)."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(color: Color) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)


def legend(styles: TintStyles, *, remote: bool = False) -> Content:
    """One line: what the tints mean."""
    what = (
        "probability the server reported" if remote else "chosen token's probability after levers"
    )
    # The buckets first: a narrow terminal cuts the end of the line.
    parts: list[Content] = []
    for style, (_lowest, label, _variable) in zip(styles.buckets, BUCKETS, strict=True):
        parts.append(Content(f" {label} ", spans=[Span(0, len(label) + 2, style)]))
        parts.append(Content(" "))
    parts.append(Content(f"{what} · replies shown as plain text"))
    return Content("").join(parts)


def token_spans(records: Sequence[TokenInspection], cursor: int | None = None) -> list[str]:
    """Each token's text as shown: control characters visible, and a mark for a token that
    shows nothing (a newline, an empty piece) while the cursor is on it."""
    shown: list[str] = []
    for index, record in enumerate(records):
        text = visible(record.text)
        if index == cursor:
            if text == "":
                text = _EMPTY_MARK
            elif not text.strip():
                text = text.replace("\n", _NEWLINE_MARK + "\n") if "\n" in text else text
        shown.append(text)
    return shown


def tinted_content(
    records: Sequence[TokenInspection], styles: TintStyles, cursor: int | None = None
) -> Content:
    """The reply as its tokens, each with its bucket's tint; the cursor's token reversed.

    A token that completed a stop string is struck through: its text was cut from the reply.
    """
    texts = token_spans(records, cursor)
    spans: list[Span] = []
    offset = 0
    for index, (record, text) in enumerate(zip(records, texts, strict=True)):
        end = offset + len(text)
        found = bucket(shown_probability(record))
        style = styles.untinted if found is None else styles.buckets[found]
        if index == cursor:
            style = styles.cursor
        if record.stopped_by is not None:
            style = style + Style(strike=True)
        if end > offset:
            spans.append(Span(offset, end, style))
        offset = end
    return Content("".join(texts), spans=spans)


def cursor_offset(records: Sequence[TokenInspection], cursor: int) -> int:
    """Where the cursor's token starts in :func:`tinted_content`'s text."""
    return sum(len(text) for text in token_spans(records[:cursor]))
