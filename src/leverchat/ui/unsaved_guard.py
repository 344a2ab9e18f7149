"""Ask before a profile switch, opening a saved chat (F4) or quit drops unsaved lever and
system prompt edits.

What is unsaved is worked out here (no Textual); :func:`ask_before_leaving` shows
:class:`UnsavedEditsScreen` and goes on only when the edits are saved or the user discards them.
A SIGHUP or SIGTERM never comes through here: it saves the chat and exits without asking.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from leverchat.levers import Levers
from leverchat.profiles import Profile
from leverchat.safetext import single_line
from leverchat.ui.persona_hint import suggest_persona_note
from leverchat.ui.screens.unsaved import Choice, UnsavedEditsScreen
from leverchat.wording import sentence

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


def unsaved_edits(profile: Profile, system_prompt: str, levers: Levers) -> str | None:
    """The edits not saved to ``profile``, in words ("the system prompt and 2 levers
    (temperature, top_p)"), or None when there are none."""
    changed = [
        item.name
        for item in fields(Levers)
        if getattr(levers, item.name) != getattr(profile.levers, item.name)
    ]
    parts = ["the system prompt"] if system_prompt != profile.system_prompt else []
    if len(changed) == 1:
        parts.append(f"the {changed[0]} lever")
    elif changed:
        parts.append(f"{len(changed)} levers ({', '.join(changed)})")
    return " and ".join(parts) if parts else None


def ask_before_leaving(
    screen: ChatScreen,
    leaving: str,
    proceed: Callable[[], Any],
    *,
    cancelled: Callable[[], Any] | None = None,
) -> None:
    """Run ``proceed`` now when nothing is unsaved; else ask to save, discard or cancel.

    ``leaving`` completes "Save them before you ...?" ("quit", "switch to profile pirate").
    A save that fails (a conflict on disk, a full disk) is explained and does not proceed.
    """
    profile = screen.profiles.profile
    edits = unsaved_edits(profile, screen.system_prompt, screen.live_levers.get())
    if edits is None:
        proceed()
        return

    def chosen(choice: Choice | None) -> None:
        if choice == "save" and screen.action_save_profile():
            proceed()
        elif choice == "discard":
            screen.notify(
                f"Discarded your edits to {sentence(single_line(profile.name, 40))}", markup=False
            )
            proceed()
        elif cancelled is not None:
            cancelled()

    screen.app.push_screen(UnsavedEditsScreen(profile.name, edits, leaving), chosen)


def ask_before_switching(
    screen: ChatScreen,
    name: str,
    switch: Callable[[str], Any],
    cancelled: Callable[[], Any],
) -> None:
    """Switch ``screen`` to profile ``name`` with ``switch(name)``, asking first when edits
    are unsaved; ``cancelled`` runs when the user stays (the panel shows the profile again)."""
    leaving = f"switch to profile {single_line(name, 40)}"

    def switch_and_hint() -> None:
        before = screen.profiles.profile
        switch(name)
        if screen.profiles.profile is not before:  # switched: the persona changed mid-chat?
            suggest_persona_note(screen)

    ask_before_leaving(screen, leaving, switch_and_hint, cancelled=cancelled)
