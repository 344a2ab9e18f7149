"""`leverchat ask`: one question, the reply streamed to stdout."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from typing import Any, TextIO, cast

from leverchat.commands.inspect_output import add_inspect_option, format_table, inspection_json
from leverchat.commands.options import (
    add_lever_options,
    add_model_options,
    levers_from_args,
    model_spec_from_args,
)
from leverchat.engine.loading import STAGE_CONVERTING
from leverchat.engine.types import (
    ChatMessage,
    EngineError,
    FixedLevers,
    FormatChoice,
    GenerationRequest,
    GenerationResult,
    LoadProgress,
    ModelInfo,
    PromptFormat,
)
from leverchat.levers import LeverError, Levers
from leverchat.safetext import single_line, visible, visible_json

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ask",
        help="ask one question and stream the reply to stdout",
        description="Ask one question and stream the reply to stdout. "
        "Levers given here override the profile's.",
    )
    parser.add_argument(
        "prompt",
        nargs="?",
        metavar="PROMPT",
        help="the question; '-' reads it from stdin as UTF-8 (input that is not UTF-8 is "
        "refused, naming the byte offset) and drops the one trailing newline that `echo` "
        "adds; an empty or blank question is refused (exit code 2)",
    )
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
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--stats", action="store_true", help="print timing and token stats to stderr afterwards"
    )
    output.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (text, stats, levers, seed, model, stop reason) instead",
    )
    add_inspect_option(parser)
    add_model_options(parser)
    add_lever_options(parser)
    parser.set_defaults(handler=run)


def _read_prompt(args: argparse.Namespace) -> str:
    """The question, checked before the model loads (a bad one must not cost a load)."""
    if args.prompt == "-":
        prompt = _read_stdin()
        where = "the question on stdin"
    elif args.prompt is None:
        raise _UsageError("give a PROMPT, or '-' to read it from stdin")
    else:
        prompt = str(args.prompt)
        where = "the question"
        _require_utf8(prompt, where)
    if not prompt.strip():
        raise _UsageError(f"{where} is empty: give some text to ask")
    return prompt


def _require_utf8(text: str, where: str) -> None:
    """Arguments that were not UTF-8 arrive with surrogate escapes: refuse them here, not
    after loading the model (the tokenizer cannot encode them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raw = os.fsencode(text[: error.start])
        bad = os.fsencode(text[error.start])
        raise _UsageError(
            f"{where} is not valid UTF-8 text: byte 0x{bad[0]:02x} at offset {len(raw)}"
        ) from None


def _read_stdin() -> str:
    """stdin as strict UTF-8, without the single trailing newline `echo` adds."""
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is None:  # a text stream (tests, embedding): already decoded
        text = sys.stdin.read()
    else:
        data = buffer.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise _UsageError(
                f"stdin is not valid UTF-8 text: byte 0x{data[error.start]:02x} at offset "
                f"{error.start}; convert it first (e.g. iconv -f latin1 -t utf-8)"
            ) from None
    # One newline only (`echo` adds one); more were typed on purpose.
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


class _UsageError(Exception):
    pass


def _resolve_profile(args: argparse.Namespace) -> tuple[Levers, str, str | None, FormatChoice]:
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
            raise _UsageError(f"{error.message}; see `leverchat profiles list`") from None
    except ProfileError as error:
        if args.profile:
            raise _UsageError(str(error)) from None
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
        raise _UsageError(error.message) from None
    if args.system is not None:
        _require_utf8(args.system, "--system")
        system = args.system
    if args.prompt_format:
        prompt_format = cast(PromptFormat, args.prompt_format)
    return levers, system, model, prompt_format


def run(args: argparse.Namespace) -> int:
    from leverchat.engine.logsetup import route_library_output_to_log

    install_sigterm_as_interrupt()  # first: importing the libraries below takes seconds
    try:
        prompt = _read_prompt(args)
        levers, system, profile_model, prompt_format = _resolve_profile(args)
    except _UsageError as error:
        print(f"leverchat ask: error: {visible(str(error))}", file=sys.stderr)
        return EXIT_USAGE

    from leverchat.commands.remote_cli import exit_code_for, remote_json, warn_dropped
    from leverchat.engine.select import AnyEngine

    messages = ((ChatMessage("system", system),) if system.strip() else ()) + (
        ChatMessage("user", prompt),
    )
    engine = AnyEngine()
    spec = model_spec_from_args(args, fallback_source=profile_model)
    if not spec.is_remote:  # a server's reply must not wait for transformers to import
        route_library_output_to_log()
    progress = _ProgressPrinter(sys.stderr, show=not args.json)
    try:
        load_started = time.perf_counter()
        try:
            info = _wait(engine.load(spec, progress))
        except EngineError as error:
            progress.clear()
            print(f"leverchat: {visible(str(error))}", file=sys.stderr)
            return exit_code_for(error.fault, EXIT_ERROR)
        progress.clear()
        warn_dropped(info.unavailable_levers, levers, sys.stderr)
        load = {"seconds": time.perf_counter() - load_started, "converted": progress.converted}
        request = GenerationRequest(
            messages, FixedLevers(levers), prompt_format=prompt_format, inspect=args.inspect
        )
        writer = _StreamWriter(sys.stdout, request.cancel) if not args.json else None
        future = engine.generate(request, writer.write if writer else None)
        interrupted: KeyboardInterrupt | None = None
        try:
            result = _wait(future)
        except KeyboardInterrupt as interrupt:
            interrupted = interrupt
            request.cancel.set()
            result = _wait(future)
        if writer:
            writer.finish()
        if args.json:
            data = result_to_json(result, info)
            data["load"] = load
            data.update(remote_json(result))
            if args.inspect:
                data["inspection"] = inspection_json(result, args.inspect)
            if result.notices:
                data["notices"] = list(result.notices)
            print(visible_json(data))
        elif args.stats:
            print(format_stats(result), file=sys.stderr)
            for line in format_lever_tokens(result):
                print(visible(line), file=sys.stderr)
        if args.inspect and not args.json:
            print(format_table(result, args.inspect), file=sys.stderr)
        if not args.json:
            for notice in result.notices:
                print(f"leverchat: {visible(notice)}", file=sys.stderr)
        if result.error:
            print(f"leverchat: generation failed: {visible(result.error)}", file=sys.stderr)
            return exit_code_for(result.fault, EXIT_ERROR)
        if interrupted is not None:
            return int(getattr(interrupted, "exit_code", EXIT_INTERRUPTED))
        return EXIT_OK
    finally:
        engine.close()


def _wait(future: Any) -> Any:
    # Poll so that Ctrl+C reaches the main thread promptly.
    while True:
        try:
            return future.result(timeout=0.1)
        except TimeoutError:
            continue


class _StreamWriter:
    """Writes reply chunks to stdout as they come; on a terminal control characters are shown
    as escapes (piped, the text is written as it is); a closed pipe (`ask ... | head`) stops
    generation quietly."""

    def __init__(self, stream: TextIO, cancel: threading.Event) -> None:
        self._stream = stream
        self._cancel = cancel
        self._is_terminal = stream.isatty()
        self._strip = visible
        self._wrote_any = False
        self._last = ""
        self.broken = False

    def write(self, piece: str) -> None:
        if self.broken:
            return
        text = self._strip(piece) if self._is_terminal else piece
        try:
            self._stream.write(text)
            self._stream.flush()
        except BrokenPipeError:
            self.broken = True
            self._cancel.set()
            return
        if text:
            self._wrote_any = True
            self._last = text

    def finish(self) -> None:
        if self.broken:
            return
        try:
            if self._wrote_any and not self._last.endswith("\n"):
                self._stream.write("\n")
            self._stream.flush()
        except BrokenPipeError:
            self.broken = True


class _ProgressPrinter:
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


def format_stats(result: GenerationResult) -> str:
    stats = result.stats
    parts = [
        f"{stats.new_tokens} tokens",
        f"prompt {stats.prompt_tokens} ({stats.reused_prefix_tokens} from cache)",
        f"first token {stats.time_to_first_token_s:.2f} s",
        f"{stats.tokens_per_s:.1f} tok/s",
        f"stop: {result.stop_reason.description}",
        f"seed {result.seed}",
    ]
    if stats.trimmed_messages:
        parts.append(f"{stats.trimmed_messages} old messages trimmed")
    return " · ".join(parts)


def format_lever_tokens(result: GenerationResult) -> list[str]:
    """One line per banned or boosted phrase or DRY breaker: the token sequences it became."""
    return [
        f"{item.lever} {item.text!r}"
        + (f" ({item.weight:+g} on the first token)" if item.weight is not None else "")
        + " -> tokens "
        + (", ".join(str(list(sequence)) for sequence in item.sequences) or "none")
        for item in result.lever_tokens
    ]


def result_to_json(result: GenerationResult, info: ModelInfo) -> dict[str, Any]:
    return {
        "text": result.text,
        "stop_reason": result.stop_reason.value,
        "error": result.error,
        "seed": result.seed,
        "levers": result.levers.to_mapping(),
        "lever_changes": [
            {
                "token_index": c.token_index,
                "changed": list(c.changed),
                "levers": c.levers.to_mapping(),
            }
            for c in result.lever_changes
        ],
        "lever_tokens": [
            {
                "lever": item.lever,
                "text": item.text,
                "token_ids": [list(sequence) for sequence in item.sequences],
                **({"weight": item.weight} if item.weight is not None else {}),
            }
            for item in result.lever_tokens
        ],
        "stats": asdict(result.stats),
        "model": asdict(info),
    }


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
