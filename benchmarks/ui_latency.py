"""Key press to its effect on screen while a reply streams at full speed, and the UI thread's
share of a core while streaming.

The real Textual app runs headless on the real engine (EngineThread + model). A reply of
``--tokens`` tokens streams (end-of-turn does not stop it). Meanwhile letters are typed into
the prompt one at a time, at random gaps, the way the terminal driver delivers them (a Key
event posted to the app); the latency of one key is the time from posting it until the
prompt shows the letter and the screen has refreshed after that. The same is measured with no
reply streaming, for reference.

Every key of the streaming phase is typed while the reply streams: on a busy machine a reply
could end before the keys were typed, so the engine holds the reply open before its last
token until they are. Keys typed while it is held (no tokens arriving, so no load) are counted
in ``keys_while_engine_held``; on an unloaded machine that is 0.

The UI thread's CPU share is its own CPU time (``time.thread_time`` on the app's thread)
over the wall time of a second streamed reply with no typing.

Target: p95 key latency while streaming under 50 ms.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from typing import Any

import _common
import _runs

TARGET_P95_S = 0.050
SEED = 99


async def key_latency(app: Any, prompt: Any, letter: str) -> float:
    """Post one key event and wait until the prompt shows it on a refreshed screen."""
    from textual import events

    before = prompt.text
    started = time.perf_counter()
    app._driver.send_message(events.Key(letter, letter))  # as the terminal driver does
    while prompt.text == before:
        await asyncio.sleep(0.0005)
    refreshed = asyncio.Event()
    prompt.call_after_refresh(refreshed.set)
    await refreshed.wait()
    return time.perf_counter() - started


class ReplyHold:
    """Holds a reply open before its last token (by max_new_tokens or a full context) until
    :meth:`release`, while :attr:`active`. Runs on the engine thread, inside the generator's
    one-token step: tokens flow at full speed until the last one."""

    def __init__(self, generator: Any) -> None:
        self.active = False
        self.max_new_tokens = 0
        self.engaged = threading.Event()
        self._released = threading.Event()
        self._steps = 0
        run, step = generator.run, generator._step

        def counted_run(request: Any, on_chunk: Any) -> Any:
            self._steps = 0
            return run(request, on_chunk)

        def held_step(token: int) -> Any:
            # The loop steps after every token but the last: this is the last step when the
            # next token is the max_new_tokens-th, or the one that fills the context.
            self._steps += 1
            last = self._steps >= self.max_new_tokens - 1 or (
                len(generator._cached_ids) + 2 >= generator.context_window
            )
            if self.active and last and not self._released.is_set():
                self.engaged.set()
                self._released.wait()
            return step(token)

        generator.run, generator._step = counted_run, held_step

    def release(self) -> None:
        self.active = False
        self._released.set()


async def type_letters(
    app: Any,
    prompt: Any,
    count: int,
    rng: random.Random,
    while_true: Any,
    hold: ReplyHold | None = None,
) -> tuple[list[float], int]:
    """Latencies of up to ``count`` keys typed while ``while_true()``, and how many of them
    were typed while the engine was held (see ReplyHold)."""
    latencies: list[float] = []
    held = 0
    for _ in range(count):
        if not while_true():
            break
        held += bool(hold is not None and hold.engaged.is_set())
        latencies.append(await key_latency(app, prompt, rng.choice("abcdefghijklmnop")))
        await asyncio.sleep(rng.uniform(0.02, 0.08))
    return latencies, held


async def main_async(args: Any) -> dict[str, Any]:
    from leverchat.engine.types import ModelSpec
    from leverchat.engine.worker import EngineThread
    from leverchat.levers import Levers

    engine = EngineThread()
    info = engine.load(ModelSpec(source=args.model, device=args.device)).result()
    _common.never_end_of_turn(engine.generator)
    hold = ReplyHold(engine.generator)
    hold.max_new_tokens = args.tokens
    rng = random.Random(SEED)
    try:
        warm_up = Levers(seed=SEED, max_new_tokens=4)
        async with _runs.headless_app(engine, info, ModelSpec(args.model), warm_up) as run:
            app, screen = run.app, run.screen
            prompt = screen.prompt

            async def stream_reply() -> None:
                await screen.action_new_chat()
                await screen.send(_common.LONG_ANSWER_PROMPT)
                # Wait for the first streamed text: from here the engine runs at full speed.
                # (A reply held before its last token may have shown none: do not wait.)
                view = screen.chat.reply(screen.conversation.messages[-1].id)
                while (
                    screen.streaming
                    and view is not None
                    and not view.text
                    and not hold.engaged.is_set()
                ):
                    await asyncio.sleep(0.005)

            async def until_done() -> None:
                while screen.streaming:
                    await asyncio.sleep(0.02)

            # Warm-up reply (first forward passes, first Markdown render).
            screen.live_levers.set(warm_up)
            await stream_reply()
            await until_done()
            screen.live_levers.set(Levers(seed=SEED, max_new_tokens=args.tokens))

            prompt.focus()
            idle, _ = await type_letters(app, prompt, args.keys, rng, lambda: True)
            prompt.clear_prompt()

            # Streaming, typing: the reply is held open until every key is typed.
            hold.active = True
            await stream_reply()
            prompt.focus()
            streaming, held = await type_letters(
                app, prompt, args.keys, rng, lambda: screen.streaming, hold
            )
            hold.release()
            await until_done()
            typed_reply = screen.last_result
            prompt.clear_prompt()

            # Streaming, hands off: the UI thread's own CPU time.
            await stream_reply()
            cpu_started, wall_started = time.thread_time(), time.perf_counter()
            await until_done()
            ui_cpu = time.thread_time() - cpu_started
            wall = time.perf_counter() - wall_started
            quiet_reply = screen.last_result
    finally:
        hold.release()  # never leave the engine thread waiting
        engine.close()

    p95 = _common.percentile(streaming, 0.95)
    return {
        "benchmark": "ui_latency",
        "model": _common.model_name(args),
        "machine": _common.machine(args.device),
        "tokens": args.tokens,
        "keys_while_streaming": len(streaming),
        "keys_while_engine_held": held,
        "key_latency_s_streaming": {
            "p50": round(_common.percentile(streaming, 0.5), 4),
            "p95": round(p95, 4),
            "max": round(max(streaming, default=0.0), 4),
        },
        "key_latency_s_idle": {
            "p50": round(_common.percentile(idle, 0.5), 4),
            "p95": round(_common.percentile(idle, 0.95), 4),
        },
        "ui_thread_core_share_streaming": _common.ratio(ui_cpu, wall),
        "streaming_wall_s": round(wall, 3),
        "engine_tokens_per_s": {
            "while_typing": round(typed_reply.stats.tokens_per_s, 2) if typed_reply else None,
            "hands_off": round(quiet_reply.stats.tokens_per_s, 2) if quiet_reply else None,
        },
        "target": f"p95 key latency while streaming < {TARGET_P95_S * 1000:.0f} ms",
        "target_met": bool(streaming) and p95 < TARGET_P95_S,
    }


def main() -> None:
    arguments = _common.parser(__doc__ or "", tokens=160, runs=1)
    arguments.add_argument("--keys", type=int, default=40, help="keys typed per phase")
    args = _common.start(arguments)
    if args.smoke:
        args.tokens, args.keys = min(args.tokens, 40), min(args.keys, 3)
    _common.emit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
