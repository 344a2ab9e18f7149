"""Temperature, and dynamic temperature (entropy-based), as llama.cpp's
``llama_sampler_temp_ext`` (src/llama-sampling.cpp) and text-generation-webui's
``DynamicTemperatureLogitsWarper`` (modules/sampler_hijack.py).

With ``dynatemp_range`` > 0 the temperature moves between ``max(0, temperature - range)`` and
``temperature + range`` with the normalised entropy of the tokens still in play (the finite
logits): ``min + (max - min) * (entropy / log(count)) ** exponent``. A confident step gets the
low end, an unsure one the high end.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from leverchat.engine.samplers.order import finite_in_id_order
from leverchat.levers import Levers

if TYPE_CHECKING:
    import torch

# A floor for the computed temperature, so that a minimum of 0 at zero entropy cannot divide
# by zero (neither reference guards it; they reach it only with a single token left).
MIN_DYNAMIC_TEMPERATURE = 1e-6


def dynamic_temperature(
    values: torch.Tensor, levers: Levers, ids: torch.Tensor | None = None
) -> float:
    """The temperature for these logits (-inf = removed) under ``levers``; ``ids``: the token
    ids of ``values`` when they are candidates, not the whole vocabulary."""
    import torch

    if levers.dynatemp_range <= 0.0:
        return levers.temperature
    finite = finite_in_id_order(values, ids)
    count = finite.numel()
    if count <= 1:
        return levers.temperature  # llama.cpp: nothing to do for one candidate
    low = max(0.0, levers.temperature - levers.dynatemp_range)
    high = levers.temperature + levers.dynatemp_range
    # In id order, summed in float64: the same number from the whole vocabulary and from
    # candidates.
    log_probs = torch.log_softmax(finite, dim=-1)
    entropy = float(-(log_probs.exp() * log_probs).sum(dtype=torch.float64).item())
    normalised = max(0.0, entropy) / math.log(count)
    temperature = float(low + (high - low) * normalised**levers.dynatemp_exponent)
    return max(temperature, MIN_DYNAMIC_TEMPERATURE)


def apply_temperature(
    values: torch.Tensor, levers: Levers, ids: torch.Tensor | None = None
) -> torch.Tensor:
    """``values`` divided by the (possibly dynamic) temperature."""
    return values / dynamic_temperature(values, levers, ids)
