"""The Textual application: themes, keymap, config, and the chat screen.

Importing this module must not import torch (the first frame appears before the model
loads); the engine is passed in and loads in the background.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import ClassVar

from textual.app import App
from textual.binding import BindingType
from textual.notifications import SeverityLevel

from leverchat.chat import MessageStatus
from leverchat.engine.types import ChatEngine, ModelSpec
from leverchat.profiles import ProfileStore
from leverchat.safetext import single_line, visible
from leverchat.ui.commands import ChatCommands
from leverchat.ui.config import AppConfig, load_config, remember_theme
from leverchat.ui.history_session import HistorySession
from leverchat.ui.keymap import KEYS_BY_ID, binding
from leverchat.ui.profile_session import ProfileSession
from leverchat.ui.screens.chat import ChatScreen
from leverchat.ui.terminal_watch import hangup_safe_driver, watch_for_hangup
from leverchat.ui.themes import DEFAULT_THEME, ThemeSet, load_themes

FALLBACK_THEME = "textual-dark"


class LeverChatApp(App[None]):
    CSS_PATH = Path(__file__).parent / "app.tcss"  # absolute: subclasses live elsewhere
    TITLE = "leverchat"
    COMMANDS: ClassVar = {ChatCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        binding("quit", "quit", show=False, priority=True),
        binding("help", "help"),
        binding("command_palette", "command_palette", show=False, priority=True),
    ]

    def __init__(
        self,
        engine: ChatEngine,
        *,
        model_spec: ModelSpec | None = None,
        profile_store: ProfileStore | None = None,
        profile: str | None = None,
        theme: str | None = None,
        config: AppConfig | None = None,
        themes: ThemeSet | None = None,
        handle_signals: bool = False,
        history: HistorySession | None = None,
        resume_id: str | None = None,
        resume_problem: str | None = None,
    ) -> None:
        # The real terminal (handle_signals) may close without a signal: see terminal_watch.
        super().__init__(
            driver_class=hangup_safe_driver(self.terminal_lost) if handle_signals else None
        )
        self._terminal_loop: asyncio.AbstractEventLoop | None = None
        self._remember_theme_changes = False  # until mounted: only the user's picks are saved
        self.engine = engine
        self.model_spec = model_spec if model_spec is not None else ModelSpec()
        self.config = config if config is not None else load_config()
        self.problems: list[str] = list(self.config.problems)
        theme_set = themes if themes is not None else load_themes()
        self.problems.extend(theme_set.problems)
        for custom in theme_set.themes:
            self.register_theme(custom)
        self.theme = self._pick_theme(theme)
        # A theme named on the command line is remembered like one picked in the app.
        self._theme_to_remember = theme if theme is not None and self.theme == theme else None
        # Normalised like Textual does ("+" -> "plus"); widgets' key handlers read it.
        self.keymap: dict[str, str] = dict(self._normalize_keymap(self.config.keymap))
        self.set_keymap(self.keymap)
        store = profile_store if profile_store is not None else ProfileStore()
        self.profiles = ProfileSession(store)
        self._profile_problem = self.profiles.start(profile)
        self._handle_signals = handle_signals
        self.terminated_by: int | None = None  # the signal (SIGHUP, SIGTERM) that ended it
        # None: chats are not saved (tests); launch.py opens the user's history.
        self.history = history if history is not None else HistorySession.disabled()
        self._resume_id = resume_id
        self._resume_problem = resume_problem

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every notification (screens' and widgets' ``notify`` end here) quotes errors, names
        and paths: their control characters are shown visibly, never written raw."""
        super().notify(
            visible(message),
            title=visible(title),
            severity=severity,
            timeout=timeout,
            markup=markup,
        )

    def _pick_theme(self, requested: str | None) -> str:
        available = self.available_themes
        for source, name in (("--theme", requested), ("the config file", self.config.theme)):
            if name is None:
                continue
            if name in available:
                return name
            self.problems.append(
                f"theme '{single_line(name, 40)}' from {source} does not exist; "
                f"known: {', '.join(sorted(available))}"
            )
        return DEFAULT_THEME if DEFAULT_THEME in available else FALLBACK_THEME

    def get_default_screen(self) -> ChatScreen:
        return ChatScreen(
            self.engine,
            self.model_spec,
            self.profiles,
            profile_problem=self._profile_problem,
            history=self.history,
            resume_id=self._resume_id,
            resume_problem=self._resume_problem,
        )

    def on_mount(self) -> None:
        for problem in self.problems:
            self.notify(problem, severity="warning", markup=False, timeout=10)
        self._remember_theme_changes = True
        if self._theme_to_remember is not None:
            self.watch_theme(self._theme_to_remember)
        if self._handle_signals:
            loop = asyncio.get_running_loop()
            for number in (signal.SIGTERM, signal.SIGHUP):
                # Textual installs no handler: without one the process dies with no cleanup.
                loop.add_signal_handler(number, self._on_terminate, number)
            self._terminal_loop = loop
            watch_for_hangup(sys.__stdin__, self.terminal_lost)

    def terminal_lost(self) -> None:
        """The terminal closed without a signal (called from any thread): as for SIGHUP."""
        loop = self._terminal_loop
        if loop is not None and self.terminated_by is None:
            loop.call_soon_threadsafe(self._on_terminate, signal.SIGHUP)

    def _on_terminate(self, number: int = signal.SIGTERM) -> None:
        self.terminated_by = number
        # The chat screen may be under a dialog or the chat list: look down the stack.
        for screen in self.screen_stack:
            if isinstance(screen, ChatScreen):
                # Saved now, before exiting: no message is handled after this.
                screen.save_and_stop(MessageStatus.INTERRUPTED)
        # 128 + the signal, as a shell reports it (129 SIGHUP, 143 SIGTERM): a script can tell
        # a hang-up or a kill from a normal quit, after the same clean shutdown.
        self.exit(return_code=128 + number)

    def watch_theme(self, theme: str) -> None:
        if not self._remember_theme_changes:
            return
        problem = remember_theme(self.config, theme)
        if problem is not None:
            self.notify(problem, severity="warning", markup=False)

    def action_help(self) -> None:
        from leverchat.ui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)  # the help key closes the help it opened
            return
        keymap = {key: value for key, value in self._keymap.items() if key in KEYS_BY_ID}
        self.push_screen(HelpScreen(keymap))

    async def action_quit(self) -> None:
        """Ctrl+Q (or the palette): ask first when profile edits are unsaved. A signal does
        not come here (see _on_terminate): it saves the chat and exits without asking."""
        from leverchat.ui.screens.unsaved import UnsavedEditsScreen
        from leverchat.ui.unsaved_guard import ask_before_leaving

        if isinstance(self.screen, UnsavedEditsScreen):
            return  # already asking
        chat = next((s for s in self.screen_stack if isinstance(s, ChatScreen)), None)
        if chat is None:
            self.exit()
            return
        ask_before_leaving(chat, "quit", self.exit)
