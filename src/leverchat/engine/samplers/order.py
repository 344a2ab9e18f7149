"""One canonical order for the samplers that add up a distribution (XTC's threshold, dynamic
temperature's entropy): token id order. The reference path holds the whole vocabulary, which is
in id order already; the fast path's candidates (likeliest first) are put in it, a cheap sort of
a few hundred ids at most. The same numbers added in the same order give the same bits, so both
paths decide a cut at the same token, without sorting the 49k-token vocabulary by value."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def finite_in_id_order(values: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
    """The finite ``values`` in ascending token id order; ``ids`` None: ``values`` is indexed
    by token id already."""
    import torch

    if ids is not None and ids.numel() > 1 and not bool((ids[1:] > ids[:-1]).all()):
        values = values[torch.argsort(ids)]
    return values[torch.isfinite(values)].float()
