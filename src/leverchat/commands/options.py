"""Command-line options shared by the TUI and `ask`: the model spec and every lever."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from leverchat.commands.remote_options import add_remote_options
from leverchat.engine.types import ModelSpec
from leverchat.levers import LEVER_SPECS, LeverError, LeverSpec, validate_lever

# Option names follow common CLI spelling; `max_new_tokens` is `--max-tokens` as in most tools.
_OPTION_NAMES = {"max_new_tokens": "--max-tokens", "stop": "--stop"}


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
        type=positive_int,
        metavar="N",
        help="CPU threads for the model (default: one fewer than the cores, so the chat "
        "stays responsive; OMP_NUM_THREADS also works)",
    )
    group.add_argument(
        "--quantize",
        choices=["int8"],
        help="int8: quantise the linear layers on load (CPU only; about 2.8x faster on "
        "SmolLM2, replies not bit-identical to the float model)",
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


def model_spec_from_args(args: argparse.Namespace, fallback_source: str | None = None) -> ModelSpec:
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
    )


def positive_int(text: str) -> int:
    """An argparse type for counts that must be 1 or more (--threads, --limit)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _lever_type(spec: LeverSpec) -> Callable[[str], Any]:
    """An argparse type that parses and validates one lever, naming its range on error."""

    def parse(text: str) -> Any:
        value: Any
        if spec.kind == "strings":
            value = text.encode().decode("unicode_escape") if "\\" in text else text
        elif spec.kind == "float":
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{text!r} is not a number; allowed {spec.range_text()}"
                ) from None
        else:
            try:
                value = int(text)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{text!r} is not a whole number; allowed {spec.range_text()}"
                ) from None
        try:
            return validate_lever(spec.name, value)
        except LeverError as error:
            raise argparse.ArgumentTypeError(error.message) from None

    parse.__name__ = spec.name  # argparse shows it in "invalid <name> value"
    return parse


def add_lever_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "levers", "sampling levers; each overrides the profile's value"
    )
    for spec in LEVER_SPECS:
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
        metavar = "N" if spec.kind != "float" else "X"
        group.add_argument(
            option_name(spec),
            dest=f"lever_{spec.name}",
            type=_lever_type(spec),
            metavar=metavar,
            help=f"{spec.help} ({spec.range_text()}; default {spec.default})",
        )


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
        values[spec.name] = value
    return values
