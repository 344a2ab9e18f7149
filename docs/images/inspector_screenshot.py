"""Draw docs/images/inspector.svg: the token inspector on the bundled model, at 100x30.

    LEVERCHAT_CONFIG_DIR=/tmp/x/config LEVERCHAT_DATA_DIR=/tmp/x/data \\
        python docs/images/inspector_screenshot.py [--out docs/images/inspector.svg]

A Pilot run of the real app: the inspector on (F6), one reply with a fixed seed and a few
levers set, the token cursor (Alt+T) moved to the first token the levers made a real choice at.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from leverchat.engine.types import ModelSpec
from leverchat.engine.worker import EngineThread
from leverchat.ui.app import LeverChatApp
from leverchat.ui.history_session import HistorySession
from leverchat.ui.widgets.token_table import InspectorPanel

QUESTION = "In one sentence: why is the sky blue?"
LEVERS = {"temperature": 0.8, "top_k": 20, "top_p": 0.9, "seed": 42, "max_new_tokens": 40}


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
            await pilot.press("f2")  # the lever panel away: the chat gets the width
            levers = screen.live_levers.get()
            for name, value in LEVERS.items():
                levers = levers.with_value(name, value)
            screen.live_levers.set(levers)
            await pilot.press("f6")
            screen.prompt.focus()
            await pilot.pause()
            screen.prompt.insert(QUESTION)
            await pilot.press("enter")
            await pilot.pause(0.5)
            while screen.streaming:
                await pilot.pause(0.1)
            await pilot.pause()
            records = screen.last_result.inspection
            # The first token where the levers cut something and the choice was not a given.
            target = next(
                (
                    index
                    for index, item in enumerate(records)
                    if item.after is not None
                    and item.after < 0.6
                    and any(alt.removed_by for alt in item.alternatives)
                ),
                0,
            )
            await pilot.press("alt+t")
            await pilot.pause()
            for _ in range(target):
                await pilot.press("right")
            await pilot.pause()
            for widget in app.screen.query("Input, TextArea"):
                widget.cursor_blink = False
            assert screen.query_one(InspectorPanel).index == target
            await pilot.pause(0.3)
            out.parent.mkdir(parents=True, exist_ok=True)
            app.save_screenshot(filename=out.name, path=str(out.parent))
    finally:
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("inspector.svg"))
    asyncio.run(draw(parser.parse_args().out))


if __name__ == "__main__":
    main()
