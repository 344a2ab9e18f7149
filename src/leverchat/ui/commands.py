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
from textual.markup import escape
from textual.style import Style

from leverchat.safetext import single_line
from leverchat.ui.hints import key_of

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


@dataclass(frozen=True)
class PaletteCommand:
    label: str  # may hold a profile name: always shown as literal text
    help: str  # our own words only (the palette parses it as markup)
    callback: Callable[[], Any]


def chat_commands(screen: ChatScreen) -> list[PaletteCommand]:
    """What the palette offers on the chat screen. Each help names the command's current key
    (a keymap may have rebound it)."""

    def key(binding_id: str) -> str:
        # The help text is read as markup: a key like "ctrl+[" must stay literal.
        return escape(key_of(screen.app, binding_id))

    commands = [
        PaletteCommand(
            "New chat", f"Start an empty conversation ({key('new_chat')})", screen.action_new_chat
        ),
        PaletteCommand(
            "Save profile",
            f"Save the system prompt and levers ({key('save_profile')})",
            screen.action_save_profile,
        ),
        PaletteCommand(
            "Save profile as…", "Save them as a new profile", screen.action_save_profile_as
        ),
        PaletteCommand(
            "Revert profile", "Drop unsaved lever and prompt edits", screen.action_revert_profile
        ),
        PaletteCommand(
            "Toggle panel",
            f"Show or hide the levers ({key('toggle_panel')})",
            screen.action_toggle_panel,
        ),
        PaletteCommand("Change theme", "Pick a colour theme", screen.app.action_change_theme),
        PaletteCommand(
            "Copy last reply",
            f"Copy it with OSC 52, works over SSH ({key('copy_reply')})",
            screen.action_copy_reply,
        ),
        PaletteCommand(
            "Regenerate",
            f"Write the last reply again with a new seed ({key('regenerate')})",
            screen.action_regenerate,
        ),
        PaletteCommand(
            "Edit last message",
            f"Put the last message back in the prompt ({key('edit_last')})",
            screen.action_edit_last,
        ),
        PaletteCommand(
            "Show provenance",
            f"How the last reply was made ({key('provenance')})",
            screen.action_provenance,
        ),
        PaletteCommand(
            "Open chat…",
            f"Browse, search, rename or delete saved chats ({key('chat_list')})",
            screen.action_chat_list,
        ),
        PaletteCommand(
            "Reproduce reply",
            "Regenerate the focused or last reply with its recorded levers and seed "
            f"({key('reproduce')})",
            screen.action_reproduce,
        ),
        PaletteCommand(
            "Previous version of the reply",
            f"Show an older version of the focused or last reply ({key('version_previous')})",
            partial(screen.action_step_version, -1),
        ),
        PaletteCommand(
            "Next version of the reply",
            f"Show a newer version of the focused or last reply ({key('version_next')})",
            partial(screen.action_step_version, 1),
        ),
        PaletteCommand(
            "Token inspector",
            "Tint replies by the chosen tokens' probability; record new replies' alternatives "
            f"({key('inspect')})",
            screen.action_inspect,
        ),
        PaletteCommand(
            "Inspect tokens of the reply",
            "Go token by token through the focused or last reply: alternatives, levers, branch "
            f"({key('inspect_tokens')})",
            screen.action_inspect_tokens,
        ),
        PaletteCommand(
            "Version tree",
            f"The versions of the focused or last reply as a tree ({key('version_tree')})",
            screen.action_version_tree,
        ),
        PaletteCommand(
            "Branch the reply at…",
            "Keep the focused or last reply up to a point, write there, let the model go on "
            f"({key('reply.branch')} on a reply)",
            screen.action_branch_at,
        ),
        PaletteCommand("Load model…", "Load another model", screen.ask_model_path),
        PaletteCommand(
            "Lever sweep…",
            f"The prompt once per value of one lever, the same seed ({key('sweep')})",
            screen.action_sweep,
        ),
        PaletteCommand(
            "A/B send…",
            "Send the message under the current settings and another, one seed; keep one "
            f"({key('ab_send')})",
            screen.action_ab_send,
        ),
        PaletteCommand(
            "Help",
            f"Every key and its binding id ({key('help')})",
            partial(screen.app.run_action, "app.help"),
        ),
        PaletteCommand("Quit", f"Quit leverchat ({key('quit')})", screen.app.action_quit),
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
