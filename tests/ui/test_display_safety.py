"""Untrusted text (replies, profile names, errors) is shown literally and never reaches the
terminal as a control sequence; links never open by themselves; huge tables do not freeze."""

from __future__ import annotations

import pytest
from scripted_engine import Script, ScriptedEngine
from terminal_capture import capture_terminal, foreign_sequences

from conftest import chat_screen, frame_text, reply_done, send
from leverchat.safetext import plain, strip_control
from leverchat.ui.widgets.markdown_guard import MAX_TABLE_CELLS, too_heavy_for_markdown
from leverchat.ui.widgets.messages_view import ReplyView

MARKUP_PAYLOADS = ["[/]", "[bold]x[/]", "list[int]", "[@click=app.quit]quit[/]", "[link=x]y[/link]"]
CONTROL_PAYLOADS = [
    "\x1b]52;c;aGVsbG8=\x07",  # OSC 52: write the clipboard
    "\x1b]0;pwned\x07",  # OSC 0: window title
    "\x1b[2J\x1b[H",  # CSI: clear the screen, cursor home
    "\x9b31m",  # 8-bit CSI
    "\x9d0;title\x9c",  # 8-bit OSC
    "\x07\x08\x00\x7f",  # BEL, BS, NUL, DEL
]


@pytest.mark.parametrize(
    ("chunks", "shown"),
    [
        (["a &#x202e;", " b"], "a \\u202e b"),  # a numeric reference to a bidi override
        (["a &rlm;b &zwj;c"], "a \\u200fb \\u200dc"),  # named references
        (["a &#x20", "2e; b"], "a \\u202e b"),  # split across two streamed chunks
    ],
)
async def test_markdown_references_to_invisible_characters_are_shown(
    make_app, engine, monkeypatch, chunks, shown
):
    engine.scripts.append(Script(chunks))
    with capture_terminal(monkeypatch) as written:
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await send(pilot, "refs")
            await reply_done(pilot)
            assert shown in frame_text(app)
    assert foreign_sequences("".join(written)) == []


@pytest.mark.parametrize("payload", MARKUP_PAYLOADS)
async def test_markup_in_a_reply_is_shown_literally(make_app, engine, payload):
    engine.scripts.append(Script([f"before {payload} after"]))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, f"say {payload}")
        await reply_done(pilot)
        assert screen.conversation.messages[-1].content == f"before {payload} after"
        assert app.is_running  # [@click=app.quit] did nothing
        frame = frame_text(app)
        assert f"say {payload}" in frame  # the user's message, literally
        assert f"before {payload} after" in frame  # the reply, literally


@pytest.mark.parametrize("payload", CONTROL_PAYLOADS)
async def test_control_sequences_in_a_reply_never_reach_the_terminal(make_app, engine, payload):
    engine.scripts.append(Script(["safe ", payload, " text"]))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, f"x{payload}y")
        await reply_done(pilot)
        # stored unchanged, displayed clean
        assert payload in screen.conversation.messages[-1].content
        shot = frame_text(app)
        for byte in ("\x1b", "\x9b", "\x9d", "\x07", "\x00"):
            assert byte not in shot
        assert "safe" in shot and "text" in shot


async def test_markup_and_controls_in_a_profile_name_and_an_error_are_literal(
    make_app, tmp_path, profile_store
):
    nasty = "[bold]x[/] \x1b]0;t\x07 list[int]"
    profile_store.directory.mkdir(parents=True, exist_ok=True)
    (profile_store.directory / "nasty.toml").write_text(
        'name = "[/] [@click=app.quit]boom list[int]"\nsystem_prompt = "hi"\n', encoding="utf-8"
    )
    engine = ScriptedEngine(load_error=f"cannot load {nasty}")
    try:
        app = make_app(engine=engine, profile="[/] [@click=app.quit]boom list[int]")
        async with app.run_test(size=(120, 40)) as pilot:
            screen = chat_screen(app)
            for _ in range(50):
                await pilot.pause(0.01)
                if screen.load_error:
                    break
            await pilot.pause()
            shot = frame_text(app)
            assert "\x1b]0;t" not in shot
            assert app.is_running
            assert screen.profiles.profile.name == "[/] [@click=app.quit]boom list[int]"
            notices = " ".join(str(w.render()) for w in screen.query(".notice"))
            assert "[bold]x[/]" in notices and "list[int]" in notices and "\x1b" not in notices
            # notifications with such text do not crash either
            screen.notify(f"{nasty}", markup=False)
            await pilot.pause()
            assert app.is_running
    finally:
        engine.close()


async def test_a_clicked_markdown_link_is_not_opened_but_copied(make_app, engine, monkeypatch):
    opened: list[str] = []
    engine.scripts.append(Script(["See [the docs](https://example.com/x) now."]))
    app = make_app()
    monkeypatch.setattr(app, "open_url", lambda url, **kw: opened.append(url))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "link?")
        await reply_done(pilot)
        from textual.widgets import Markdown

        markdown = screen.query_one(ReplyView).query_one(Markdown)
        markdown.post_message(Markdown.LinkClicked(markdown, "https://example.com/x"))
        await pilot.pause()
        assert opened == []
        assert app.clipboard == "https://example.com/x"


async def test_a_huge_table_is_shown_as_plain_text(make_app, engine):
    rows = ["| " + " | ".join(f"c{r}{c}" for c in range(30)) + " |" for r in range(30)]
    header = "| " + " | ".join(f"h{c}" for c in range(30)) + " |\n|" + "---|" * 30 + "\n"
    chunks = [header] + [row + "\n" for row in rows]
    engine.scripts.append(Script(chunks))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "table")
        await reply_done(pilot)
        view = screen.query_one(ReplyView)
        assert view.plain_mode
        assert "c2929" in view.text


def test_the_markdown_guard_limits():
    small = "| a | b |\n|---|---|\n| 1 | 2 |\n"
    assert not too_heavy_for_markdown(small)
    big = "\n".join("|" + " x |" * 20 for _ in range(MAX_TABLE_CELLS // 20 + 2))
    assert too_heavy_for_markdown(big)
    assert too_heavy_for_markdown("a" * 70_000)


def test_plain_shows_controls_visibly_and_strip_control_removes_them():
    assert plain("[bold]x[/]").plain == "[bold]x[/]"
    assert plain("a\x1b[31mb\tc\nd\x9b1m\u202e").plain == "a\\x1b[31mb\tc\nd\\x9b1m\\u202e"
    assert strip_control("a\x1b[31mb\tc\nd\x9b1m\u202e") == "ab\tc\nd"
