"""``llm`` templates (``llm templates path``/*.yaml): a system prompt and model options.

llm itself sends no sampling option a template does not set, so the model's or the server's
own defaults apply there. leverchat has no per-model defaults to defer to: levers a template
does not set keep leverchat's defaults, and the import report says so.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any, Final

from leverchat.importers.common import Draft, map_mirostat, show
from leverchat.importers.go_template import wrap_format
from leverchat.profiles import ProfileError, validate_name

DEFAULTS: Final[dict[str, Any]] = {}
DEFAULTS_NOTE: Final = (
    "Levers the template does not set keep leverchat's defaults (llm sends no value for "
    "them, so the model or server chose them there)."
)

TEMPLATE_KEYS: Final = frozenset(
    {
        "system",
        "prompt",
        "model",
        "defaults",
        "options",
        "extract",
        "extract_last",
        "schema_object",
        "fragments",
        "system_fragments",
        "tools",
        "functions",
    }
)
_OPTION_LEVERS: Final = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "max_tokens": "max_new_tokens",
    "max_new_tokens": "max_new_tokens",
    "num_predict": "max_new_tokens",
    "seed": "seed",
    "stop": "stop",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "repeat_penalty": "repetition_penalty",
    "repetition_penalty": "repetition_penalty",
    # llama.cpp-backed plugins (llm-gguf, llm-llama-server) take its sampler names.
    "dry_multiplier": "dry_multiplier",
    "dry_base": "dry_base",
    "dry_allowed_length": "dry_allowed_length",
    "dry_sequence_breakers": "dry_sequence_breakers",
    "xtc_probability": "xtc_probability",
    "xtc_threshold": "xtc_threshold",
    "dynatemp_range": "dynatemp_range",
    "dynatemp_exponent": "dynatemp_exponent",
}
_MIROSTAT_KEYS: Final = ("mirostat", "mirostat_tau", "mirostat_eta")
_OPTION_REASONS: Final = {
    # OpenAI's logit_bias: token ids of that model's tokenizer, which mean other tokens in
    # any other one; leverchat's boost takes the words themselves.
    "logit_bias": "its keys are token ids of the remote model's tokenizer, not text: "
    'write the words as boost = {"word" = 2.0} (or -100 to ban) under [levers]',
}
_KEY_REASONS: Final = {
    "extract": "extracting code blocks is not a profile setting",
    "extract_last": "extracting code blocks is not a profile setting",
    "schema_object": "structured output schemas are not supported",
    "fragments": "fragments are not supported: paste their text into the system prompt",
    "system_fragments": "fragments are not supported: paste their text into the system prompt",
    "tools": "tools are not supported",
    "functions": "tools are not supported",
}


def parse_llm_template(data: Mapping[str, Any]) -> Draft:
    """Map an ``llm`` template."""
    draft = Draft()
    draft.notes.append(DEFAULTS_NOTE)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        draft.skip("defaults", defaults, "must be a mapping of parameter names to values")
        defaults = {}
    for raw_key, value in data.items():
        key = str(raw_key)
        if key == "system":
            if isinstance(value, str):
                draft.system_prompt = _fill_template(value, defaults, draft)
            elif value is not None:
                draft.skip(key, value, "must be text")
        elif key == "options":
            _map_options(draft, value)
        elif key == "name":
            _map_name(draft, value)
        elif key == "model":
            draft.skip(
                key,
                value,
                "an llm model id; set model to a Hugging Face id or a local path by hand",
            )
        elif key == "defaults":
            continue  # used to fill in the system prompt's $parameters
        elif key == "prompt":
            _map_prompt(draft, value)
        elif key in _KEY_REASONS:
            draft.skip(key, value, _KEY_REASONS[key])
        else:
            draft.skip(key, value, "not an llm template key leverchat knows")
    return draft


def _map_name(draft: Draft, value: object) -> None:
    """llm's ``name`` (the template's name) names the profile unless --name is given."""
    try:
        draft.profile_name = validate_name(value)
    except ProfileError as error:
        draft.skip("name", value, f"{error.message}; the file name was used instead")


def _fill_template(text: str, defaults: Mapping[str, Any], draft: Draft) -> str:
    template = string.Template(text)
    filled = template.safe_substitute({str(k): str(v) for k, v in defaults.items()})
    missing = [name for name in template.get_identifiers() if name not in defaults]
    if missing:
        draft.skip(
            "system",
            ", ".join(f"${name}" for name in missing),
            "template parameters without a default are left as written: edit the system prompt",
        )
    return filled


def _map_options(draft: Draft, options: object) -> None:
    if options is None:
        return  # "options:" with nothing under it: valid in llm, and sets nothing
    if not isinstance(options, Mapping):
        draft.skip("options", options, "must be a mapping of option names to values")
        return
    mirostat: dict[str, object] = {}
    for raw_key, value in options.items():
        key = str(raw_key)
        lever = _OPTION_LEVERS.get(key)
        if key in _MIROSTAT_KEYS:
            mirostat[key] = value  # below, once all three are known
        elif lever is None:
            reason = _OPTION_REASONS.get(key, f"leverchat has no '{key}' option")
            draft.skip(f"options.{key}", value, reason)
        else:
            draft.set_lever(f"options.{key}", lever, value)
    switched_off = map_mirostat(draft, "mirostat", mirostat)
    if switched_off:
        draft.notes.append("Not imported, as mirostat is off: " + ", ".join(switched_off))


# Role markers and chat-format tokens: a prompt with them is a prompt format (for a base model),
# not just words around what the user types.
_FORMAT_MARKER_RE = re.compile(
    r"^\s*(?:#+\s*)?(?:instruction|response|user|assistant|human|bot|input|question|answer)"
    r"\s*:|<\|[^|<>\n]{1,40}\|>|\[/?INST\]",
    re.IGNORECASE | re.MULTILINE,
)


def _map_prompt(draft: Draft, value: object) -> None:
    """llm's ``prompt`` fills ``$input`` with what the user types. With role markers around it
    (``### Instruction:\n$input\n\n### Response:``) it is a prompt format: map it."""
    if not isinstance(value, str):
        draft.skip("prompt", value, "must be text")
        return
    before, found, after = value.partition("$input")
    if not found or "$input" in after:
        draft.skip("prompt", value, "it needs exactly one $input (where what you type goes) to map")
        return
    if not _FORMAT_MARKER_RE.search(value):
        draft.skip(
            "prompt",
            value,
            f"it wraps what you type ({show(value, 40)}) inside the model's own chat template; a "
            "prompt format replaces that template, so it was not mapped: type the wrapper text "
            "yourself",
        )
        return
    draft.prompt_format = wrap_format("llm prompt", before, after)
    draft.notes.append(
        "prompt became the profile's prompt format: each turn is the text around $input, "
        "replies separated by a blank line"
    )
