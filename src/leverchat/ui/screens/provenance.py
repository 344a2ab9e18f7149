"""How one reply was made: profile, system prompt, levers, seed, changes during it, speed."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from leverchat.chat import ReplyProvenance
from leverchat.levers import LEVER_SPECS
from leverchat.remote_record import describe_remote
from leverchat.safetext import plain
from leverchat.ui.lever_tokens import TOKEN_LEVERS, describe
from leverchat.ui.widgets.lever_field import format_lever_value


def provenance_lines(provenance: ReplyProvenance) -> list[str]:
    """The provenance as plain lines (shown literally; names come from files)."""
    stats = provenance.stats
    lines = [
        f"Model:           {provenance.model or 'unknown'}",
        f"Profile:         {provenance.profile}",
        f"Seed:            {provenance.seed if provenance.seed is not None else 'none'}",
        "Stopped by:      "
        + (provenance.stop_reason.description if provenance.stop_reason else "unknown"),
        f"Speed:           {stats.tokens_per_s:.1f} tokens/s, first token after "
        f"{stats.time_to_first_token_s:.2f} s",
        f"Tokens:          {stats.prompt_tokens} in the prompt "
        f"({stats.reused_prefix_tokens} reused from cache), {stats.new_tokens} generated",
    ]
    if stats.context_window:
        lines.append(f"Context window:  {stats.context_window}")
    if stats.trimmed_messages:
        lines.append(f"Trimmed:         {stats.trimmed_messages} oldest messages left out")
    if provenance.prompt_format:
        lines.append(f"Prompt format:   {provenance.prompt_format}")
    if provenance.format_stops:
        stops = ", ".join(repr(stop) for stop in provenance.format_stops)
        lines.append(f"Format stops:    {stops} (the prompt format's own)")
    if provenance.error:
        lines.append(f"Error:           {provenance.error}")
    for notice in provenance.notices:
        lines.append(f"Notice:          {notice}")
    if provenance.branch is not None:
        given = len(provenance.branch.prefix_ids)
        lines.append(
            f"Branched:        {provenance.branch.where()}, continued from "
            + (f"{given} given tokens" if given else "the given text")
        )
    lines.append("")
    lines.append("Levers at the start:")
    for spec in LEVER_SPECS:
        raw = getattr(provenance.levers, spec.name)
        if spec.more and raw == spec.neutral:
            continue  # "More levers" at their neutral value changed nothing: kept short
        value = format_lever_value(spec, raw) or "unset"
        lines.append(f"  {spec.name:<22} {value}")
    phrases = [item for item in provenance.lever_tokens if item.lever in TOKEN_LEVERS]
    if phrases:
        lines.append("")
        lines.append("Phrases as tokens (a boost goes on each form's first token):")
        lines.extend("  " + line for line in describe(phrases))
    if provenance.lever_changes:
        lines.append("")
        lines.append("Changed while it was written:")
        for change in provenance.lever_changes:
            values = ", ".join(
                f"{name} = {getattr(change.levers, name)!r}" for name in change.changed
            )
            lines.append(f"  from token {change.token_index}: {values}")
    if provenance.remote is not None:
        lines.append("")
        lines.extend(describe_remote(provenance.remote))
    lines.append("")
    lines.append("System prompt:")
    lines.append(provenance.system_prompt or "(none)")
    return lines


class ProvenanceScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,i,f3", "close", "Close", show=False)]

    def __init__(self, provenance: ReplyProvenance) -> None:
        super().__init__(classes="dialog-screen")
        self._provenance = provenance

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="provenance-dialog"):
            yield Static(Content.styled("How this reply was made", "bold"), classes="dialog-title")
            yield Static(plain("\n".join(provenance_lines(self._provenance))))
            yield Static(Content.styled("Escape closes", "dim"))

    def action_close(self) -> None:
        self.dismiss(None)
