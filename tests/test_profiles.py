"""Persona profiles: validation, the store, conflicts, safe file names, crash safety."""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leverchat.engine.custom_format import CustomFormat
from leverchat.levers import LEVER_SPECS, Levers
from leverchat.profiles import (
    OVERWRITE,
    Profile,
    ProfileConflictError,
    ProfileError,
    ProfileExistsError,
    ProfileNotFoundError,
    ProfileStore,
    file_stem_for,
    name_key,
    profile_from_toml_bytes,
    profile_to_toml,
)

BUILTINS = ["default", "precise", "creative", "pirate"]


@pytest.fixture
def profiles_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = tmp_path / "config"
    monkeypatch.setenv("LEVERCHAT_CONFIG_DIR", str(config))
    return config / "profiles"


@pytest.fixture
def store(profiles_dir: Path) -> ProfileStore:
    return ProfileStore()


def write(path: Path, text: str) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = textwrap.dedent(text).lstrip("\n").encode()
    path.write_bytes(raw)
    return raw


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- built-ins --------------------------------------------------------------------------------


def test_empty_config_lists_the_builtins(store: ProfileStore, profiles_dir: Path) -> None:
    entries = store.list()
    assert [e.name for e in entries] == BUILTINS
    assert all(e.builtin and not e.broken and e.profile is not None for e in entries)
    assert not profiles_dir.exists(), "listing must not create the user's folder"


def test_builtins_do_what_their_names_say(store: ProfileStore) -> None:
    precise = store.load("precise").profile
    assert precise.levers.is_greedy
    pirate = store.load("pirate")
    assert pirate.builtin and pirate.fingerprint is None
    assert "pirate" in pirate.profile.system_prompt.lower()
    assert "ALWAYS" in pirate.profile.system_prompt
    assert store.load("creative").profile.levers.temperature > 1.0
    assert store.load("default").profile.levers == Levers()


def test_saving_a_builtin_creates_an_overriding_user_copy(
    store: ProfileStore, profiles_dir: Path
) -> None:
    loaded = store.load("Pirate")
    edited = dataclasses.replace(loaded.profile, description="Mine now")
    saved = store.save(edited, expected_fingerprint=loaded.fingerprint)
    assert saved.path == profiles_dir / "pirate.toml"
    pirates = [e for e in store.list() if name_key(e.name) == "pirate"]
    assert len(pirates) == 1
    assert pirates[0].source == "user (overrides built-in)"
    assert store.load("pirate").profile.description == "Mine now"
    # Deleting the user copy brings the built-in back.
    store.delete("pirate")
    assert store.load("pirate").builtin


# -- round trip -------------------------------------------------------------------------------


_STRUCTURED_VALUES: dict[str, list[str]] = {
    "json_schema": ["", '{"type": "object"}', '{"type": "array", "items": {"enum": [1, "a"]}}'],
    "regex": ["", "[0-9]+", "(yes|no)\\.?"],
    "grammar": ["", 'root ::= "a" | "b"', 'start: "x"+'],
}


def _lever_strategy(spec_name: str) -> st.SearchStrategy[object]:
    spec = next(s for s in LEVER_SPECS if s.name == spec_name)
    if spec.kind == "float":
        return st.floats(spec.minimum, spec.maximum, allow_nan=False)
    if spec.kind == "int":
        return st.integers(int(spec.minimum or 0), int(spec.maximum or 0))
    if spec.kind == "optional_int":
        return st.none() | st.integers(0, 2**63 - 1)
    if spec.kind == "choice":
        return st.sampled_from(spec.choices)
    if spec.name in _STRUCTURED_VALUES:
        # A schema, regex or grammar must compile: valid ones, and off.
        return st.sampled_from(_STRUCTURED_VALUES[spec.name])
    if spec.kind == "text":
        return st.text(max_size=40).map(lambda t: t.replace("\r", ""))
    if spec.kind == "weights":
        phrases = st.text(min_size=1, max_size=10).filter(str.strip)
        return st.dictionaries(phrases, st.floats(-100, 100, allow_nan=False), max_size=3)
    return st.lists(st.text(min_size=1, max_size=10), max_size=3).map(tuple)


levers_strategy = st.fixed_dictionaries(
    {}, optional={spec.name: _lever_strategy(spec.name) for spec in LEVER_SPECS}
).map(Levers.from_mapping)

