"""What the banned and boosted phrases became in the loaded tokenizer, shown under their fields
in the panel (asked of the engine whenever a phrase changes and after a model loads) and in F3
(from the reply's own ``lever_tokens``).

One line per phrase: ``As an AI → ' As'+' an'+' AI' (3 tokens), 'As'+' an'+' AI' (3 tokens)``.
Phrases and token texts are the user's and the model's: each token is quoted with ``repr``
(a newline reads ``'\\n'``) and the whole line passes through :func:`safetext.visible`, and
the panel shows it as literal Content, never markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import Static

from leverchat.engine.types import LeverTokens
from leverchat.levers import Levers
from leverchat.safetext import plain, visible

if TYPE_CHECKING:
    from leverchat.ui.widgets.lever_panel import LeverPanel

TOKEN_LEVERS = frozenset({"ban", "boost"})
# A phrase has up to five forms; the panel shows this many lines per field at most.
MAX_LINES = 8
NOT_LOADED = "Shown as tokens once a model is loaded."
NO_TOKENIZER = "Not shown: this model's tokenizer is not available here."


def describe(items: Iterable[LeverTokens]) -> list[str]:
    """One line per phrase: each form it takes, as its tokens."""
    lines = []
    for item in items:
        head = item.text if item.weight is None else f"{item.text} {item.weight:+g}"
        forms = [
            _form(item.sequences[i], item.pieces[i] if i < len(item.pieces) else None)
            for i in range(len(item.sequences))
        ]
        lines.append(visible(f"{head} → " + (", ".join(forms) or "no tokens"), multiline=False))
    return lines


def _form(ids: tuple[int, ...], pieces: tuple[str, ...] | None) -> str:
    count = f"({len(ids)} token{'' if len(ids) == 1 else 's'})"
    if pieces is None:
        return "+".join(str(token) for token in ids) + " " + count
    return "+".join(repr(piece) for piece in pieces) + " " + count


class LeverTokensView(Static):
    """The token view under the Banned phrases or Boost field (hidden while it is empty)."""

    class Stale(Message):
        """The field's phrases changed: the panel asks the engine again."""

    def __init__(self, lever: str) -> None:
        super().__init__("", classes="lever-tokens", id=f"lever-tokens-{lever}")
        self.lever = lever
        self.display = False

    def show_lines(self, lines: list[str]) -> None:
        if len(lines) > MAX_LINES:
            lines = [*lines[: MAX_LINES - 1], f"… and {len(lines) - MAX_LINES + 1} more"]
        self.update(plain("\n".join(lines)))
        self.display = bool(lines)


class LeverTokensMapped(Message):
    """The engine's answer to one request (``number``: only the latest one is shown)."""

    def __init__(self, number: int, levers: Levers, items: tuple[LeverTokens, ...]) -> None:
        super().__init__()
        self.number = number
        self.levers = levers
        self.items = items


def _views(panel: LeverPanel) -> dict[str, LeverTokensView]:
    return {view.lever: view for view in panel.query(LeverTokensView)}


def request(panel: LeverPanel, number: int) -> None:
    """Ask the engine what the panel's phrases become; the answer comes as a message."""
    try:
        levers = Levers(ban=panel.lever_value("ban"), boost=panel.lever_value("boost"))
    except NoMatches:  # the panel is not composed yet: it asks again once it is
        return
    views = _views(panel)
    if not levers.ban and not levers.boost:
        for view in views.values():
            view.show_lines([])
        return
    screen: Any = panel.screen
    engine = getattr(screen, "engine", None)
    if engine is None or getattr(screen, "model_info", None) is None:
        for name, view in views.items():
            view.show_lines([NOT_LOADED] if getattr(levers, name) else [])
        return

    def done(future: Any) -> None:
        items = () if future.exception() is not None else future.result()
        panel.post_message(LeverTokensMapped(number, levers, items))

    engine.lever_tokens(levers).add_done_callback(done)


def show(panel: LeverPanel, message: LeverTokensMapped) -> None:
    for name, view in _views(panel).items():
        phrases = getattr(message.levers, name)
        if not phrases:
            view.show_lines([])
            continue
        mine = [item for item in message.items if item.lever == name]
        view.show_lines(describe(mine) if mine else [NO_TOKENIZER])
