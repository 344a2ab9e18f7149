"""The chat list (F4, or "Open chat…" in the palette): browse saved chats by date, search
their messages, open, rename or delete one. Keyboard only; fits 80x24.

Titles and snippets are untrusted (they come from messages): every row is literal ``Content``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.events import Key
from textual.screen import ModalScreen
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from leverchat.history import ConversationInfo, HistoryError, SearchHit
from leverchat.safetext import plain, single_line, strip_control
from leverchat.ui import hints
from leverchat.ui.history_session import HistorySession
from leverchat.ui.keymap import binding
from leverchat.ui.widgets.visible_editors import VisibleInput
from leverchat.wording import sentence

# Called after a rename (with the new title) or a delete (with None).
ChatChanged = Callable[[str, str | None], Awaitable[None]]


def day_label(moment: datetime, today: datetime) -> str:
    """How the list heads a day: Today, Yesterday, or the date."""
    local = moment.astimezone()
    days = (today.date() - local.date()).days
    if days == 0:
        return "Today"
    if days == 1:
        return "Yesterday"
    return local.strftime("%A %d %B %Y")


def chat_row(info: ConversationInfo, current: bool) -> Content:
    title = single_line(info.title or "untitled chat", 44)
    when = info.updated.astimezone().strftime("%H:%M")
    count = f"{info.message_count} msg"
    profile = single_line(info.profile, 14)
    marker = "● " if current else "  "
    if info.problem is not None:  # listed so that it can be deleted (d); Enter says why
        title = single_line(f"(unreadable) {info.title or 'untitled chat'}", 44)
    return Content(f"{marker}{when}  {title}") + Content.styled(f"  {count} · {profile}", "dim")


def hit_row(hit: SearchHit, current: bool) -> Content:
    marker = "● " if current else "  "
    title = single_line(hit.title or "untitled chat", 30)
    return Content(f"{marker}{title}") + Content.styled(f"  {single_line(hit.snippet, 60)}", "dim")


class ChatOptions(OptionList):
    """The list of chats. Up on the first chat stays there, Down on the last one too: the
    list has destructive keys, and a wrap to the other end once had a user delete the open
    chat instead of the one they meant."""

    def _step(self, direction: int) -> None:
        index = self.highlighted
        if index is None:  # nothing chosen yet: from the first (or the last) row
            index = -1 if direction > 0 else self.option_count
        index += direction
        while 0 <= index < self.option_count:
            if not self.get_option_at_index(index).disabled:
                self.highlighted = index
                return
            index += direction

    def action_cursor_up(self) -> None:
        self._step(-1)

    def action_cursor_down(self) -> None:
        self._step(1)


class ChatListScreen(ModalScreen[str | None]):
    """Returns the id of the chat to open, or None."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", show=False),
        binding("chats.rename", "rename"),
        binding("chats.delete", "delete"),
        binding("chats.search", "focus_search"),
    ]

    def __init__(
        self, history: HistorySession, current_id: str | None, changed: ChatChanged
    ) -> None:
        super().__init__(classes="dialog-screen")
        self._history = history
        self._current_id = current_id
        self._changed = changed
        self._titles: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="chat-list-dialog"):
            yield Static(Content.styled("Saved chats", "bold"), classes="dialog-title")
            yield VisibleInput(placeholder="Search message text…", id="chat-search")
            yield ChatOptions(id="chat-options")
            yield Static("", id="chat-list-empty", classes="dialog-detail")
            yield Static(
                Content.styled(hints.chat_list_keys(self.app), "dim"),
                id="chat-list-keys",
            )

    def on_mount(self) -> None:
        self.refresh_list()
        self.query_one(OptionList).focus()

    @property
    def options(self) -> OptionList:
        return self.query_one(OptionList)

    @property
    def search_text(self) -> str:
        return self.query_one("#chat-search", Input).value.strip()

    def refresh_list(self, keep: str | None = None) -> None:
        """Fill the list: every chat grouped by day, or the chats whose messages match."""
        options = self.options
        options.clear_options()
        try:
            text = self.search_text
            rows = self._search_rows(text) if text else self._browse_rows()
        except HistoryError as error:
            self._show_empty(f"Could not read the history: {error}")
            return
        options.add_options(rows)
        chat_ids = [row.id for row in rows if row.id is not None]
        if not chat_ids:
            self._show_empty(
                "No chat contains this text." if self.search_text else "No saved chats yet."
            )
            return
        self._show_empty(None)
        wanted = keep if keep in chat_ids else chat_ids[0]
        options.highlighted = options.get_option_index(wanted or chat_ids[0])

    def _browse_rows(self) -> list[Option]:
        rows: list[Option] = []
        today = datetime.now().astimezone()
        last_day = None
        for info in self._history.list_chats():
            self._titles[info.id] = info.title
            self._counts[info.id] = info.message_count
            day = day_label(info.updated, today)
            if day != last_day:
                rows.append(Option(Content.styled(day, "bold"), disabled=True))
                last_day = day
            rows.append(Option(chat_row(info, info.id == self._current_id), id=info.id))
        return rows

    def _search_rows(self, text: str) -> list[Option]:
        rows: list[Option] = []
        seen: set[str] = set()
        for hit in self._history.search(text):
            if hit.conversation_id in seen:
                continue  # one row per chat: its newest matching message
            seen.add(hit.conversation_id)
            self._titles[hit.conversation_id] = hit.title
            current = hit.conversation_id == self._current_id
            rows.append(Option(hit_row(hit, current), id=hit.conversation_id))
        return rows

    def _show_empty(self, text: str | None) -> None:
        empty = self.query_one("#chat-list-empty", Static)
        empty.update(plain(text or ""))
        empty.display = text is not None

    @property
    def chosen_id(self) -> str | None:
        options = self.options
        if options.highlighted is None:
            return None
        return options.get_option_at_index(options.highlighted).id

    # -- events ----------------------------------------------------------------------------

    @on(Input.Changed, "#chat-search")
    def _search_changed(self) -> None:
        self.refresh_list()

    @on(Input.Submitted, "#chat-search")
    def _search_submitted(self) -> None:
        self.options.focus()

    def on_key(self, event: Key) -> None:
        # Down from the search field goes to the results.
        if event.key == "down" and self.query_one("#chat-search", Input).has_focus:
            event.stop()
            self.options.focus()

    @on(OptionList.OptionSelected)
    def _open(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.dismiss(event.option.id)

    def action_close(self) -> None:
        self.dismiss(None)

    def action_focus_search(self) -> None:
        self.query_one("#chat-search", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Typing "r", "d" or "/" into the search field types them.
        if action in ("rename", "delete", "focus_search"):
            return not self.query_one("#chat-search", Input).has_focus
        return True

    def action_rename(self) -> None:
        chat_id = self.chosen_id
        if chat_id is None:
            return

        def attempt(title: str) -> str | None:
            try:
                self._history.rename(chat_id, title)
            except HistoryError as error:
                return str(error)
            return None

        async def renamed(title: str | None) -> None:
            if title is not None:
                clean = " ".join(title.split())
                self.refresh_list(keep=chat_id)
                await self._changed(chat_id, clean)
                self.notify(f"Renamed to {sentence(single_line(clean, 50))}", markup=False)

        self.app.push_screen(RenameScreen(self._titles.get(chat_id, ""), attempt), renamed)

    def action_delete(self) -> None:
        chat_id = self.chosen_id
        if chat_id is None:
            return
        title = self._titles.get(chat_id, "") or "untitled chat"
        count = self._counts.get(chat_id)

        async def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self._history.delete(chat_id)
            except HistoryError as error:
                self.notify(f"Not deleted: {error}", severity="error", markup=False)
                return
            self.refresh_list()
            await self._changed(chat_id, None)
            self.notify(f"Deleted {sentence(single_line(title, 50))}", markup=False)

        self.app.push_screen(ConfirmDeleteScreen(title, count), confirmed)


class RenameScreen(ModalScreen[str | None]):
    """A new title for a chat; the error (an empty title) is shown in place."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str, attempt: Callable[[str], str | None]) -> None:
        super().__init__(classes="dialog-screen")
        self._title = title
        self._attempt = attempt

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="rename-dialog"):
            yield Static(Content.styled("Rename chat", "bold"), classes="dialog-title")
            yield VisibleInput(strip_for_input(self._title), id="rename-title", placeholder="Title")
            yield Static("", id="rename-error", classes="dialog-error")
            yield Static(Content.styled("Enter rename · Esc cancel", "dim"))

    def on_mount(self) -> None:
        self.query_one("#rename-error").display = False
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _save(self) -> None:
        title = self.query_one(Input).value
        problem = self._attempt(title)
        if problem is None:
            self.dismiss(title)
            return
        error = self.query_one("#rename-error", Static)
        error.update(plain(problem))
        error.display = True

    def action_cancel(self) -> None:
        self.dismiss(None)


def strip_for_input(text: str) -> str:
    """A title as the start of a new one: one line, control characters removed (not escaped:
    what the user submits here is stored, and should not keep them or their escapes)."""
    line = " ".join(strip_control(text).split())
    return line if len(line) <= 200 else line[:199] + "…"


class ConfirmDeleteScreen(ModalScreen[bool]):
    """Asks before deleting a chat; Cancel has the focus, so Enter alone deletes nothing."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def __init__(self, title: str, message_count: int | None) -> None:
        super().__init__(classes="dialog-screen")
        self._title = title
        self._count = message_count

    def compose(self) -> ComposeResult:
        count = f" and its {self._count} messages" if self._count is not None else ""
        with Vertical(classes="dialog", id="confirm-delete-dialog"):
            yield Static(Content.styled("Delete this chat?", "bold"), classes="dialog-title")
            yield Static(
                plain(f"'{single_line(self._title, 50)}'{count} will be deleted for good.")
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Delete", id="confirm-delete", variant="error", compact=True)
                yield Button("Cancel", id="confirm-cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#confirm-cancel").focus()

    @on(Button.Pressed)
    def _chosen(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-delete")

    def action_cancel(self) -> None:
        self.dismiss(False)
