"""The token inspector on the chat screen: turning it on, tinting replies, the token cursor.

While it is on, each new reply is generated with ``GenerationRequest.inspect`` =
:data:`DEFAULT_TOP_N` and its records are saved in the history when it finishes; off, requests
keep ``inspect = 0`` and nothing here runs. Every reply that has records (generated here with
it on, or opened from a saved chat) is drawn as tinted tokens; a reply without them keeps its
Markdown and, asked to be inspected, says why it has nothing to show.

The records of a reply are read once (from memory, else from the history) and kept by reply
id: a reply's id never gets other records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.content import Content
from textual.geometry import Region

from leverchat.engine.inspection import DEFAULT_TOP_N, TokenInspection
from leverchat.engine.types import GenerationResult
from leverchat.history import HistoryError
from leverchat.ui import inspector_tints
from leverchat.ui.hints import key_of
from leverchat.ui.token_rows import is_remote
from leverchat.ui.widgets import tinted_reply
from leverchat.ui.widgets.messages_view import ReplyView
from leverchat.ui.widgets.token_table import InspectorPanel

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


class Inspector:
    """The screen's token inspector: on or off, the records it knows, the cursor's reply."""

    def __init__(self, screen: ChatScreen) -> None:
        self._screen = screen
        self.on = False
        self._records: dict[str, tuple[TokenInspection, ...]] = {}

    @property
    def panel(self) -> InspectorPanel:
        return self._screen.query_one(InspectorPanel)

    def top_n(self) -> int:
        """What a new request asks for: the top N alternatives per token, or 0 (off)."""
        return DEFAULT_TOP_N if self.on else 0

    # -- on and off ------------------------------------------------------------------------

    def toggle(self) -> None:
        self.set_on(not self.on)
        screen = self._screen
        if self.on:
            screen.notify(
                f"Token inspector on: new replies record the top {DEFAULT_TOP_N} alternatives "
                f"of every token. {key_of(screen.app, 'inspect_tokens')} moves token by token "
                f"through the focused or last reply; {key_of(screen.app, 'inspect')} turns it "
                "off.",
                markup=False,
                timeout=6,
            )
        else:
            screen.notify("Token inspector off: replies show as Markdown again.", markup=False)

    def set_on(self, on: bool) -> None:
        self.on = on
        panel = self.panel
        if not on and panel.in_cursor_mode:
            panel.close()
            self._screen.prompt.focus()
        panel.set_on(on)
        self.retint_all()

    # -- records ---------------------------------------------------------------------------

    def records(self, reply_id: str) -> tuple[TokenInspection, ...]:
        """The reply's records: from this session, else from the history (empty: none)."""
        known = self._records.get(reply_id)
        if known is not None:
            return known
        history = self._screen.history
        if not history.enabled:
            return ()
        try:
            found = history.read(lambda store: store.inspection(reply_id))
        except HistoryError:
            return ()  # the records are extra: the reply still shows as Markdown
        self._records[reply_id] = found
        return found

    def reply_ended(self, reply_id: str, result: GenerationResult | None, saved: bool) -> None:
        """A reply finished: keep its records, save them with it, and tint it."""
        panel = self.panel
        if panel.reply_id is not None and self._screen.chat.reply(panel.reply_id) is None:
            panel.close()  # the reply under the cursor was regenerated away
        if result is None or not result.inspection:
            return
        self._records[reply_id] = result.inspection
        if saved:
            self._screen.history.save_inspection(reply_id, result.inspection)
        view = self._screen.chat.reply(reply_id)
        if self.on and view is not None:
            self._tint(view, None)

    # -- drawing ---------------------------------------------------------------------------

    def retint_all(self) -> None:
        """Tint every reply with records (on), or give each its Markdown back (off)."""
        screen = self._screen
        panel = self.panel
        if panel.in_cursor_mode and (
            panel.reply_id is None or screen.chat.reply(panel.reply_id) is None
        ):
            panel.close()  # its reply left the transcript (a new chat, another version)
        styles = inspector_tints.tint_styles(screen.app.theme_variables)
        remote = False
        for view in screen.query(ReplyView):
            if not self.on:
                tinted_reply.hide(view)
                continue
            records = self.records(view.reply_id)
            if records:
                remote = remote or is_remote(records[0])
                cursor = panel.index if panel.reply_id == view.reply_id else None
                tinted_reply.show(view, inspector_tints.tinted_content(records, styles, cursor))
        panel.show_legend(inspector_tints.legend(styles, remote=remote))

    def _tint(self, view: ReplyView, cursor: int | None) -> tinted_reply.TintedBody | None:
        records = self.records(view.reply_id)
        if not records:
            return None
        styles = inspector_tints.tint_styles(self._screen.app.theme_variables)
        self.panel.show_legend(inspector_tints.legend(styles, remote=is_remote(records[0])))
        content = inspector_tints.tinted_content(records, styles, cursor)
        return tinted_reply.show(view, content)

    # -- the token cursor ------------------------------------------------------------------

    def enter_cursor(self) -> None:
        """Cursor mode on the focused (or last) reply."""
        from leverchat.ui.versions import target_message

        screen = self._screen
        target = target_message(screen, "assistant")
        if target is None or target.role != "assistant":
            screen.notify("There is no reply to inspect yet.", markup=False)
            return
        if screen._reply is not None and screen._reply.reply_id == target.id:
            screen.notify("Wait for the reply to finish, then inspect it.", markup=False)
            return
        records = self.records(target.id)
        if not records:
            screen.notify(
                "This reply was generated with the token inspector off, so it has no token "
                f"data. Turn the inspector on ({key_of(screen.app, 'inspect')}), then "
                f"regenerate ({key_of(screen.app, 'regenerate')}) or reproduce "
                f"({key_of(screen.app, 'reproduce')}) the reply to inspect it.",
                severity="warning",
                markup=False,
                timeout=8,
            )
            return
        if not self.on:
            self.set_on(True)
        self.panel.open(target.id, records)

    def cursor_moved(self, reply_id: str, index: int) -> None:
        view = self._screen.chat.reply(reply_id)
        if view is None:
            self.panel.close()
            return
        body = self._tint(view, index)
        if body is not None:
            self._scroll_to_token(body, reply_id, index)

    def cursor_left(self, reply_id: str) -> None:
        view = self._screen.chat.reply(reply_id)
        if view is None:
            self._screen.prompt.focus()
            return
        self._tint(view, None)
        view.focus()

    def theme_changed(self) -> None:
        if self.on:
            self.retint_all()

    def _scroll_to_token(self, body: tinted_reply.TintedBody, reply_id: str, index: int) -> None:
        """Keep the cursor's line in view (after the body's next layout)."""

        def scroll() -> None:
            if not body.is_mounted:
                return
            records = self.records(reply_id)
            offset = inspector_tints.cursor_offset(records, index)
            width = max(body.content_region.width, 1)
            before = Content("".join(inspector_tints.token_spans(records[:index])))
            line = max(len(before.wrap(width)) - 1, 0) if offset else 0
            region = body.region
            chat = self._screen.chat
            y = region.y - chat.region.y + int(chat.scroll_y) + line
            chat.scroll_to_region(Region(0, y, 1, 1), animate=False, immediate=True)

        self._screen.call_after_refresh(scroll)
