"""The truncation filters (top-k, top-p, min-p, typical-p) and the rules both paths share.

:class:`~leverchat.engine.sampling.TokenPicker` has a fast path that looks only at a few
candidate tokens and a plain full-vocabulary reference (the ``filter_*`` functions here). Both
follow transformers' warpers, and both must keep exactly the same tokens, ties included:

- **Top-k, min-p and typical-p keep ties.** Every token as likely as the last one kept stays
  (transformers keeps ``scores >= kth value``). On bfloat16 logits, which a GPU produces, the
  k-th value is tied more often than not.
- **Top-p keeps a count**, as transformers' TopPLogitsWarper does: the smallest run of the
  likeliest tokens whose probabilities add up to ``top_p``. Where that run ends inside a group
  of equally likely tokens, the lower token ids are kept. transformers' choice among them
  follows ``torch.sort``, which is not stable (it differs with the size and the device), so
  only the count can be compared with it.
- **Masses are added in float64** (the normaliser's terms are float32 exponentials, as cheap
  as before, summed in float64), and a run whose mass comes within :data:`MASS_TOLERANCE` of
  ``top_p`` counts as reaching it. Equal probabilities that add up to exactly ``top_p`` (5000
  equal logits, top_p 0.5) then cut at the same token in both paths and on every device,
  where float32 rounding made one path keep 2500 and the other 2501.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MASS_TOLERANCE = 1e-9


def sort_likeliest_first(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole vocabulary's ``values`` most likely first, with their ids; equal values in
    ascending id order."""
    import torch

    sorted_values, order = torch.sort(values, descending=True, stable=True)
    return sorted_values, order


def log_normaliser(values: torch.Tensor) -> torch.Tensor:
    """The float64 logsumexp of ``values``: float32 exponentials summed in float64, about the
    cost of a float32 logsumexp. Equal values give exactly equal terms (exp(0) = 1 for the
    best ones), so equal probabilities add up to exactly what they should."""
    import torch

    best = values.max()
    return torch.exp(values - best).sum(dtype=torch.float64).log() + best.double()


def nucleus_size(sorted_values: torch.Tensor, top_p: float, log_total: torch.Tensor) -> int:
    """How many of ``sorted_values`` (likeliest first) top-p keeps: the tokens whose
    probability mass before them is below ``top_p``, at least one, never a removed (-inf) one.

    The order among equal values does not change the count (the sums run over the same
    numbers). ``log_total`` is the float64 log of the normaliser: the logsumexp of every token
    top-p sees, which may be more than ``sorted_values`` holds (the fast path passes a prefix).
    """
    import torch

    cumulative = torch.cumsum(torch.exp(sorted_values.double() - log_total), dim=-1)
    # The mass before token i is cumulative[i - 1] (none before the first): no subtraction,
    # so no rounding of its own, and the same prefix sums in both paths.
    counts = torch.stack(
        [
            (cumulative[:-1] < top_p - MASS_TOLERANCE).sum(),
            torch.isfinite(sorted_values).sum(),
        ]
    )
    below, finite = counts.tolist()  # one device sync for both
    return max(1, min(int(below) + 1, int(finite)))


