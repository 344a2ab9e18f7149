"""The panel shows what the banned and boosted phrases became in the loaded tokenizer, under
their fields in "More levers", at 80x24 too; the Boost field edits live with errors naming the
entry; F3 lists the reply's phrases as tokens. The scripted engine's stand-in tokenizer makes
one token per word (``As an AI`` -> ``'As'+' an'+' AI'``)."""

from __future__ import annotations

from scripted_engine import ScriptedEngine
from textual.widgets import Collapsible

from conftest import chat_screen, frame_text, reply_done, send, wait_for
from leverchat.chat import ReplyProvenance
from leverchat.engine.types import LeverTokens
from leverchat.levers import Levers
from leverchat.ui.lever_tokens import NOT_LOADED, LeverTokensView
from leverchat.ui.screens.provenance import provenance_lines


async def open_more(pilot) -> None:
    screen = chat_screen(pilot.app)
    screen.panel.query_one("#more-levers", Collapsible).collapsed = False
    await pilot.pause()


async def type_into(pilot, name: str, text: str) -> None:
    field = chat_screen(pilot.app).panel.field(name)
    field.input.focus()
    field.input.value = ""
    await pilot.press(*text)
    await pilot.press("enter")
    await pilot.pause()


def view_text(pilot, name: str) -> str:
    view = chat_screen(pilot.app).panel.query_one(f"#lever-tokens-{name}", LeverTokensView)
    return str(view.render()) if view.display else ""


async def shown(pilot, name: str, words: str) -> None:
    await wait_for(pilot, lambda: words in view_text(pilot, name), f"{name} shows {words!r}")


