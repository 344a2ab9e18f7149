"""The lever sweep screen (F9): one cell per value under one seed, two columns or stacked,
Escape stops then closes, Enter copies a cell, bad values refused, hostile text literal."""

from __future__ import annotations

from scripted_engine import Script

from conftest import chat_screen, frame_text, reply_done, send, wait_for
from leverchat.ui.screens.sweep import SweepCellView, SweepScreen


def sweep_screen(app) -> SweepScreen:
    screen = app.screen
    assert isinstance(screen, SweepScreen)
    return screen


async def open_sweep(pilot, prompt: str = "") -> SweepScreen:
    chat = chat_screen(pilot.app)
    await wait_for(pilot, lambda: chat.model_info is not None, "model loaded")
    if prompt:
        chat.prompt.focus()
        await pilot.pause()
        chat.prompt.insert(prompt)
    await pilot.press("f9")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, SweepScreen), "sweep opened")
    return sweep_screen(pilot.app)


async def sweep_done(pilot, screen: SweepScreen) -> None:
    await wait_for(pilot, lambda: not screen.running and bool(screen.cells), "sweep done")
    await pilot.pause()


async def test_the_grid_fills_one_cell_per_value_with_one_seed_and_stacks_below_100(
    make_app, engine
):
    engine.scripts.extend(
        Script([f"Reply {n}", " [bold]x[/] \x1b]52;c;aGk=\x07 list[int]"]) for n in range(4)
    )
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_sweep(pilot, "Tell me a story")
        values = screen.query_one("#sweep-values")
        assert values.value == "0, 0.4, 0.8, 1.2"  # the temperature's prefilled values
        await pilot.press("enter")
        await sweep_done(pilot, screen)

        assert len(screen.cells) == 4
        requests = [seen.request for seen in engine.seen]
        levers = [request.levers.snapshot()[1] for request in requests]
        assert [lever.temperature for lever in levers] == [0.0, 0.4, 0.8, 1.2]
        seeds = {lever.seed for lever in levers}
        assert len(seeds) == 1 and None not in seeds  # one seed for every cell
        seed = seeds.pop()
        for request in requests:
            assert request.messages[-1].content == "Tell me a story"
            assert request.messages[0].role == "system"
        assert [cell.label for cell in screen.cells] == [
            f"temperature = {value} · seed {seed}" for value in ("0", "0.4", "0.8", "1.2")
        ]
        assert [cell.text.split(" ")[:2] for cell in screen.cells] == [
            ["Reply", str(n)] for n in range(4)
        ]
        frame = frame_text(app)
        assert f"temperature = 0.4 · seed {seed}" in frame
        # Untrusted text is literal: markup kept as typed, the escape shown, never sent raw.
        assert "[bold]x[/]" in frame and "list[int]" in frame and "\\x1b" in frame
        assert "\x1b" not in frame  # not in the label, nor in the values box

        # Two columns at 100 columns: the first two cells side by side.
        first, second = screen.cells[0].region, screen.cells[1].region
        assert first.y == second.y and second.x > first.x
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        first, second = screen.cells[0].region, screen.cells[1].region
        assert first.x == second.x and second.y > first.y  # stacked

        # Enter on a cell copies its reply.
        screen.cells[2].focus()
        await pilot.press("enter")
        await pilot.pause()
        assert app.clipboard == screen.cells[2].text
        assert app.clipboard.startswith("Reply 2")

        # Esc closes; the chat itself is unchanged (the sweep never enters it).
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SweepScreen), "closed")
        chat = chat_screen(app)
        assert chat.conversation.messages == ()
        assert chat.prompt.text == "Tell me a story"


async def test_another_lever_prefills_its_values_and_the_last_message_is_swept(make_app, engine):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await send(pilot, "First question")
        await reply_done(pilot)
        before = chat_screen(app).conversation
        screen = await open_sweep(pilot)  # an empty prompt: the last user message
        lever = screen.query_one("#sweep-lever")
        lever.value = "repetition_penalty"
        await pilot.pause()
        assert screen.query_one("#sweep-values").value == "1.0, 1.2, 1.5"
        screen.query_one("#sweep-values").focus()
        await pilot.press("enter")
        await sweep_done(pilot, screen)
        swept = engine.seen[1:]
        assert [s.request.levers.snapshot()[1].repetition_penalty for s in swept] == [
            1.0,
            1.2,
            1.5,
        ]
        # The history up to the last user message: its reply is not in the prompt.
        for seen in swept:
            assert [m.role for m in seen.request.messages] == ["system", "user"]
            assert seen.request.messages[-1].content == "First question"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SweepScreen), "closed")
        assert chat_screen(app).conversation == before


