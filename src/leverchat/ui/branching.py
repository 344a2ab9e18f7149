"""Branch a reply from one of its tokens, and open a branch from the version tree.

A branch keeps the reply's first tokens, puts other text in place of the next one (an
alternative from the token inspector's table, or the user's own text) and lets the model
continue from there with the *current* levers. The result is a new version of the reply (the
same parent), so the old one is kept; its provenance records the version it came from and
where (branch.BranchPoint), which makes the versions of a turn a tree (F7 shows it).

Two ways in: the inspector posts :class:`BranchRequested` (a token index, with the token ids
known from its records), and "Branch at…" (a key on a focused reply, or the palette) asks for
a character position and the text to put there, for any reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from leverchat.branch import BranchPoint, BranchStart
from leverchat.chat import Message
from leverchat.engine.inspection import TokenInspection
from leverchat.engine.types import ReplyPrefix
from leverchat.history import HistoryError
from leverchat.safetext import single_line
from leverchat.ui import hints, reply_lifecycle, saved_chats
from leverchat.ui.branch_request import BranchRequested

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


async def branch_from_token(screen: ChatScreen, request: BranchRequested) -> None:
    """The inspector asked to continue ``request.reply_id`` from its token ``token_index``."""
    target = _branchable(screen, request.reply_id)
    if target is None:
        return
    ids, texts = token_records(screen, target)
    if request.token_index < 0:
        screen.notify(f"There is no token {request.token_index} to branch at.")
        return
    if ids is None or request.token_index > min(len(ids), len(texts)):
        screen.notify(
            "This reply's tokens were not recorded (it was written with the inspector off): "
            "use Branch at… to pick a position by character.",
            severity="warning",
        )
        return
    kept_ids = tuple(ids[: request.token_index])
    offset = _kept_length(target.content, texts[: request.token_index])
    kept_text = target.content[:offset]
    if request.token_id is not None:
        prefix = ReplyPrefix(kept_text + request.text, token_ids=(*kept_ids, request.token_id))
    else:
        # The user's own text is tokenized as it stands, after the exact kept tokens.
        prefix = ReplyPrefix(kept_text + request.text, token_ids=kept_ids, tail=request.text)
    if not prefix.token_ids:
        prefix = ReplyPrefix(prefix.text)  # at token 0 with typed text: only text to encode
    point = BranchPoint(
        source_id=target.id,
        char_offset=offset,
        text=request.text,
        token_index=request.token_index,
        prefix=prefix.text,
    )
    await start_branch(screen, target, BranchStart(point, prefix))


async def branch_at_offset(screen: ChatScreen, reply_id: str, offset: int, text: str) -> None:
    """Continue ``reply_id`` from its first ``offset`` characters followed by ``text``."""
    target = _branchable(screen, reply_id)
    if target is None:
        return
    offset = max(0, min(offset, len(target.content)))
    kept_text = target.content[:offset]
    ids, texts = token_records(screen, target)
    token_index = _token_at(texts, offset) if ids is not None else None
    if ids is not None and token_index is not None:
        # The exact tokens the model wrote up to there, then the new text tokenized.
        prefix = ReplyPrefix(kept_text + text, token_ids=tuple(ids[:token_index]), tail=text)
        if not prefix.token_ids:
            prefix = ReplyPrefix(prefix.text)
    else:
        # No token ids (or a cut inside a token): the kept text is tokenized again with the
        # new text. That is faithful when the model's tokens were the tokenizer's own split of
        # its text, the usual case for byte-level BPE; a model can also write a word in other
        # pieces (" A" + "rr" where the tokenizer says " Arr"), and then the continuation
        # sees the tokenizer's pieces, so it may differ from what the original would have
        # said there. A remote server gets text in any case.
        prefix = ReplyPrefix(kept_text + text)
    point = BranchPoint(
        source_id=target.id,
        char_offset=offset,
        text=text,
        token_index=token_index,
        prefix=prefix.text,
    )
    await start_branch(screen, target, BranchStart(point, prefix))


async def start_branch(screen: ChatScreen, target: Message, branch: BranchStart) -> None:
    """Run ``branch`` as a new version of ``target`` (the old version stays one)."""
    index = screen.conversation.messages.index(target)
    # As for a reproduction: the chat continues from the new version, and what followed the
    # old one stays on its branch.
    screen.conversation = replace(
        screen.conversation, messages=screen.conversation.messages[:index]
    )
    await saved_chats.render_conversation(screen)
    screen.notify(
        f"Branching the reply {single_line(branch.point.where(), 60)}…", markup=False, timeout=3
    )
    await reply_lifecycle.start_reply(screen, new_seed=False, branch=branch)


def token_records(
    screen: ChatScreen, message: Message
) -> tuple[Sequence[int] | None, Sequence[str]]:
    """The reply's token ids and their texts, when known (else None and ()).

    From the token inspector's records in the history; else from the last result when this
    reply is the one it produced (its token ids are in memory until the next reply).
    """
    records: tuple[TokenInspection, ...] = ()
    if screen.history.is_saved(screen.conversation.id):
        try:
            records = screen.history.read(lambda store: store.inspection(message.id))
        except HistoryError:
            records = ()
    if records and all(item.token_id is not None for item in records):
        return [int(item.token_id or 0) for item in records], [item.text for item in records]
    last = screen.last_result
    if last is not None and last.token_ids and last.text == message.content:
        if last.inspection and len(last.inspection) == len(last.token_ids):
            return list(last.token_ids), [item.text for item in last.inspection]
        return list(last.token_ids), ()
    return None, ()


def _kept_length(content: str, texts: Sequence[str]) -> int:
    """How many characters of ``content`` the kept tokens (their ``texts``) wrote.

    A token's own text is "\\ufffd" where it holds part of a character; the offset then ends
    where the texts stop matching the reply, before that character.
    """
    joined = "".join(texts)
    if content.startswith(joined):
        return len(joined)
    index = 0
    limit = min(len(joined), len(content))
    while index < limit and joined[index] == content[index]:
        index += 1
    return index


def _token_at(texts: Sequence[str], offset: int) -> int | None:
    """The index of the token that starts at character ``offset`` (None: inside a token, or
    the token texts are not known)."""
    if not texts:
        return None
    position = 0
    for index, text in enumerate(texts):
        if position == offset:
            return index
        position += len(text)
    return len(texts) if position == offset else None


def _branchable(screen: ChatScreen, reply_id: str) -> Message | None:
    """The reply to branch, if it can be branched now (else a notice says why)."""
    if screen._reply is not None:
        screen.notify(hints.busy(screen.app))
        return None
    if screen.model_info is None:
        screen.notify("Wait for the model to load, then branch.")
        return None
    for message in screen.conversation.messages:
        if message.id == reply_id and message.role == "assistant":
            return message
    screen.notify("That reply is not in the chat shown now; open its version first.")
    return None


async def open_version(screen: ChatScreen, message_id: str | None) -> None:
    """The version tree chose ``message_id``: the chat continues from it."""
    if message_id is None:
        return
    conversation = screen.history.select_version(message_id)
    if conversation is None:
        return
    screen.conversation = conversation
    await saved_chats.render_conversation(screen, focus_id=message_id)
    message = next((m for m in conversation.messages if m.id == message_id), None)
    if message is not None:
        screen.notify(
            f"Version {message.version}/{message.version_count}: the chat continues from it.",
            timeout=2,
        )
