"""The lever panel refuses typical_p = 0 in place, with the lever's range, and never applies it."""

from __future__ import annotations

from conftest import chat_screen


async def test_typing_zero_for_typical_p_is_flagged_and_not_applied(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = chat_screen(app)
        before = screen.live_levers.get()
        field = screen.panel.field("typical_p")
        field.input.focus()
        field.input.value = ""
        await pilot.press("0", "enter")
        await pilot.pause()
        assert field.has_class("-invalid")
        message = str(field.query_one(".lever-error").render())
        assert "typical_p = 0.0 is out of range: allowed 0.01 to 1" in message
        assert screen.live_levers.get() == before
