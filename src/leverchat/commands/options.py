"""Command-line options shared by the TUI and `ask`: the model spec and every lever."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

from leverchat.commands.remote_options import add_remote_options
from leverchat.commands.structured_options import add_structured_option
from leverchat.engine.types import ModelSpec
from leverchat.lever_weights import WeightError, parse_weights_text
from leverchat.levers import LEVER_SPECS, LeverError, LeverSpec, validate_lever

# Option names follow common CLI spelling; `max_new_tokens` is `--max-tokens` as in most tools.
_OPTION_NAMES = {"max_new_tokens": "--max-tokens", "stop": "--stop"}

# Numbers as a user types them, in ASCII only: int() and float() also take `1_0` and
# full-width digits (`１０`), which are typos or pasted text, never meant as a lever value.
_INTEGER: Final = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT: Final = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
    re.ASCII | re.IGNORECASE,
)
# What follows a numeric lever option and starts with "-" but is a value, not an option:
# argparse only knows -1 and -0.5 as negative numbers, so `--temperature -inf` failed.
_NEGATIVE_VALUE: Final = re.compile(r"-(?:[0-9.]|inf|nan)", re.ASCII | re.IGNORECASE)
# A generous bound: more threads than this only oversubscribes the cores, and a huge count
# made torch fail to start threads and then crash (SIGSEGV).
THREADS_PER_CORE_LIMIT: Final = 4


def option_name(spec: LeverSpec) -> str:
    return _OPTION_NAMES.get(spec.name, "--" + spec.name.replace("_", "-"))


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "-m",
        "--model",
        metavar="SPEC",
        help="a local Hugging Face folder, a .gguf file, a hub id, or a server: "
        "openai+http://HOST:PORT/v1 (default: the bundled SmolLM2-135M-Instruct)",
    )
    add_remote_options(group)
    group.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: auto)",
    )
    group.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="weights dtype (default: auto: bfloat16 or float16 on a GPU, float32 on the CPU)",
    )
    group.add_argument(
        "--threads",
        type=thread_count,
        metavar="N",
        help="CPU threads for the model (default: every core for ask and sweep, one fewer "
        f"in the chat, so it stays responsive; at most {THREADS_PER_CORE_LIMIT} per core, here "
        f"{max_threads()}; OMP_NUM_THREADS also works)",
    )
    group.add_argument(
        "--quantize",
        choices=["auto", "none", "int8", "int4"],
        default="auto",
        help="weight-only quantisation of the linear layers, CPU and CUDA: int8 or int4 "
        "(faster, replies not bit-identical to the float model), none (the weights as "
        "loaded). Default auto: int4 for a GGUF of 4 bits a weight or fewer (such as the "
        "bundled model), int8 for other quantised GGUFs; float models stay float",
    )
    group.add_argument(
        "--compile",
        action="store_true",
        help="compile the decoding step with torch.compile and a KV cache sized once "
        "(--context); for GPUs: the first start spends a minute or more compiling",
    )
    group.add_argument(
        "--context",
        type=positive_int,
        metavar="TOKENS",
        help="use at most TOKENS of context (default: the model's window; 4096 with "
        "--compile, whose cache is allocated at this size)",
    )
    group.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a model's own Python code to run (only for models you trust)",
    )
    group.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow pickle weights (pytorch_model.bin), which can run code when loaded",
    )


def model_spec_from_args(
    args: argparse.Namespace, fallback_source: str | None = None, *, interactive: bool = True
) -> ModelSpec:
    """The model options as a spec; ``interactive``: a UI shares the cores (the chat)."""
    return ModelSpec(
        source=args.model or fallback_source,
        device=args.device,
        dtype=args.dtype,
        trust_remote_code=args.trust_remote_code,
        allow_pickle=args.allow_pickle,
        threads=args.threads,
        quantize=args.quantize,
        compile=args.compile,
        context=args.context,
        model_name=getattr(args, "model_name", None),
        server=getattr(args, "server", None),
        leave_core_for_ui=interactive,
    )


def positive_int(text: str) -> int:
    """An argparse type for counts that must be 1 or more (--threads, --limit)."""
    if not _INTEGER.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"not a whole number (ASCII digits): {text!r}")
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def max_threads() -> int:
    """The most --threads accepted: THREADS_PER_CORE_LIMIT per CPU core of this machine."""
    return THREADS_PER_CORE_LIMIT * (os.cpu_count() or 1)


def thread_count(text: str) -> int:
    """--threads: 1 or more, and no more than this machine can use."""
    value = positive_int(text)
    limit = max_threads()
    if value > limit:
        raise argparse.ArgumentTypeError(
            f"{value} is more than this machine can use: at most {limit} "
            f"({THREADS_PER_CORE_LIMIT} per CPU core, {os.cpu_count() or 1} cores)"
        )
    return value


def join_negative_lever_values(argv: Sequence[str]) -> list[str]:
    """``--temperature -inf`` as ``--temperature=-inf``, so argparse reads it as the value.

    Only values after a numeric lever option that look like a number (``-inf``, ``-1e5``,
    ``-.5``) are joined; the lever's own validation then refuses or accepts them.
    """
    numeric = {
        option_name(spec) for spec in LEVER_SPECS if spec.kind in ("float", "int", "optional_int")
    }
    numeric.add("--values")  # `sweep --values -1,0,1`: a list that starts with a negative value
    joined: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        if item == "--":
            joined.extend(items[index:])
            break
        following = items[index + 1] if index + 1 < len(items) else None
        if item in numeric and following is not None and _NEGATIVE_VALUE.match(following):
            joined.append(f"{item}={following}")
            index += 2
            continue
        joined.append(item)
        index += 1
    return joined


def _lever_type(spec: LeverSpec) -> Callable[[str], Any]:
    """An argparse type that parses and validates one lever, naming its range on error."""

    def parse(text: str) -> Any:
        value: Any
        if spec.kind == "strings":
            value = text.encode().decode("unicode_escape") if "\\" in text else text
        elif spec.kind == "weights":
            try:  # one PHRASE=WEIGHT per option, validated as a one-entry table
                value = parse_weights_text(spec.name, text)
            except WeightError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
        elif spec.kind in ("choice", "text"):
            value = text.strip()
        elif spec.kind == "float":
            if not _FLOAT.fullmatch(text.strip()):
                raise argparse.ArgumentTypeError(
                    f"{text!r} is not a number; allowed {spec.range_text()}, in ASCII digits"
                )
            value = float(text)
        else:
            if not _INTEGER.fullmatch(text.strip()):
                raise argparse.ArgumentTypeError(
                    f"{text!r} is not a whole number; allowed {spec.range_text()}, in ASCII digits"
                )
            value = int(text)
        try:
            return validate_lever(spec.name, value)
        except LeverError as error:
            raise argparse.ArgumentTypeError(error.message) from None

    parse.__name__ = spec.name  # argparse shows it in "invalid <name> value"
    return parse


def lever_value(spec: LeverSpec, text: str) -> Any:
    """One lever value typed as text (e.g. by `sweep --values`), parsed and validated exactly
    as the lever's own option parses it; argparse.ArgumentTypeError names what is wrong."""
    return _lever_type(spec)(text)


