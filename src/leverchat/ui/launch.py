"""``leverchat`` with no sub-command: start the TUI (called by cli.py)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from leverchat.engine.types import ModelSpec


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
    from leverchat.engine.worker import EngineThread
    from leverchat.ui.app import LeverChatApp

    spec = ModelSpec(
        source=getattr(args, "model", None),
        device=getattr(args, "device", None) or "auto",
        dtype=getattr(args, "dtype", None) or "auto",
        trust_remote_code=bool(getattr(args, "trust_remote_code", False)),
        allow_pickle=bool(getattr(args, "allow_pickle", False)),
    )
    engine = EngineThread()
    app = LeverChatApp(
        engine,
        model_spec=spec,
        profile=getattr(args, "profile", None),
        theme=getattr(args, "theme", None),
        handle_signals=True,
    )
    try:
        app.run()
    finally:
        engine.close(timeout=5.0)
    return app.return_code or 0
