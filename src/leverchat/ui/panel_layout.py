"""Where the lever panel shows: beside the chat on a wide terminal, over it (up to the status
line) on a narrow one, unless the user toggled it, which then wins over the width."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen

WIDE_LAYOUT_COLUMNS = 100  # from this width the panel shows beside the chat by default
BOTTOM_BAR_ROWS = 2  # the status line and the footer


def apply_layout(screen: ChatScreen, width: int, height: int | None = None) -> None:
    wide = width >= WIDE_LAYOUT_COLUMNS
    screen.set_class(not wide, "-narrow")
    panel = screen.panel
    panel.display = screen._panel_chosen if screen._panel_chosen is not None else wide
    # Over the chat (narrow), the panel stops above the status line and the footer.
    rows = height if height is not None else screen.app.size.height
    panel.styles.height = "1fr" if wide else max(rows - BOTTOM_BAR_ROWS, 3)


def back_to_prompt(screen: ChatScreen) -> None:
    """Focus the prompt; a panel opened over a narrow chat closes on the way."""
    panel = screen.panel
    if screen.has_class("-narrow") and panel.display and panel.has_focus_within:
        screen._panel_chosen = False
        panel.display = False
    screen.prompt.focus()


def toggle_panel(screen: ChatScreen) -> None:
    panel = screen.panel
    screen._panel_chosen = not panel.display
    panel.display = screen._panel_chosen
    if panel.display and screen.has_class("-narrow"):
        panel.focus_first()
    elif not panel.display and panel.has_focus_within:
        screen.prompt.focus()


def focus_panel(screen: ChatScreen) -> None:
    panel = screen.panel
    if not panel.display:
        screen._panel_chosen = True
        panel.display = True
    panel.focus_first()
