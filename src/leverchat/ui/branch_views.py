"""The chat screen's dialogs for branches: the version tree (F7) and "Branch at…" (b on a
focused reply, or the palette). What they start is in :mod:`leverchat.ui.branching`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from leverchat.ui import branching, hints
from leverchat.ui.versions import focused_versions, target_message
from leverchat.version_tree import tree_lines

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen

# The tree's lines fit the dialog at 80 columns (its border and padding, the list's own
# padding and scrollbar): one line per version, never wrapped.
TREE_WIDTH = 60


def show_version_tree(screen: ChatScreen) -> None:
    """Show the versions of the focused (or last) reply as a tree; Enter opens one."""
    from leverchat.ui.screens.version_tree import VersionTreeScreen

    found = focused_versions(screen)
    if found is None:
        return
    target, versions = found

    async def opened(message_id: str | None) -> None:
        await branching.open_version(screen, message_id)

    screen.app.push_screen(VersionTreeScreen(tree_lines(versions, TREE_WIDTH), target.id), opened)


def ask_branch_at(screen: ChatScreen, reply_id: str | None) -> None:
    """Ask where to cut ``reply_id`` (None: the focused or last reply) and what to write."""
    from leverchat.ui.screens.branch_at import BranchAtScreen

    if screen._reply is not None:
        screen.notify(hints.busy(screen.app))
        return
    target = None
    if reply_id is not None:
        target = next((m for m in screen.conversation.messages if m.id == reply_id), None)
    else:
        target = target_message(screen, "assistant")
    if target is None or target.role != "assistant":
        screen.notify("There is no reply to branch yet.")
        return
    chosen_id = target.id

    async def chosen(answer: tuple[int, str] | None) -> None:
        if answer is not None:
            await branching.branch_at_offset(screen, chosen_id, *answer)

    screen.app.push_screen(BranchAtScreen(target.content), chosen)
