"""Reproducing a recorded reply: the plan (what it was, how far to run) and the verdict shown
once the new text can be compared with the old one.

The action that starts a reproduction is in :mod:`leverchat.ui.versions`: the reproduction
becomes a new version of the reply's turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from leverchat.chat import Message, MessageStatus, ReplyProvenance
from leverchat.replay import compare_texts
from leverchat.ui.widgets.messages_view import Notice

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


@dataclass(frozen=True)
class ReplayPlan:
    """Reproducing a recorded reply: what it was, to compare the new text with."""

    original_id: str
    original_text: str
    original_complete: bool
    provenance: ReplyProvenance
    stop_after_tokens: int | None


def replay_plan(target: Message, recorded: ReplyProvenance) -> ReplayPlan:
    """How to reproduce ``target``, a reply that ``recorded`` (with a seed) produced."""
    # A reply cut short (stopped, or saved at a hangup) is reproduced to the same length.
    cut = target.status in (MessageStatus.STOPPED, MessageStatus.INTERRUPTED)
    stopped = cut and recorded.stats.new_tokens > 0
    return ReplayPlan(
        original_id=target.id,
        original_text=target.content,
        original_complete=target.status is MessageStatus.COMPLETE,
        provenance=recorded,
        stop_after_tokens=recorded.stats.new_tokens if stopped else None,
    )


async def report_reproduction(
    screen: ChatScreen, plan: ReplayPlan, text: str, provenance: ReplyProvenance
) -> None:
    """Say in the transcript (and a toast) whether the reproduction matched the original."""
    comparison = compare_texts(plan.original_text, text, original_complete=plan.original_complete)
    verdict = comparison.describe(plan.original_text, text)
    if plan.provenance.model and plan.provenance.model != provenance.model:
        verdict += f" (recorded with {plan.provenance.model}, reproduced with {provenance.model})"
    await screen.chat.add(
        Notice(verdict, error=not (comparison.identical or comparison.prefix_only))
    )
    screen.notify(verdict, markup=False, timeout=8)
