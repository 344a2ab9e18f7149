"""The A/B screen (F8): choose B, send, watch both replies, keep one.

B is a profile (or the current settings) with, optionally, one lever changed. Enter in the
value box sends the message: A streams, then B, with the same seed, side by side at 100
columns or more and stacked below. Left/right move between the two; Enter keeps the focused
one, F3 or i shows how it was made. Escape stops the replies; pressed again it closes the
screen and keeps A (B stays a version).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.events import Resize
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Input, Select, Static

from leverchat.engine.types import (
    ChatEngine,
    ChatMessage,
    FixedLevers,
    FormatChoice,
    GenerationRequest,
    GenerationResult,
)
from leverchat.levers import SPECS_BY_NAME, random_seed
from leverchat.profiles import Profile, ProfileError
from leverchat.safetext import plain, single_line, visible
from leverchat.sweep import SweepError, format_value, parse_values, resolve_lever, sweepable_levers
from leverchat.ui.ab_compare import (
    ABOutcome,
    ABRecorder,
    ABReply,
    ABSide,
    messages_for,
    provenance,
    side_b_settings,
    what_differed,
)
from leverchat.ui.keymap import binding
from leverchat.ui.replies import ChunkBuffer, ReplySettings
from leverchat.ui.widgets.visible_editors import VisibleInput

TWO_COLUMNS_AT = 100
FLUSH_S = 0.1
_CURRENT = "(current settings)"
_NO_LEVER = "(no lever changed)"


@dataclass(frozen=True)
class ABSetup:
    text: str  # the message to send
    history: tuple[ChatMessage, ...]  # the chat so far, without a system prompt
    a: ReplySettings
    a_format: FormatChoice
    profiles: tuple[str, ...]
    load_profile: Callable[[str], Profile]
    model: str  # for the provenance


class ABPane(Vertical, can_focus=True):
    """One side: its name and settings, the reply as it streams, then what ended it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        binding("ab.keep", "keep"),
        binding("ab.provenance", "provenance"),
        Binding("left", "side(0)", show=False),
        Binding("right", "side(1)", show=False),
    ]

    class Keep(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    class Provenance(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, index: int, label: str) -> None:
        super().__init__(classes="ab-pane", id=f"ab-pane-{index}")
        self.index = index
        self.label = label
        self.text = ""

    def compose(self) -> ComposeResult:
        yield Static(Content.styled(self.label, "bold"), classes="ab-label")
        yield Static(plain("waiting…"), classes="ab-text")
        yield Static("", classes="ab-status")

    def append(self, text: str) -> None:
        self.text += text
        self.query_one(".ab-text", Static).update(plain(self.text))

    def show_status(self, status: str) -> None:
        self.query_one(".ab-status", Static).update(plain(status))

    def action_keep(self) -> None:
        self.post_message(self.Keep(self.index))

    def action_provenance(self) -> None:
        self.post_message(self.Provenance(self.index))

    def action_side(self, index: int) -> None:
        self.screen.query_one(f"#ab-pane-{index}").focus()


class ABScreen(Screen[ABOutcome | None]):
    DEFAULT_CSS = """
    ABScreen { layout: vertical; }
    ABScreen #ab-head { height: auto; padding: 0 1; }
    ABScreen #ab-controls { height: auto; }
    ABScreen #ab-profile { width: 1fr; }
    ABScreen #ab-lever { width: 1fr; }
    ABScreen #ab-value { width: 16; }
    ABScreen #ab-message { height: auto; max-height: 3; color: $text-muted; }
    ABScreen #ab-differ { height: auto; color: $accent; }
    ABScreen #ab-scroll { height: 1fr; }
    ABScreen #ab-grid { layout: grid; grid-size: 1; grid-gutter: 0 1; grid-rows: auto;
        height: auto; }
    ABScreen #ab-grid.-two { grid-size: 2; }
    ABScreen .ab-pane { height: auto; border: round $secondary; padding: 0 1; }
    ABScreen .ab-pane:focus { border: double $accent; }
    ABScreen .ab-status { color: $text-muted; height: auto; }
    ABScreen .ab-text { height: auto; }
    ABScreen #ab-hint { height: auto; padding: 0 1; color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop_or_close", "Stop / close"),
    ]

    def __init__(self, engine: ChatEngine, setup: ABSetup, recorder: ABRecorder) -> None:
        super().__init__(id="ab-screen")
        self.engine = engine
        self.setup = setup
        self._recorder = recorder
        self.replies: list[ABReply] = []
        self.panes: list[ABPane] = []
        self.running = False
        self._request: GenerationRequest | None = None
        self._stopped = False

    def compose(self) -> ComposeResult:
        profiles = [(_CURRENT, _CURRENT)] + [
            (single_line(name, 40), name) for name in self.setup.profiles
        ]
        levers = [(_NO_LEVER, _NO_LEVER)] + [
            (SPECS_BY_NAME[name].label, name) for name in sweepable_levers()
        ]
        with Vertical(id="ab-head"):
            yield Static(
                Content.styled("A/B: A is the current settings; choose B", "bold"),
            )
            yield Static(plain("Message: " + single_line(self.setup.text, 300)), id="ab-message")
            with Horizontal(id="ab-controls"):
                yield Select(profiles, value=_CURRENT, allow_blank=False, id="ab-profile")
                yield Select(levers, value=_NO_LEVER, allow_blank=False, id="ab-lever")
                yield VisibleInput("", placeholder="value", id="ab-value")
            yield Static(plain(what_differed(self.setup.a, self.setup.a)), id="ab-differ")
        with VerticalScroll(id="ab-scroll"):
            yield Vertical(id="ab-grid")
        yield Static(
            plain(
                "Enter in the value box: send · ←/→: A or B · Enter: keep it · "
                "F3: how it was made · Esc: stop, then close (keeps A)"
            ),
            id="ab-hint",
        )

    def on_mount(self) -> None:
        self._columns(self.app.size.width)
        self.query_one("#ab-profile", Select).focus()

    def on_resize(self, event: Resize) -> None:
        self._columns(event.size.width)

    def _columns(self, width: int) -> None:
        # A resize can arrive before the screen has composed its widgets.
        for grid in self.query("#ab-grid"):
            grid.set_class(width >= TWO_COLUMNS_AT, "-two")

    # -- choosing B ----------------------------------------------------------------------

    def side_b(self) -> tuple[ReplySettings, FormatChoice, str]:
        """B's settings from the controls, its prompt format and what to say about its
        profile's model ("" when it names none); raises ValueError with a message to show."""
        name = self.query_one("#ab-profile", Select).value
        profile: Profile | None = None
        if isinstance(name, str) and name != _CURRENT:
            try:
                profile = self.setup.load_profile(name)
            except (ProfileError, OSError) as error:
                raise ValueError(f"profile {name!r} did not load: {error}") from None
        lever_name = self.query_one("#ab-lever", Select).value
        lever: str | None = None
        value: Any = None
        if isinstance(lever_name, str) and lever_name != _NO_LEVER:
            typed = self.query_one("#ab-value", Input).value
            try:
                spec = resolve_lever(lever_name)
                values = parse_values(spec, typed)
            except SweepError as error:
                raise ValueError(str(error)) from None
            if len(values) != 1:
                raise ValueError(f"give one value for {spec.name}, not {len(values)}")
            lever, value = spec.name, values[0]
        b_format = profile.prompt_format if profile is not None else self.setup.a_format
        settings = side_b_settings(self.setup.a, profile, lever, value)
        return settings, b_format, other_model_note(profile)

    @on(Select.Changed, "#ab-lever")
    def _lever_chosen(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value in SPECS_BY_NAME:
            current = getattr(self.setup.a.levers, event.value)
            self.query_one("#ab-value", Input).value = format_value(current)
        self._show_differ()

    @on(Select.Changed, "#ab-profile")
    @on(Input.Changed, "#ab-value")
    def _show_differ(self) -> None:
        try:
            b, _, note = self.side_b()
        except ValueError as error:
            line = f"B: {error}"
        else:
            line = differ_line(self.setup.a, b, note)
        self.query_one("#ab-differ", Static).update(plain(line))

    @on(Input.Submitted, "#ab-value")
    async def _submitted(self) -> None:
        await self.start()

    # -- running -------------------------------------------------------------------------

    async def start(self) -> bool:
        """Send the message to A and B; False (and a notice) when B is not valid."""
        if self.running or self.replies:
            self.notify("This A/B has run: keep one (Enter) or close it (Esc).")
            return False
        try:
            b, b_format, note = self.side_b()
        except ValueError as error:
            self.notify(visible(str(error)), severity="error", markup=False, timeout=8)
            return False
        a = self.setup.a
        # One seed for both, so that the settings are the only difference.
        seed = a.levers.seed if a.levers.seed is not None else random_seed()
        a = ReplySettings(a.profile, a.system_prompt, a.levers.with_value("seed", seed))
        b = ReplySettings(b.profile, b.system_prompt, b.levers.with_value("seed", seed))
        sides = (
            ABSide("A", a, self.setup.a_format, self._messages(a)),
            ABSide("B", b, b_format, self._messages(b)),
        )
        self.replies = [ABReply(side) for side in sides]
        self.query_one("#ab-differ", Static).update(plain(differ_line(a, b, note)))
        for control in self.query("#ab-controls > *"):
            control.disabled = True
        self.running = True
        await self._recorder.begin()
        self.panes = [
            ABPane(index, f"{side.name} · {_describe(side.settings)} · seed {seed}")
            for index, side in enumerate(sides)
        ]
        await self.query_one("#ab-grid").mount_all(self.panes)
        self.panes[0].focus()
        self._run()
        return True

    def _messages(self, settings: ReplySettings) -> tuple[ChatMessage, ...]:
        return messages_for(self.setup.history, settings.system_prompt, self.setup.text)

    @work(exclusive=True, group="ab")
    async def _run(self) -> None:
        try:
            for pane, reply in zip(self.panes, self.replies, strict=True):
                if self._stopped:
                    pane.show_status("not run: stopped")
                    continue
                await self._run_side(pane, reply)
        finally:
            self.running = False
            self._request = None

    async def _run_side(self, pane: ABPane, reply: ABReply) -> None:
        side = reply.side
        request = GenerationRequest(
            side.messages, FixedLevers(side.settings.levers), prompt_format=side.prompt_format
        )
        self._request = request
        buffer = ChunkBuffer()
        pane.append("")
        self._recorder.started(reply)
        future = self.engine.generate(request, buffer.append)
        while not future.done():
            await asyncio.sleep(FLUSH_S)
            text = buffer.drain()
            if text:
                pane.append(text)
                self._recorder.progress(reply, pane.text)
        try:
            self._finish_side(pane, reply, future.result())
        except Exception as error:  # the engine failed outright: the chat stays usable
            reply.error = str(error) or repr(error)
            reply.text = pane.text + buffer.drain()
            pane.show_status(f"failed: {reply.error}")
        # Saved as it ended, whatever happens next (a kill, a quit): kept or not, it is a
        # version of the reply.
        self._recorder.finished(reply)

    def _finish_side(self, pane: ABPane, reply: ABReply, result: GenerationResult) -> None:
        reply.result = result
        reply.text = result.text
        pane.text = ""
        pane.append(result.text)
        stats = result.stats
        status = (
            f"{stats.new_tokens} tokens · {stats.tokens_per_s:.1f} tok/s · "
            f"{result.stop_reason.description}"
        )
        pane.show_status(status + (f" · {result.error}" if result.error else ""))

    # -- keeping -------------------------------------------------------------------------

    @on(ABPane.Keep)
    def _keep(self, message: ABPane.Keep) -> None:
        if self.running:
            self.notify("Wait for both replies (or stop them with Esc), then keep one.")
            return
        self.dismiss(ABOutcome(tuple(self.replies), message.index))

    @on(ABPane.Provenance)
    def _provenance(self, message: ABPane.Provenance) -> None:
        from leverchat.ui.screens.provenance import ProvenanceScreen

        reply = self.replies[message.index]
        if reply.result is None and reply.error is None:
            self.notify("This reply has not been written yet.")
            return
        self.app.push_screen(ProvenanceScreen(provenance(self.setup.model, reply)))

    def action_stop_or_close(self) -> None:
        if self.running:
            self._stopped = True
            if self._request is not None:
                self._request.cancel.set()
            self.notify("Stopped.", timeout=2)
            return
        # Closed after running: A is kept (the current settings), B stays a version.
        self.dismiss(ABOutcome(tuple(self.replies), 0) if self.replies else None)

    def on_unmount(self) -> None:
        self._stopped = True
        if self._request is not None:
            self._request.cancel.set()


def _describe(settings: ReplySettings) -> str:
    return f"profile {single_line(settings.profile, 30)}"


def other_model_note(profile: Profile | None) -> str:
    """Said when B's profile names a model: both sides run on the loaded one, so that the
    settings stay the only difference (loading a second model is not what A/B does)."""
    if profile is None or not profile.model:
        return ""
    return (
        f"B's profile names the model {single_line(profile.model, 40)}; A/B runs both "
        "sides on the loaded model"
    )


def differ_line(a: ReplySettings, b: ReplySettings, note: str) -> str:
    """The "what differed" line, with the note about B's model when there is one."""
    line = what_differed(a, b)
    return f"{line} · {note}" if note else line
