"""The command-line options of remote engines (shared by the TUI and `ask`)."""

from __future__ import annotations

from typing import Any

# The dialect names (engine/remote/dialects.py SERVERS), spelled here so that building the
# parser imports nothing of the engine.
SERVER_CHOICES = ("vllm", "sglang", "tgi", "llama-server", "ollama", "transformers", "openai")


def add_remote_options(group: Any) -> None:
    group.add_argument(
        "--model-name",
        metavar="NAME",
        help="with a server: which of its models (needed when /v1/models lists several)",
    )
    group.add_argument(
        "--server",
        choices=SERVER_CHOICES,
        help="with a server: its kind, so each lever is sent in its dialect (default: "
        "detected from what the server tells, else plain OpenAI)",
    )
