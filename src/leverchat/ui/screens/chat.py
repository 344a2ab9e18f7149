"""The main screen: transcript, prompt, lever panel and status line, and the reply lifecycle.

Threading: the engine calls back on its own thread. The chunk callback only appends to a
locked buffer (no message per token); a timer on the UI thread drains it into the streaming
Markdown when the :class:`FlushPacer` says so (every 50-250 ms, keeping the UI thread's share of
a core small: its time holds the GIL the engine needs). The future's done-callback posts one
``ReplyFinished`` message.

History (``HistorySession``): the chat row is created at the first message; a user message is
saved when sent, a reply when it starts (with the provenance known then), every
SAVE_INTERVAL_S from the flush while it streams, and at its end with its full provenance. On
quit or a signal, :meth:`ChatScreen.save_and_stop` saves a streaming reply synchronously.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.events import Resize
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Markdown

from leverchat.chat import Conversation, Message, MessageStatus, ReplyProvenance, new_id
from leverchat.engine.types import (
    ChatEngine,
    GenerationRequest,
    GenerationResult,
    LeverSource,
    LoadProgress,
    ModelInfo,
    ModelSpec,
    Stats,
    StopReason,
)
from leverchat.history import HistoryError
from leverchat.levers import Levers, LiveLevers, random_seed
from leverchat.profiles import ProfileConflictError, ProfileError
from leverchat.replay import ReplayLevers, compare_texts, replay_start_levers
from leverchat.safetext import single_line
from leverchat.ui import hints
from leverchat.ui.flush_pacer import FlushPacer
from leverchat.ui.history_session import HistorySession
from leverchat.ui.keymap import binding
from leverchat.ui.messages import (
    LoadProgressed,
    ModelLoaded,
    ModelLoadFailed,
    ReplyFinished,
)
from leverchat.ui.profile_session import ProfileSession
from leverchat.ui.replies import (
    ChunkBuffer,
    FreshSeed,
    ReplySettings,
    code_blocks,
    describe_changes,
)
from leverchat.ui.unsaved_guard import ask_before_switching
from leverchat.ui.widgets.chat_view import ChatView
from leverchat.ui.widgets.lever_field import LeverField
from leverchat.ui.widgets.lever_panel import LeverPanel
from leverchat.ui.widgets.messages_view import ChangeMarker, Notice, ReplyView, UserMessage
from leverchat.ui.widgets.prompt_input import PromptInput
from leverchat.ui.widgets.status_line import StatusLine, StatusState
from leverchat.wording import sentence

WIDE_LAYOUT_COLUMNS = 100  # from this width the panel shows beside the chat by default
BOTTOM_BAR_ROWS = 2  # the status line and the footer
SAVE_INTERVAL_S = 0.5  # a streaming reply is saved this often (kill -9 loses at most this)
EXIT_WAIT_S = 1.0  # on quit or a signal, how long to wait for the engine's final result


@dataclass(frozen=True)
class _ReplayPlan:
    """Reproducing a recorded reply: what it was, to compare the new text with."""

    original_id: str
    original_text: str
    original_complete: bool
    provenance: ReplyProvenance
    stop_after_tokens: int | None


@dataclass
class _Reply:
    reply_id: str
    view: ReplyView
    settings: ReplySettings
    new_seed: bool = False
    request: GenerationRequest | None = None
    buffer: ChunkBuffer = field(default_factory=ChunkBuffer)
    future: Future[GenerationResult] | None = None
    replay: _ReplayPlan | None = None
    saved: bool = False  # the reply row exists in the history
    saved_at: float = 0.0
    saved_length: int = 0
    # The seed this reply runs with (chosen when it starts; None for a replay, which has one).
    seed: int | None = None


class ChatScreen(Screen[None]):
    """One chat with one model. Holds the conversation (in memory) and its live levers."""

    BINDINGS: ClassVar[list[BindingType]] = [
        binding("stop", "stop"),
        binding("toggle_panel", "toggle_panel"),
        binding("save_profile", "save_profile"),
        binding("regenerate", "regenerate"),
        binding("edit_last", "edit_last", show=False),
        binding("copy_reply", "copy_reply", show=False),
        binding("provenance", "provenance", show=False),
        binding("new_chat", "new_chat", show=False),
        binding("focus_panel", "focus_panel", show=False),
        binding("chat_list", "chat_list", show=False),
        binding("reproduce", "reproduce", show=False),
        binding("version_previous", "step_version(-1)", show=False),
        binding("version_next", "step_version(1)", show=False),
        binding("scroll_up", "scroll_chat(-1)", show=False, priority=True),
        binding("scroll_down", "scroll_chat(1)", show=False, priority=True),
    ]

    def __init__(
        self,
        engine: ChatEngine,
        model_spec: ModelSpec,
        profiles: ProfileSession,
        *,
        profile_problem: str | None = None,
        history: HistorySession | None = None,
        resume_id: str | None = None,
        resume_problem: str | None = None,
    ) -> None:
        super().__init__(id="chat-screen")
        self.history = history if history is not None else HistorySession.disabled()
        self._resume_id = resume_id
        self._resume_problem = resume_problem
        # The settings last written to the chat row (written again only when they change).
        self._saved_settings: ReplySettings | None = None
        self.engine = engine
        self.model_spec = model_spec
        self.profiles = profiles
        self.conversation = Conversation()
        self.live_levers = LiveLevers(profiles.profile.levers)
        self.system_prompt = profiles.profile.system_prompt
        self.model_info: ModelInfo | None = None
        self.load_error: str | None = None
        self.load_status: str | None = "Starting the model…"
        self.last_result: GenerationResult | None = None
        self._reply: _Reply | None = None
        self._last_settings: ReplySettings | None = None
        self._flush_timer: Timer | None = None
        self._flush_pacer = FlushPacer()
        # The flush timer runs its callback in its own task, concurrently with this screen's
        # handlers: this lock keeps reply widget updates in order.
        self._view_lock = asyncio.Lock()
        self._panel_chosen: bool | None = None  # None: follow the terminal width
        self._startup_problem = profile_problem
        self._load_generation = 0

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="chat-column"):
            yield ChatView(id="chat")
            yield PromptInput(id="prompt")
        yield LeverPanel(
            self.live_levers.get(),
            self.system_prompt,
            self.profiles.names(),
            self.profiles.profile.name,
            id="panel",
        )
        with Vertical(id="bottom-bar"):
            yield StatusLine(id="status")
            yield Footer()

    def on_mount(self) -> None:
        self._flush_timer = self.set_interval(
            self._flush_pacer.min_interval, self._flush, pause=True
        )
        self._refresh_profile_list()
        self._apply_layout(self.app.size.width, self.app.size.height)
        self.query_one(PromptInput).focus()
        self._refresh_status()
        if self._startup_problem:
            self.notify(self._startup_problem, severity="warning", markup=False, timeout=10)
        for problem in self.profiles.problems:
            self.notify(problem, severity="warning", markup=False, timeout=10)
        self.history.on_problem = self._history_problem
        if self.history.problem:
            self._history_problem(self.history.problem)
        if self._resume_problem:
            self.notify(self._resume_problem, severity="warning", markup=False, timeout=10)
        if self._resume_id is not None:
            self.call_later(self.open_chat, self._resume_id)
        self.load_model(self.model_spec)

    def _history_problem(self, problem: str) -> None:
        self.notify(problem, severity="error", markup=False, timeout=15)

    def on_resize(self, event: Resize) -> None:
        self._apply_layout(event.size.width, event.size.height)

    def _apply_layout(self, width: int, height: int | None = None) -> None:
        wide = width >= WIDE_LAYOUT_COLUMNS
        self.set_class(not wide, "-narrow")
        panel = self.query_one(LeverPanel)
        panel.display = self._panel_chosen if self._panel_chosen is not None else wide
        # Over the chat (narrow), the panel stops above the status line and the footer.
        rows = height if height is not None else self.app.size.height
        panel.styles.height = "1fr" if wide else max(rows - BOTTOM_BAR_ROWS, 3)

    @property
    def chat(self) -> ChatView:
        return self.query_one(ChatView)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def panel(self) -> LeverPanel:
        return self.query_one(LeverPanel)

    @property
    def streaming(self) -> bool:
        return self._reply is not None

    # -- the model -------------------------------------------------------------------------

    def load_model(self, spec: ModelSpec) -> None:
        """Load ``spec`` in the background; the app stays usable meanwhile."""
        self.model_spec = spec
        self.model_info = None
        self.load_error = None
        self.load_status = "Loading the model…"
        self._load_generation += 1
        generation = self._load_generation
        self._refresh_status()

        def progress(step: LoadProgress) -> None:
            self.post_message(LoadProgressed(step))

        def done(future: Future[ModelInfo]) -> None:
            if generation != self._load_generation:
                return  # a newer load replaced this one
            error = future.exception()
            if error is None:
                self.post_message(ModelLoaded(future.result()))
            else:
                self.post_message(ModelLoadFailed(str(error) or type(error).__name__))

        self.engine.load(spec, progress).add_done_callback(done)

    @on(LoadProgressed)
    def _on_load_progress(self, message: LoadProgressed) -> None:
        if self.model_info is None and self.load_error is None:
            step = message.progress
            percent = f" {step.fraction:.0%}" if step.fraction is not None else ""
            self.load_status = f"{step.message}{percent}"
            self._refresh_status()

    @on(ModelLoaded)
    def _on_model_loaded(self, message: ModelLoaded) -> None:
        self.model_info = message.info
        self.load_status = None
        self._refresh_status()
        if self._reply is not None and self._reply.future is None:
            self._launch(self._reply)

    @on(ModelLoadFailed)
    async def _on_model_load_failed(self, message: ModelLoadFailed) -> None:
        self.load_status = None
        self.load_error = message.error
        self._refresh_status()
        await self.chat.add(
            Notice(
                f"The model did not load: {sentence(message.error)} {hints.load_failed(self.app)}",
                error=True,
            )
        )
        if self._reply is not None and self._reply.future is None:
            await self._end_reply(
                self._reply, None, MessageStatus.FAILED, f"no model: {message.error}"
            )

    # -- sending and streaming ---------------------------------------------------------------

    @on(PromptInput.Submitted)
    async def _on_prompt_submitted(self, message: PromptInput.Submitted) -> None:
        await self.send(message.text)

    async def send(self, text: str) -> bool:
        """Send ``text`` as the user's next message. Refused (text kept) while a reply runs."""
        if self._reply is not None:
            self.notify(hints.busy_send(self.app), severity="warning")
            return False
        self.prompt.clear_prompt()
        await self._mark_changes()
        parent_id = self.conversation.messages[-1].id if self.conversation.messages else None
        self.conversation = self.conversation.with_user(text)
        message = self.conversation.messages[-1]
        settings = self._last_settings or self._settings()
        self.history.ensure_chat(
            self.conversation, settings.profile, settings.system_prompt, settings.levers
        )
        self._saved_settings = self._saved_settings or settings
        self.history.add_user_message(self.conversation.id, message, parent_id)
        await self.chat.add(UserMessage(message.id, text))
        await self._start_reply(new_seed=False)
        return True

    def _settings(self) -> ReplySettings:
        # A value typed in the panel but not confirmed with Enter still counts when sending.
        committed = self.panel.commit_pending()
        if committed:
            self.live_levers.set(Levers.from_mapping(committed, base=self.live_levers.get()))
        return ReplySettings(self.profiles.profile.name, self.system_prompt, self.live_levers.get())

    async def _mark_changes(self) -> None:
        settings = self._settings()
        if self._last_settings is not None:
            description = describe_changes(self._last_settings, settings)
            if description is not None:
                await self.chat.add(ChangeMarker(description))
        self._last_settings = settings
        self._save_settings(settings)

    def _save_settings(self, settings: ReplySettings) -> None:
        """Write the chat's profile, system prompt and levers when they changed."""
        if not self.history.is_saved(self.conversation.id) or settings == self._saved_settings:
            return
        self.history.set_settings(
            self.conversation.id, settings.profile, settings.system_prompt, settings.levers
        )
        self._saved_settings = settings

    async def _start_reply(self, *, new_seed: bool, replay: _ReplayPlan | None = None) -> None:
        reply_id = new_id()
        waiting = self.model_info is None and self.load_error is None
        view = ReplyView(reply_id, waiting=waiting)
        if replay is not None:
            recorded = replay.provenance
            settings = ReplySettings(recorded.profile, recorded.system_prompt, recorded.levers)
        else:
            settings = self._settings()
        reply = _Reply(reply_id, view, settings, new_seed=new_seed, replay=replay)
        if replay is None:
            # Pick the seed now rather than letting the engine pick it, so that it is saved
            # with the reply from its first token: a reply cut short by a kill can still be
            # reproduced.
            fixed = settings.levers.seed
            reply.seed = fixed if fixed is not None and not new_seed else random_seed()
        self._reply = reply
        parent = self.conversation.messages[-1] if self.conversation.messages else None
        self.conversation = self.conversation.with_reply(
            "", status=MessageStatus.STREAMING, message_id=reply_id
        )
        if parent is not None and self.history.is_saved(self.conversation.id):
            stored = self.history.start_reply(
                self.conversation.id, reply_id, parent.id, self._provenance(reply, None, "")
            )
            if stored is not None:
                reply.saved = True
                view.set_version(stored.version, stored.version_count)
        self.chat.follow()
        await self.chat.add(view)
        self._refresh_status()
        if self.model_info is not None:
            self._launch(reply)
        elif self.load_error is not None:
            await self._end_reply(
                reply, None, MessageStatus.FAILED, f"no model is loaded: {self.load_error}"
            )

    def _launch(self, reply: _Reply) -> None:
        """Hand the conversation to the engine (the model is ready)."""
        reply.view.set_waiting(False)
        messages = self.conversation.without_last_reply().to_chat_messages(
            reply.settings.system_prompt
        )
        cancel = threading.Event()
        source: LeverSource = self.live_levers
        if reply.replay is not None:
            recorded = reply.replay.provenance
            source = ReplayLevers(
                replay_start_levers(recorded.levers, recorded.seed),
                recorded.lever_changes,
                cancel=cancel,
                stop_after_tokens=reply.replay.stop_after_tokens,
            )
        elif reply.seed is not None and reply.seed != self.live_levers.get().seed:
            source = FreshSeed(self.live_levers, reply.seed)
        request = GenerationRequest(
            messages,
            levers=source,
            cancel=cancel,
            prompt_format=self.profiles.profile.prompt_format,
        )
        reply.request = request
        reply_id = reply.reply_id

        def done(future: Future[GenerationResult]) -> None:
            error = future.exception()
            if error is not None:
                self.post_message(ReplyFinished(reply_id, None, str(error) or repr(error)))
            else:
                self.post_message(ReplyFinished(reply_id, future.result()))

        reply.future = self.engine.generate(request, reply.buffer.append)
        self._flush_pacer.start()
        if self._flush_timer is not None:
            self._flush_timer.resume()
        reply.future.add_done_callback(done)

    async def _flush(self) -> None:
        if not self._flush_pacer.due():
            return
        async with self._view_lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        reply = self._reply
        if reply is None:
            return
        text = reply.buffer.drain()
        if text:
            # One layout for the whole batch (the Markdown blocks and the status under them).
            with self.app.batch_update():
                await reply.view.append(text)
            self._flush_pacer.flushed()
        self._save_progress(reply)

    def _save_progress(self, reply: _Reply, *, force: bool = False) -> None:
        """Save the streamed text (at most every SAVE_INTERVAL_S: one short row update)."""
        if reply is not self._reply:
            # It ended (save_and_stop ran on a signal while this flush awaited the view): its
            # final row is written, and an update would mark it streaming again.
            return
        if not reply.saved or len(reply.view.text) == reply.saved_length:
            return
        now = time.monotonic()
        if force or now - reply.saved_at >= SAVE_INTERVAL_S:
            self.history.update_reply(reply.reply_id, reply.view.text)
            reply.saved_at = now
            reply.saved_length = len(reply.view.text)

    @on(ReplyFinished)
    async def _on_reply_finished(self, message: ReplyFinished) -> None:
        async with self._view_lock:
            await self._finish_reply(message)

    async def _finish_reply(self, message: ReplyFinished) -> None:
        reply = self._reply
        if reply is None or reply.reply_id != message.reply_id:
            return
        await self._flush_locked()
        result = message.result
        if result is None:
            await self._end_reply(reply, None, MessageStatus.FAILED, message.error or "")
            return
        if result.stop_reason is StopReason.ERROR:
            status, detail = MessageStatus.FAILED, result.error or "the engine failed"
        elif result.stop_reason is StopReason.CANCELLED:
            status, detail = MessageStatus.STOPPED, ""
        else:
            status, detail = MessageStatus.COMPLETE, ""
        if result.text and result.text != reply.view.text:
            await reply.view.set_text(result.text)
        await self._end_reply(reply, result, status, detail)
        if result.stats.trimmed_messages:
            await self.chat.add(
                Notice(
                    f"The {result.stats.trimmed_messages} oldest messages no longer fit the "
                    "context window: the model did not see them (the system prompt was kept)."
                )
            )

    async def _end_reply(
        self,
        reply: _Reply,
        result: GenerationResult | None,
        status: MessageStatus,
        detail: str,
    ) -> None:
        self._reply = None
        if self._flush_timer is not None:
            self._flush_timer.pause()
        text = reply.view.text
        provenance = self._provenance(reply, result, detail, final=True)
        self.conversation = self.conversation.with_reply(
            text, status=status, provenance=provenance, message_id=reply.reply_id
        )
        if reply.saved:
            self.history.finish_reply(reply.reply_id, text, status, provenance)
            # finish_reply makes the reply's levers the chat's; a reproduction (or a
            # regenerate with a fresh seed) ran with a seed the user did not choose.
            self._saved_settings = None
            self._save_settings(self._current_settings())
        if result is not None:
            self.last_result = result
        await reply.view.finish(status, detail)
        self._refresh_status()
        if reply.replay is not None and result is not None and not result.failed:
            await self._report_reproduction(reply.replay, text, provenance)

    def _provenance(
        self,
        reply: _Reply,
        result: GenerationResult | None,
        detail: str,
        *,
        final: bool = False,
    ) -> ReplyProvenance:
        """What produced ``reply``: at its start (``final`` False) or at its end."""
        settings = reply.settings
        seed = reply.seed
        if reply.replay is not None:
            seed = reply.replay.provenance.seed
        return ReplyProvenance(
            model=self.model_info.provenance_name if self.model_info else "",
            profile=settings.profile,
            system_prompt=settings.system_prompt,
            levers=result.levers if result else settings.levers,
            seed=result.seed if result else seed,
            lever_changes=result.lever_changes if result else (),
            stats=result.stats if result else Stats(),
            stop_reason=(result.stop_reason if result else StopReason.ERROR) if final else None,
            error=(detail or (result.error if result else None)) if final else None,
        )

    async def _report_reproduction(
        self, plan: _ReplayPlan, text: str, provenance: ReplyProvenance
    ) -> None:
        comparison = compare_texts(
            plan.original_text, text, original_complete=plan.original_complete
        )
        verdict = comparison.describe(plan.original_text, text)
        if plan.provenance.model and plan.provenance.model != provenance.model:
            verdict += (
                f" (recorded with {plan.provenance.model}, reproduced with {provenance.model})"
            )
        await self.chat.add(
            Notice(verdict, error=not (comparison.identical or comparison.prefix_only))
        )
        self.notify(verdict, markup=False, timeout=8)

    # -- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            # Escape closes the palette, a select list or a dialog first; here it stops a
            # reply, or brings the focus back to the prompt.
            focused = self.focused
            return self._reply is not None or focused is not self.prompt
        return True

    def cancel_reply(self) -> None:
        """Stop the streaming reply, if any (quit, SIGTERM, SIGHUP)."""
        reply = self._reply
        if reply is not None and reply.request is not None:
            reply.request.cancel.set()

    def save_and_stop(self, status: MessageStatus = MessageStatus.STOPPED) -> None:
        """Stop a streaming reply and save everything now (quit, SIGTERM, SIGHUP).

        Synchronous on purpose: the app is about to exit, so no message will be handled
        after this. Waits at most EXIT_WAIT_S for the engine's final result (it stops within
        one token) to save the reply's full provenance.
        """
        reply = self._reply
        if reply is not None:
            self._reply = None
            self.cancel_reply_of(reply)
            result: GenerationResult | None = None
            if reply.future is not None:
                try:
                    result = reply.future.result(timeout=EXIT_WAIT_S)
                except (FutureTimeout, Exception):  # saving matters more than why it failed
                    result = None
            text = reply.view.text + reply.buffer.drain()
            if result is not None and result.text.startswith(text):
                text = result.text
            reply.view.text = text
            if reply.saved:
                detail = "" if result is None else (result.error or "")
                provenance = self._provenance(reply, result, detail, final=True)
                self.history.finish_reply(reply.reply_id, text, status, provenance)
        self._save_settings(self._current_settings())

    def _current_settings(self) -> ReplySettings:
        return ReplySettings(self.profiles.profile.name, self.system_prompt, self.live_levers.get())

    @staticmethod
    def cancel_reply_of(reply: _Reply) -> None:
        if reply.request is not None:
            reply.request.cancel.set()

    def on_unmount(self) -> None:
        self.save_and_stop(MessageStatus.STOPPED)

    async def action_stop(self) -> None:
        reply = self._reply
        if reply is None:
            # Back to the prompt; a panel opened over a narrow chat closes on the way.
            panel = self.panel
            if self.has_class("-narrow") and panel.display and panel.has_focus_within:
                self._panel_chosen = False
                panel.display = False
            self.prompt.focus()
            return
        if reply.request is not None:
            reply.request.cancel.set()  # the engine stops within one token
        else:
            await self._end_reply(reply, None, MessageStatus.STOPPED, "")

    def action_toggle_panel(self) -> None:
        panel = self.panel
        self._panel_chosen = not panel.display
        panel.display = self._panel_chosen
        if panel.display and self.has_class("-narrow"):
            self.panel.focus_first()
        elif not panel.display and panel.has_focus_within:
            self.prompt.focus()

    def action_focus_panel(self) -> None:
        if not self.panel.display:
            self._panel_chosen = True
            self.panel.display = True
        self.panel.focus_first()

    def action_scroll_chat(self, direction: int) -> None:
        if direction < 0:
            self.chat.scroll_page_up()
        else:
            self.chat.scroll_page_down()

    async def action_new_chat(self) -> None:
        # A reply still streaming is stopped and saved as it is; so are the settings.
        self.save_and_stop(MessageStatus.STOPPED)
        if self._flush_timer is not None:
            self._flush_timer.pause()
        self.conversation = Conversation()
        self._last_settings = None
        self._saved_settings = None
        self.last_result = None
        async with self._view_lock:
            await self.chat.clear()
        self._refresh_status()
        self.prompt.focus()

    # -- saved chats -----------------------------------------------------------------------

    async def open_chat(self, chat_id: str) -> bool:
        """Show a saved chat and restore the profile, system prompt and levers at its end."""
        if self._reply is not None:
            self.notify(hints.busy(self.app))
            return False
        try:
            conversation, info, skipped = self.history.load(chat_id)
        except HistoryError as error:
            self.notify(f"Could not open the chat: {error}", severity="error", markup=False)
            return False
        for record in skipped:  # damaged rows: the rest of the chat opens, the user is told
            self.notify(record.describe(), severity="warning", markup=False, timeout=10)
        self.save_and_stop()  # the settings of the chat being left
        if info.profile and info.profile != self.profiles.profile.name:
            if info.profile in self.profiles.names():
                try:
                    self.profiles.switch(info.profile)
                except (ProfileError, OSError) as error:
                    self.notify(
                        f"Could not switch to profile {single_line(info.profile, 40)}: {error}",
                        severity="warning",
                        markup=False,
                    )
            else:
                self.notify(
                    f"This chat used profile {single_line(info.profile, 40)}, which no longer "
                    "exists: its system prompt and levers are restored on "
                    f"{sentence(single_line(self.profiles.profile.name, 40))}",
                    severity="warning",
                    markup=False,
                    timeout=8,
                )
        self.live_levers.set(info.levers)
        self.system_prompt = info.system_prompt
        self.panel.show_levers(info.levers)
        self.panel.show_system_prompt(info.system_prompt)
        self._refresh_profile_list()
        self.history.known(conversation.id)
        self.conversation = conversation
        self.last_result = None
        settings = ReplySettings(self.profiles.profile.name, self.system_prompt, info.levers)
        self._last_settings = settings
        self._saved_settings = settings
        await self._render_conversation()
        self.notify(
            f"Opened: {single_line(conversation.title or 'untitled chat', 60)}", markup=False
        )
        self.prompt.focus()
        return True

    async def _render_conversation(self, focus_id: str | None = None) -> None:
        """Show ``self.conversation`` from scratch (opened, or another version chosen)."""
        widgets: list[UserMessage | ReplyView | ChangeMarker] = []
        previous: ReplySettings | None = None
        for message in self.conversation.messages:
            if message.role == "user":
                widgets.append(UserMessage(message.id, message.content))
                continue
            recorded = message.provenance
            if recorded is not None:
                settings = ReplySettings(recorded.profile, recorded.system_prompt, recorded.levers)
                change = describe_changes(previous, settings) if previous is not None else None
                if change is not None:
                    widgets.insert(len(widgets) - 1, ChangeMarker(change))
                previous = settings
            widgets.append(_finished_view(message))
        async with self._view_lock:
            await self.chat.clear()
            if widgets:
                await self.chat.add(*widgets)
        self.chat.follow()
        if focus_id is not None:
            view = self.chat.reply(focus_id) or self.chat.user_message(focus_id)
            if view is not None:
                view.focus()
                view.scroll_visible(animate=False)

    def _target_message(self, role: str) -> Message | None:
        """The focused message (of ``role``, or any when role is ""), else the last reply."""
        focused = self.focused
        focused_id = None
        if isinstance(focused, ReplyView):
            focused_id = focused.reply_id
        elif isinstance(focused, UserMessage) and role != "assistant":
            focused_id = focused.message_id
        for message in self.conversation.messages:
            if message.id == focused_id:
                return message
        return self.conversation.last_reply

    async def action_step_version(self, step: int) -> None:
        """Show the previous (-1) or next (1) version of the focused or last reply."""
        if self._reply is not None:
            self.notify(hints.busy(self.app))
            return
        target = self._target_message("")
        if target is None:
            self.notify("There is no reply yet.")
            return
        if not self.history.is_saved(self.conversation.id):
            self.notify("Versions are kept in the history, which is off for this chat.")
            return
        try:
            versions = self.history.versions(target.id)
        except HistoryError as error:
            self.notify(f"Could not read the versions: {error}", severity="error", markup=False)
            return
        ids = [version.id for version in versions]
        index = ids.index(target.id) if target.id in ids else 0
        wanted = index + step
        if not 0 <= wanted < len(ids):
            edge = "first" if wanted < 0 else "last"
            self.notify(f"This is the {edge} version ({index + 1}/{len(ids)}).", timeout=2)
            return
        conversation = self.history.select_version(ids[wanted])
        if conversation is None:
            return
        self.conversation = conversation
        await self._render_conversation(focus_id=ids[wanted])
        self.notify(f"Version {wanted + 1}/{len(ids)}: the chat continues from it.", timeout=2)

    async def action_reproduce(self) -> None:
        """Generate the focused (or last) reply again with its recorded levers and seed."""
        if self._reply is not None:
            self.notify(hints.busy(self.app))
            return
        target = self._target_message("assistant")
        if target is None or target.role != "assistant":
            self.notify("There is no reply to reproduce yet.")
            return
        recorded = target.provenance
        if recorded is None or recorded.seed is None:
            self.notify(
                "This reply has no recorded seed (it was cut off before it finished): it cannot "
                "be reproduced exactly."
            )
            return
        if self.model_info is None:
            self.notify("Wait for the model to load, then reproduce.")
            return
        index = self.conversation.messages.index(target)
        # A reply cut short (stopped, or saved at a hangup) is reproduced to the same length.
        cut = target.status in (MessageStatus.STOPPED, MessageStatus.INTERRUPTED)
        stopped = cut and recorded.stats.new_tokens > 0
        plan = _ReplayPlan(
            original_id=target.id,
            original_text=target.content,
            original_complete=target.status is MessageStatus.COMPLETE,
            provenance=recorded,
            stop_after_tokens=recorded.stats.new_tokens if stopped else None,
        )
        # The recorded reply stays a version of its turn; the reproduction becomes the active
        # one (for an earlier reply, what followed it stays on the other version's branch).
        self.conversation = replace(self.conversation, messages=self.conversation.messages[:index])
        await self._render_conversation()
        self.notify("Reproducing the reply with its recorded levers and seed…", timeout=3)
        await self._start_reply(new_seed=False, replay=plan)

    def action_chat_list(self) -> None:
        from leverchat.ui.screens.chat_list import ChatListScreen

        if not self.history.enabled:
            self.notify(
                self.history.problem or "The history is off: there are no saved chats.",
                severity="warning",
                markup=False,
            )
            return

        async def chosen(chat_id: str | None) -> None:
            if chat_id is not None and chat_id != self.conversation.id:
                await self.open_chat(chat_id)

        self.app.push_screen(
            ChatListScreen(self.history, self.conversation.id, self._chat_changed), chosen
        )

    async def _chat_changed(self, chat_id: str, title: str | None) -> None:
        """The chat list renamed (``title``) or deleted (None) ``chat_id``."""
        if chat_id != self.conversation.id:
            return
        if title is not None:
            self.conversation = replace(self.conversation, title=title)
        else:
            await self.action_new_chat()

    async def action_regenerate(self) -> None:
        if self._reply is not None:
            self.notify(hints.busy(self.app))
            return
        last = self.conversation.messages[-1] if self.conversation.messages else None
        if last is None or last.role != "assistant":
            self.notify("There is no reply to regenerate yet.")
            return
        # The old reply stays in the history as a version (alt+left shows it again).
        view = self.chat.reply(last.id)
        self.conversation = self.conversation.without_last_reply()
        if view is not None:
            await self.chat.remove_from(view)
        await self._mark_changes()
        await self._start_reply(new_seed=True)

    async def action_edit_last(self) -> None:
        if self._reply is not None:
            self.notify(hints.busy(self.app))
            return
        before = self.conversation
        conversation, text = before.without_last_exchange()
        if text is None:
            self.notify("There is no message to edit yet.")
            return
        removed_id = before.messages[len(conversation.messages)].id
        widget = self.chat.user_message(removed_id)
        if widget is not None:
            await self.chat.remove_from(widget)
        self.conversation = conversation
        if self.prompt.text.strip():
            self.prompt.remember(self.prompt.text)  # what was being typed stays recallable
        self.prompt.load_text(text)
        self.prompt.move_cursor(self.prompt.document.end)
        self.prompt.focus()

    def action_copy_reply(self) -> None:
        last = self.conversation.last_reply
        if last is None or not last.content:
            self.notify("There is no reply to copy yet.")
            return
        self.copy_text(last.content, "the last reply")

    def copy_text(self, text: str, what: str) -> None:
        # App.copy_to_clipboard writes OSC 52 (base64, so nothing in the text can escape it).
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied {what} ({len(text)} characters) to the clipboard.", markup=False)

    def copy_code_block(self, index: int) -> None:
        last = self.conversation.last_reply
        blocks = code_blocks(last.content) if last is not None else []
        if not 0 <= index < len(blocks):
            self.notify("The last reply has no such code block.")
            return
        self.copy_text(blocks[index], f"code block {index + 1}")

    def action_provenance(self) -> None:
        last = self.conversation.last_reply
        if last is None or last.provenance is None:
            self.notify("There is no finished reply to explain yet.")
            return
        self.show_provenance(last.id)

    def show_provenance(self, message_id: str) -> None:
        from leverchat.ui.screens.provenance import ProvenanceScreen

        for message in self.conversation.messages:
            if message.id == message_id and message.provenance is not None:
                self.app.push_screen(ProvenanceScreen(message.provenance))
                return
        self.notify("This reply is still being written.")

    @on(ReplyView.Action)
    def _on_reply_action(self, message: ReplyView.Action) -> None:
        if message.action == "copy":
            if message.reply.text:
                self.copy_text(message.reply.text, "the reply")
        elif message.action == "provenance":
            self.show_provenance(message.reply.reply_id)

    @on(Markdown.LinkClicked)
    def _on_link_clicked(self, message: Markdown.LinkClicked) -> None:
        # Links are never opened by a click: over SSH that would open a browser on the host.
        message.stop()
        self.app.copy_to_clipboard(message.href)
        self.notify(
            f"Link not opened; copied to the clipboard: {single_line(message.href, 200)}",
            markup=False,
        )

    # -- the panel -------------------------------------------------------------------------

    @on(LeverField.Edited)
    def _on_lever_edited(self, message: LeverField.Edited) -> None:
        # Applies live: the engine reads the levers at every token.
        self.live_levers.set(self.live_levers.get().with_value(message.name, message.value))
        self._refresh_status()

    @on(LeverPanel.SystemPromptEdited)
    def _on_system_prompt_edited(self, message: LeverPanel.SystemPromptEdited) -> None:
        self.system_prompt = message.text
        self._refresh_status()

    @on(LeverPanel.ProfileChosen)
    def _on_profile_chosen(self, message: LeverPanel.ProfileChosen) -> None:
        if message.name != self.profiles.profile.name:
            self.switch_profile(message.name)

    @on(LeverPanel.ProfileAction)
    async def _on_profile_action(self, message: LeverPanel.ProfileAction) -> None:
        if message.action == "save":
            self.action_save_profile()
        elif message.action == "save_as":
            self.action_save_profile_as()
        elif message.action == "revert":
            self.action_revert_profile()

    def switch_profile(self, name: str) -> None:
        ask_before_switching(self, name, self._switch_profile_now, self._refresh_profile_list)

    def _switch_profile_now(self, name: str) -> None:
        try:
            profile = self.profiles.switch(name)
        except (ProfileError, OSError) as error:
            self.notify(f"Could not switch profile: {error}", severity="error", markup=False)
            self._refresh_profile_list()
            return
        self._show_profile_values()
        self.notify(f"Profile: {sentence(single_line(profile.name, 40))}", markup=False, timeout=2)

    def _show_profile_values(self) -> None:
        profile = self.profiles.profile
        self.live_levers.set(profile.levers)
        self.system_prompt = profile.system_prompt
        self.panel.show_levers(profile.levers)
        self.panel.show_system_prompt(profile.system_prompt)
        self._refresh_profile_list()

    def action_save_profile(self) -> bool:
        """Save the edits over the profile; False when they could not be saved."""
        try:
            profile = self.profiles.save(self.system_prompt, self.live_levers.get())
        except ProfileConflictError as error:
            self._resolve_conflict(str(error))
            return False
        except (ProfileError, OSError) as error:
            self.notify(f"Not saved: {error}", severity="error", markup=False)
            return False
        self.notify(f"Saved profile {sentence(single_line(profile.name, 40))}", markup=False)
        self._refresh_profile_list()
        return True

    def action_save_profile_as(self) -> None:
        from leverchat.ui.screens.save_as import SaveAsScreen

        def attempt(name: str) -> str | None:
            try:
                self.profiles.save_as(name, self.system_prompt, self.live_levers.get())
            except ProfileError as error:
                return error.message
            except OSError as error:
                return f"cannot write the profile: {error}"
            return None

        def saved(name: str | None) -> None:
            if name is not None:
                shown = sentence(single_line(self.profiles.profile.name, 40))
                self.notify(f"Saved as profile {shown}", markup=False)
                self._refresh_profile_list()

        self.app.push_screen(SaveAsScreen(self.profiles.suggest_new_name(), attempt), saved)

    def action_revert_profile(self) -> None:
        self._show_profile_values()
        self.notify("Reverted to the saved profile.", timeout=2)

    def _resolve_conflict(self, detail: str) -> None:
        from leverchat.ui.screens.conflict import ConflictScreen

        def chosen(choice: str | None) -> None:
            if choice == "reload":
                try:
                    self.profiles.reload()
                except (ProfileError, OSError) as error:
                    self.notify(f"Could not reload: {error}", severity="error", markup=False)
                    return
                self._show_profile_values()
                self.notify("Reloaded the profile from disk; your edits were dropped.")
            elif choice == "save_as":
                self.action_save_profile_as()

        self.app.push_screen(ConflictScreen(self.profiles.profile.name, detail), chosen)

    def _refresh_profile_list(self) -> None:
        self.panel.show_profiles(self.profiles.names(), self.profiles.profile.name)
        self._refresh_status()

    # -- status ----------------------------------------------------------------------------

    @property
    def modified(self) -> bool:
        return self.profiles.is_modified(self.system_prompt, self.live_levers.get())

    def _refresh_status(self) -> None:
        info = self.model_info
        modified = self.modified
        state = StatusState(
            model=info.name if info else (self.model_spec.source or "bundled model"),
            device=info.device if info else "",
            quantization=info.quantization if info else "",
            loading=self.load_status,
            load_failed=self.load_error is not None,
            profile=self.profiles.profile.name,
            modified=modified,
            streaming=self._reply is not None,
            last=self.last_result,
        )
        self.query_one(StatusLine).show(state)
        self.panel.show_profile_state(
            "modified: not saved yet" if modified else "saved", modified=modified
        )

    @work(exclusive=True, group="load-model")
    async def ask_model_path(self) -> None:
        from leverchat.ui.screens.load_model import LoadModelScreen

        source = await self.app.push_screen_wait(LoadModelScreen(self.model_spec.source or ""))
        if source is not None:
            self.load_model(replace(self.model_spec, source=source or None))


def _finished_view(message: Message) -> ReplyView:
    """A saved reply as the transcript shows it, with how it ended and its version."""
    detail = ""
    if message.status is MessageStatus.FAILED and message.provenance is not None:
        detail = message.provenance.error or ""
    status = message.status
    if status is MessageStatus.STREAMING:
        # Still being written by another leverchat (or not marked yet): nothing streams here.
        status = MessageStatus.INTERRUPTED
    return ReplyView(
        message.id,
        message.content,
        status=status,
        detail=detail,
        version=message.version,
        version_count=message.version_count,
    )
