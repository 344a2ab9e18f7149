"""text-generation-webui presets (``user_data/presets/*.yaml``): YAML of sampler values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from leverchat.importers.common import Draft

# A preset lists only what differs from the web UI's defaults (modules/presets.py,
# default_preset()): every other sampler is off, so the profile switches it off too.
DEFAULTS: Final[dict[str, Any]] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repetition_penalty": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
    "no_repeat_ngram_size": 0,
}
DEFAULTS_SOURCE: Final = "text-generation-webui's defaults"

LEVERS: Final = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repetition_penalty": "repetition_penalty",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "no_repeat_ngram_size": "no_repeat_ngram_size",
    "max_new_tokens": "max_new_tokens",
    "seed": "seed",
}
_NO_DRY = "leverchat has no DRY sampler"
_NO_XTC = "leverchat has no XTC sampler"
_NO_MIROSTAT = "leverchat has no Mirostat sampler"
_NO_DYNATEMP = "leverchat has no dynamic temperature"
# key: (neutral value that changes nothing, so is only named in a summary; reason)
UNMAPPED: Final[dict[str, tuple[object, str]]] = {
    "tfs": (1, "leverchat has no tail-free sampling"),
    "top_a": (0, "leverchat has no top-a sampling"),
    "top_n_sigma": (0, "leverchat has no top-n-sigma sampling"),
    "epsilon_cutoff": (0, "leverchat has no epsilon sampling"),
    "eta_cutoff": (0, "leverchat has no eta sampling"),
    "repetition_penalty_range": (
        0,
        "leverchat's repetition penalty always covers the whole conversation",
    ),
    "encoder_repetition_penalty": (1, "leverchat has no encoder repetition penalty"),
    "penalty_alpha": (0, "leverchat has no contrastive search"),
    "guidance_scale": (1, "leverchat has no classifier-free guidance"),
    "smoothing_factor": (0, "leverchat has no quadratic smoothing"),
    "smoothing_curve": (1, "leverchat has no quadratic smoothing"),
    "mirostat_mode": (0, _NO_MIROSTAT),
    "mirostat_tau": (None, _NO_MIROSTAT),
    "mirostat_eta": (None, _NO_MIROSTAT),
    "dry_multiplier": (0, _NO_DRY),
    "dry_base": (None, _NO_DRY),
    "dry_allowed_length": (None, _NO_DRY),
    "dry_sequence_breakers": (None, _NO_DRY),
    "xtc_probability": (0, _NO_XTC),
    "xtc_threshold": (None, _NO_XTC),
    "dynamic_temperature": (False, _NO_DYNATEMP),
    "dynatemp_low": (None, _NO_DYNATEMP),
    "dynatemp_high": (None, _NO_DYNATEMP),
    "dynatemp_exponent": (None, _NO_DYNATEMP),
    "temperature_last": (False, "leverchat always applies temperature first"),
    "sampler_priority": (None, "leverchat applies its samplers in a fixed order"),
    "num_beams": (1, "leverchat has no beam search"),
    "length_penalty": (1, "leverchat has no beam search"),
    "early_stopping": (False, "leverchat has no beam search"),
}
# Settings that only matter when another one switches their sampler on.
_ENABLED_BY: Final = {
    "mirostat_tau": "mirostat_mode",
    "mirostat_eta": "mirostat_mode",
    "dry_base": "dry_multiplier",
    "dry_allowed_length": "dry_multiplier",
    "dry_sequence_breakers": "dry_multiplier",
    "xtc_threshold": "xtc_probability",
    "dynatemp_low": "dynamic_temperature",
    "dynatemp_high": "dynamic_temperature",
    "dynatemp_exponent": "dynamic_temperature",
}
DETECTION_KEYS: Final = frozenset({*LEVERS, *UNMAPPED, "do_sample"})


def parse_textgen_preset(data: Mapping[str, Any]) -> Draft:
    """Map a text-generation-webui preset."""
    draft = Draft()
    inactive: list[str] = []
    for raw_key, value in data.items():
        key = str(raw_key)
        if key in LEVERS:
            lever = LEVERS[key]
            if lever == "seed" and isinstance(value, int) and value < 0:
                continue  # -1 is "random", the same as an unset seed
            draft.set_lever(key, lever, value)
        elif key == "do_sample":
            if value is False:
                draft.set_lever(key, "temperature", 0)  # greedy decoding
            elif value is not True:
                draft.skip(key, value, "must be true or false")
        elif key in UNMAPPED:
            neutral, reason = UNMAPPED[key]
            enabler = _ENABLED_BY.get(key)
            if enabler is not None and _is_neutral(enabler, data.get(enabler)):
                inactive.append(key)
            elif neutral is None or value != neutral:
                draft.skip(key, value, reason)
            else:
                inactive.append(key)
        else:
            draft.skip(key, value, f"leverchat has no '{key}' setting")
    if inactive:
        draft.notes.append(
            "Not imported, as they are switched off or have no effect in this preset: "
            + ", ".join(inactive)
        )
    return draft


def _is_neutral(key: str, value: object) -> bool:
    return value is None or value == UNMAPPED[key][0]
