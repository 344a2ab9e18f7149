"""Structured output in the decode loop: the token mask of a JSON Schema, regex or grammar.

The library is llguidance (benchmarks/structured_pick.py, benchmarks/README.md): on the bundled
SmolLM2 tokenizer it compiled a JSON Schema in 9-14 ms and JSON mode in ~0.5 ms, and computes a
mask in ~0.01 ms (median) on the CPU; it has no dependencies and reads GBNF and Lark. xgrammar
was as fast (7-53 ms a schema, 0.002 ms a mask) but its wheel requires triton (a GPU package) on
Linux; outlines-core took 18-28 s to compile JSON mode and has no context-free grammars.

A :class:`ReplyConstraint` follows one reply. While no structured lever is set it does nothing
at all. When one is set, each step masks out every token the grammar does not allow, and the
end-of-turn tokens are allowed only once the grammar accepts the text: the reply ends when the
grammar completes. A constraint changed mid-reply restarts the matcher from the reply's tokens
so far; when those tokens do not fit the new constraint the change is refused for this reply
(the old constraint, or none, stays) and a notice says so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from leverchat.levers import Levers
from leverchat.structured_specs import ConstraintError, active_constraint, grammar_for

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class ConstraintTokenizer:
    """llguidance's view of one model's tokenizer, built on first use (about 1-2 s on a 49k
    vocabulary), then kept for the model's lifetime: a reply without a constraint never
    builds it."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_ids: Iterable[int]) -> None:
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._eos_ids = sorted(eos_ids)
        self._built: Any = None

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def get(self) -> Any:
        if self._built is None:
            import llguidance.hf

            try:
                self._built = llguidance.hf.from_tokenizer(
                    self._tokenizer,
                    n_vocab=self._vocab_size,
                    eos_token=self._eos_ids or None,
                )
            except ValueError as error:  # a slow (Python-only) tokenizer
                raise ConstraintError(
                    f"structured output needs a fast tokenizer for this model: {error}"
                ) from None
        return self._built


class ReplyConstraint:
    """The structured-output mask for one reply (see the module's docstring)."""

    def __init__(self, tokens: ConstraintTokenizer) -> None:
        self._tokens = tokens
        # (lever name, text) of the constraint in force, and its matcher.
        self._key: tuple[str, str] | None = None
        self._matcher: Any = None
        self._seen: Levers | None = None
        # A constraint refused mid-reply: not tried (nor reported) again in this reply.
        self._refused: tuple[str, str] | None = None
        self._reply: list[int] = []
        self._bitmask: torch.Tensor | None = None
        self._bits: torch.Tensor | None = None
        self.notices: list[str] = []

    @property
    def name(self) -> str | None:
        """The lever whose constraint is in force, or None."""
        return self._key[0] if self._key is not None else None

    def apply(self, logits: torch.Tensor, levers: Levers) -> torch.Tensor:
        """``logits`` with every token the constraint forbids at -inf (the same tensor,
        untouched, when no constraint is in force)."""
        if levers is not self._seen:
            self._follow(levers)
        if self._matcher is None:
            return logits
        return self._masked(logits)

    def accept(self, token: int) -> None:
        """Record a chosen token (call it for every reply token, constrained or not)."""
        self._reply.append(token)
        if self._matcher is not None and not self._matcher.consume_token(token):
            # Only a token the mask allowed reaches here; a refusal is a bug, not the user's.
            log.error("the grammar matcher refused token %d: %s", token, self._matcher.get_error())
            self.notices.append(
                f"{self.name}: the constraint stopped applying at token {len(self._reply)} "
                f"({self._matcher.get_error()})"
            )
            self._key, self._matcher = None, None

    # -- internals ----------------------------------------------------------------------

    def _follow(self, levers: Levers) -> None:
        self._seen = levers
        key = active_constraint(levers)
        if key == self._key or key == self._refused:
            return
        if key is None:
            self._key, self._matcher = None, None
            return
        matcher = self._matcher_for(*key)
        if self._reply and not matcher.consume_tokens(self._reply):
            # The reply so far does not fit the new constraint: it cannot apply to this reply.
            self._refused = key
            kept = f"{self.name} stays" if self._key is not None else "the reply stays free"
            self.notices.append(
                f"{key[0]} was changed mid-reply, but the {len(self._reply)} tokens written so "
                f"far do not fit it: {kept}; it applies from the next reply"
            )
            return
        self._key, self._matcher = key, matcher

    def _matcher_for(self, name: str, text: str) -> Any:
        import llguidance

        # Validated already (levers.py); the cache makes this free.
        grammar = grammar_for(name, text)
        matcher = llguidance.LLMatcher(self._tokens.get(), grammar, log_level=0)
        if matcher.is_error():
            raise ConstraintError(f"{name}: {matcher.get_error()}")
        return matcher

    def _masked(self, logits: torch.Tensor) -> torch.Tensor:
        import torch

        vocab = self._tokens.vocab_size
        if self._bitmask is None:
            words = (vocab + 31) // 32
            self._bitmask = torch.zeros(words, dtype=torch.int32)
            self._bits = torch.arange(32, dtype=torch.int32)
        assert self._bits is not None
        bitmask = self._bitmask
        self._matcher.unsafe_compute_mask_ptr(bitmask.data_ptr(), bitmask.numel() * 4)
        allowed = ((bitmask.unsqueeze(-1) >> self._bits) & 1).bool().reshape(-1)[:vocab]
        allowed = allowed.to(logits.device)
        masked = logits[:vocab].float().masked_fill(~allowed, float("-inf"))
        return masked