def add_lever_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "levers", "sampling levers; each overrides the profile's value"
    )
    for spec in LEVER_SPECS:
        if add_structured_option(group, spec, option_name(spec)):
            continue
        if spec.kind == "strings":
            group.add_argument(
                option_name(spec),
                dest=f"lever_{spec.name}",
                action="append",
                type=_lever_type(spec),
                metavar="TEXT",
                help=f"{spec.help} Repeatable; \\n means a newline.",
            )
            continue
        if spec.kind == "weights":
            group.add_argument(
                option_name(spec),
                dest=f"lever_{spec.name}",
                action="append",
                type=_lever_type(spec),
                metavar="PHRASE=WEIGHT",
                help=f"{spec.help} Repeatable ({spec.range_text()}).",
            )
            continue
        metavar = {"float": "X", "choice": "ROLE", "text": "TEXT"}.get(spec.kind, "N")
        group.add_argument(
            option_name(spec),
            dest=f"lever_{spec.name}",
            type=_lever_type(spec),
            metavar=metavar,
            help=f"{spec.help} ({spec.range_text()}; default {_shown_default(spec)})",
        )


def _shown_default(spec: LeverSpec) -> str:
    # An empty text (no persona note) reads "none", not an empty space.
    return "none" if spec.default == "" else str(spec.default)


def levers_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Only the levers given on the command line, validated."""
    values: dict[str, Any] = {}
    for spec in LEVER_SPECS:
        value = getattr(args, f"lever_{spec.name}", None)
        if value is None:
            continue
        if spec.kind == "strings":
            # Each --stop was validated as a 1-tuple: join them in order.
            value = tuple(item for group in value for item in group)
        elif spec.kind == "weights":
            # Each --boost was validated on its own: join them, checking the whole once more.
            value = validate_lever(spec.name, [pair for group in value for pair in group])
        values[spec.name] = value
    return values
