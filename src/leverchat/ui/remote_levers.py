"""The lever panel under a remote engine: a lever the server cannot apply says so, with the
reason, in place of its help line (and gets the ``-unavailable`` class); loading a model that
applies it restores the help."""

from __future__ import annotations

from collections.abc import Iterable

from textual.content import Content
from textual.css.query import NoMatches
from textual.widgets import Static

from leverchat.engine.types import UnavailableLever
from leverchat.levers import LEVER_SPECS
from leverchat.safetext import plain
from leverchat.ui.widgets.lever_panel import LeverPanel


def show_unavailable(panel: LeverPanel, unavailable: Iterable[UnavailableLever]) -> None:
    reasons = {lever.name: lever.reason for lever in unavailable}
    for spec in LEVER_SPECS:
        try:
            field = panel.field(spec.name)
            help_line = field.query_one(".lever-help", Static)
        except NoMatches:
            continue
        reason = reasons.get(spec.name)
        field.set_class(reason is not None, "-unavailable")
        if reason is None:
            help_line.update(plain(spec.help))
        else:
            # The reason comes from leverchat, but the server's name may not: keep it literal.
            help_line.update(Content.styled("Not applied by this server: ", "bold") + plain(reason))
