"""Draw docs/images/sweep.svg: the lever sweep (F9) on the bundled model, at 100x30.

    LEVERCHAT_CONFIG_DIR=/tmp/x/config LEVERCHAT_DATA_DIR=/tmp/x/data \\
        python docs/images/sweep_screenshot.py [--out docs/images/sweep.svg]

A Pilot run of the real app: the README's question swept over four temperatures with seed 7,
the default profile's other levers, 32 tokens a cell.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from leverchat.engine.types import ModelSpec
from leverchat.engine.worker import EngineThread
from leverchat.ui.app import LeverChatApp
from leverchat.ui.history_session import HistorySession
from leverchat.ui.screens.sweep import SweepScreen

QUESTION = "How do I make a cake?"
LEVERS = {"seed": 7, "max_new_tokens": 32}


async def draw(out: Path) -> None:
    engine = EngineThread()
    app = LeverChatApp(engine, model_spec=ModelSpec(), history=HistorySession.disabled())
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            for _ in range(6000):
                if screen.model_info is not None or screen.load_error is not None:
                    break
                await pilot.pause(0.05)
            if screen.model_info is None:
                raise SystemExit(f"the bundled model did not load: {screen.load_error}")
            levers = screen.live_levers.get()
            for name, value in LEVERS.items():
                levers = levers.with_value(name, value)
            screen.live_levers.set(levers)
            screen.prompt.focus()
            await pilot.pause()
            screen.prompt.insert(QUESTION)
            await pilot.press("f9")
            await pilot.pause()
            sweep = app.screen
            assert isinstance(sweep, SweepScreen)
            await pilot.press("enter")  # the prefilled temperatures: 0, 0.4, 0.8, 1.2
            await pilot.pause(0.5)
            while sweep.running:
                await pilot.pause(0.1)
            await pilot.pause()
            sweep.cells[0].focus()
            for widget in app.screen.query("Input, TextArea"):
                widget.cursor_blink = False
            await pilot.pause(0.3)
            out.parent.mkdir(parents=True, exist_ok=True)
            app.save_screenshot(filename=out.name, path=str(out.parent))
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("sweep.svg"))
    asyncio.run(draw(parser.parse_args().out))


if __name__ == "__main__":
    main()
