"""Incremental detokenisation and stop-string handling for a streaming reply."""

from __future__ import annotations

from typing import Any


class IncrementalDecoder:
    """Turns token ids into text pieces, O(1) per token.

    Uses tokenizers' ``DecodeStream`` (which waits for multi-byte characters to complete)
    when the tokenizer has a Rust backend; otherwise falls back to decoding a short window
    of recent tokens, which is still bounded per token.
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        backend = getattr(tokenizer, "_tokenizer", None) or getattr(
            tokenizer, "backend_tokenizer", None
        )
        self._backend = backend
        self._stream: Any = None
        if backend is not None:
            from tokenizers.decoders import DecodeStream

            self._stream = DecodeStream(skip_special_tokens=True)
        self._ids: list[int] = []
        self._emitted = ""

    def step(self, token_id: int) -> str:
        if self._stream is not None:
            piece: str | None = self._stream.step(self._backend, token_id)
            return piece or ""
        # Slow tokenizers: re-decode a bounded window and emit what was not emitted yet.
        self._ids.append(token_id)
        text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return ""  # an incomplete multi-byte character: wait for the next token
        piece = text[len(self._emitted) :]
        self._emitted = text
        if len(self._ids) > 64:
            self._ids = []
            self._emitted = ""
        return piece


class StopStringFilter:
    """Holds back text that might be the start of a stop string, and finds complete ones.

    ``feed`` returns the text that is safe to show now and whether a stop string was hit;
    the stop string itself (and anything after it) is never returned.
    """

    def __init__(self) -> None:
        self.text = ""
        self._emitted = 0

    @property
    def emitted_text(self) -> str:
        return self.text[: self._emitted]

    def feed(self, piece: str, stops: tuple[str, ...]) -> tuple[str, bool]:
        self.text += piece
        if stops:
            # Everything that could begin a stop string is held back, so a stop string can
            # only start in the unreleased text (also when the stop strings change mid-reply:
            # text already shown cannot be taken back).
            hit = _earliest(self.text, stops, self._emitted)
            if hit is not None:
                self.text = self.text[:hit]
                return self._release(hit), True
            safe = len(self.text) - _longest_partial_stop(self.text, stops)
        else:
            safe = len(self.text)
        return self._release(max(safe, self._emitted)), False

    def flush(self) -> str:
        """At the end of the reply: everything held back is real text."""
        return self._release(len(self.text))

    def _release(self, upto: int) -> str:
        out = self.text[self._emitted : upto]
        self._emitted = max(self._emitted, upto)
        return out


def _earliest(text: str, stops: tuple[str, ...], start: int) -> int | None:
    positions = [p for p in (text.find(stop, start) for stop in stops) if p >= 0]
    return min(positions) if positions else None


def _longest_partial_stop(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string."""
    best = 0
    for stop in stops:
        for length in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:length]):
                best = length
                break
    return best
