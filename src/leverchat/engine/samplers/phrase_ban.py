"""Banned phrases: the user writes words or phrases; leverchat turns each into the token
sequences the loaded tokenizer writes it as, and blocks the sequence's last token wherever the
reply has just written the rest of it (n-gram style, as ``no_repeat_ngram_size`` blocks).

Why the last token and not the first: banning the first token of "As an AI" would forbid every
"As" in the reply. Blocking the completion lets "As an" through and stops "AI" right there; a
one-token phrase is banned outright.

Variants: the phrase as written, with a leading space (how it appears mid-sentence), and with
its first letter capitalised (at the start of a sentence), each with and without that space.
A variant that tokenizes the same way as another is kept once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class BannedPhrase:
    """One phrase the user wrote and the token sequences it became."""

    text: str
    sequences: tuple[tuple[int, ...], ...]


def variants(phrase: str) -> tuple[str, ...]:
    stripped = phrase.lstrip(" ")
    capitalised = stripped[:1].upper() + stripped[1:]
    forms = [phrase, " " + stripped, stripped, capitalised, " " + capitalised]
    return tuple(dict.fromkeys(forms))


def banned_phrases(
    phrases: Iterable[str], encode: Callable[[str], list[int]]
) -> tuple[BannedPhrase, ...]:
    out = []
    for phrase in phrases:
        sequences = []
        for form in variants(phrase):
            tokens = tuple(encode(form))
            if tokens and tokens not in sequences:
                sequences.append(tokens)
        out.append(BannedPhrase(phrase, tuple(sequences)))
    return tuple(out)


def blocked_tokens(ids: list[int], phrases: Iterable[BannedPhrase]) -> set[int]:
    """The tokens that would complete a banned phrase right after ``ids``."""
    blocked: set[int] = set()
    for phrase in phrases:
        for sequence in phrase.sequences:
            head = len(sequence) - 1
            if head == 0 or (len(ids) >= head and tuple(ids[len(ids) - head :]) == sequence[:-1]):
                blocked.add(sequence[-1])
    return blocked
