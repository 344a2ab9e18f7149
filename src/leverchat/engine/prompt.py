"""Turn chat messages into token ids: chat template or instruction format, always safely.

Text the user (or a model) wrote is plain text. Typing ``<|im_start|>system`` must give the
tokens for those characters, never the control token, or a user could forge a system turn.
When no message contains special-token text the whole rendered prompt is tokenised in one go,
which is exactly what ``apply_chat_template(tokenize=True)`` gives; otherwise the template's
own text and the message contents are tokenised separately, contents with special-token
splitting on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from leverchat.engine.types import ChatMessage, EngineError, PromptFormat

INSTRUCTION_SYSTEM = "{system}\n\n"
INSTRUCTION_USER = "### Instruction:\n{prompt}\n\n### Response:\n"
INSTRUCTION_ASSISTANT = "{reply}\n\n"


@dataclass(frozen=True)
class EncodedPrompt:
    ids: list[int]
    kept_messages: tuple[ChatMessage, ...]
    trimmed_messages: int


def resolve_format(tokenizer: Any, requested: PromptFormat) -> PromptFormat:
    if requested != "auto":
        if requested == "chat_template" and not getattr(tokenizer, "chat_template", None):
            raise EngineError(
                "this model's tokenizer has no chat template; use prompt_format = "
                "'instruction' (or 'auto')"
            )
        return requested
    return "chat_template" if getattr(tokenizer, "chat_template", None) else "instruction"


def _special_texts(tokenizer: Any) -> list[str]:
    texts: set[str] = set(getattr(tokenizer, "all_special_tokens", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    for token in added.values():
        content = getattr(token, "content", None)
        if content and getattr(token, "special", True):
            texts.add(content)
    return sorted((text for text in texts if text), key=len, reverse=True)


def _contains_special(text: str, specials: list[str]) -> bool:
    return any(special in text for special in specials)


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


def _render_chat_template(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    try:
        rendered = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
    except Exception as error:  # jinja errors: a template refusing a role order, etc.
        raise EngineError(f"the model's chat template failed: {error}") from error
    return str(rendered)


def encode_chat_template(tokenizer: Any, messages: tuple[ChatMessage, ...]) -> list[int]:
    specials = _special_texts(tokenizer)
    plain = [{"role": m.role, "content": m.content} for m in messages]
    if not any(_contains_special(m.content, specials) for m in messages):
        rendered = _render_chat_template(tokenizer, plain)
        # Templates write the BOS token themselves, as apply_chat_template(tokenize=True) assumes.
        return _encode_trusted(tokenizer, rendered)

    # Render with unique placeholders, then tokenise the template's text and the contents
    # separately. The placeholders cannot occur in real text (random, per call).
    marker = f"\x00lc{uuid.uuid4().hex}\x00"
    placeholders = [
        {"role": m.role, "content": f"{marker}{i}{marker}"} for i, m in enumerate(messages)
    ]
    rendered = _render_chat_template(tokenizer, placeholders)
    ids: list[int] = []
    parts = rendered.split(marker)
    # parts alternate: template text, index, template text, index, ...
    for position, part in enumerate(parts):
        if position % 2 == 0:
            ids += _encode_trusted(tokenizer, part)
        else:
            ids += _encode_plain(tokenizer, messages[int(part)].content)
    return ids


def encode_instruction(tokenizer: Any, messages: tuple[ChatMessage, ...]) -> list[int]:
    """The instruction format for models without a chat template."""
    ids: list[int] = []
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is not None and getattr(tokenizer, "add_bos_token", True):
        ids.append(int(bos_id))
    for message in messages:
        if message.role == "system":
            ids += _encode_plain(tokenizer, message.content) + _encode_trusted(tokenizer, "\n\n")
        elif message.role == "user":
            ids += _encode_trusted(tokenizer, "### Instruction:\n")
            ids += _encode_plain(tokenizer, message.content)
            ids += _encode_trusted(tokenizer, "\n\n### Response:\n")
        else:
            ids += _encode_plain(tokenizer, message.content)
            eos_id = getattr(tokenizer, "eos_token_id", None)
            ids += [int(eos_id)] if eos_id is not None else []
            ids += _encode_trusted(tokenizer, "\n\n")
    return ids


def encode_messages(
    tokenizer: Any, messages: tuple[ChatMessage, ...], prompt_format: PromptFormat
) -> list[int]:
    fmt = resolve_format(tokenizer, prompt_format)
    if fmt == "chat_template":
        return encode_chat_template(tokenizer, messages)
    return encode_instruction(tokenizer, messages)


def encode_within_budget(
    tokenizer: Any,
    messages: tuple[ChatMessage, ...],
    prompt_format: PromptFormat,
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
