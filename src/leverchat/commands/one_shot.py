"""What the one-shot commands (`ask`, `sweep`) share: exit codes, reading and checking the
question before the model loads, the profile and lever options, the load progress line, and
SIGTERM/SIGHUP handled like Ctrl+C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any, TextIO, cast

from leverchat.commands.options import levers_from_args
from leverchat.engine.loading import STAGE_CONVERTING
from leverchat.engine.types import FormatChoice, LoadProgress, PromptFormat
from leverchat.levers import LeverError, Levers
from leverchat.safetext import single_line, visible

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def add_profile_options(parser: argparse.ArgumentParser) -> None:
    """--system, --profile and --prompt-format: what :func:`resolve_profile` reads."""
    parser.add_argument(
        "--system", metavar="TEXT", help="the system prompt (overrides the profile)"
    )
    parser.add_argument(
        "-p", "--profile", metavar="NAME", help="use this persona profile (default: 'default')"
    )
    parser.add_argument(
        "--prompt-format",
        choices=["auto", "chat_template", "instruction"],
        help="how messages become the prompt (default: the profile's, else auto)",
    )


def read_prompt(args: argparse.Namespace) -> str:
    """The question, checked before the model loads (a bad one must not cost a load)."""
    if args.prompt == "-":
        prompt = read_stdin()
        where = "the question on stdin"
    elif args.prompt is None:
        raise UsageError("give a PROMPT, or '-' to read it from stdin")
    else:
        prompt = str(args.prompt)
        where = "the question"
        require_utf8(prompt, where)
    if not prompt.strip():
        raise UsageError(f"{where} is empty: give some text to ask")
    return prompt


def require_utf8(text: str, where: str) -> None:
    """Arguments that were not UTF-8 arrive with surrogate escapes: refuse them here, not
    after loading the model (the tokenizer cannot encode them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raw = os.fsencode(text[: error.start])
        bad = os.fsencode(text[error.start])
        raise UsageError(
            f"{where} is not valid UTF-8 text: byte 0x{bad[0]:02x} at offset {len(raw)}"
        ) from None


def read_stdin() -> str:
    """stdin as strict UTF-8, without the single trailing newline `echo` adds."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # a text stream (tests, embedding): already decoded
        text = sys.stdin.read()
    else:
        data = buffer.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise UsageError(
                f"stdin is not valid UTF-8 text: byte 0x{data[error.start]:02x} at offset "
                f"{error.start}; convert it first (e.g. iconv -f latin1 -t utf-8)"
            ) from None
    # One newline only (`echo` adds one); more were typed on purpose.
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


class UsageError(Exception):
    pass


def resolve_profile(args: argparse.Namespace) -> tuple[Levers, str, str | None, FormatChoice]:
    """Levers, system prompt, model and prompt format from the profile, then the options."""
    from leverchat.profiles import ProfileError, ProfileNotFoundError, ProfileStore

    store = ProfileStore()
    levers, system, model = Levers(), "", None
    prompt_format: FormatChoice = "auto"
    name = args.profile or "default"
    try:
        profile = store.load(name).profile
    except ProfileNotFoundError as error:
        if args.profile:
            raise UsageError(f"{error.message}; see `leverchat profiles list`") from None
    except ProfileError as error:
        if args.profile:
            raise UsageError(str(error)) from None
        # A broken default profile must not stop `ask`: say so and use the built-in levers.
        print(
            f"leverchat: warning: {visible(str(error))}; using the built-in defaults",
            file=sys.stderr,
        )
    else:
        levers, system, model = profile.levers, profile.system_prompt, profile.model
        prompt_format = profile.prompt_format
    try:
        levers = Levers.from_mapping(levers_from_args(args), base=levers)
    except LeverError as error:  # already validated by argparse; kept for safety
        raise UsageError(error.message) from None
    if args.system is not None:
        require_utf8(args.system, "--system")
        system = args.system
    if args.prompt_format:
        prompt_format = cast(PromptFormat, args.prompt_format)
    return levers, system, model, prompt_format


def wait_for_result(future: Any) -> Any:
    # Poll so that Ctrl+C reaches the main thread promptly.
    while True:
        try:
            return future.result(timeout=0.1)
        except TimeoutError:
            continue


class ProgressPrinter:
    """One self-overwriting status line on stderr while the model loads (terminals only)."""

    def __init__(self, stream: TextIO, *, show: bool) -> None:
        self._stream = stream
        self._active = show and stream.isatty()
        self._lock = threading.Lock()
        self._shown = False
        # Whether this load converted a GGUF file (the slow first start).
        self.converted = False

    def __call__(self, progress: LoadProgress) -> None:
        if progress.stage == STAGE_CONVERTING:
            self.converted = True
        if not self._active:
            return
        text = single_line(progress.message)
        if progress.fraction is not None:
            text = f"{text} ({progress.fraction:.0%})"
        with self._lock:
            self._stream.write("\r\x1b[2K" + text[:200])
            self._stream.flush()
            self._shown = True

    def clear(self) -> None:
        with self._lock:
            if self._shown:
                self._stream.write("\r\x1b[2K")
                self._stream.flush()
                self._shown = False


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised like Ctrl+C; the exit code says which (128 + the signal)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.exit_code = 128 + signum


def install_sigterm_as_interrupt() -> None:
    """SIGTERM and SIGHUP stop `ask` like Ctrl+C: the reply is cancelled, the engine closed."""

    def handler(signum: int, frame: object) -> None:
        raise Terminated(signum)

    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None:
            signal.signal(sig, handler)
