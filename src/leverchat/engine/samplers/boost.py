"""Boosted phrases: a logit bias by text. The user writes ``boost = {"Arr" = 2.0}``;
leverchat turns each phrase into the token sequences the loaded tokenizer writes it as (the same
variants as banned phrases: as written, with a leading space, capitalised) and adds the weight
to the logit of the *first* token of each sequence, at every step.

A phrase of several tokens is only nudged at its start, as OpenAI's and llama.cpp's
``logit_bias`` work on single tokens: boosting "matey" raises the token it starts with, and
what follows is up to the model. A weight of -100 (the lowest allowed) bans that first token
outright, as OpenAI documents for its -100.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from leverchat.engine.samplers.phrase_ban import banned_phrases
from leverchat.lever_weights import Weights

# The weight that means "never": the token's logit becomes -inf.
BAN_WEIGHT = -100.0


@dataclass(frozen=True)
class BoostedPhrase:
    """One phrase the user boosted, its weight, and the token sequences it became."""

    text: str
    weight: float
    sequences: tuple[tuple[int, ...], ...]

    @property
    def first_tokens(self) -> tuple[int, ...]:
        """The tokens the weight goes to, once each (two variants may start alike)."""
        return tuple(dict.fromkeys(sequence[0] for sequence in self.sequences))


def boosted_phrases(
    weights: Weights, encode: Callable[[str], list[int]]
) -> tuple[BoostedPhrase, ...]:
    found = banned_phrases([phrase for phrase, _ in weights], encode)
    return tuple(
        BoostedPhrase(phrase, weight, item.sequences)
        for (phrase, weight), item in zip(weights, found, strict=True)
    )


def token_biases(phrases: tuple[BoostedPhrase, ...], vocab_size: int) -> dict[int, float]:
    """token id -> what is added to its logit. Two phrases that start with the same token add
    up; a -100 phrase bans its first tokens whatever else boosts them."""
    biases: dict[int, float] = {}
    for phrase in phrases:
        for token in phrase.first_tokens:
            if not 0 <= token < vocab_size:
                continue
            if phrase.weight <= BAN_WEIGHT:
                biases[token] = float("-inf")
            else:
                biases[token] = biases.get(token, 0.0) + phrase.weight
    return {token: bias for token, bias in biases.items() if bias != 0.0}
