"""XTC ("Exclude Top Choices"): with probability ``xtc_probability``, remove every token at
least ``xtc_threshold`` likely except the least likely of them, so the reply takes a less
obvious (but still plausible) turn.

llama.cpp's ``llama_sampler_xtc`` (src/llama-sampling.cpp) and text-generation-webui's
``XTCLogitsWarper`` (modules/sampler_hijack.py): nothing happens unless at least two tokens
reach the threshold. The coin is drawn from the reply's own seeded generator, so a fixed seed
reproduces the reply. One rule of leverchat's own, as for top-k: tokens exactly as likely as
the least likely one above the threshold all stay (those two tools keep whichever their sort
put last).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from leverchat.engine.samplers.order import finite_in_id_order

if TYPE_CHECKING:
    import torch


def xtc_fires(probability: float, generator: torch.Generator) -> bool:
    """The coin: one uniform draw in [0, 1) from the reply's generator (none when off)."""
    import torch

    if probability <= 0.0:
        return False
    draw = torch.rand(1, generator=generator, device=generator.device)
    return float(draw.item()) < probability


def xtc_keep_floor(
    values: torch.Tensor, threshold: float, ids: torch.Tensor | None = None
) -> float | None:
    """The highest logit XTC removes above (every finite value greater than the returned one
    goes), or None when fewer than two tokens reach ``threshold``. ``values``: logits; ``ids``:
    their token ids when they are candidates, not the whole vocabulary."""
    from leverchat.engine.truncation import log_normaliser

    if threshold > 0.5:
        return None  # at most one token can reach it (llama.cpp: "> 0.5 disables")
    # The finite values in id order, normalised in float64: the same numbers in the same order
    # whether ``values`` is the whole vocabulary or the fast path's candidates, so both paths
    # draw the line at the same token.
    finite = finite_in_id_order(values, ids)
    if finite.numel() < 2:
        return None
    if threshold > 0.0:
        log_probs = finite.double() - log_normaliser(finite)
        finite = finite[log_probs >= math.log(threshold)]
    if finite.numel() < 2:
        return None
    least, best = finite.min(), finite.max()
    if bool(least == best):
        return None  # all that reach the threshold are equally likely: none goes
    return float(least.item())


def apply_xtc(
    values: torch.Tensor, threshold: float, ids: torch.Tensor | None = None
) -> torch.Tensor:
    """``values`` (logits, -inf = removed) with the top choices removed."""
    floor = xtc_keep_floor(values, threshold, ids)
    if floor is None:
        return values
    return values.masked_fill(values > floor, float("-inf"))
