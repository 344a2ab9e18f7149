"""How often the model follows a persona switched in the middle of a chat, with and without
persona depth (a note re-inserted near the end of the prompt; src/leverchat/persona.py).

A chat of two exchanges under the plain default system prompt (the model's own greedy
replies), then the persona changes and one more question is asked, once per seed:

- ``pirate``: the built-in pirate profile (its system prompt and levers) replaces the default;
- ``french``: the system prompt becomes "Always answer in French.".

Each persona is measured in a new chat too (the same question, no history): the reference.
``note`` variants add the persona note at ``--depth`` (role system). The checks are simple
and printed with the result: a reply is *pirate* when it has a pirate word (arr, matey,
ahoy, ye, yer, aye, hearties, landlubber, avast, treasure, ship); it is *French* when it has
at least 3 French stop-words and more of them than English ones (lists below).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import _common

PIRATE_WORDS = ("arr", "matey", "ahoy", "ye", "yer", "aye", "hearties", "landlubber", "avast")
PIRATE_WORDS += ("treasure", "ship")
FRENCH_WORDS = frozenset(
    (
        "le",
        "la",
        "les",
        "de",
        "des",
        "du",
        "un",
        "une",
        "et",
        "est",
        "je",
        "tu",
        "vous",
        "nous",
        "il",
        "elle",
        "pour",
        "que",
        "qui",
        "dans",
        "en",
        "pas",
        "ce",
        "sont",
        "avec",
        "au",
        "aux",
        "sur",
        "mais",
        "ou",
        "très",
        "c'est",
        "j'ai",
    )
)
ENGLISH_WORDS = frozenset(
    (
        "the",
        "a",
        "an",
        "and",
        "is",
        "of",
        "to",
        "in",
        "it",
        "you",
        "that",
        "for",
        "are",
        "with",
        "this",
        "i",
        "your",
        "be",
        "can",
    )
)

HISTORY_QUESTIONS = ("What is a good name for a dog?", "How do I make a cup of tea?")
QUESTION = "What should I eat for breakfast?"
DEFAULT_SYSTEM = "You are a helpful assistant."
FRENCH_SYSTEM = "Always answer in French."
NOTES = {
    "pirate": 'Talk like a pirate! Start your answer with "Arr, matey!"',
    "french": "Always answer in French.",
}


def is_pirate(text: str) -> bool:
    words = re.findall(r"[a-z']+", text.lower())
    return any(word.strip("'") in PIRATE_WORDS for word in words)


def is_french(text: str) -> bool:
    words = re.findall(r"[a-zàâçéèêëîïôûùüÿœ']+", text.lower())
    french = sum(word in FRENCH_WORDS for word in words)
    english = sum(word in ENGLISH_WORDS for word in words)
    return french >= 3 and french > english


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=40, runs=20)
    arguments.add_argument("--depth", type=int, default=1, help="persona depth (default 1)")
    args = _common.start(arguments)
    if args.smoke:
        args.tokens, args.runs = min(args.tokens, 6), 2

    from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest
    from leverchat.levers import Levers
    from leverchat.profiles import ProfileStore

    loaded = _common.load(args)
    generator = _common.make_generator(loaded)
    pirate = ProfileStore().load("pirate").profile
    base = Levers(max_new_tokens=args.tokens)
    # The tiny smoke model's context (256 tokens) cannot hold the pirate profile's prompt.
    pirate_system = "You are a pirate." if args.smoke else pirate.system_prompt
    personas: dict[str, tuple[str, Levers, Any]] = {
        "pirate": (
            pirate_system,
            replace(pirate.levers, max_new_tokens=args.tokens),
            is_pirate,
        ),
        "french": (FRENCH_SYSTEM, base, is_french),
    }

    def reply(messages: tuple[ChatMessage, ...], levers: Levers) -> str:
        generator.reset_cache()
        request = GenerationRequest(messages, FixedLevers(levers))
        return str(_common.check_result(generator.run(request, None)).text)

    # The history: the model's own greedy replies under the default system prompt.
    history: tuple[ChatMessage, ...] = ()
    greedy = replace(base, temperature=0.0, max_new_tokens=48)
    for question in HISTORY_QUESTIONS:
        history += (ChatMessage("user", question),)
        history += (
            ChatMessage(
                "assistant", reply((ChatMessage("system", DEFAULT_SYSTEM), *history), greedy)
            ),
        )

    results: dict[str, Any] = {}
    examples: dict[str, list[str]] = {}
    for persona, (system, levers, check) in personas.items():
        noted = replace(levers, persona_note=NOTES[persona], persona_depth=args.depth)
        variants = {
            "new_chat": ((), levers),
            "mid_chat": (history, levers),
            "mid_chat_note": (history, noted),
        }
        for variant, (past, variant_levers) in variants.items():
            hits = 0
            texts: list[str] = []
            for seed in range(args.runs):
                messages = (ChatMessage("system", system), *past, ChatMessage("user", QUESTION))
                text = reply(messages, replace(variant_levers, seed=seed))
                hits += bool(check(text))
                texts.append(text)
            name = f"{persona}_{variant}"
            results[name] = {
                "followed": hits,
                "of": args.runs,
                "rate": _common.ratio(hits, args.runs),
            }
            examples[name] = texts[:2]

    _common.emit(
        {
            "benchmark": "persona_switch",
            "model": _common.model_name(args),
            "machine": _common.machine(args.device),
            "seeds": args.runs,
            "max_new_tokens": args.tokens,
            "persona_depth": args.depth,
            "notes": NOTES,
            "checks": {
                "pirate": f"any word of {list(PIRATE_WORDS)}",
                "french": "at least 3 French stop-words and more than English ones",
            },
            "history": [[m.role, m.content] for m in history],
            "question": QUESTION,
            "results": results,
            "examples": examples,
        }
    )


if __name__ == "__main__":
    main()
