"""The `leverchat` command: the chat TUI by default, plus `ask`, `profiles` and `history`.

Nothing here imports torch or Textual at module level: `leverchat --help` and the TUI's first
frame must not wait for them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from leverchat import __version__
from leverchat.commands import ask, history_cmd, profiles_cmd, sweep_cmd
from leverchat.commands.options import add_model_options, join_negative_lever_values
from leverchat.safetext import visible


class _Parser(argparse.ArgumentParser):
    """argparse quotes what the user typed in its errors ("unrecognized arguments: ...", the
    text of a type's ArgumentTypeError), and writes it raw: control characters are shown as
    escapes instead. Sub-command parsers are of this class too (argparse uses the parent's)."""

    def error(self, message: str) -> NoReturn:
        super().error(visible(message))


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(
        prog="leverchat",
        description="A terminal chat for local language models, with every inference lever "
        "live. Without a sub-command it starts the chat.",
    )
    parser.add_argument("--version", action="version", version=f"leverchat {__version__}")
    parser.add_argument("-p", "--profile", metavar="NAME", help="start with this persona profile")
    parser.add_argument("--theme", metavar="NAME", help="use this theme (remembered)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "-c",
        "--continue",
        dest="continue_chat",
        action="store_true",
        help="resume the most recent chat (its profile, system prompt and levers too)",
    )
    resume.add_argument(
        "--chat",
        metavar="ID",
        help="resume the chat with this id (the first characters are enough; "
        "see `leverchat history list`)",
    )
    add_model_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    ask.register(subparsers)
    profiles_cmd.register(subparsers)
    history_cmd.register(subparsers)
    sweep_cmd.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_negative_lever_values(sys.argv[1:] if argv is None else argv))
    handler = getattr(args, "handler", None)
    if handler is None:
        # The chat, before torch is imported (OpenMP reads it once): idle OpenMP threads
        # sleep instead of spinning, so they do not take a core from the UI thread. Measured
        # streaming into the TUI on 2 cores: 10.0 tok/s spinning, 12.2 tok/s passive. `ask`
        # and `sweep` draw nothing: there OpenMP's default (spin briefly, then sleep) ran the
        # bundled model at 2 threads 1.6x faster than passive. A user's setting wins.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        if handler is not None:
            return int(handler(args))
        from leverchat.ui.launch import run_tui

        return int(run_tui(args))
    except KeyboardInterrupt as interrupt:
        # Ctrl+C: 130; SIGTERM and SIGHUP (raised as interrupts by `ask`): 128 + the signal.
        return int(getattr(interrupt, "exit_code", 130))
    except BrokenPipeError:
        # `leverchat ... | head`: the reader went away; not an error worth a traceback.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
