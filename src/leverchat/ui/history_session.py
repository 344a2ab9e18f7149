"""The chat screen's link to the history database: never fatal, never in the way.

A database that is refused when opened (newer leverchat, damaged, not ours) or a write that
fails later turns saving off for this run: the user is told once, the chat goes on in memory,
and the file is never touched again by this process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from leverchat.chat import Conversation, Message, MessageStatus, ReplyProvenance
from leverchat.engine.inspection import TokenInspection
from leverchat.history import ConversationInfo, HistoryError, HistoryStore, SearchHit
from leverchat.history_rows import SkippedRecord
from leverchat.levers import Levers
from leverchat.wording import sentence

_T = TypeVar("_T")

OFF_ADVICE = "This chat is kept in memory only and will not be saved."


class HistorySession:
    """Wraps one :class:`HistoryStore` (or none) for the UI thread."""

    def __init__(self, store: HistoryStore | None, problem: str | None = None) -> None:
        self.store = store
        self.problem = problem
        # Called with a message when saving stops working (the screen shows it).
        self.on_problem: Callable[[str], None] | None = None
        self._saved_chats: set[str] = set()

    @classmethod
    def open(cls, path: Path | None = None) -> HistorySession:
        try:
            return cls(HistoryStore(path))
        except HistoryError as error:
            return cls(None, f"History is off: {sentence(str(error))} {OFF_ADVICE}")

    @classmethod
    def disabled(cls) -> HistorySession:
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def _call(self, what: Callable[[HistoryStore], _T]) -> _T | None:
        store = self.store
        if store is None:
            return None
        try:
            return what(store)
        except HistoryError as error:
            self._turn_off(f"History stopped saving: {sentence(str(error))} {OFF_ADVICE}")
            return None

    def _turn_off(self, problem: str) -> None:
        # One failure turns saving off: later writes would fail the same way or leave a
        # half-saved chat (a reply without its message).
        self.store = None
        self.problem = problem
        if self.on_problem is not None:
            self.on_problem(problem)

    # -- reads (a failure is reported by the caller, saving stays on) ------------------------

    def read(self, what: Callable[[HistoryStore], _T]) -> _T:
        """Run a read; HistoryError propagates for the caller to show."""
        if self.store is None:
            raise HistoryError(self.problem or f"History is off. {OFF_ADVICE}")
        return what(self.store)

    def load(
        self, chat_id: str
    ) -> tuple[Conversation, ConversationInfo, tuple[SkippedRecord, ...]]:
        """The chat, its settings, and the messages left out as unreadable (to be shown)."""

        def load(
            store: HistoryStore,
        ) -> tuple[Conversation, ConversationInfo, tuple[SkippedRecord, ...]]:
            conversation, skipped = store.read_conversation(chat_id)
            # Lenient: a damaged setting must not keep the whole chat closed; it is said.
            info = store.get_info(chat_id, lenient=True)
            if info.problem is not None:
                note = SkippedRecord(
                    "chat",
                    chat_id,
                    chat_id,
                    f"some stored settings cannot be read ({info.problem}); "
                    "those are left at their defaults",
                    kept=True,
                )
                skipped = (note, *skipped)
            return conversation, info, skipped

        return self.read(load)

    def list_chats(self) -> list[ConversationInfo]:
        return self.read(lambda store: store.list_conversations())

    def search(self, text: str) -> list[SearchHit]:
        return self.read(lambda store: store.search(text, limit=200))

    def versions(self, message_id: str) -> tuple[Message, ...]:
        return self.read(lambda store: store.versions(message_id))

    # -- writes ------------------------------------------------------------------------------

    def ensure_chat(
        self, conversation: Conversation, profile: str, system_prompt: str, levers: Levers
    ) -> None:
        """Create the chat row at its first message (opening and quitting leaves nothing)."""
        if conversation.id in self._saved_chats or self.store is None:
            return

        def create(store: HistoryStore) -> None:
            try:
                store.get_info(conversation.id)
            except HistoryError:
                store.create_conversation(
                    conversation_id=conversation.id,
                    profile=profile,
                    system_prompt=system_prompt,
                    levers=levers,
                )

        self._call(create)
        if self.store is not None:
            self._saved_chats.add(conversation.id)

    def known(self, chat_id: str) -> None:
        """``chat_id`` is already stored (a resumed chat)."""
        self._saved_chats.add(chat_id)

    def is_saved(self, chat_id: str) -> bool:
        return self.store is not None and chat_id in self._saved_chats

    def add_user_message(
        self, chat_id: str, message: Message, parent_id: str | None
    ) -> Message | None:
        return self._call(
            lambda store: store.add_user_message(
                chat_id, message.content, parent_id=parent_id, message_id=message.id
            )
        )

    def start_reply(
        self, chat_id: str, reply_id: str, parent_id: str, provenance: ReplyProvenance
    ) -> Message | None:
        return self._call(
            lambda store: store.start_reply(
                chat_id, parent_id=parent_id, provenance=provenance, message_id=reply_id
            )
        )

    def update_reply(self, reply_id: str, text: str) -> None:
        self._call(lambda store: store.update_reply(reply_id, text))

    def finish_reply(
        self, reply_id: str, text: str, status: MessageStatus, provenance: ReplyProvenance
    ) -> None:
        self._call(
            lambda store: store.finish_reply(reply_id, text, status=status, provenance=provenance)
        )

    def save_inspection(self, reply_id: str, items: Sequence[TokenInspection]) -> None:
        """Store the token inspector's records of a finished reply."""
        self._call(lambda store: store.save_inspection(reply_id, items))

    def set_settings(self, chat_id: str, profile: str, system_prompt: str, levers: Levers) -> None:
        self._call(
            lambda store: store.set_conversation_settings(
                chat_id, profile=profile, system_prompt=system_prompt, levers=levers
            )
        )

    def select_version(self, message_id: str) -> Conversation | None:
        return self._call(lambda store: store.select_version(message_id))

    def rename(self, chat_id: str, title: str) -> None:
        """Raises HistoryError (an empty title): the dialog shows it."""
        self.read(lambda store: store.rename_conversation(chat_id, title))

    def delete(self, chat_id: str) -> bool:
        deleted = self.read(lambda store: store.delete_conversation(chat_id))
        self._saved_chats.discard(chat_id)
        return deleted
