"""The main screen: transcript, prompt, lever panel and status line; it composes the features.

The screen holds the state (the conversation, the live levers, the model, the reply being
written) and the layout. Each feature is a module of functions of the screen, and the screen's
actions and message handlers (where Textual looks for them) delegate to it:

- :mod:`leverchat.ui.reply_lifecycle`: send, stream, finish, stop, save at exit (threading and
  history saving are described there);
- :mod:`leverchat.ui.versions`: regenerate, edit and resend, reproduce, step between versions;
- :mod:`leverchat.ui.reproduce`: a reproduction's plan and verdict;
- :mod:`leverchat.ui.saved_chats`: new chat, open a saved chat, draw a transcript;
- :mod:`leverchat.ui.reply_actions`: copy, code blocks, provenance, clicked links;
- :mod:`leverchat.ui.profile_actions`: switch, save, save as, revert a profile;
- :mod:`leverchat.ui.model_loading`: load a model in the background;
- :mod:`leverchat.ui.panel_layout`: where the lever panel shows;
- :mod:`leverchat.ui.inspector_view`: the token inspector (tints, token cursor, its panel).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from functools import partial
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.events import Resize
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Markdown

from leverchat.chat import Conversation, MessageStatus
from leverchat.engine.types import ChatEngine, GenerationResult, ModelInfo, ModelSpec
from leverchat.levers import LiveLevers
from leverchat.ui import (
    branch_views,
    branching,
    model_loading,
    panel_layout,
    profile_actions,
    reply_actions,
    reply_lifecycle,
    saved_chats,
    versions,
)
from leverchat.ui.branch_request import BranchRequested
from leverchat.ui.flush_pacer import FlushPacer
from leverchat.ui.history_session import HistorySession
from leverchat.ui.inspector_view import Inspector
from leverchat.ui.keymap import binding
from leverchat.ui.messages import (
    LoadProgressed,
    ModelLoaded,
    ModelLoadFailed,
    ReplyFinished,
)
from leverchat.ui.profile_session import ProfileSession
from leverchat.ui.replies import ReplySettings
from leverchat.ui.reply_lifecycle import Reply
from leverchat.ui.widgets.chat_view import ChatView
from leverchat.ui.widgets.lever_field import LeverField
from leverchat.ui.widgets.lever_panel import LeverPanel
from leverchat.ui.widgets.messages_view import ReplyView
from leverchat.ui.widgets.prompt_input import PromptInput
from leverchat.ui.widgets.status_line import StatusLine, StatusState
from leverchat.ui.widgets.token_table import InspectorPanel


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
        binding("version_tree", "version_tree", show=False),
        binding("scroll_up", "scroll_chat(-1)", show=False, priority=True),
        binding("scroll_down", "scroll_chat(1)", show=False, priority=True),
        binding("inspect", "inspect", show=False),
        binding("inspect_tokens", "inspect_tokens", show=False),
        binding("sweep", "sweep", show=False),
        binding("ab_send", "ab_send", show=False),
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
        self._reply: Reply | None = None
        self._last_settings: ReplySettings | None = None
        self._flush_timer: Timer | None = None
        self._flush_pacer = FlushPacer()
        # The flush timer runs its callback in its own task, concurrently with this screen's
        # handlers: this lock keeps reply widget updates in order.
        self._view_lock = asyncio.Lock()
        self._panel_chosen: bool | None = None  # None: follow the terminal width
        self._startup_problem = profile_problem
        self._load_generation = 0
        self.inspector = Inspector(self)

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="chat-column"):
            yield ChatView(id="chat")
            yield InspectorPanel(self.inspector)
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
            self._flush_pacer.min_interval, partial(reply_lifecycle.flush, self), pause=True
        )
        profile_actions.refresh_profile_list(self)
        panel_layout.apply_layout(self, self.app.size.width, self.app.size.height)
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
        panel_layout.apply_layout(self, event.size.width, event.size.height)

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
        model_loading.load_model(self, spec)

    @on(LoadProgressed)
    def _on_load_progress(self, message: LoadProgressed) -> None:
        model_loading.progressed(self, message)

    @on(ModelLoaded)
    def _on_model_loaded(self, message: ModelLoaded) -> None:
        model_loading.loaded(self, message)

    @on(ModelLoadFailed)
    async def _on_model_load_failed(self, message: ModelLoadFailed) -> None:
        await model_loading.failed(self, message)

    # -- sending and streaming ---------------------------------------------------------------

    @on(PromptInput.Submitted)
    async def _on_prompt_submitted(self, message: PromptInput.Submitted) -> None:
        await self.send(message.text)

    async def send(self, text: str) -> bool:
        """Send ``text`` as the user's next message. Refused (text kept) while a reply runs."""
        return await reply_lifecycle.send(self, text)

    @on(ReplyFinished)
    async def _on_reply_finished(self, message: ReplyFinished) -> None:
        async with self._view_lock:
            await reply_lifecycle.finish_reply(self, message)

    def _save_progress(self, reply: Reply, *, force: bool = False) -> None:
        reply_lifecycle.save_progress(self, reply, force=force)

    def cancel_reply(self) -> None:
        """Stop the streaming reply, if any (quit, SIGTERM, SIGHUP)."""
        if self._reply is not None:
            reply_lifecycle.cancel(self._reply)

    def save_and_stop(self, status: MessageStatus = MessageStatus.STOPPED) -> None:
        """Stop a streaming reply and save everything now (quit, SIGTERM, SIGHUP)."""
        reply_lifecycle.save_and_stop(self, status)

    # -- actions ---------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            # Escape closes the palette, a select list or a dialog first; here it stops a
            # reply, or brings the focus back to the prompt.
            focused = self.focused
            return self._reply is not None or focused is not self.prompt
        return True

    def on_unmount(self) -> None:
        self.save_and_stop(MessageStatus.STOPPED)

    async def action_stop(self) -> None:
        reply = self._reply
        if reply is None:
            panel_layout.back_to_prompt(self)
            return
        await reply_lifecycle.stop(self, reply)

    def action_toggle_panel(self) -> None:
        panel_layout.toggle_panel(self)

    def action_focus_panel(self) -> None:
        panel_layout.focus_panel(self)

    def action_inspect(self) -> None:
        self.inspector.toggle()

    def action_inspect_tokens(self) -> None:
        self.inspector.enter_cursor()

    def action_scroll_chat(self, direction: int) -> None:
        if direction < 0:
            self.chat.scroll_page_up()
        else:
            self.chat.scroll_page_down()

    # -- saved chats -----------------------------------------------------------------------

    async def action_new_chat(self) -> None:
        await saved_chats.new_chat(self)

    def action_chat_list(self) -> None:
        saved_chats.show_chat_list(self)

    async def open_chat(self, chat_id: str) -> bool:
        """Show a saved chat and restore the profile, system prompt and levers at its end."""
        return await saved_chats.open_chat(self, chat_id)

    # -- versions --------------------------------------------------------------------------

    async def action_step_version(self, step: int) -> None:
        """Show the previous (-1) or next (1) version of the focused or last reply."""
        await versions.step_version(self, step)

    async def action_reproduce(self) -> None:
        """Generate the focused (or last) reply again with its recorded levers and seed."""
        await versions.reproduce(self)

    async def action_regenerate(self) -> None:
        await versions.regenerate(self)

    async def action_edit_last(self) -> None:
        await versions.edit_last(self)

    def action_sweep(self) -> None:
        """The prompt (or the last message) once per value of one lever: ui/sweep_actions."""
        from leverchat.ui import sweep_actions

        sweep_actions.open_sweep(self)

    def action_ab_send(self) -> None:
        """The message under two settings, one seed; one kept: ui/ab_compare."""
        from leverchat.ui import ab_compare

        ab_compare.open_ab(self)

    # -- what can be done with a reply -----------------------------------------------------

    def action_copy_reply(self) -> None:
        reply_actions.copy_last_reply(self)

    def copy_text(self, text: str, what: str) -> None:
        reply_actions.copy_text(self, text, what)

    def copy_code_block(self, index: int) -> None:
        reply_actions.copy_code_block(self, index)

    def action_provenance(self) -> None:
        reply_actions.show_last_provenance(self)

    def show_provenance(self, message_id: str) -> None:
        reply_actions.show_provenance(self, message_id)

    @on(ReplyView.Action)
    def _on_reply_action(self, message: ReplyView.Action) -> None:
        reply = message.reply
        if message.action == "branch":
            branch_views.ask_branch_at(self, reply.reply_id)
            return
        reply_actions.reply_button(self, message.action, reply.reply_id, reply.text)

    # -- branches (ui/branching.py, ui/branch_views.py) ----------------------------------------

    @on(BranchRequested)
    async def _on_branch_requested(self, message: BranchRequested) -> None:
        await branching.branch_from_token(self, message)

    def action_version_tree(self) -> None:
        branch_views.show_version_tree(self)

    def action_branch_at(self) -> None:
        branch_views.ask_branch_at(self, None)

    @on(Markdown.LinkClicked)
    def _on_link_clicked(self, message: Markdown.LinkClicked) -> None:
        message.stop()  # never opened: see reply_actions.link_clicked
        reply_actions.link_clicked(self, message.href)

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
        profile_actions.panel_action(self, message.action)

    def switch_profile(self, name: str) -> None:
        profile_actions.switch_profile(self, name)

    def action_save_profile(self) -> bool:
        """Save the edits over the profile; False when they could not be saved."""
        return profile_actions.save_profile(self)

    def action_save_profile_as(self) -> None:
        profile_actions.save_profile_as(self)

    def action_revert_profile(self) -> None:
        profile_actions.revert_profile(self)

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