names = st.text(min_size=1, max_size=64).filter(
    lambda n: _valid(lambda: Profile(name=n)) and len(n.strip()) > 0
)

profiles = st.builds(
    Profile,
    name=names,
    description=st.text(max_size=80),
    system_prompt=st.text(max_size=300),
    levers=levers_strategy,
    model=st.none() | st.text(min_size=1, max_size=40).filter(lambda m: m.strip() != ""),
    prompt_format=st.sampled_from(["auto", "chat_template", "instruction"])
    | st.builds(
        CustomFormat,
        name=st.text(min_size=1, max_size=20).filter(str.strip),
        user_prefix=st.text(min_size=1, max_size=20),
        assistant_suffix=st.text(max_size=20),
        generation_prefix=st.text(max_size=20),
        stop=st.lists(st.text(min_size=1, max_size=8), max_size=3).map(tuple),
    ),
)


def _valid(make: Callable[[], object]) -> bool:
    try:
        make()
    except ProfileError:
        return False
    return True


@settings(max_examples=150, deadline=None)
@given(profiles)
def test_any_valid_profile_round_trips_through_toml(profile: Profile) -> None:
    raw = profile_to_toml(profile).encode()
    assert profile_from_toml_bytes(raw, Path("x.toml")) == profile
    full = profile_to_toml(profile, all_levers=True).encode()
    assert profile_from_toml_bytes(full, Path("x.toml")) == profile


@settings(max_examples=40, deadline=None)
@given(profiles)
def test_any_valid_profile_saves_and_loads_back_equal(profile: Profile) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = ProfileStore(Path(folder), builtin_dir=Path(folder) / "none")
        saved = store.save_as(profile)
        loaded = store.load(profile.name)
        assert loaded.profile == profile
        assert loaded.fingerprint == saved.fingerprint
        assert saved.path.parent == Path(folder)
        assert not saved.path.name.startswith(".")


# -- invalid files ----------------------------------------------------------------------------

