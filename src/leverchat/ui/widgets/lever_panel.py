"""The side panel: profile selector, system prompt editor and every lever."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Collapsible, Select, Static, TextArea

from leverchat.levers import LEVER_SPECS, Levers
from leverchat.safetext import single_line
from leverchat.ui import lever_tokens
from leverchat.ui.persona_hint import suggest_persona_note
from leverchat.ui.widgets.format_select import FormatSelect
from leverchat.ui.widgets.lever_field import LeverField
from leverchat.ui.widgets.visible_editors import VisibleTextArea


class LeverPanel(VerticalScroll):
    """Shows and edits the levers of one chat. It holds no state of its own beyond what it
    shows: the chat screen owns the live levers and the profile, and tells the panel to show
    them; the panel posts what the user changed."""

    class ProfileChosen(Message):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

    class SystemPromptEdited(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class ProfileAction(Message):
        """Save, Save as or Revert was pressed."""

        def __init__(self, action: str) -> None:
            super().__init__()
            self.action = action

    def __init__(
        self,
        levers: Levers,
        system_prompt: str,
        profile_names: list[str],
        profile: str,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._levers = levers
        self._system_prompt = system_prompt
        self._profile_names = profile_names or [profile]
        self._profile = profile
        self._token_requests = 0  # numbers the token-view requests: only the latest shows

    def compose(self) -> ComposeResult:
        yield Static(Content.styled("Profile", "bold"), classes="panel-heading")
        yield Select[str](
            self._profile_options(self._profile_names),
            value=self._profile if self._profile in self._profile_names else Select.NULL,
            id="profile-select",
            allow_blank=False,
            compact=True,
        )
        yield Static("", id="profile-state")
        with Horizontal(id="profile-buttons"):
            yield Button("Save", id="profile-save", compact=True)
            yield Button("Save as", id="profile-save-as", compact=True)
            yield Button("Revert", id="profile-revert", compact=True)
        yield Static(Content.styled("System prompt", "bold"), classes="panel-heading")
        yield VisibleTextArea(self._system_prompt, id="system-prompt", soft_wrap=True, compact=True)
        yield Static(Content.styled("Levers", "bold"), classes="panel-heading")
        for spec in LEVER_SPECS:
            if not spec.more:
                yield LeverField(spec, getattr(self._levers, spec.name))
        # DRY, XTC, mirostat... folded away, so the common levers fit an 80x24 terminal.
        with Collapsible(title="More levers", collapsed=True, id="more-levers"):
            for spec in LEVER_SPECS:
                if spec.more:
                    yield LeverField(spec, getattr(self._levers, spec.name))
        # Last: set once per model or profile, unlike the levers above.
        yield Static(Content.styled("Prompt format", "bold"), classes="panel-heading")
        yield FormatSelect()

    # -- what the screen tells the panel to show -------------------------------------------

    def show_levers(self, levers: Levers) -> None:
        self._levers = levers
        for field in self.query(LeverField):
            value = getattr(levers, field.spec.name)
            if field.error is not None or field.value != value:
                field.show_value(value)

    def show_system_prompt(self, text: str) -> None:
        self._system_prompt = text
        editor = self.query_one("#system-prompt", TextArea)
        if editor.text != text:
            with editor.prevent(TextArea.Changed):
                editor.load_text(text)

    def show_profiles(self, names: list[str], current: str | None) -> None:
        select: Select[str] = self.query_one("#profile-select", Select)
        with select.prevent(Select.Changed):
            select.set_options(self._profile_options(names))
            if current is not None and current in names:
                select.value = current
        # Shown again on every profile change (switch, save, revert all come through here).
        for formats in self.query(FormatSelect):
            formats.show_session()

    @staticmethod
    def _profile_options(names: list[str]) -> list[tuple[Text, str]]:
        # Text objects: a profile name is shown literally, never read as markup.
        return [(Text(single_line(name, 40)), name) for name in names]

    def show_profile_state(self, text: str, *, modified: bool) -> None:
        state = self.query_one("#profile-state", Static)
        state.update(Content(single_line(text, 200)))
        state.set_class(modified, "-modified")

    def commit_pending(self) -> dict[str, Any]:
        """Confirm every valid lever value typed but not yet confirmed (before a reply starts).
        Returns them, so the caller can apply them at once."""
        return {field.spec.name: field.value for field in self.query(LeverField) if field.commit()}

    def focus_first(self) -> None:
        """Focus the first lever (the most used part of the panel)."""
        self.query_one("#lever-input-temperature").focus()

    def field(self, name: str) -> LeverField:
        return self.query_one(f"#lever-{name}", LeverField)

    # -- what the user did -------------------------------------------------------------------

    @on(Select.Changed, "#profile-select")
    def _on_profile_selected(self, event: Select.Changed) -> None:
        event.stop()
        if isinstance(event.value, str):
            self.post_message(self.ProfileChosen(event.value))

    @on(TextArea.Changed, "#system-prompt")
    def _on_system_prompt_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self._system_prompt = event.text_area.text
        self.post_message(self.SystemPromptEdited(event.text_area.text))
        suggest_persona_note(self.screen)  # a new persona mid-chat is often ignored

    @on(Button.Pressed)
    def _on_button(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {"profile-save": "save", "profile-save-as": "save_as", "profile-revert": "revert"}
        if event.button.id in actions:
            self.post_message(self.ProfileAction(actions[event.button.id]))

    def lever_value(self, name: str) -> Any:
        return self.field(name).value

    # -- what the banned and boosted phrases became (ui/lever_tokens.py) --------------------

    @on(lever_tokens.LeverTokensView.Stale)
    def refresh_tokens(self, event: Message | None = None) -> None:
        """Ask the engine again (a phrase changed, or a model loaded)."""
        if event is not None:
            event.stop()
        self._token_requests += 1
        lever_tokens.request(self, self._token_requests)

    @on(lever_tokens.LeverTokensMapped)
    def _on_tokens_mapped(self, message: lever_tokens.LeverTokensMapped) -> None:
        message.stop()
        if message.number == self._token_requests:  # only the latest answer
            lever_tokens.show(self, message)