async def test_a_banned_phrase_shows_its_tokens_under_the_field(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_more(pilot)
        assert view_text(pilot, "ban") == ""  # nothing banned: no view
        await type_into(pilot, "ban", "As an AI")
        await shown(pilot, "ban", "As an AI → 'As'+' an'+' AI' (3 tokens), ' As'+' an'+' AI'")
        assert chat_screen(app).live_levers.get().ban == ("As an AI",)
        await type_into(pilot, "ban", "")
        await wait_for(pilot, lambda: view_text(pilot, "ban") == "", "the view is gone")


async def test_boost_is_edited_live_with_errors_naming_the_entry_and_shows_its_tokens(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        await open_more(pilot)
        await type_into(pilot, "boost", "Arr=2, matey=-1.5")
        assert screen.live_levers.get().boost == (("Arr", 2.0), ("matey", -1.5))
        await shown(pilot, "boost", "Arr +2 → 'Arr' (1 token), ' Arr' (1 token)")
        assert "matey -1.5 → 'matey' (1 token)" in view_text(pilot, "boost")
        field = screen.panel.field("boost")
        for typed, reason in [
            ("Arr=2, matey", "boost: 'matey' needs a weight, like matey=2"),
            ("Arr=500", "boost['Arr'] = 500.0 is out of range: allowed -100 to 100"),
        ]:
            await type_into(pilot, "boost", typed)
            assert field.has_class("-invalid")
            assert reason in str(field.query_one(".lever-error").render())
            assert screen.live_levers.get().boost == (("Arr", 2.0), ("matey", -1.5))
        await send(pilot, "go")
        await reply_done(pilot)
        assert screen.conversation.messages[-1].provenance.levers.boost[0] == ("Arr", 2.0)


async def test_hostile_phrases_show_literally(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_more(pilot)
        # A box starting with "[" is a TOML list: the phrase goes inside one.
        await type_into(pilot, "ban", '["[bold]x[/] [@click=app.quit]"]')
        await shown(pilot, "ban", "'[bold]x[/]'+' [@click=app.quit]' (2 tokens)")
        chat_screen(app).panel.field("ban").show_value(("a\x1b[31mb",))
        await shown(pilot, "ban", "a\\x1b[31mb → 'a\\x1b[31mb' (1 token)")
        assert "\x1b" not in frame_text(app)


async def test_the_view_fits_an_80x24_terminal(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = chat_screen(app)
        await pilot.press("f2")
        await open_more(pilot)
        await type_into(pilot, "ban", "As an AI, language model, I cannot")
        await shown(pilot, "ban", "language model →")
        view = screen.panel.query_one("#lever-tokens-ban", LeverTokensView)
        field = screen.panel.field("ban")
        # Wrapped inside the panel, never wider than it, right under the field's help line.
        assert view.region.width <= screen.panel.region.width
        assert view.region.y > field.input.region.y
        screen.panel.scroll_to_widget(view, animate=False)
        await pilot.pause()
        assert "I cannot →" in frame_text(app)


async def test_phrases_set_before_the_model_loads_are_shown_once_it_has(make_app):
    engine = ScriptedEngine(hold_load=True)
    try:
        app = make_app(engine=engine)
        async with app.run_test(size=(120, 40)) as pilot:
            await open_more(pilot)
            await type_into(pilot, "ban", "As an AI")
            assert view_text(pilot, "ban") == NOT_LOADED
            engine.load_gate.set()
            await shown(pilot, "ban", "As an AI → 'As'+' an'+' AI' (3 tokens)")
    finally:
        engine.close()


def test_f3_lists_the_replys_phrases_as_tokens() -> None:
    items = (
        LeverTokens("ban", "As an AI", ((10, 11, 12),), None, (("As", " an", " AI"),)),
        LeverTokens("boost", "Arr\x1b]0;x\x07", ((7,), (8,)), 2.0, (("Arr",), (" Arr",))),
        LeverTokens("dry_sequence_breakers", "\n", ((3,),)),
    )
    provenance = ReplyProvenance("m", "p", "", Levers(), seed=1, lever_tokens=items)
    text = "\n".join(provenance_lines(provenance))
    assert "Phrases as tokens (a boost goes on each form's first token):" in text
    assert "  As an AI → 'As'+' an'+' AI' (3 tokens)" in text
    assert "  Arr\\x1b]0;x\\x07 +2 → 'Arr' (1 token), ' Arr' (1 token)" in text
    assert "dry_sequence_breakers" not in text.split("Phrases as tokens")[1].split("\n\n")[0]
    assert "\x1b" not in text


async def test_on_the_tiny_model_the_panel_and_f3_show_the_real_tokens(make_app, tiny_model_dir):
    """The real engine: the panel shows the loaded tokenizer's own pieces, and F3 the ones
    the reply used."""
    from transformers import AutoTokenizer

    from leverchat.engine.types import ModelSpec
    from leverchat.engine.worker import EngineThread
    from leverchat.ui.screens.provenance import ProvenanceScreen

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    pieces = [tokenizer.decode([t]) for t in tokenizer.encode("treasure", add_special_tokens=False)]
    expected = "+".join(repr(piece) for piece in pieces)
    engine = EngineThread()
    try:
        spec = ModelSpec(source=str(tiny_model_dir), device="cpu")
        app = make_app(engine=engine, model_spec=spec)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = chat_screen(app)
            await wait_for(pilot, lambda: screen.model_info is not None, "loaded", 3000)
            await open_more(pilot)
            await type_into(pilot, "boost", "treasure=3")
            await shown(pilot, "boost", f"treasure +3 → {expected} ({len(pieces)} token")
            screen.live_levers.set(screen.live_levers.get().with_value("max_new_tokens", 4))
            await send(pilot, "Ahoy")
            await wait_for(pilot, lambda: not screen.streaming, "the reply finished", 3000)
            await pilot.press("f3")
            await wait_for(pilot, lambda: isinstance(app.screen, ProvenanceScreen), "F3")
            assert f"treasure +3 → {expected}" in frame_text(app)
    finally:
        engine.close()


async def test_phrases_from_the_profile_show_from_the_start(make_app, profile_store):
    from leverchat.profiles import Profile

    profile_store.save(
        Profile(name="corsair", levers=Levers(boost=(("Arr", 2.0),))), expected_fingerprint=None
    )
    engine = ScriptedEngine(hold_load=True)
    try:
        app = make_app(engine=engine, profile="corsair")
        async with app.run_test(size=(120, 40)) as pilot:
            await open_more(pilot)
            await shown(pilot, "boost", NOT_LOADED)  # said at once, not a blank
            engine.load_gate.set()
            await shown(pilot, "boost", "Arr +2 → 'Arr' (1 token), ' Arr' (1 token)")
    finally:
        engine.close()