INVALID_CASES = [
    ("name = \n", "{path}:1:8: Invalid value"),
    (
        'name = "x"\nsystem_prompt = """never closed\n',
        "{path}:3:1: Unterminated string at the end of the file",
    ),
    (
        "\ufeffname = 'x'\n",
        "{path}:1:1: the file starts with a byte-order mark (BOM); TOML must "
        "be plain UTF-8: save it as UTF-8 without BOM",
    ),
    (
        'name = "x"\n[levers]\ntemperature = "hot"\n',
        "{path}:3:1: temperature must be a number in 0 to 5, not 'hot' (str)",
    ),
    (
        'name = "x"\n[levers]\ntop_p = 1.5\n',
        "{path}:3:1: top_p = 1.5 is out of range: allowed 0 to 1",
    ),
    (
        'name = "x"\n[levers]\ntemperature = nan\n',
        "{path}:3:1: temperature must be a finite number in 0 to 5, not nan",
    ),
    (
        'name = "x"\n[levers]\n  temperature = -inf\n',
        "{path}:3:3: temperature must be a finite number in 0 to 5, not -inf",
    ),
    (
        'name = "x"\n[levers]\nmax_new_tokens = -5\n',
        "{path}:3:1: max_new_tokens = -5 is out of range: allowed 1 to 1000000",
    ),
    (
        'name = "x"\n[levers]\ntemprature = 0.5\n',
        "{path}:3:1: unknown lever 'temprature': did you mean 'temperature'?",
    ),
    (
        'name = "x"\nlevers.max_tokens = 100\n',
        "{path}:2:1: unknown lever 'max_tokens': did you mean 'max_new_tokens'?",
    ),
    ('nmae = "x"\n', "{path}:1:1: unknown key 'nmae': did you mean 'name'?"),
    (
        'name = "x"\ntemperature = 0.5\n',
        "{path}:2:1: unknown key 'temperature': levers go in the [levers] table: move it under "
        "[levers]",
    ),
    (
        'schema_version = 99\nname = "x"\n',
        "{path}:1:1: schema_version 99 was written by a newer leverchat (this one reads up to 1): "
        "upgrade leverchat to use this profile",
    ),
    (
        'name = "x"\nlevers = 3\n',
        "{path}:2:1: levers must be a table ([levers] followed by lines like temperature = 0.7), "
        "not 3 (int)",
    ),
    (
        'name = "x"\nprompt_format = "chatml"\n',
        "{path}:2:1: prompt_format must be one of 'auto', 'chat_template', 'instruction', or a "
        "[prompt_format] table with a Jinja template or prefix/suffix strings, not 'chatml' (str)",
    ),
    ('name = "   "\n', "{path}:1:1: name cannot be empty"),
    (
        'name = "a\\u001b[31mb"\n',
        "{path}:1:1: name cannot contain control characters or line breaks ('\\x1b')",
    ),
    (
        'name = "x"\nsystem_prompt = 42\n',
        "{path}:2:1: system_prompt must be a string, not 42 (int)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), INVALID_CASES)
def test_invalid_profile_is_listed_broken_with_exact_error_and_left_untouched(
    store: ProfileStore, profiles_dir: Path, text: str, expected: str
) -> None:
    bad = profiles_dir / "bad.toml"
    write(bad, text)
    write(profiles_dir / "good.toml", 'name = "good"\n[levers]\ntemperature = 2\n')
    before = sha(bad)

    entries = {e.path.name: e for e in store.list()}
    broken = entries["bad.toml"]
    assert broken.broken and broken.profile is None and broken.error is not None
    assert str(broken.error) == expected.format(path=bad)
    with pytest.raises(ProfileError) as caught:
        store.load(broken.name)
    assert str(caught.value) == expected.format(path=bad)

    # Every other profile still loads; an integer is accepted for a float lever.
    good = store.load("good").profile
    assert good.levers.temperature == 2.0 and isinstance(good.levers.temperature, float)
    assert {e.name for e in store.list() if not e.broken} == {*BUILTINS, "good"}
    assert sha(bad) == before


def test_binary_junk_is_reported_with_position(store: ProfileStore, profiles_dir: Path) -> None:
    junk = profiles_dir / "junk.toml"
    junk.parent.mkdir(parents=True)
    junk.write_bytes(b'name = "x"\n\x89PNG\x00\xff')
    (entry,) = [e for e in store.list() if e.path == junk]
    assert entry.name == "junk"
    assert str(entry.error) == f"{junk}:2:1: not a text file: byte 0x89 is not valid UTF-8"


def test_hand_written_minimal_profile_takes_its_name_from_the_file(
    store: ProfileStore, profiles_dir: Path
) -> None:
    write(profiles_dir / "terse.toml", 'system_prompt = "Be brief."\n')
    loaded = store.load("terse")
    assert loaded.profile == Profile(name="terse", system_prompt="Be brief.")


def test_two_files_with_the_same_name_are_both_listed(
    store: ProfileStore, profiles_dir: Path
) -> None:
    write(profiles_dir / "twin.toml", 'name = "Twin"\ndescription = "first"\n')
    write(profiles_dir / "twin-copy.toml", 'name = "twin"\ndescription = "second"\n')
    twins = [e for e in store.list() if name_key(e.name) == "twin"]
    assert [(e.path.name, e.broken) for e in twins] == [
        ("twin.toml", False),
        ("twin-copy.toml", True),
    ]
    assert "is already used by twin.toml" in str(twins[1].error)
    assert store.load("TWIN").profile.description == "first"


def test_missing_profile_suggests_the_closest(store: ProfileStore) -> None:
    with pytest.raises(ProfileNotFoundError) as caught:
        store.load("pirat")
    assert str(caught.value) == "no profile called 'pirat': did you mean 'pirate'?"


# -- file names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("Pirate", "pirate"),
        ("My Profile", "my-profile"),
        ("../../etc/passwd", "etc-passwd"),
        ("..", "profile"),
        (".hidden", "hidden"),
        ("a\\b/c:d*e?f", "a-b-c-d-e-f"),
        ("CON", "con_"),
        ("nul", "nul_"),
        ("Com1", "com1_"),
        ("日本語のプロフィール", "日本語のプロフィール"),
        ("Straße", "strasse"),
        ("🏴‍☠️", "profile"),
        ("[bold]x[/]", "bold-x"),
        ("x" * 64, "x" * 48),
    ],
)
def test_file_stems_are_safe(name: str, stem: str) -> None:
    assert file_stem_for(name) == stem


