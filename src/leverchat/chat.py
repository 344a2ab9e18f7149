"""A conversation as pure, immutable data (no Textual, no torch, no SQLite).

Every change returns a new :class:`Conversation`, so the UI can hand a snapshot to the engine
thread or the history store without locks.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum

from leverchat.branch import BranchPoint
from leverchat.engine.types import (
    ChatMessage,
    LeverChange,
    LeverTokens,
    RemoteProvenance,
    Role,
    Stats,
    StopReason,
)
from leverchat.levers import Levers


def new_id() -> str:
    return uuid.uuid4().hex


class MessageStatus(StrEnum):
    COMPLETE = "complete"
    STREAMING = "streaming"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class ReplyProvenance:
    """Everything that produced one assistant reply, so it can be explained and reproduced."""

    model: str
    profile: str
    system_prompt: str
    levers: Levers
    seed: int | None = None
    lever_changes: tuple[LeverChange, ...] = ()
    stats: Stats = field(default_factory=Stats)
    stop_reason: StopReason | None = None
    error: str | None = None
    # A server's reply: where, which model, the exact values sent (None: the local engine).
    remote: RemoteProvenance | None = None
    # Stop strings the prompt format added to the levers' own (the instruction format's).
    format_stops: tuple[str, ...] = ()
    # The prompt format the reply was asked in, in words ("" when not known).
    prompt_format: str = ""
    # A version continued from another version's tokens: which, where, and from what start.
    branch: BranchPoint | None = None
    # What its banned and boosted phrases became in the tokenizer.
    lever_tokens: tuple[LeverTokens, ...] = ()
    # What the engine said about it (a structured-output change it could not apply mid-reply).
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Message:
    role: Role
    content: str
    id: str = field(default_factory=new_id)
    status: MessageStatus = MessageStatus.COMPLETE
    provenance: ReplyProvenance | None = None
    # Alternatives: this message is version ``version`` (1-based) of ``version_count`` versions
    # that answer the same earlier message (regenerated replies, edited user messages).
    # HistoryStore fills these when it loads a conversation; new messages are 1 of 1.
    version: int = 1
    version_count: int = 1


@dataclass(frozen=True)
class Conversation:
    """An ordered list of user and assistant messages; the system prompt lives beside them."""

    messages: tuple[Message, ...] = ()
    id: str = field(default_factory=new_id)
    title: str = ""

    def with_user(self, text: str) -> Conversation:
        title = self.title or _title_from(text)
        return replace(self, messages=(*self.messages, Message("user", text)), title=title)

    def with_reply(
        self,
        text: str,
        *,
        status: MessageStatus = MessageStatus.COMPLETE,
        provenance: ReplyProvenance | None = None,
        message_id: str | None = None,
    ) -> Conversation:
        """Add an assistant reply, or update the one with ``message_id`` (a streaming reply)."""
        if message_id is not None:
            for index, message in enumerate(self.messages):
                if message.id == message_id:
                    updated = replace(message, content=text, status=status, provenance=provenance)
                    messages = (*self.messages[:index], updated, *self.messages[index + 1 :])
                    return replace(self, messages=messages)
        reply = Message(
            "assistant",
            text,
            id=message_id or new_id(),
            status=status,
            provenance=provenance,
        )
        return replace(self, messages=(*self.messages, reply))

    def with_message(self, message: Message) -> Conversation:
        """Append ``message`` as it is (one returned by HistoryStore, with its id and version)."""
        title = self.title
        if not title and message.role == "user":
            title = title_from(message.content)
        return replace(self, messages=(*self.messages, message), title=title)

    def without_last_reply(self) -> Conversation:
        """Drop the trailing assistant reply (to regenerate it)."""
        if self.messages and self.messages[-1].role == "assistant":
            return replace(self, messages=self.messages[:-1])
        return self

    def without_last_exchange(self) -> tuple[Conversation, str | None]:
        """Drop the last user message and anything after it; return its text (to edit it)."""
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index].role == "user":
                return replace(self, messages=self.messages[:index]), self.messages[index].content
        return self, None

    @property
    def last_reply(self) -> Message | None:
        for message in reversed(self.messages):
            if message.role == "assistant":
                return message
        return None

    def to_chat_messages(self, system_prompt: str) -> tuple[ChatMessage, ...]:
        """What the engine sees: the system prompt (if any), then every non-empty turn.

        Failed replies with no text are left out: the model should not see an empty turn.
        """
        out: list[ChatMessage] = []
        if system_prompt.strip():
            out.append(ChatMessage("system", system_prompt))
        for message in self.messages:
            if message.role == "assistant" and not message.content:
                continue
            out.append(ChatMessage(message.role, message.content))
        return tuple(out)


def title_from(text: str, limit: int = 60) -> str:
    """A chat title made from its first user message: one line, at most ``limit`` characters."""
    return _title_from(text, limit)


def _title_from(text: str, limit: int = 60) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