def lowest_ids_at_the_cut(
    values: torch.Tensor,
    ids: torch.Tensor,
    kept: int,
    pool_values: torch.Tensor,
    pool_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``kept`` of ``values``/``ids`` (best first, equal values in any order), where a
    cut through a group of equal values keeps that group's lowest ids, as the reference does.

    The group is looked up in the pool the candidates came from: ``pool_values`` (the whole
    vocabulary, positions as ids, when ``pool_ids`` is None)."""
    import torch

    if kept >= len(values) or not bool(values[kept] == values[kept - 1]):
        return values[:kept], ids[:kept]
    cut = values[kept - 1]
    above = int((values > cut).sum().item())
    if pool_ids is None:
        tied = torch.nonzero(pool_values == cut).squeeze(-1)  # ascending ids
    else:
        tied = torch.sort(pool_ids[pool_values == cut]).values
    tied = tied[: kept - above]
    return torch.cat([values[:above], cut.expand(len(tied))]), torch.cat([ids[:above], tied])


def top_k_with_ties(scores: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``top_k`` best (value, id) pairs plus every token tied with the k-th, best first.

    One extra value from ``topk`` tells whether the k-th is tied outside the k, so the common
    case costs one ``topk``; only a tie at the cut looks at the whole vocabulary again."""
    import torch

    vocab = scores.shape[-1]
    values, ids = torch.topk(scores, min(top_k + 1, vocab))
    if top_k < vocab and bool(values[top_k] == values[top_k - 1]):
        ids = torch.nonzero(scores >= values[top_k - 1]).squeeze(-1)
        values = scores[ids]
        order = torch.argsort(values, descending=True, stable=True)
        return values[order], ids[order]
    return values[:top_k], ids[:top_k]


def nucleus_candidates(
    scores: torch.Tensor, top_p: float, first_count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens top-p keeps from the whole of ``scores``, best first, found without sorting
    the vocabulary: ``topk`` of ``first_count`` tokens, quadrupled until the cut falls inside.
    """
    import torch

    vocab = scores.shape[-1]
    log_total = log_normaliser(scores)
    threshold = top_p - MASS_TOLERANCE
    count = first_count
    while True:
        values, ids = torch.topk(scores, min(count, vocab))
        # Cheap test first: the cut falls inside once all but the last candidate hold top_p.
        if count >= vocab or bool(torch.exp(values[:-1].double() - log_total).sum() >= threshold):
            kept = nucleus_size(values, top_p, log_total)
            if kept < len(values) or count >= vocab:
                break
        count *= 4
    # A group of equal values at the cut may go on outside the candidates: the whole
    # vocabulary is the pool.
    return lowest_ids_at_the_cut(values, ids, kept, scores)


def min_p_floor(best: torch.Tensor, min_p: float) -> torch.Tensor:
    """The lowest logit min-p keeps: probability >= min_p x the best one's, in log space (the
    same comparison in both paths, so they agree to the last bit)."""
    return best + math.log(min_p)


# -- the reference, full-vocabulary filters (1-D logits, -inf = removed) ----------------------


def filter_top_k(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    import torch

    if top_k <= 0 or top_k >= logits.shape[-1]:
        return logits
    threshold = torch.topk(logits, top_k).values[-1]
    return logits.masked_fill(logits < threshold, float("-inf"))


def filter_top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probabilities add up to ``top_p``."""
    import torch

    if top_p >= 1.0:
        return logits
    sorted_values, order = sort_likeliest_first(logits)
    kept = nucleus_size(sorted_values, top_p, log_normaliser(logits))
    remove = torch.ones_like(logits, dtype=torch.bool)
    remove[order[:kept]] = False
    return logits.masked_fill(remove, float("-inf"))


def filter_min_p(logits: torch.Tensor, min_p: float) -> torch.Tensor:
    if min_p <= 0.0:
        return logits
    return logits.masked_fill(logits < min_p_floor(logits.max(), min_p), float("-inf"))


def filter_typical_p(logits: torch.Tensor, typical_p: float) -> torch.Tensor:
    """Locally typical sampling (Meister et al.), step for step transformers'
    TypicalLogitsWarper: sort by distance from the expected surprise, find where the mass
    reaches ``typical_p``, and keep every token at most that far (ties included)."""
    import torch

    if typical_p >= 1.0:
        return logits
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    # Removed tokens give 0 * -inf = nan: they carry no entropy.
    entropy = -(log_probs * probs).nansum()
    surprise_gap = (-log_probs - entropy).abs()  # +inf for removed tokens: sorted last
    sorted_gap, order = torch.sort(surprise_gap)
    cumulative = torch.softmax(logits.gather(0, order), dim=-1).cumsum(dim=-1)
    last = min(int((cumulative < typical_p).sum().item()), logits.shape[-1] - 1)
    remove_sorted = sorted_gap > sorted_gap[last]
    remove_sorted[0] = False  # the most typical token always stays
    remove = remove_sorted.scatter(0, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))