def test_any_unicode_name_saves_inside_the_folder(store: ProfileStore, profiles_dir: Path) -> None:
    tricky = ["../../escape", ".bashrc", "CON", "a b", "a-b", "A B", "🏴‍☠️ Pirate", "🦜", "日本"]
    saved: dict[str, Path | None] = {}
    for name in tricky:
        try:
            saved[name] = store.save_as(Profile(name=name)).path
        except ProfileExistsError:
            saved[name] = None
    # "A B" is the same profile as "a b" (case does not count); everything else got a file.
    assert saved.pop("A B") is None
    files = [p for p in profiles_dir.iterdir() if p.suffix == ".toml"]
    assert len(files) == len(saved) == len({p.name.casefold() for p in files})
    for name, path in saved.items():
        assert path is not None and path.parent == profiles_dir
        assert not path.name.startswith(".")
        assert store.load(name).profile.name == name
    assert not (profiles_dir.parent.parent / "escape.toml").exists()


# -- store operations -------------------------------------------------------------------------


def test_save_as_refuses_taken_names(store: ProfileStore) -> None:
    store.save_as(Profile(name="Mine"))
    with pytest.raises(ProfileExistsError, match="there is already a profile called 'Mine'"):
        store.save_as(Profile(name="mine"))
    with pytest.raises(ProfileExistsError, match="already a built-in profile called 'pirate'"):
        store.save_as(Profile(name="PIRATE"))


def test_rename_moves_the_file_and_keeps_content(store: ProfileStore, profiles_dir: Path) -> None:
    store.save_as(Profile(name="old", system_prompt="keep me"))
    renamed = store.rename("old", "New name")
    assert renamed.path == profiles_dir / "new-name.toml"
    assert not (profiles_dir / "old.toml").exists()
    assert store.load("new name").profile.system_prompt == "keep me"
    with pytest.raises(ProfileNotFoundError):
        store.load("old")
    # Only the case changes: same file, new name inside.
    again = store.rename("new name", "NEW NAME")
    assert again.path == renamed.path and store.load("new name").name == "NEW NAME"


def test_rename_refusals(store: ProfileStore) -> None:
    store.save_as(Profile(name="one"))
    store.save_as(Profile(name="two"))
    with pytest.raises(ProfileExistsError):
        store.rename("one", "Two")
    with pytest.raises(ProfileExistsError):
        store.rename("one", "creative")
    with pytest.raises(ProfileError, match="built-in profile and cannot be renamed"):
        store.rename("pirate", "buccaneer")


def test_duplicate_builtin_and_user_profiles(store: ProfileStore) -> None:
    first = store.duplicate("pirate")
    second = store.duplicate("pirate")
    assert (first.name, second.name) == ("pirate copy", "pirate copy 2")
    assert first.profile.system_prompt == store.load("pirate").profile.system_prompt
    named = store.duplicate("pirate copy", "Parrot")
    assert named.name == "Parrot" and not named.builtin


def test_delete_keeps_one_copy_and_restore_brings_it_back(
    store: ProfileStore, profiles_dir: Path
) -> None:
    store.save_as(Profile(name="gone", description="first"))
    kept = store.delete("gone")
    assert kept == profiles_dir / "gone.toml.deleted"
    assert "gone" not in store.names()
    assert [e.name for e in store.list_deleted()] == ["gone"]

    store.save_as(Profile(name="gone", description="second"))
    store.delete("gone")
    deleted = [p.name for p in profiles_dir.iterdir() if p.name.endswith(".deleted")]
    assert deleted == ["gone.toml.deleted"], "only the last deleted copy is kept"

    restored = store.restore("GONE")
    assert restored.path == profiles_dir / "gone.toml"
    assert store.load("gone").profile.description == "second"
    assert store.list_deleted() == []


def test_delete_and_restore_refusals(store: ProfileStore) -> None:
    with pytest.raises(ProfileError, match="'pirate' is a built-in profile and cannot be deleted"):
        store.delete("pirate")
    with pytest.raises(ProfileNotFoundError):
        store.delete("nothing")
    with pytest.raises(ProfileNotFoundError, match="no deleted copy of 'nothing'"):
        store.restore("nothing")
    store.save_as(Profile(name="back"))
    store.delete("back")
    store.save_as(Profile(name="back", description="new one"))
    with pytest.raises(ProfileExistsError, match="exists again"):
        store.restore("back")


