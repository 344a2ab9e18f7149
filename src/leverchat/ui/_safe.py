"""Display safety for untrusted text (model output, profile names, paths, error texts).

Two rules from DESIGN.md "Rendering untrusted text": never interpret it as markup (callers use
``Content`` objects or ``markup=False``; :func:`plain` returns literal ``Content``), and never let
it reach the terminal as a control sequence (:func:`leverchat.safetext.strip_control`). The
stored text stays unchanged; only what is displayed is cleaned.
"""

from __future__ import annotations

from textual.content import Content

from leverchat.safetext import strip_control

__all__ = ["one_line", "plain", "strip_control"]


def plain(text: str) -> Content:
    """Untrusted text as literal ``Content``: no markup, no control sequences."""
    return Content(strip_control(text))


def one_line(text: str, limit: int = 80) -> str:
    """A single cleaned line for labels and notifications (names, paths, errors)."""
    line = " ".join(strip_control(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
