"""DRY ("Don't Repeat Yourself"): penalise the token that would extend a sequence already in
the text, more the longer the repeat.

Step for step text-generation-webui's ``DRYLogitsProcessor`` (modules/sampler_hijack.py), whose
penalty llama.cpp's ``llama_sampler_dry`` (src/llama-sampling.cpp) also applies:

- look at every earlier occurrence of the last token; the token that followed it there would
  repeat a sequence whose length is how far the match runs backwards (capped at
  :data:`MAX_MATCH`, as both do, so ``base ** length`` cannot overflow);
- a sequence breaker (a newline, a colon...) ends a match, and a breaker never gets penalised;
- a token whose longest match is at least ``allowed_length`` loses
  ``multiplier * base ** (length - allowed_length)`` from its logit.

Sequence breakers are strings; like text-generation-webui each one becomes the last token of
``"a" + breaker`` in the loaded tokenizer (the form it takes after other text). llama.cpp also
matches breakers that span several tokens; a one-token breaker behaves the same in both.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable

# Both implementations stop extending a match at 50 tokens.
MAX_MATCH = 50


def dry_penalties(
    ids: list[int],
    multiplier: float,
    base: float,
    allowed_length: int,
    breakers: Collection[int],
) -> dict[int, float]:
    """token id -> what DRY subtracts from its logit, for the text ``ids`` so far."""
    if multiplier <= 0.0 or len(ids) < 2:
        return {}
    last = ids[-1]
    if last in breakers:
        return {}
    longest: dict[int, int] = {}
    end = len(ids) - 1  # the last token always matches itself: not an occurrence
    for index in range(end):
        if ids[index] != last:
            continue
        following = ids[index + 1]
        if following in breakers:
            continue
        length = 1
        while length < MAX_MATCH:
            earlier = index - length
            if earlier < 0:
                break
            previous = ids[end - length]
            if ids[earlier] != previous or previous in breakers:
                break
            length += 1
        if length > longest.get(following, 0):
            longest[following] = length
    return {
        token: multiplier * base ** (length - allowed_length)
        for token, length in longest.items()
        if length >= allowed_length
    }


def breaker_ids(breakers: Iterable[str], encode: Callable[[str], list[int]]) -> frozenset[int]:
    """The token each breaker string becomes after other text (text-generation-webui's
    ``tokenizer.encode(f"a{s}")[-1]``)."""
    out: set[int] = set()
    for text in breakers:
        tokens = encode("a" + text)
        if tokens:
            out.add(tokens[-1])
    return frozenset(out)