def test_broken_profile_can_be_deleted(store: ProfileStore, profiles_dir: Path) -> None:
    write(profiles_dir / "broken.toml", "name = \n")
    store.delete("broken")
    assert "broken" not in [e.name for e in store.list()]
    assert store.restore("broken").broken


# -- two writers ------------------------------------------------------------------------------


def test_second_writer_is_refused_not_silently_overwriting(
    profiles_dir: Path,
) -> None:
    first_instance, second_instance = ProfileStore(), ProfileStore()
    first_instance.save_as(Profile(name="shared", description="original"))
    mine = first_instance.load("shared")
    theirs = second_instance.load("shared")

    first_instance.save(
        dataclasses.replace(mine.profile, description="first edit"),
        expected_fingerprint=mine.fingerprint,
    )
    path = profiles_dir / "shared.toml"
    after_first = path.read_bytes()
    with pytest.raises(ProfileConflictError) as caught:
        second_instance.save(
            dataclasses.replace(theirs.profile, description="second edit"),
            expected_fingerprint=theirs.fingerprint,
        )
    assert str(caught.value) == (
        f"{path}: 'shared' was changed on disk since it was loaded (another leverchat or an "
        "editor): reload it to see those changes, or save yours under a new name"
    )
    assert path.read_bytes() == after_first

    # After a reload the second instance can save; OVERWRITE skips the check on purpose.
    reloaded = second_instance.load("shared")
    second_instance.save(
        dataclasses.replace(reloaded.profile, description="second edit"),
        expected_fingerprint=reloaded.fingerprint,
    )
    assert first_instance.load("shared").profile.description == "second edit"
    first_instance.save(mine.profile, expected_fingerprint=OVERWRITE)
    assert second_instance.load("shared").profile.description == "original"


def test_two_writers_of_a_builtin_conflict_too(store: ProfileStore) -> None:
    a = store.load("pirate")
    b = store.load("pirate")
    store.save(dataclasses.replace(a.profile, description="A"), expected_fingerprint=a.fingerprint)
    with pytest.raises(ProfileConflictError, match="was saved by another program"):
        store.save(
            dataclasses.replace(b.profile, description="B"), expected_fingerprint=b.fingerprint
        )
    assert store.load("pirate").profile.description == "A"


def test_file_deleted_since_load_is_a_conflict(store: ProfileStore) -> None:
    store.save_as(Profile(name="fleeting"))
    loaded = store.load("fleeting")
    store.delete("fleeting")
    with pytest.raises(ProfileConflictError, match="was deleted on disk"):
        store.save(loaded.profile, expected_fingerprint=loaded.fingerprint)


def test_hand_edit_after_load_is_a_conflict(store: ProfileStore, profiles_dir: Path) -> None:
    store.save_as(Profile(name="edited"))
    loaded = store.load("edited")
    path = profiles_dir / "edited.toml"
    path.write_text(path.read_text().replace('description = ""', 'description = "by hand"'))
    with pytest.raises(ProfileConflictError):
        store.save(loaded.profile, expected_fingerprint=loaded.fingerprint)
    assert store.load("edited").profile.description == "by hand"


# -- links, modes, crashes --------------------------------------------------------------------


def test_symlinked_profile_stays_a_link(
    store: ProfileStore, profiles_dir: Path, tmp_path: Path
) -> None:
    dotfiles = tmp_path / "dotfiles" / "linked.toml"
    write(dotfiles, 'name = "linked"\n')
    profiles_dir.mkdir(parents=True, exist_ok=True)
    link = profiles_dir / "linked.toml"
    link.symlink_to(dotfiles)
    loaded = store.load("linked")
    store.save(
        dataclasses.replace(loaded.profile, description="via link"),
        expected_fingerprint=loaded.fingerprint,
    )
    assert link.is_symlink() and link.resolve() == dotfiles
    assert 'description = "via link"' in dotfiles.read_text()
    # Renaming moves the link itself, not the file in the dotfiles folder.
    renamed = store.rename("linked", "relinked")
    assert renamed.path.is_symlink() and renamed.path.resolve() == dotfiles


def test_save_keeps_the_file_mode(store: ProfileStore, profiles_dir: Path) -> None:
    saved = store.save_as(Profile(name="private"))
    saved.path.chmod(0o600)
    loaded = store.load("private")
    store.save(
        dataclasses.replace(loaded.profile, description="x"),
        expected_fingerprint=loaded.fingerprint,
    )
    assert stat.S_IMODE(saved.path.stat().st_mode) == 0o600


