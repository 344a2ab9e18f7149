"""Branch a reply from one of its tokens on the real engine (the tiny model, a fixed seed): the
new version continues from the kept tokens and the chosen one, the old version stays, the
version tree lists the branch under its origin and opens either, and F5 reproduces the branch.

BranchRequested is posted directly: the token inspector's table (which posts it) is another
module's; its records are saved the way it saves them (token id and text per token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import chat_screen, frame_text, send, wait_for
from leverchat.engine.inspection import TokenInspection
from leverchat.engine.types import ModelSpec
from leverchat.engine.worker import EngineThread
from leverchat.history import HistoryStore
from leverchat.ui.branch_request import BranchRequested
from leverchat.ui.history_session import HistorySession
from leverchat.ui.screens.version_tree import VersionTreeScreen
from leverchat.ui.widgets.messages_view import ReplyView

pytestmark = pytest.mark.slow


def notices(app: Any) -> str:
    return "\n".join(str(notification.message) for notification in app._notifications)


def tokenizer_of(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def records(tokenizer: Any, ids: tuple[int, ...]) -> tuple[TokenInspection, ...]:
    """What the token inspector stores for each token of a reply (the fields a branch uses)."""
    return tuple(
        TokenInspection(
            token_id=token,
            text=tokenizer.decode([token]),
            raw=None,
            after=None,
            raw_rank=None,
            after_rank=None,
        )
        for token in ids
    )


async def test_a_branch_continues_from_the_chosen_token_as_a_new_version(
    make_app: Any, tiny_long_model_dir: Path, tmp_path: Path
) -> None:
    tokenizer = tokenizer_of(tiny_long_model_dir)
    engine = EngineThread()
    store = HistoryStore(tmp_path / "history.sqlite3")
    history = HistorySession(store)
    try:
        app = make_app(
            engine=engine,
            history=history,
            model_spec=ModelSpec(source=str(tiny_long_model_dir), device="cpu"),
        )
        async with app.run_test(size=(80, 24)) as pilot:
            screen = chat_screen(app)
            await wait_for(pilot, lambda: screen.model_info is not None, "model loaded", 3000)
            levers = screen.live_levers.get().with_value("temperature", 1.0)
            screen.live_levers.set(levers.with_value("max_new_tokens", 16).with_value("seed", 42))
            await send(pilot, "Tell me about the pirate")
            await wait_for(pilot, lambda: not screen.streaming, "the reply finished", 3000)
            original = screen.conversation.messages[-1]
            original_ids = screen.last_result.token_ids
            assert len(original_ids) == 16
            store.save_inspection(original.id, records(tokenizer, original_ids))

            chosen = next(
                token
                for token in tokenizer.encode(" Arr matey", add_special_tokens=False)
                if token != original_ids[5]
            )
            chosen_text = tokenizer.decode([chosen])
            screen.post_message(BranchRequested(original.id, 5, chosen_text, chosen))
            await wait_for(
                pilot,
                lambda: screen.conversation.messages[-1].id != original.id and not screen.streaming,
                "the branch finished",
                3000,
            )
            branch = screen.conversation.messages[-1]
            result = screen.last_result
            # It continues from the kept tokens and the chosen one.
            assert result.token_ids[:6] == (*original_ids[:5], chosen)
            kept_text = tokenizer.decode(list(original_ids[:5]))
            assert branch.content.startswith(kept_text + chosen_text)
            assert branch.content != original.content
            # A new version of the same reply; the old one is kept.
            versions = history.versions(branch.id)
            assert [v.id for v in versions] == [original.id, branch.id]
            assert versions[0].content == original.content
            point = branch.provenance.branch
            assert (point.source_id, point.token_index, point.text) == (original.id, 5, chosen_text)
            assert point.char_offset == len(kept_text)
            assert point.prefix_ids == (*original_ids[:5], chosen)
            assert len(screen.conversation.messages) == 2  # it took the old reply's place

            # The version tree: the branch under its origin, at 80x24.
            await pilot.press("f7")
            await wait_for(pilot, lambda: isinstance(app.screen, VersionTreeScreen), "the tree")
            frame = frame_text(app)
            lines = frame.splitlines()
            first = next(line for line in lines if "v1:" in line)
            second = next(line for line in lines if "v2 from v1 at token 6" in line)
            assert second.index("v2") > first.index("v1")  # indented under v1
            assert repr(chosen_text) in second
            await pilot.press("up", "enter")  # open v1: the chat continues from it
            await wait_for(pilot, lambda: app.screen is screen, "the tree closed")
            await wait_for(
                pilot, lambda: screen.conversation.messages[-1].id == original.id, "v1 opened"
            )
            assert screen.conversation.messages[-1].content == original.content
            await pilot.press("f7")
            await wait_for(pilot, lambda: isinstance(app.screen, VersionTreeScreen), "the tree")
            await pilot.press("down", "enter")
            await wait_for(
                pilot, lambda: screen.conversation.messages[-1].id == branch.id, "v2 opened"
            )

            # F5 on the branch reproduces it: the same start, levers and seed.
            screen.query(ReplyView).last().focus()
            await pilot.press("f5")
            await wait_for(
                pilot,
                lambda: screen.conversation.messages[-1].id != branch.id and not screen.streaming,
                "the reproduction",
                3000,
            )
            again = screen.conversation.messages[-1]
            assert again.content == branch.content
            assert screen.last_result.token_ids == result.token_ids
            assert again.provenance.branch == point
            assert "Reproduced exactly" in frame_text(app)
    finally:
        engine.close()
        history.close()


async def test_branch_at_a_character_with_the_keyboard_only(
    make_app: Any, engine: Any, tmp_path: Path
) -> None:
    """b on a focused reply: the reply is shown with a cursor; Home, Right x3, Enter, type the new
    text, Enter. The engine gets the kept text and the new text (no token ids are known for a
    reply written by a server or with the inspector off), and the branch is a new version
    whose tree line says "at character 3". Markup in the reply stays literal throughout."""
    from scripted_engine import Script

    from leverchat.engine.types import ReplyPrefix
    from leverchat.ui.screens.branch_at import BranchAtScreen

    hostile = "[/]ab [@click=app.quit]x[/] cd"
    engine.scripts.append(Script([hostile]))
    engine.scripts.append(Script(["[/]", " Arr", " matey"]))
    history = HistorySession(HistoryStore(tmp_path / "history.sqlite3"))
    try:
        app = make_app(history=history)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = chat_screen(app)
            await send(pilot, "Talk")
            await wait_for(pilot, lambda: not screen.streaming, "the reply")
            original = screen.conversation.messages[-1]
            screen.query(ReplyView).last().focus()
            await pilot.pause()
            await pilot.press("b")
            await wait_for(pilot, lambda: isinstance(app.screen, BranchAtScreen), "the dialog")
            assert "[@click=app.quit]" in frame_text(app)  # shown literally
            await pilot.press("home", "right", "right", "right", "enter")
            await pilot.press(*" Arr")
            await pilot.press("enter")
            await wait_for(
                pilot,
                lambda: screen.conversation.messages[-1].id != original.id and not screen.streaming,
                "the branch",
            )
            assert engine.last.request.reply_prefix == ReplyPrefix("[/] Arr")
            branch = screen.conversation.messages[-1]
            point = branch.provenance.branch
            assert (point.source_id, point.char_offset, point.text) == (original.id, 3, " Arr")
            assert point.token_index is None
            assert [v.id for v in history.versions(branch.id)] == [original.id, branch.id]
            await pilot.press("f7")
            await wait_for(pilot, lambda: isinstance(app.screen, VersionTreeScreen), "the tree")
            tree = frame_text(app)
            assert "v2 from v1 at character 3 ' Arr'" in tree
            assert "v1: [/]ab [@click=app.quit]x[/] cd" in tree  # markup shown literally
            await pilot.press("escape")
            await wait_for(pilot, lambda: app.screen is screen, "the tree closed")
            assert screen.conversation.messages[-1].id == branch.id  # Escape opens nothing
    finally:
        history.close()


async def test_f1_and_the_palette_list_the_tree_and_branch_at(make_app: Any) -> None:
    from leverchat.ui.commands import chat_commands
    from leverchat.ui.screens.help import help_rows

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = chat_screen(app)
        commands = {command.label: command.help for command in chat_commands(screen)}
        assert "f7" in commands["Version tree"].lower()
        assert "Branch the reply at…" in commands
        await pilot.press("f7")  # nothing to show yet: said, nothing opens
        await wait_for(pilot, lambda: "There is no reply yet." in notices(app), "the notice")
        assert app.screen is screen
        rows = help_rows({})
        assert (
            "f7",
            "version_tree",
            "Show the versions of the focused reply as a tree (chat)",
        ) in rows
        assert any(row[:2] == ("b", "reply.branch") for row in rows)


async def test_a_branch_of_a_reply_without_token_records_is_refused_plainly(
    make_app: Any, engine: Any, tmp_path: Path
) -> None:
    """Without the inspector's records the token index cannot be placed in the text: nothing
    is generated, nothing is added, and the notice says what to use instead."""
    from scripted_engine import Script

    engine.scripts.append(Script(["Hello there"]))
    history = HistorySession(HistoryStore(tmp_path / "history.sqlite3"))
    try:
        app = make_app(history=history)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = chat_screen(app)
            await send(pilot, "Hi")
            await wait_for(pilot, lambda: not screen.streaming, "the reply")
            original = screen.conversation.messages[-1]
            requests = len(engine.seen)
            screen.post_message(BranchRequested(original.id, 1, " [/]x", 7))
            await wait_for(pilot, lambda: "Branch at" in notices(app), "the notice")
            assert len(engine.seen) == requests
            assert [v.id for v in history.versions(original.id)] == [original.id]
    finally:
        history.close()
