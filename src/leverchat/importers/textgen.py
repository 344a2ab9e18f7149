"""text-generation-webui presets (``user_data/presets/*.yaml``): YAML of sampler values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from leverchat.importers.common import Draft, map_mirostat

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
    # The same names and semantics in leverchat (see sampler_specs.py).
    "dry_multiplier": "dry_multiplier",
    "dry_base": "dry_base",
    "dry_allowed_length": "dry_allowed_length",
    "xtc_probability": "xtc_probability",
    "xtc_threshold": "xtc_threshold",
    "temperature_last": "temperature_last",
    # The web UI's grammar is llama.cpp's GBNF, which the grammar lever reads.
    "grammar_string": "grammar",
}
# Mapped by hand in parse_textgen_preset: the breakers are a JSON list without its brackets,
# and dynamic temperature is a low/high pair where leverchat has temperature +/- a range.
_DRY_BREAKERS = "dry_sequence_breakers"
_DYNATEMP_KEYS: Final = ("dynamic_temperature", "dynatemp_low", "dynatemp_high")
_MIROSTAT_KEYS: Final = ("mirostat_mode", "mirostat_tau", "mirostat_eta")
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
    "sampler_priority": (None, "leverchat applies its samplers in a fixed order"),
    "num_beams": (1, "leverchat has no beam search"),
    "length_penalty": (1, "leverchat has no beam search"),
    "early_stopping": (False, "leverchat has no beam search"),
}
# Settings that only matter when another one switches their sampler on.
_ENABLED_BY: Final[dict[str, str]] = {}
DETECTION_KEYS: Final = frozenset(
    {
        *LEVERS,
        *UNMAPPED,
        "do_sample",
        _DRY_BREAKERS,
        *_DYNATEMP_KEYS,
        *_MIROSTAT_KEYS,
        "dynatemp_exponent",
    }
)


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
        elif key == _DRY_BREAKERS:
            _map_breakers(draft, value)
        elif key in _DYNATEMP_KEYS or key in _MIROSTAT_KEYS:
            continue  # below, once the whole pair is known
        elif key == "dynatemp_exponent":
            if data.get("dynamic_temperature") is True:
                draft.set_lever(key, "dynatemp_exponent", value)
            else:
                inactive.append(key)
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
    _map_dynatemp(draft, data, inactive)
    inactive.extend(
        map_mirostat(draft, "mirostat_mode", {k: data[k] for k in _MIROSTAT_KEYS if k in data})
    )
    if inactive:
        draft.notes.append(
            "Not imported, as they are switched off or have no effect in this preset: "
            + ", ".join(inactive)
        )
    return draft


def _map_breakers(draft: Draft, value: object) -> None:
    """text-generation-webui writes the breakers as the inside of a JSON list
    (``'"\\n", ":", "\\"", "*"'``) and reads them with ``json.loads(f"[{value}]")``."""
    if isinstance(value, list):
        draft.set_lever(_DRY_BREAKERS, _DRY_BREAKERS, value)
        return
    if not isinstance(value, str):
        draft.skip(_DRY_BREAKERS, value, "must be a list of quoted strings")
        return
    try:
        parsed = json.loads(f"[{value}]")
    except ValueError:
        draft.skip(_DRY_BREAKERS, value, 'not a list of quoted strings like "\\n", ":"')
        return
    draft.set_lever(_DRY_BREAKERS, _DRY_BREAKERS, parsed)


def _map_dynatemp(draft: Draft, data: Mapping[str, Any], inactive: list[str]) -> None:
    """Dynamic temperature between dynatemp_low and dynatemp_high (which then replace
    temperature in text-generation-webui) = temperature at their middle +/- half the gap."""
    present = [key for key in _DYNATEMP_KEYS if key in data]
    if not present:
        return
    if data.get("dynamic_temperature") is not True:
        inactive.extend(present)
        return
    low, high = data.get("dynatemp_low", 1.0), data.get("dynatemp_high", 1.0)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers or not 0 <= low <= high:
        draft.skip("dynatemp_low", f"{low}, dynatemp_high {high}", "need 0 <= low <= high")
        return
    draft.set_lever("dynatemp_low", "temperature", (low + high) / 2)
    draft.set_lever("dynatemp_high", "dynatemp_range", (high - low) / 2)
    draft.notes.append(
        f"dynatemp_low {low} and dynatemp_high {high} became temperature {(low + high) / 2:g}"
        f" with dynatemp_range {(high - low) / 2:g} (the same span)"
    )


def _is_neutral(key: str, value: object) -> bool:
    return value is None or value == UNMAPPED[key][0]
