"""Turn chat messages into token ids: chat template or instruction format, always safely.

The ids are the tokenizer's own encoding of the whole rendered prompt, as
``apply_chat_template(tokenize=True)`` gives: tokenizing the template's text and a message
separately splits words differently where they meet (a message ending in spaces or a newline,
as ``echo "question" |`` sends, changed the ids and the greedy reply).

Text the user (or a model) wrote is plain text. Typing ``<|im_start|>system`` must give the
tokens for those characters, never the control token, or a user could forge a system turn.
When a message contains special-token text, the prompt is rendered with a unique marker in
its place; the rendered text is cut at the template's own special tokens only, and each piece
between them (template text and messages together, as the tokenizer would see it) is
tokenised whole with special-token matching off, the markers turned back into the text the
user typed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from leverchat.engine.custom_format import CustomFormat, FormatError
from leverchat.engine.types import ChatMessage, EngineError, FormatChoice, PromptFormat

INSTRUCTION_SYSTEM = "{system}\n\n"
INSTRUCTION_USER = "### Instruction:\n{prompt}\n\n### Response:\n"
INSTRUCTION_ASSISTANT = "{reply}{eos}\n\n"
# The instruction format's own stop strings: a reply ends where the model starts a new turn.
INSTRUCTION_STOPS: tuple[str, ...] = ("### Instruction:",)


@dataclass(frozen=True)
class EncodedPrompt:
    ids: list[int]
    kept_messages: tuple[ChatMessage, ...]
    trimmed_messages: int


def resolve_format(tokenizer: Any, requested: FormatChoice) -> PromptFormat | CustomFormat:
    if isinstance(requested, CustomFormat):
        return requested
    if requested != "auto":
        if requested == "chat_template" and not getattr(tokenizer, "chat_template", None):
            raise EngineError(
                "this model's tokenizer has no chat template; use prompt_format = "
                "'instruction' (or 'auto')"
            )
        return requested
    return "chat_template" if getattr(tokenizer, "chat_template", None) else "instruction"


def format_stops(tokenizer: Any, requested: FormatChoice) -> tuple[str, ...]:
    """The stop strings a prompt format brings with it, added to every request's own."""
    resolved = resolve_format(tokenizer, requested)
    if isinstance(resolved, CustomFormat):
        return resolved.own_stops(_token_text(tokenizer, "bos"), _token_text(tokenizer, "eos"))
    return INSTRUCTION_STOPS if resolved == "instruction" else ()


def describe_format(tokenizer: Any, requested: FormatChoice) -> str:
    """The prompt format a reply used, in words (F3 shows it)."""
    resolved = resolve_format(tokenizer, requested)
    if isinstance(resolved, CustomFormat):
        return resolved.describe()
    if resolved == "chat_template":
        return "chat_template (the model's own)"
    return "instruction (### Instruction: / ### Response:)"


def _token_text(tokenizer: Any, which: str) -> str:
    return str(getattr(tokenizer, f"{which}_token", None) or "")


