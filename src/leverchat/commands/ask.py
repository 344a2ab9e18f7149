"""`leverchat ask`: one question, the reply streamed to stdout."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from dataclasses import asdict
from typing import Any, TextIO

from leverchat.commands.inspect_output import add_inspect_option, format_table, inspection_json
from leverchat.commands.one_shot import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ProgressPrinter,
    UsageError,
    add_profile_options,
    install_sigterm_as_interrupt,
    read_prompt,
    resolve_profile,
    wait_for_result,
)
from leverchat.commands.options import (
    add_lever_options,
    add_model_options,
    model_spec_from_args,
)
from leverchat.engine.types import (
    ChatMessage,
    EngineError,
    FixedLevers,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
)
from leverchat.safetext import visible, visible_json


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
    add_profile_options(parser)
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


def run(args: argparse.Namespace) -> int:
    from leverchat.engine.logsetup import route_library_output_to_log

    install_sigterm_as_interrupt()  # first: importing the libraries below takes seconds
    try:
        prompt = read_prompt(args)
        levers, system, profile_model, prompt_format = resolve_profile(args)
    except UsageError as error:
        print(f"leverchat ask: error: {visible(str(error))}", file=sys.stderr)
        return EXIT_USAGE

    from leverchat.commands.remote_cli import exit_code_for, remote_json, warn_dropped
    from leverchat.engine.select import AnyEngine

    messages = ((ChatMessage("system", system),) if system.strip() else ()) + (
        ChatMessage("user", prompt),
    )
    engine = AnyEngine()
    spec = model_spec_from_args(args, fallback_source=profile_model, interactive=False)
    if not spec.is_remote:  # a server's reply must not wait for transformers to import
        route_library_output_to_log()
    progress = ProgressPrinter(sys.stderr, show=not args.json)
    try:
        load_started = time.perf_counter()
        try:
            info = wait_for_result(engine.load(spec, progress))
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
            result = wait_for_result(future)
        except KeyboardInterrupt as interrupt:
            interrupted = interrupt
            request.cancel.set()
            result = wait_for_result(future)
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
