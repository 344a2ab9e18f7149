"""The profile actions of the chat screen: switch (asking about unsaved edits), save, save as,
revert, settle a save conflict, and keep the panel's profile list current.

What a profile holds and whether it is modified is :class:`ProfileSession`'s job; this module
shows its answers and asks the user what to do.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from leverchat.profiles import ProfileConflictError, ProfileError
from leverchat.safetext import single_line
from leverchat.ui.unsaved_guard import ask_before_switching
from leverchat.wording import sentence

if TYPE_CHECKING:
    from leverchat.ui.screens.chat import ChatScreen


def panel_action(screen: ChatScreen, action: str) -> None:
    """A profile button of the lever panel: save, save as or revert."""
    if action == "save":
        save_profile(screen)
    elif action == "save_as":
        save_profile_as(screen)
    elif action == "revert":
        revert_profile(screen)


def switch_profile(screen: ChatScreen, name: str) -> None:
    ask_before_switching(
        screen, name, partial(switch_profile_now, screen), partial(refresh_profile_list, screen)
    )


def switch_profile_now(screen: ChatScreen, name: str) -> None:
    try:
        profile = screen.profiles.switch(name)
    except (ProfileError, OSError) as error:
        screen.notify(f"Could not switch profile: {error}", severity="error", markup=False)
        refresh_profile_list(screen)
        return
    show_profile_values(screen)
    screen.notify(f"Profile: {sentence(single_line(profile.name, 40))}", markup=False, timeout=2)


def show_profile_values(screen: ChatScreen) -> None:
    profile = screen.profiles.profile
    screen.live_levers.set(profile.levers)
    screen.system_prompt = profile.system_prompt
    screen.panel.show_levers(profile.levers)
    screen.panel.show_system_prompt(profile.system_prompt)
    refresh_profile_list(screen)


def save_profile(screen: ChatScreen) -> bool:
    """Save the edits over the profile; False when they could not be saved."""
    try:
        profile = screen.profiles.save(screen.system_prompt, screen.live_levers.get())
    except ProfileConflictError as error:
        resolve_conflict(screen, str(error))
        return False
    except (ProfileError, OSError) as error:
        screen.notify(f"Not saved: {error}", severity="error", markup=False)
        return False
    screen.notify(f"Saved profile {sentence(single_line(profile.name, 40))}", markup=False)
    refresh_profile_list(screen)
    return True


def save_profile_as(screen: ChatScreen) -> None:
    from leverchat.ui.screens.save_as import SaveAsScreen

    def attempt(name: str) -> str | None:
        try:
            screen.profiles.save_as(name, screen.system_prompt, screen.live_levers.get())
        except ProfileError as error:
            return error.message
        except OSError as error:
            return f"cannot write the profile: {error}"
        return None

    def saved(name: str | None) -> None:
        if name is not None:
            shown = sentence(single_line(screen.profiles.profile.name, 40))
            screen.notify(f"Saved as profile {shown}", markup=False)
            refresh_profile_list(screen)

    screen.app.push_screen(SaveAsScreen(screen.profiles.suggest_new_name(), attempt), saved)


def revert_profile(screen: ChatScreen) -> None:
    show_profile_values(screen)
    screen.notify("Reverted to the saved profile.", timeout=2)


def resolve_conflict(screen: ChatScreen, detail: str) -> None:
    from leverchat.ui.screens.conflict import ConflictScreen

    def chosen(choice: str | None) -> None:
        if choice == "reload":
            try:
                screen.profiles.reload()
            except (ProfileError, OSError) as error:
                screen.notify(f"Could not reload: {error}", severity="error", markup=False)
                return
            show_profile_values(screen)
            screen.notify("Reloaded the profile from disk; your edits were dropped.")
        elif choice == "save_as":
            save_profile_as(screen)

    screen.app.push_screen(ConflictScreen(screen.profiles.profile.name, detail), chosen)


def refresh_profile_list(screen: ChatScreen) -> None:
    screen.panel.show_profiles(screen.profiles.names(), screen.profiles.profile.name)
    screen._refresh_status()