async def test_escape_stops_a_running_sweep_then_closes(make_app, engine):
    held = Script(["Once", " upon", " a", " time"], hold_after=1)
    engine.scripts.append(held)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_sweep(pilot, "Go")
        await pilot.press("enter")
        await wait_for(pilot, held.reached_hold.is_set, "the first cell is streaming")
        await pilot.press("escape")
        await sweep_done(pilot, screen)
        assert isinstance(app.screen, SweepScreen)  # the first Escape only stopped it
        assert len(engine.seen) == 1  # the other values never ran
        assert "tok/s · stopped" in frame_text(app)
        assert screen.cells[0].text == "Once"  # the text written before Escape is kept
        assert "(not run: the sweep was stopped)" in frame_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SweepScreen), "closed")


async def test_bad_values_are_refused_with_the_lever_and_value_named(make_app, engine):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_sweep(pilot, "Go")
        values = screen.query_one("#sweep-values")
        values.value = "0, hot"
        await pilot.press("enter")
        await pilot.pause()
        assert engine.seen == []
        assert not screen.cells
        notices = [str(n.message) for n in app._notifications]
        assert any("temperature" in n and "'hot' is not a number" in n for n in notices)


async def test_without_any_prompt_the_sweep_does_not_open(make_app, engine):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        chat = chat_screen(app)
        await wait_for(pilot, lambda: chat.model_info is not None, "model loaded")
        await pilot.press("f9")
        await pilot.pause()
        assert app.screen is chat
        assert any("Type a prompt first" in str(n.message) for n in app._notifications)


def test_a_cell_is_focusable_for_the_keyboard() -> None:
    assert SweepCellView.can_focus


async def test_a_persona_note_sweep_labels_its_cell_safely(make_app, engine):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_sweep(pilot, "Go")
        screen.query_one("#sweep-lever").value = "persona_note"
        await pilot.pause()
        screen.query_one("#sweep-values").value = "Be [bold]loud[/], \x1b[2Jnow"
        screen.query_one("#sweep-values").focus()
        await pilot.press("enter")
        await sweep_done(pilot, screen)
        assert len(screen.cells) == 1  # a note is one value, its comma included
        note = engine.last.request.levers.snapshot()[1].persona_note
        assert note == "Be [bold]loud[/], \x1b[2Jnow"  # sent as written
        frame = frame_text(app)
        assert "persona_note = Be [bold]loud[/], \\x1b[2Jnow" in frame
        assert "\x1b" not in frame  # not in the label, nor in the values box


async def test_an_engine_failure_ends_the_sweep_and_the_screen_stays_usable(make_app, engine):
    engine.scripts.append(Script(["Half", " more"], fail_after=1, raise_error=True))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_sweep(pilot, "Go")
        await pilot.press("enter")
        await sweep_done(pilot, screen)
        frame = frame_text(app)
        assert "failed: scripted failure" in frame
        assert screen.cells[0].text == "Half"  # what it wrote before failing is kept
        assert "(not run: the sweep was stopped)" in frame
        assert len(engine.seen) == 1
        screen.query_one("#sweep-values").focus()
        await pilot.press("enter")  # it runs again
        await sweep_done(pilot, screen)
        assert len(engine.seen) == 5
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, SweepScreen), "closed")


async def test_sweep_and_ab_are_in_the_palette_and_in_f1(make_app, engine):
    from leverchat.ui.commands import chat_commands
    from leverchat.ui.screens.ab import ABScreen
    from leverchat.ui.screens.help import help_rows

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        chat = chat_screen(app)
        await wait_for(pilot, lambda: chat.model_info is not None, "model loaded")
        chat.prompt.focus()
        await pilot.pause()
        chat.prompt.insert("Hello")
        commands = {command.label: command for command in chat_commands(chat)}
        assert "(F9)" in commands["Lever sweep…"].help
        assert "(F8)" in commands["A/B send…"].help
        chat.call_later(commands["Lever sweep…"].callback)
        await wait_for(pilot, lambda: isinstance(app.screen, SweepScreen), "sweep from palette")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is chat, "back")
        await pilot.press("ctrl+p")  # the real palette, typed into
        await pilot.pause()
        await pilot.press(*"A/B send")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ABScreen), "A/B from palette")
        rows = {(keys, binding_id) for keys, binding_id, _ in help_rows({})}
        assert {("f9", "sweep"), ("f8", "ab_send"), ("enter", "ab.keep")} <= rows
