"""`leverchat sweep`: one prompt, one lever, several values, the same seed for every cell.

It loads the model and resolves the profile exactly as `ask` does (the same options, the same
functions), then generates one reply per value, one after the other, and prints a Markdown
table (value | reply) or, with --json, one object. Exit codes are ask's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

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
    option_name,
)
from leverchat.engine.types import (
    ChatMessage,
    EngineError,
    FixedLevers,
    GenerationRequest,
    GenerationResult,
    LoadProgress,
)
from leverchat.levers import Levers, random_seed
from leverchat.safetext import single_line, visible, visible_json
from leverchat.sweep import (
    MAX_VALUES,
    SweepCell,
    SweepError,
    cell_levers,
    format_value,
    markdown_table,
    parse_values,
    resolve_lever,
    sweep_json,
)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sweep",
        help="one prompt, one lever, several values: a table of the replies",
        description="Ask one question once per value of one lever, with the same seed for "
        "every reply and every other lever from the profile (and the options given here), "
        "and print the replies as a Markdown table.",
        epilog="example: leverchat sweep --lever temperature --values 0,0.7,1.2 --seed 7 "
        '"How do I make a cake?"',
    )
    parser.add_argument(
        "prompt",
        nargs="?",
        metavar="PROMPT",
        help="the question; '-' reads it from stdin (as `ask` does)",
    )
    parser.add_argument(
        "--lever",
        required=True,
        metavar="NAME",
        help="the lever to vary, e.g. temperature, top_p, repetition_penalty",
    )
    parser.add_argument(
        "--values",
        required=True,
        metavar="V1,V2,...",
        help=f"the values to try, comma-separated, at most {MAX_VALUES}; each is checked "
        "like the lever's own option (a persona note is one value, commas included)",
    )
    add_profile_options(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (lever, values, seed, and per value: text, stop reason, "
        "tokens, tokens/s, the levers used) instead of the table",
    )
    add_model_options(parser)
    add_lever_options(parser)
    parser.set_defaults(handler=run)


def _plan(args: argparse.Namespace) -> tuple[str, tuple[Any, ...]]:
    """The lever and its values, checked before the model loads."""
    try:
        spec = resolve_lever(args.lever)
        values = parse_values(spec, args.values)
    except SweepError as error:
        raise UsageError(str(error)) from None
    if getattr(args, f"lever_{spec.name}", None) is not None:
        raise UsageError(
            f"{option_name(spec)} and --lever {spec.name} both set {spec.name}: the sweep sets "
            f"it to each of --values; drop {option_name(spec)}"
        )
    return spec.name, values


def run(args: argparse.Namespace) -> int:
    from leverchat.engine.logsetup import route_library_output_to_log

    install_sigterm_as_interrupt()
    try:
        lever, values = _plan(args)
        prompt = read_prompt(args)
        levers, system, profile_model, prompt_format = resolve_profile(args)
    except UsageError as error:
        print(f"leverchat sweep: error: {visible(str(error))}", file=sys.stderr)
        return EXIT_USAGE

    from leverchat.commands.remote_cli import exit_code_for, warn_dropped
    from leverchat.engine.select import AnyEngine

    messages = ((ChatMessage("system", system),) if system.strip() else ()) + (
        ChatMessage("user", prompt),
    )
    # One seed for every cell, so that the swept lever is the only difference.
    seed = levers.seed if levers.seed is not None else random_seed()
    engine = AnyEngine()
    spec = model_spec_from_args(args, fallback_source=profile_model, interactive=False)
    if not spec.is_remote:
        route_library_output_to_log()
    progress = ProgressPrinter(sys.stderr, show=not args.json)
    cells: list[SweepCell] = []
    code = EXIT_OK
    try:
        try:
            info = wait_for_result(engine.load(spec, progress))
        except EngineError as error:
            progress.clear()
            print(f"leverchat: {visible(str(error))}", file=sys.stderr)
            return exit_code_for(error.fault, EXIT_ERROR)
        progress.clear()
        warn_dropped(info.unavailable_levers, levers, sys.stderr)
        for index, value in enumerate(values, 1):
            cell = cell_levers(levers, lever, value, seed)
            progress(
                LoadProgress("sweep", f"{index}/{len(values)}: {lever} = {format_value(value)}")
            )
            request = GenerationRequest(messages, FixedLevers(cell), prompt_format=prompt_format)
            future = engine.generate(request, None)
            try:
                result = wait_for_result(future)
            except KeyboardInterrupt as interrupt:
                request.cancel.set()
                result = wait_for_result(future)
                cells.append(_cell(value, cell, result))
                code = int(getattr(interrupt, "exit_code", EXIT_INTERRUPTED))
                break
            cells.append(_cell(value, cell, result))
            if result.error:
                # A failed cell (a server gone, out of memory) would fail the next ones too.
                print(f"leverchat: generation failed: {visible(result.error)}", file=sys.stderr)
                code = exit_code_for(result.fault, EXIT_ERROR)
                break
        progress.clear()
        if args.json:
            data = sweep_json(lever, values, seed, cells)
            data["prompt"] = prompt
            data["profile"] = args.profile or "default"
            data["model"] = info.name
            print(visible_json(data))
        else:
            print(_heading(lever, seed, args, info.name))
            print()
            print(markdown_table(lever, cells))
        return code
    finally:
        engine.close()


def _cell(value: Any, levers: Levers, result: GenerationResult) -> SweepCell:
    return SweepCell(
        value=value,
        text=result.text,
        stop_reason=result.stop_reason.value,
        tokens=result.stats.new_tokens,
        tokens_per_s=result.stats.tokens_per_s,
        levers=levers,
        seed=result.seed,
        error=result.error,
    )


def _heading(lever: str, seed: int, args: argparse.Namespace, model: str) -> str:
    profile = single_line(args.profile or "default", 60)
    return f"Sweep of {lever} · seed {seed} · profile {profile} · model {single_line(model, 60)}"
