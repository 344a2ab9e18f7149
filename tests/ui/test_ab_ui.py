"""A/B (F8): the message under two settings with one seed, side by side or stacked; the kept
reply is the chat's, the other a version; both have provenance; reproducible on a real model."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted_engine import Script

from conftest import chat_screen, frame_text, wait_for
from leverchat.engine.types import ModelSpec
from leverchat.history import HistoryStore
from leverchat.ui.history_session import HistorySession
from leverchat.ui.screens.ab import ABScreen
from leverchat.ui.screens.provenance import ProvenanceScreen


@pytest.fixture
def history(tmp_path: Path):
    session = HistorySession(HistoryStore(tmp_path / "history.sqlite3"))
    yield session
    session.close()


async def open_ab(pilot, text: str) -> ABScreen:
    chat = chat_screen(pilot.app)
    await wait_for(pilot, lambda: chat.model_info is not None, "model loaded", 3000)
    chat.prompt.focus()
    await pilot.pause()
    chat.prompt.insert(text)
    await pilot.press("f8")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ABScreen), "A/B opened")
    screen = pilot.app.screen
    assert isinstance(screen, ABScreen)
    return screen


async def send_ab(pilot, screen: ABScreen) -> None:
    screen.query_one("#ab-value").focus()
    await pilot.pause()
    await pilot.press("enter")
    await wait_for(pilot, lambda: bool(screen.replies) and not screen.running, "both written", 3000)
    await pilot.pause()


async def test_b_kept_a_stays_a_version_both_with_provenance(make_app, engine, history):
    engine.scripts.extend([Script(["Plain", " answer"]), Script(["Arr", " [/] answer"])])
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, "How do I make a cake?")
        screen.query_one("#ab-profile").value = "pirate"
        await pilot.pause()
        differ = str(screen.query_one("#ab-differ").render())
        assert "B: profile default → pirate" in differ
        assert "temperature 0.7 → 1.1" in differ
        await send_ab(pilot, screen)

        a, b = (seen.request for seen in engine.seen)
        a_levers, b_levers = a.levers.snapshot()[1], b.levers.snapshot()[1]
        assert a_levers.seed == b_levers.seed is not None  # one seed for both
        assert (a_levers.temperature, b_levers.temperature) == (0.7, 1.1)
        assert b_levers.top_p == 0.9
        assert a.messages[0].content == "You are a helpful assistant."
        assert b.messages[0].content == "You are a pirate. Answer like one."
        assert a.messages[-1].content == b.messages[-1].content == "How do I make a cake?"
        frame = frame_text(app)
        assert "Plain answer" in frame and "Arr [/] answer" in frame  # markup literal
        left, right = screen.panes[0].region, screen.panes[1].region
        assert left.y == right.y and right.x > left.x  # side by side at 100 columns
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        left, right = screen.panes[0].region, screen.panes[1].region
        assert left.x == right.x and right.y > left.y  # stacked below 100

        # F3 on B: its own provenance.
        screen.panes[0].focus()
        await pilot.press("right")
        assert app.focused is screen.panes[1]
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, ProvenanceScreen), "provenance")
        assert "Profile:         pirate" in frame_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back to A/B")
        await pilot.press("enter")  # keep B
        await wait_for(pilot, lambda: not isinstance(app.screen, ABScreen), "kept")
        await pilot.pause()

        chat = chat_screen(app)
        kept = chat.conversation.messages[-1]
        assert [m.role for m in chat.conversation.messages] == ["user", "assistant"]
        assert kept.content == "Arr [/] answer"
        assert kept.provenance.profile == "pirate"
        assert kept.provenance.seed == b_levers.seed
        versions = history.versions(kept.id)
        assert sorted(v.content for v in versions) == ["Arr [/] answer", "Plain answer"]
        other = next(v for v in versions if v.id != kept.id)
        assert other.provenance.profile == "default"
        assert other.provenance.seed == kept.provenance.seed
        assert other.provenance.levers.temperature == 0.7
        assert "Kept B; A stays a version" in " ".join(str(n.message) for n in app._notifications)
        # The saved chat opens with B active.
        reopened, _info, _skipped = history.load(chat.conversation.id)
        assert reopened.messages[-1].content == "Arr [/] answer"
        # F3 in the chat: B's provenance; the older version key shows A, and F3 then A's.
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, ProvenanceScreen), "F3 on B")
        assert "Profile:         pirate" in frame_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is chat, "back to the chat")
        await pilot.press("alt+left")
        await wait_for(
            pilot, lambda: chat.conversation.messages[-1].content == "Plain answer", "A shown"
        )
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, ProvenanceScreen), "F3 on A")
        assert "Profile:         default" in frame_text(app)


async def test_a_variant_changes_one_lever_and_escape_keeps_a(make_app, engine, history):
    engine.scripts.extend([Script(["First"]), Script(["Second"])])
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, "Hi")
        screen.query_one("#ab-lever").value = "temperature"
        await pilot.pause()
        assert screen.query_one("#ab-value").value == "0.7"  # prefilled with A's value
        screen.query_one("#ab-value").value = "1.2"
        await pilot.pause()
        assert str(screen.query_one("#ab-differ").render()) == "B: temperature 0.7 → 1.2"
        await send_ab(pilot, screen)
        temps = [seen.request.levers.snapshot()[1].temperature for seen in engine.seen]
        assert temps == [0.7, 1.2]
        await pilot.press("escape")  # closed without choosing: A is kept
        await wait_for(pilot, lambda: not isinstance(app.screen, ABScreen), "closed")
        await pilot.pause()
        chat = chat_screen(app)
        assert chat.conversation.messages[-1].content == "First"
        assert len(history.versions(chat.conversation.messages[-1].id)) == 2


async def test_a_bad_variant_value_is_refused_and_nothing_is_sent(make_app, engine, history):
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, "Hi")
        screen.query_one("#ab-lever").value = "top_p"
        await pilot.pause()
        screen.query_one("#ab-value").value = "1.5"
        await pilot.pause()
        assert "top_p = 1.5 is out of range" in str(screen.query_one("#ab-differ").render())
        screen.query_one("#ab-value").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert engine.seen == [] and screen.replies == []
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ABScreen), "closed")
        chat = chat_screen(app)
        assert chat.conversation.messages == ()
        assert chat.prompt.text == "Hi"  # the typed message is kept


async def test_escape_while_writing_stops_and_the_stopped_text_is_kept(make_app, engine, history):
    held = Script(["Once", " upon", " a time"], hold_after=1)
    engine.scripts.append(held)
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, "Story?")
        screen.query_one("#ab-value").focus()
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, held.reached_hold.is_set, "A is streaming")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not screen.running, "stopped")
        assert len(engine.seen) == 1  # B never ran
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ABScreen), "closed")
        await pilot.pause()
        chat = chat_screen(app)
        assert chat.conversation.messages[0].content == "Story?"  # the message is saved
        assert chat.conversation.messages[-1].content == "Once"


async def ab_texts(make_app, tiny_model_dir: Path, tmp_path: Path) -> tuple[str, str]:
    from leverchat.engine.worker import EngineThread

    engine = EngineThread()
    history = HistorySession(HistoryStore(tmp_path / "h.sqlite3"))
    try:
        app = make_app(
            engine=engine,
            history=history,
            model_spec=ModelSpec(source=str(tiny_model_dir), device="cpu"),
        )
        async with app.run_test(size=(100, 30)) as pilot:
            chat = chat_screen(app)
            await wait_for(pilot, lambda: chat.model_info is not None, "model loaded", 3000)
            levers = chat.live_levers.get().with_value("max_new_tokens", 16)
            chat.live_levers.set(levers.with_value("seed", 99).with_value("temperature", 1.0))
            screen = await open_ab(pilot, "Once upon a time")
            screen.query_one("#ab-lever").value = "temperature"
            await pilot.pause()
            screen.query_one("#ab-value").value = "1.8"
            await send_ab(pilot, screen)
            texts = (screen.replies[0].text, screen.replies[1].text)
            assert all(reply.result.seed == 99 for reply in screen.replies)
            await pilot.press("enter")
            await wait_for(pilot, lambda: not isinstance(app.screen, ABScreen), "kept")
            return texts
    finally:
        engine.close()
        history.close()


@pytest.mark.slow
async def test_ab_with_a_shared_seed_is_reproducible_on_the_tiny_model(
    make_app, tiny_model_dir, tmp_path: Path
):
    first = await ab_texts(make_app, tiny_model_dir, tmp_path / "one")
    second = await ab_texts(make_app, tiny_model_dir, tmp_path / "two")
    assert first == second
    assert all(first)


async def test_a_reply_is_saved_while_it_streams_and_a_failure_keeps_the_app_usable(
    make_app, engine, history
):
    from leverchat.chat import MessageStatus

    held = Script(["Once", " upon"], hold_after=1)
    engine.scripts.extend([held, Script(["Never"], fail_after=0, raise_error=True)])
    app = make_app(history=history)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_ab(pilot, "Story?")
        screen.query_one("#ab-value").focus()
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, held.reached_hold.is_set, "A is streaming")
        chat = app.screen_stack[0]
        # Killed now, the message and A's row would be in the history already.
        saved, _info, _skipped = history.load(chat.conversation.id)
        assert [m.content for m in saved.messages][:1] == ["Story?"]
        assert saved.messages[-1].role == "assistant"
        assert saved.messages[-1].status is MessageStatus.STREAMING
        held.release.set()
        await wait_for(pilot, lambda: not screen.running, "both ended")
        await pilot.pause()
        assert "failed: scripted failure" in frame_text(app)  # B raised in the engine
        assert screen.replies[1].status is MessageStatus.FAILED
        screen.panes[0].focus()
        await pilot.press("enter")  # keep A
        await wait_for(pilot, lambda: app.screen is chat, "kept A")
        await pilot.pause()
        assert chat.conversation.messages[-1].content == "Once upon"
        versions = history.versions(chat.conversation.messages[-1].id)
        assert [v.status for v in versions] == [MessageStatus.COMPLETE, MessageStatus.FAILED]
        # The chat still works: the next message gets its reply.
        chat.prompt.focus()
        await pilot.pause()
        chat.prompt.insert("And then?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: not chat.streaming, "the next reply")
        assert chat.conversation.messages[-1].content == "Hello there!"


async def test_a_b_profile_naming_another_model_says_both_run_on_the_loaded_one(
    make_app, engine, history, profile_store
):
    profile_store.directory.mkdir(parents=True, exist_ok=True)
    (profile_store.directory / "big.toml").write_text(
        'model = "meta-llama/Llama-3.1-8B-Instruct"\nsystem_prompt = "Be brief."\n',
        encoding="utf-8",
    )
    engine.scripts.extend([Script(["One"]), Script(["Two"])])
    app = make_app(history=history)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_ab(pilot, "Hello")
        screen.query_one("#ab-profile").value = "big"
        await pilot.pause()
        differ = str(screen.query_one("#ab-differ").render())
        assert "B's profile names the model meta-llama/Llama-3.1-8B-Instruct" in differ
        assert "runs both sides on the loaded model" in differ
        await send_ab(pilot, screen)
        assert len(engine.seen) == 2  # both sent to the one loaded engine
        assert "runs both sides on the loaded model" in str(screen.query_one("#ab-differ").render())
