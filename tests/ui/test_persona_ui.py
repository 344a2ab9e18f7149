"""A persona changed mid-chat: the new system prompt reaches the prompt text, the UI suggests
the persona note once per chat, and the note is a live lever recorded in provenance."""

from __future__ import annotations

from conftest import chat_screen, reply_done, send, wait_for
from leverchat.engine.prompt import encode_messages
from leverchat.ui.persona_hint import HINT
from leverchat.ui.screens.provenance import provenance_lines
from tinymodel import CHATML_TEMPLATE, build_tokenizer


def hints(app) -> int:
    return sum(str(n.message) == HINT for n in app._notifications)


async def test_a_profile_switch_after_an_answer_reaches_the_prompt_and_suggests_the_note_once(
    make_app, engine
):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "Name a dog.")
        await reply_done(pilot)
        screen.panel.query_one("#profile-select").value = "pirate"
        await wait_for(pilot, lambda: screen.profiles.profile.name == "pirate", "the switch")
        await pilot.pause()
        assert hints(app) == 1
        await send(pilot, "Breakfast?")
        await reply_done(pilot)
        # The exact prompt text the model reads: the pirate's system part, then the history.
        tokenizer = build_tokenizer()
        tokenizer.chat_template = CHATML_TEMPLATE
        ids = encode_messages(tokenizer, engine.last.request.messages, "auto")
        text = tokenizer.decode(ids, clean_up_tokenization_spaces=False)
        assert text.startswith(
            "<|im_start|>system\nYou are a pirate. Answer like one.<|im_end|>\n"
            "<|im_start|>user\nName a dog.<|im_end|>\n"
        )
        # Editing the system prompt too: the chat was already told, no second notice.
        screen.panel.query_one("#system-prompt").insert("!")
        await pilot.pause()
        assert hints(app) == 1
        # The history was not rewritten.
        assert [m.content for m in screen.conversation.messages if m.role == "user"] == [
            "Name a dog.",
            "Breakfast?",
        ]


async def test_no_suggestion_before_the_model_has_answered(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        screen.panel.query_one("#profile-select").value = "pirate"
        await wait_for(pilot, lambda: screen.profiles.profile.name == "pirate", "the switch")
        screen.panel.query_one("#system-prompt").insert("Be brief. ")
        await pilot.pause()
        assert hints(app) == 0


async def test_the_persona_note_is_a_live_lever_recorded_in_provenance(make_app, engine):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await send(pilot, "Hi")
        await reply_done(pilot)
        for name, value in (("persona_note", "Arr, talk like a pirate"), ("persona_depth", "0")):
            field = screen.panel.field(name)
            field.input.focus()
            field.input.value = value
            await pilot.press("enter")
            await pilot.pause()
        # With a note set, a system prompt edit suggests nothing: the lever is in use.
        screen.panel.query_one("#system-prompt").insert("Pirate. ")
        await pilot.pause()
        assert hints(app) == 0
        await send(pilot, "Breakfast?")
        await reply_done(pilot)
        levers = engine.last.levers_per_chunk[0]
        assert levers.persona_note == "Arr, talk like a pirate"
        assert levers.persona_depth == 0
        provenance = screen.conversation.messages[-1].provenance
        lines = provenance_lines(provenance)
        assert "  persona_note           Arr, talk like a pirate" in lines
        assert "  persona_depth          0" in lines
