"""``leverchat`` with no sub-command: start the TUI (called by cli.py)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import TextIO

from leverchat.commands.options import model_spec_from_args
from leverchat.history import HistoryError
from leverchat.safetext import visible
from leverchat.ui.history_session import HistorySession


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def run_tui(args: argparse.Namespace) -> int:
    """Run the chat TUI until the user quits. Returns the process exit code.

    Refuses (exit code 2, message on stderr) without a terminal: ``ssh host leverchat`` without
    ``-t``, or stdout piped into a file.
    """
    if not (_is_terminal(sys.stdin) and _is_terminal(sys.stdout)):
        print(
            "leverchat: the chat needs a terminal (stdin and stdout must both be one). "
            "Over SSH use `ssh -t`; to script it use `leverchat ask`.",
            file=sys.stderr,
        )
        return 2
    # Imported here: building the app must not import torch (the engine loads it lazily).
    from leverchat.engine.select import AnyEngine
    from leverchat.ui.app import LeverChatApp

    spec = model_spec_from_args(args)
    history = HistorySession.open()
    resume_id, resume_problem = _chat_to_resume(args, history)
    if resume_problem is not None and getattr(args, "chat", None) and history.enabled:
        history.close()
        print(f"leverchat: {visible(resume_problem)}", file=sys.stderr)  # quotes the --chat id
        return 2
    engine = AnyEngine()  # the local torch engine, or a server's for openai+http(s)://
    app = LeverChatApp(
        engine,
        model_spec=spec,
        profile=getattr(args, "profile", None),
        theme=getattr(args, "theme", None),
        handle_signals=True,
        history=history,
        resume_id=resume_id,
        resume_problem=resume_problem,
    )
    try:
        app.run()
    finally:
        engine.close(timeout=5.0)
        history.close()
    code = app.return_code or 0
    if app.terminated_by is not None:
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Exit at once after SIGHUP/SIGTERM, everything being saved and closed.

    The interpreter's own teardown with torch loaded takes 1.5 s or more (measured on the
    tiny model: module and tensor cleanup after atexit), which breaks the promise to exit
    within 2 seconds of a hangup. Nothing is left to clean up: the engine thread was joined
    and the history closed above.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        # The terminal may be gone (SIGHUP): then there is nothing to flush to.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _chat_to_resume(
    args: argparse.Namespace, history: HistorySession
) -> tuple[str | None, str | None]:
    """The chat ``--continue`` or ``--chat ID`` asks for, or why there is none."""
    wanted = getattr(args, "chat", None)
    if not wanted and not getattr(args, "continue_chat", False):
        return None, None
    if not history.enabled:
        return None, "No saved chat can be opened: the history is off. This is a new chat."
    try:
        if wanted:
            return history.read(lambda store: store.resolve_id(wanted)), None
        chat_id = history.read(lambda store: store.most_recent_id())
    except HistoryError as error:
        return None, f"{error} (see `leverchat history list`)"
    if chat_id is None:
        return None, "There is no saved chat to continue yet: this is a new chat."
    return chat_id, None
