"""The one-line status bar: model, profile, speed, context, seed and stop reason."""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.widgets import Static

from leverchat.engine.types import GenerationResult
from leverchat.safetext import single_line

_SEPARATOR = Content.styled(" · ", "dim")
_COMPACT_SEPARATOR = Content.styled("│", "dim")


@dataclass(frozen=True)
class StatusState:
    model: str = "no model"
    device: str = ""
    # The loaded model's quantisation (ModelInfo.quantization); "none" and "" show nothing.
    quantization: str = ""
    loading: str | None = None
    load_failed: bool = False
    profile: str = ""
    modified: bool = False
    streaming: bool = False
    last: GenerationResult | None = None


class StatusLine(Static):
    """Shows a :class:`StatusState`. Every piece is literal text (names come from files)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.state = StatusState()

    def show(self, state: StatusState) -> None:
        self.state = state
        self._render_state()

    def on_resize(self) -> None:
        self._render_state()

    def _render_state(self) -> None:
        width = self.content_size.width or self.app.size.width
        full = render_status(self.state)
        self.update(full if full.cell_length <= width else render_status(self.state, compact=True))


def render_status(state: StatusState, *, compact: bool = False) -> Content:
    """The status line; ``compact`` uses short labels so an 80-column line keeps every item."""
    parts: list[Content] = []
    if state.loading is not None:
        parts.append(Content.styled("⏳ " + single_line(state.loading, 60), "$warning"))
    elif state.load_failed:
        parts.append(Content.styled("✗ model not loaded", "$error"))
    else:
        model = single_line(state.model, 20 if compact else 30)
        where = " ".join(
            part
            for part in (state.device, _short_quantization(state.quantization, compact))
            if part
        )
        parts.append(Content(f"{model} {where}" if where else model))
    profile = single_line(state.profile, 16 if compact else 24) + (" *" if state.modified else "")
    label = Content("" if compact else "profile ")
    parts.append(label + Content.styled(profile, "bold" if state.modified else ""))
    if state.streaming:
        parts.append(Content("streaming…"))
    last = state.last
    if last is not None:
        stats = last.stats
        if compact:
            parts.append(Content(f"{stats.tokens_per_s:.0f} t/s"))
            parts.append(Content(f"ttft {stats.time_to_first_token_s:.2f}s"))
        else:
            parts.append(Content(f"{stats.tokens_per_s:.1f} tok/s"))
            parts.append(Content(f"TTFT {stats.time_to_first_token_s:.2f} s"))
        if stats.context_window:
            used = stats.prompt_tokens + stats.new_tokens
            parts.append(Content(f"ctx {used}/{stats.context_window}"))
        parts.append(Content(f"seed {last.seed}"))
        parts.append(Content(last.stop_reason.description))
    return (_COMPACT_SEPARATOR if compact else _SEPARATOR).join(parts)


def _short_quantization(quantization: str, compact: bool) -> str:
    """ "int8 weight-only" -> "int8" (the provenance screen has the full label)."""
    if not quantization or quantization == "none":
        return ""
    return single_line(quantization.split(" ", 1)[0] if compact else quantization, 30)
