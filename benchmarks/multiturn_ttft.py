"""Time to first token at turns 1..10 of a scripted chat, with and without prefix KV-cache reuse.

With reuse, one Generator keeps its KV cache between turns (as the engine thread does), so a
turn prefills only its new tokens. Without, the cache is dropped before every turn and the
whole conversation is prefilled again. Both variants see the very same prompts: the replies
come from the reuse run. Per turn the two variants alternate in order.

Target: with reuse, turn 10 takes at most 1.5 x the time of turn 1.
"""

from __future__ import annotations

from typing import Any

import _common

TARGET_RATIO = 1.5
USER_TURNS = (
    "Hi! I am planning a trip to Portugal in the spring. Where should I start?",
    "I like old towns, good food and walking. Which cities fit that best?",
    "How many days would you spend in Lisbon, and what would you see there?",
    "What is a typical Portuguese breakfast, and where can I try one?",
    "Is it easy to get from Lisbon to Porto by train? How long does it take?",
    "What should I pack for the weather in April, and do I need an umbrella?",
    "Can you suggest a day trip from Porto into the Douro valley?",
    "Which local words or phrases should I learn before I go?",
    "How much money should I budget per day for food and transport?",
    "Thanks! Can you summarise the whole plan in a few short lines?",
)


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=24, runs=3)
    arguments.add_argument("--turns", type=int, default=len(USER_TURNS), help="turns (max 10)")
    args = _common.start(arguments)
    turns = max(1, min(args.turns, len(USER_TURNS)))
    if args.smoke:
        args.tokens, args.runs, turns = min(args.tokens, 4), 1, min(turns, 3)

    from leverchat.levers import Levers

    loaded = _common.load(args)
    reuse = _common.make_generator(loaded)
    fresh = _common.make_generator(loaded)
    levers = Levers(seed=1, max_new_tokens=args.tokens)
    first_token_only = Levers(seed=1, max_new_tokens=1)
    # Warm-up: the first forward passes allocate and pick kernels.
    _common.check_result(reuse.run(_common.request([("user", "Hello")], levers), None))

    with_reuse: list[list[float]] = [[] for _ in range(turns)]
    without: list[list[float]] = [[] for _ in range(turns)]
    details: list[dict[str, Any]] = []
    for run_index in range(args.runs):
        reuse.reset_cache()  # each run is a new conversation
        messages: list[tuple[str, str]] = [("system", _common.SYSTEM_PROMPT)]
        for turn in range(turns):
            messages.append(("user", USER_TURNS[turn]))

            def run_reuse(messages: list[tuple[str, str]] = messages) -> Any:
                return _common.check_result(reuse.run(_common.request(messages, levers), None))

            def run_fresh(messages: list[tuple[str, str]] = messages) -> Any:
                fresh.reset_cache()
                return _common.check_result(
                    fresh.run(_common.request(messages, first_token_only), None)
                )

            if (turn + run_index) % 2 == 0:
                kept, dropped = run_reuse(), run_fresh()
            else:
                dropped, kept = run_fresh(), run_reuse()
            with_reuse[turn].append(kept.stats.time_to_first_token_s)
            without[turn].append(dropped.stats.time_to_first_token_s)
            if run_index == 0:
                details.append(
                    {
                        "turn": turn + 1,
                        "prompt_tokens": kept.stats.prompt_tokens,
                        "reused_prefix_tokens": kept.stats.reused_prefix_tokens,
                        "prefilled_tokens_with_reuse": kept.stats.prefilled_tokens,
                        "prefilled_tokens_without": dropped.stats.prefilled_tokens,
                    }
                )
            messages.append(("assistant", kept.text))

    reuse_curve = [round(_common.median(v), 4) for v in with_reuse]
    fresh_curve = [round(_common.median(v), 4) for v in without]
    ratio_reuse = _common.ratio(reuse_curve[-1], reuse_curve[0])
    _common.emit(
        {
            "benchmark": "multiturn_ttft",
            "model": _common.model_name(args),
            "machine": _common.machine(args.device),
            "turns": turns,
            "tokens_per_reply": args.tokens,
            "runs": args.runs,
            "ttft_s_with_reuse": reuse_curve,
            "ttft_s_without_reuse": fresh_curve,
            "last_over_first_with_reuse": ratio_reuse,
            "last_over_first_without_reuse": _common.ratio(fresh_curve[-1], fresh_curve[0]),
            "last_turn_speedup_from_reuse": _common.ratio(fresh_curve[-1], reuse_curve[-1]),
            "target": f"with reuse, turn {turns} <= {TARGET_RATIO} x turn 1",
            "target_met": ratio_reuse <= TARGET_RATIO,
            "turn_details": details,
        }
    )


if __name__ == "__main__":
    main()