_KILLED_SAVE = """
import os, sys, time
from dataclasses import replace
from pathlib import Path

ready = Path(sys.argv[1])
real = getattr(os, sys.argv[2])

def stall(*args):
    real(*args)  # the step itself succeeds (the temp file is complete, or fsynced)...
    ready.write_text("stalled")
    time.sleep(600)  # ...and then the process is killed before it could finish

setattr(os, sys.argv[2], stall)
from leverchat.profiles import ProfileStore
store = ProfileStore()
loaded = store.load("precious")
store.save(replace(loaded.profile, description="half-saved"),
           expected_fingerprint=loaded.fingerprint)
"""


@pytest.mark.parametrize("stalled_call", ["fsync", "replace"])
def test_killed_in_the_middle_of_a_save_leaves_the_old_file(
    store: ProfileStore, profiles_dir: Path, tmp_path: Path, stalled_call: str
) -> None:
    saved = store.save_as(Profile(name="precious", description="the original"))
    before = saved.path.read_bytes()
    ready = tmp_path / "ready"
    if stalled_call == "replace":
        # Stall before the rename happens: wrap so the real replace never runs.
        script = _KILLED_SAVE.replace("    real(*args)  #", "    #")
    else:
        script = _KILLED_SAVE
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(ready), stalled_call], env=os.environ.copy()
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert child.poll() is None, "the child exited before reaching the save"
            assert time.monotonic() < deadline, "the child never reached the save"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()

    assert saved.path.read_bytes() == before
    leftovers = [p.name for p in profiles_dir.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and leftovers[0].startswith(".precious.toml.")
    # The stray temp file is neither listed nor loaded, and the next save works.
    assert sorted(e.path.name for e in store.list() if not e.builtin) == ["precious.toml"]
    loaded = store.load("precious")
    assert loaded.profile.description == "the original"
    store.save(
        dataclasses.replace(loaded.profile, description="saved"),
        expected_fingerprint=loaded.fingerprint,
    )
    assert store.load("precious").profile.description == "saved"


def test_unwritable_folder_is_a_clear_error_and_keeps_the_file(
    store: ProfileStore, profiles_dir: Path
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    saved = store.save_as(Profile(name="locked"))
    before = saved.path.read_bytes()
    profiles_dir.chmod(0o500)
    try:
        with pytest.raises(ProfileError, match="cannot write the file: Permission denied"):
            store.save(Profile(name="locked", description="x"), expected_fingerprint=OVERWRITE)
    finally:
        profiles_dir.chmod(0o700)
    assert saved.path.read_bytes() == before


def test_full_disk_during_save_is_a_clear_error_and_keeps_the_file(
    store: ProfileStore, profiles_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = store.save_as(Profile(name="full", description="before"))
    before = saved.path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ProfileError) as caught:
        store.save(Profile(name="full", description="after"), expected_fingerprint=OVERWRITE)
    assert str(caught.value) == f"{saved.path}: cannot write the file: No space left on device"
    assert saved.path.read_bytes() == before
    assert sorted(p.name for p in profiles_dir.iterdir()) == [
        ".leverchat-profiles.lock",
        "full.toml",
    ]


def test_odd_files_in_the_folder_are_listed_broken_without_hanging(
    store: ProfileStore, profiles_dir: Path
) -> None:
    profiles_dir.mkdir(parents=True)
    os.mkfifo(profiles_dir / "pipe.toml")
    (profiles_dir / "folder.toml").mkdir()
    (profiles_dir / "dangling.toml").symlink_to(profiles_dir / "nowhere.toml")
    (profiles_dir / "huge.toml").write_bytes(b"# " + b"x" * 1_000_000 + b"\n")
    errors = {e.path.name: e.error.message for e in store.list() if e.error is not None}
    assert errors == {
        "pipe.toml": "is a named pipe (FIFO), not a regular file, so it was not read: "
        "put a real profile file there (or remove it)",
        "folder.toml": "is a folder, not a profile file",
        "dangling.toml": "is a link to a missing file",
        "huge.toml": "is 1000003 bytes; a profile file is far smaller (the limit is 1000000 "
        "bytes), so it was not read: is it the right file?",
    }
    assert store.load("pirate").builtin
