"""Mirostat v2 (Basu et al. 2021), as llama.cpp's ``llama_sampler_mirostat_v2``
(src/llama-sampling.cpp): keep the tokens whose surprise ``-log2 p`` is at most ``mu``, sample
from them renormalised, then move ``mu`` by ``eta`` times the error between the chosen token's
surprise (in the renormalised distribution) and the target ``tau``. ``mu`` starts at
``2 * tau`` and lives as long as one reply. leverchat has no mode lever: a ``mirostat_tau``
above 0 switches v2 on (llama.cpp's ``mirostat = 2``); v1 is not offered.

While mirostat is on it replaces top-k, top-p, min-p, typical-p and XTC, as in llama.cpp, whose
mirostat chain is temperature then mirostat alone.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def mirostat_filter(logits: torch.Tensor, mu: float) -> torch.Tensor:
    """``logits`` keeping only tokens of surprise <= ``mu`` bits (the likeliest always stays)."""
    import torch

    log_probs = torch.log_softmax(logits, dim=-1)
    surprise = -log_probs / math.log(2.0)
    remove = surprise > mu
    remove[torch.argmax(logits)] = False  # llama.cpp keeps one token when none passes
    return logits.masked_fill(remove, float("-inf"))


def next_mu(mu: float, tau: float, eta: float, chosen_probability: float) -> float:
    """llama.cpp's update: ``mu -= eta * (-log2(p_chosen) - tau)``."""
    surprise = -math.log2(chosen_probability) if chosen_probability > 0 else math.inf
    return mu - eta * (surprise - tau)


class MirostatState:
    """``mu`` for one reply; reset to ``2 * tau`` whenever tau changes mid-reply."""

    def __init__(self) -> None:
        self.mu: float | None = None
        self._tau: float | None = None

    def current(self, tau: float) -> float:
        if self.mu is None or self._tau != tau:
            self.mu, self._tau = 2.0 * tau, tau
        return self.mu

    def update(self, tau: float, eta: float, chosen_probability: float) -> None:
        self.mu = next_mu(self.current(tau), tau, eta, chosen_probability)