def _special_texts(tokenizer: Any) -> list[str]:
    texts: set[str] = set(getattr(tokenizer, "all_special_tokens", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    for token in added.values():
        content = getattr(token, "content", None)
        if content and getattr(token, "special", True):
            texts.add(content)
    return sorted((text for text in texts if text), key=len, reverse=True)


def _encode_plain(tokenizer: Any, text: str) -> list[int]:
    """Tokens for text that must never become control tokens."""
    if not text:
        return []
    encoded = tokenizer(text, add_special_tokens=False, split_special_tokens=True)
    return list(encoded["input_ids"])


def _encode_trusted(tokenizer: Any, text: str) -> list[int]:
    """Tokens for template text, where control tokens are meant."""
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_rendered(
    tokenizer: Any, render: Callable[[list[str]], str], contents: list[str]
) -> list[int]:
    """The ids of ``render(contents)``, with every content kept plain text.

    ``render`` builds the whole prompt from the message contents (the chat template, or the
    instruction format). Without special-token text in any content this is exactly the
    tokenizer's own encoding of the rendered prompt."""
    specials = _special_texts(tokenizer)
    if not specials or not any(special in text for text in contents for special in specials):
        return _encode_trusted(tokenizer, render(contents))

    pattern = re.compile("|".join(re.escape(special) for special in specials))
    nonce = uuid.uuid4().hex
    markers = {special: f"\x00lc{nonce}.{i}\x00" for i, special in enumerate(specials)}
    originals = {marker: special for special, marker in markers.items()}
    masked = [pattern.sub(lambda match: markers[match.group(0)], text) for text in contents]
    expected = sum(len(pattern.findall(text)) for text in contents)
    rendered = render(masked)
    marker_pattern = re.compile("|".join(re.escape(marker) for marker in originals))
    if len(marker_pattern.findall(rendered)) != expected:
        # A template that rewrites message text (beyond trimming it) could drop or split a
        # marker: refuse rather than lose what the user typed.
        raise EngineError(
            "the model's chat template changed a message that contains special-token text; "
            "remove the special-token text from the message"
        )
    ids: list[int] = []
    position = 0
    # Only the template's own special tokens are left in ``rendered``: cut there.
    for match in pattern.finditer(rendered):
        piece = rendered[position : match.start()]
        ids += _encode_plain(tokenizer, marker_pattern.sub(lambda m: originals[m.group(0)], piece))
        ids += _encode_trusted(tokenizer, match.group(0))
        position = match.end()
    tail = rendered[position:]
    ids += _encode_plain(tokenizer, marker_pattern.sub(lambda m: originals[m.group(0)], tail))
    return ids


def _render_chat_template(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    try:
        rendered = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
    except Exception as error:  # jinja errors: a template refusing a role order, etc.
        raise EngineError(f"the model's chat template failed: {error}") from error
    return str(rendered)


def encode_chat_template(tokenizer: Any, messages: tuple[ChatMessage, ...]) -> list[int]:
    def render(contents: list[str]) -> str:
        return _render_chat_template(
            tokenizer,
            [{"role": m.role, "content": text} for m, text in zip(messages, contents, strict=True)],
        )

    # Templates write the BOS token themselves, as apply_chat_template(tokenize=True) assumes.
    return encode_rendered(tokenizer, render, [m.content for m in messages])


def render_instruction(
    messages: tuple[ChatMessage, ...], contents: list[str], eos_text: str
) -> str:
    """The instruction format's prompt text (without the BOS token)."""
    parts: list[str] = []
    for message, text in zip(messages, contents, strict=True):
        if message.role == "system":
            parts.append(INSTRUCTION_SYSTEM.format(system=text))
        elif message.role == "user":
            parts.append(INSTRUCTION_USER.format(prompt=text))
        else:
            parts.append(INSTRUCTION_ASSISTANT.format(reply=text, eos=eos_text))
    return "".join(parts)


def encode_instruction(tokenizer: Any, messages: tuple[ChatMessage, ...]) -> list[int]:
    """The instruction format for models without a chat template."""
    ids: list[int] = []
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is not None and getattr(tokenizer, "add_bos_token", True):
        ids.append(int(bos_id))
    eos_text = getattr(tokenizer, "eos_token", None) or ""
    return ids + encode_rendered(
        tokenizer,
        lambda contents: render_instruction(messages, contents, eos_text),
        [m.content for m in messages],
    )


def encode_custom(
    tokenizer: Any, messages: tuple[ChatMessage, ...], custom: CustomFormat
) -> list[int]:
    """A profile's own format. A Jinja template writes the BOS token itself (as a chat
    template does); prefix/suffix formats get it as the instruction format does."""
    bos_text, eos_text = _token_text(tokenizer, "bos"), _token_text(tokenizer, "eos")
    ids: list[int] = []
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if not custom.template and bos_id is not None and getattr(tokenizer, "add_bos_token", True):
        ids.append(int(bos_id))
    roles = [m.role for m in messages]

    def render(contents: list[str]) -> str:
        try:
            return custom.render(roles, contents, bos_text, eos_text)
        except FormatError as error:
            raise EngineError(f"the prompt format '{custom.name}' failed: {error}") from None

    return ids + encode_rendered(tokenizer, render, [m.content for m in messages])


def encode_messages(
    tokenizer: Any, messages: tuple[ChatMessage, ...], prompt_format: FormatChoice
) -> list[int]:
    fmt = resolve_format(tokenizer, prompt_format)
    if isinstance(fmt, CustomFormat):
        return encode_custom(tokenizer, messages, fmt)
    if fmt == "chat_template":
        return encode_chat_template(tokenizer, messages)
    return encode_instruction(tokenizer, messages)


def encode_within_budget(
    tokenizer: Any,
    messages: tuple[ChatMessage, ...],
    prompt_format: FormatChoice,
    budget: int,
) -> EncodedPrompt:
    """Encode, dropping the oldest turns (never the system prompt, never the last message)
    until the prompt fits in ``budget`` tokens."""
    system = tuple(m for m in messages[:1] if m.role == "system")
    rest = list(messages[len(system) :])
    trimmed = 0
    while True:
        kept = (*system, *rest)
        ids = encode_messages(tokenizer, kept, prompt_format)
        if len(ids) <= budget:
            return EncodedPrompt(ids, kept, trimmed)
        if len(rest) <= 1:
            raise EngineError(
                f"the message is too long: {len(ids)} prompt tokens, but only {budget} fit in "
                "this model's context window after room for the reply; shorten it, the "
                "system prompt, or max_new_tokens"
            )
        # Drop a whole exchange (user + its reply) so the model never sees a reply
        # without its question.
        drop = 2 if len(rest) > 2 and rest[0].role == "user" and rest[1].role == "assistant" else 1
        del rest[:drop]
        trimmed += drop
