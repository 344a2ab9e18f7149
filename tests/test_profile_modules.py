"""profiles.py (what a profile is) and profile_store.py (its files) were one module: every
name stays importable from leverchat.profiles, whichever of the two is imported first."""

from __future__ import annotations

import subprocess
import sys

import pytest

STORE_NAMES = (
    "OVERWRITE",
    "ExpectedFingerprint",
    "LoadedProfile",
    "Overwrite",
    "ProfileEntry",
    "ProfileStore",
)


@pytest.mark.parametrize("first", ["leverchat.profiles", "leverchat.profile_store"])
def test_the_store_names_import_from_profiles_in_any_order(first: str) -> None:
    code = (
        f"import {first}\n"
        f"from leverchat.profiles import {', '.join(STORE_NAMES)}\n"
        "from leverchat import profile_store\n"
        f"assert all(getattr(profile_store, n) is globals()[n] for n in {STORE_NAMES!r})\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr


def test_a_name_neither_module_has_is_still_an_import_error() -> None:
    with pytest.raises(ImportError, match="ProfileStor"):
        from leverchat.profiles import ProfileStor  # type: ignore[attr-defined]  # noqa: F401
