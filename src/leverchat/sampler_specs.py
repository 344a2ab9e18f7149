"""The specs of the samplers other tools' presets use beyond the common levers: DRY, XTC,
mirostat v2, dynamic temperature, temperature-last ordering, banned phrases and boosted
phrases (a logit bias by text).

Each one is neutral by default and costs nothing then; the side panel lists them under "More
levers". The names are llama.cpp's and text-generation-webui's, so imported presets map by name.
"""

from __future__ import annotations

from leverchat.lever_spec import LeverSpec, float_lever, int_lever, strings_lever

# text-generation-webui's default breakers (modules/shared.py: '"\\n", ":", "\\"", "*"').
DEFAULT_DRY_BREAKERS: tuple[str, ...] = ("\n", ":", '"', "*")

# Each lever: name, label, default, minimum, maximum, step (lever_spec.py's constructors: the
# neutral value is the default unless given). Aligned by hand, hence no formatter here.
# fmt: off
SAMPLER_SPECS: tuple[LeverSpec, ...] = (
    float_lever("dry_multiplier", "DRY multiplier", 0.0, 0.0, 5.0, 0.1, more=True,
        help="DRY: penalise continuing a sequence already in the text; 0 is off."),
    float_lever("dry_base", "DRY base", 1.75, 1.0, 4.0, 0.05, more=True,
        help="DRY: how fast the penalty grows with each repeated token."),
    int_lever("dry_allowed_length", "DRY allowed length", 2, 1, 64, 1, more=True,
        help="DRY: repeats up to this many tokens long are not penalised."),
    strings_lever("dry_sequence_breakers", "DRY sequence breakers", more=True,
        default=DEFAULT_DRY_BREAKERS,
        help="DRY: a repeat ends at any of these strings (newline, colon...)."),
    float_lever("xtc_probability", "XTC probability", 0.0, 0.0, 1.0, 0.05, more=True,
        help="XTC: how often to exclude the top choices (more creative); 0 is off."),
    float_lever("xtc_threshold", "XTC threshold", 0.1, 0.0, 0.5, 0.01, more=True,
        help="XTC: tokens at least this likely, all but the least, are excluded."),
    float_lever("mirostat_tau", "Mirostat tau", 0.0, 0.0, 20.0, 0.5, more=True,
        help="Mirostat v2 target surprise (bits), replacing top-k/p, min-p; 0 is off."),
    float_lever("mirostat_eta", "Mirostat eta", 0.1, 0.0, 1.0, 0.01, more=True,
        help="Mirostat: how fast it corrects toward tau (learning rate)."),
    float_lever("dynatemp_range", "Dynatemp range", 0.0, 0.0, 5.0, 0.05, more=True,
        help="Dynamic temperature: temperature +/- this, higher when unsure; 0 is off."),
    float_lever("dynatemp_exponent", "Dynatemp exponent", 1.0, 0.01, 10.0, 0.05, more=True,
        help="Dynamic temperature: the curve from certainty to temperature."),
    int_lever("temperature_last", "Temperature last", 0, 0, 1, 1, more=True,
        help="1: apply temperature after top-k, top-p and min-p instead of before."),
    strings_lever("ban", "Banned phrases", more=True,
        help="Words or phrases the reply may not write (the phrase's last token is banned)."),
    LeverSpec("boost", "weights", (), -100.0, 100.0, 0, (), label="Boost", more=True,
        help="Phrase=weight: added to the logit of each phrase's first token; -100 bans it."),
)
# fmt: on

# Levers that take true/false in a profile as well as 0/1.
FLAG_LEVERS = frozenset({"temperature_last"})
