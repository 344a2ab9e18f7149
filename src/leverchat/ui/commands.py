"""The command palette (Ctrl+P): every chat command, plus one entry per profile.

Textual's palette reads string prompts and help texts as markup, and its matcher highlights a
candidate by parsing it as markup too; profile names are untrusted, so prompts here are built
as literal ``Content`` and highlighted without parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.style import Style

from leverchat.safetext import single_line

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


@dataclass(frozen=True)
class PaletteCommand:
    label: str  # may hold a profile name: always shown as literal text
    help: str  # our own words only (the palette parses it as markup)
    callback: Callable[[], Any]


def chat_commands(screen: ChatScreen) -> list[PaletteCommand]:
    """What the palette offers on the chat screen."""
    commands = [
        PaletteCommand("New chat", "Start an empty conversation", screen.action_new_chat),
        PaletteCommand(
            "Save profile",
            "Save the system prompt and levers (Ctrl+S)",
            screen.action_save_profile,
        ),
        PaletteCommand(
            "Save profile as…", "Save them as a new profile", screen.action_save_profile_as
        ),
        PaletteCommand(
            "Revert profile", "Drop unsaved lever and prompt edits", screen.action_revert_profile
        ),
        PaletteCommand("Toggle panel", "Show or hide the levers (F2)", screen.action_toggle_panel),
        PaletteCommand("Change theme", "Pick a colour theme", screen.app.action_change_theme),
        PaletteCommand(
            "Copy last reply", "Copy it with OSC 52 (works over SSH)", screen.action_copy_reply
        ),
        PaletteCommand(
            "Regenerate", "Write the last reply again with a new seed", screen.action_regenerate
        ),
        PaletteCommand(
            "Edit last message", "Put the last message back in the prompt", screen.action_edit_last
        ),
        PaletteCommand(
            "Show provenance", "How the last reply was made (F3)", screen.action_provenance
        ),
        PaletteCommand(
            "Open chat…",
            "Browse, search, rename or delete saved chats (F4)",
            screen.action_chat_list,
        ),
        PaletteCommand(
            "Reproduce reply",
            "Regenerate the focused or last reply with its recorded levers and seed (F5)",
            screen.action_reproduce,
        ),
        PaletteCommand(
            "Previous version of the reply",
            "Show an older version of the focused or last reply (Alt+Left)",
            partial(screen.action_step_version, -1),
        ),
        PaletteCommand(
            "Next version of the reply",
            "Show a newer version of the focused or last reply (Alt+Right)",
            partial(screen.action_step_version, 1),
        ),
        PaletteCommand("Load model…", "Load another model", screen.ask_model_path),
        PaletteCommand(
            "Help", "Every key and its binding id (F1)", partial(screen.app.run_action, "app.help")
        ),
        PaletteCommand("Quit", "Quit leverchat (Ctrl+Q)", screen.app.action_quit),
    ]
    last = screen.conversation.last_reply
    if last is not None:
        from leverchat.ui.replies import code_blocks

        for index, _block in enumerate(code_blocks(last.content)):
            commands.append(
                PaletteCommand(
                    f"Copy code block {index + 1} of the last reply",
                    "Copy it with OSC 52",
                    partial(screen.copy_code_block, index),
                )
            )
    for name in screen.profiles.names():
        commands.append(
            PaletteCommand(
                f"Switch profile: {single_line(name, 60)}",
                "Use this profile's system prompt and levers",
                partial(screen.switch_profile, name),
            )
        )
    return commands


class ChatCommands(Provider):
    """Feeds :func:`chat_commands` to Textual's palette."""

    def _commands(self) -> list[PaletteCommand]:
        from leverchat.ui.screens.chat import ChatScreen

        screen = self.screen
        return chat_commands(screen) if isinstance(screen, ChatScreen) else []

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(
                Content(command.label), command.callback, text=command.label, help=command.help
            )

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.label)
            if score > 0:
                yield Hit(
                    score,
                    _highlight(command.label, query, matcher.match_style),
                    command.callback,
                    text=command.label,
                    help=command.help,
                )


def _highlight(label: str, query: str, style: Style) -> Content:
    from textual.fuzzy import FuzzySearch

    content = Content(label)
    _score, offsets = FuzzySearch().match(query, label)
    for offset in offsets:
        if not label[offset].isspace():
            content = content.stylize(style, offset, offset + 1)
    return content
