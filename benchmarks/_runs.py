"""Run loops the benchmarks share (the harness itself is _common.py).

- decode benchmarks (lever_overhead, inspector_overhead): one endless Generator on the long
  prompt, runs of exactly ``--tokens`` tokens, and the cost of one step per token on the
  model's real logits;
- streaming benchmarks (stream_overhead, remote_overhead, ui_latency): the alternating loop for
  coroutines and the headless app variant (a reply sent as a user would, timed until the app
  shows it finished);
- the JSON fields every alternating benchmark reports: median rates and their samples.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import _common

MESSAGES = [("system", _common.SYSTEM_PROMPT), ("user", _common.LONG_ANSWER_PROMPT)]


# -- decode benchmarks -------------------------------------------------------------------------


def active_levers(tokens: int) -> Any:
    """Every common lever doing something (penalties included), seed 7, ``tokens`` long."""
    from leverchat.levers import Levers

    return Levers(
        temperature=0.8,
        top_k=40,
        top_p=0.9,
        min_p=0.05,
        typical_p=1.0,
        repetition_penalty=1.15,
        frequency_penalty=0.3,
        presence_penalty=0.3,
        seed=7,
        max_new_tokens=tokens,
    )


@dataclass
class Decoder:
    """The loaded model and one Generator that never ends a turn by itself."""

    loaded: Any
    generator: Any
    tokens: int

    def prompt_ids(self, levers: Any) -> list[int]:
        """The long prompt's token ids, as the generator encodes it."""
        from leverchat.engine.prompt import encode_messages

        messages = _common.request(MESSAGES, levers).messages
        ids: list[int] = encode_messages(self.loaded.tokenizer, messages, "auto")
        return ids

    def run(self, name: str, request: Any) -> Any:
        """One reply from an empty cache; exactly ``tokens`` tokens or the benchmark stops."""
        self.generator.reset_cache()
        result = _common.check_result(self.generator.run(request, None))
        if result.stats.new_tokens != self.tokens:
            raise SystemExit(f"{name}: {result.stats.new_tokens} tokens, not {self.tokens}")
        return result


def decoder(arguments: argparse.ArgumentParser) -> tuple[argparse.Namespace, Decoder]:
    """Parse the options (a smoke run: 6 tokens, 1 run) and load the model."""
    args = _common.start(arguments)
    if args.smoke:
        args.tokens, args.runs = min(args.tokens, 6), 1
    loaded = _common.load(args)
    return args, Decoder(loaded, _common.make_generator(loaded, endless=True), args.tokens)


# (picker, logits, rng) -> (the token picked, the seconds of the part measured)
Step = Callable[[Any, Any, Any], tuple[int, float]]


def step_cost_us(generator: Any, prompt_ids: list[int], repeats: int, step: Step) -> float:
    """Median microseconds of ``step`` on the model's real next-token logits, token after
    token (each picked token is accepted, so penalties see a growing reply)."""
    import torch

    from leverchat.engine.sampling import TokenPicker

    with torch.inference_mode():
        generator.reset_cache()
        logits = generator._forward(prompt_ids)
        picker = TokenPicker(
            prompt_ids, generator.vocab_size, generator.device, generator._encode_text
        )
        rng = torch.Generator(device=generator.device)
        rng.manual_seed(0)
        samples = []
        for _ in range(repeats):
            token, seconds = step(picker, logits, rng)
            samples.append(seconds)
            picker.accept(token)
    generator.reset_cache()
    return round(_common.median(samples) * 1e6, 1)


# -- streaming benchmarks ----------------------------------------------------------------------


async def alternate_async(
    variants: Mapping[str, Callable[[], Awaitable[float]]], runs: int
) -> dict[str, list[float]]:
    """_common.alternate for coroutines: one warm-up round, then interleaved timed rounds."""
    names = list(variants)
    for name in names:
        await variants[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(runs):
        for name in names if round_index % 2 == 0 else list(reversed(names)):
            samples[name].append(await variants[name]())
    return samples


@dataclass
class HeadlessApp:
    """The Textual app on an already loaded engine, run headless."""

    app: Any
    screen: Any
    pilot: Any

    async def reply(self, before: Callable[[], Awaitable[None]] | None = None) -> tuple[float, Any]:
        """Start a new chat, run ``before`` (a fresh cache), send the long prompt as a user
        would and wait until the app shows the reply finished: (seconds, its result)."""
        await self.screen.action_new_chat()
        if before is not None:
            await before()
        await self.pilot.pause()
        started = time.perf_counter()
        await self.screen.send(_common.LONG_ANSWER_PROMPT)
        # Poll every 10 ms (0.1 % of a run): polling every 2 ms woke the UI thread 500 times
        # a second, taking the GIL from the engine it measures.
        while self.screen.streaming:
            await asyncio.sleep(0.01)
        return time.perf_counter() - started, self.screen.last_result


@asynccontextmanager
async def headless_app(
    engine: Any, info: Any, spec: Any, levers: Any
) -> AsyncIterator[HeadlessApp]:
    """The app on ``engine`` (its model already loaded: ``info``), with the benchmark's system
    prompt and ``levers`` set, ready for :meth:`HeadlessApp.reply`."""
    from leverchat.ui.app import LeverChatApp
    from leverchat.ui.screens.chat import ChatScreen

    app = LeverChatApp(_common.PreloadedEngine(engine, info), model_spec=spec)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        while screen.model_info is None:
            await pilot.pause(0.01)
        screen.system_prompt = _common.SYSTEM_PROMPT
        screen.live_levers.set(levers)
        yield HeadlessApp(app, screen, pilot)


# -- JSON --------------------------------------------------------------------------------------


def rate_summary(samples: Mapping[str, list[float]]) -> tuple[dict[str, float], dict[str, Any]]:
    """The median rate of each variant, and the JSON fields ``tokens_per_s`` and ``samples``."""
    rates = {name: _common.median(values) for name, values in samples.items()}
    fields = {
        "tokens_per_s": {name: round(rate, 2) for name, rate in rates.items()},
        "samples": {name: _common.rounded(values, 2) for name, values in samples.items()},
    }
    return rates, fields
