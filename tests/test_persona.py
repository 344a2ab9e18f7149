"""Persona depth: a system prompt changed mid-chat reaches the model (the exact prompt text),
and the persona note is re-inserted at its depth, as its role, only where the history is long
enough, without touching the conversation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from leverchat.chat import Conversation
from leverchat.engine.generate import Generator
from leverchat.engine.loading import load_model
from leverchat.engine.prompt import encode_messages
from leverchat.engine.types import ChatMessage, FixedLevers, GenerationRequest, ModelSpec
from leverchat.levers import LeverError, Levers
from leverchat.persona import with_persona_note
from leverchat.profiles import ProfileError, profile_from_toml_bytes
from tinymodel import CHATML_TEMPLATE, build_tokenizer

NOTE = Levers(persona_note="Talk like a pirate.", persona_depth=1)


@pytest.fixture(scope="module")
def chatml() -> Any:
    tokenizer = build_tokenizer()
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def two_exchanges() -> Conversation:
    return (
        Conversation()
        .with_user("Name a dog.")
        .with_reply("Rex.")
        .with_user("Make tea?")
        .with_reply("Boil water.")
        .with_user("Breakfast?")
    )


def rendered(tokenizer: Any, messages: tuple[ChatMessage, ...]) -> str:
    ids = encode_messages(tokenizer, messages, "auto")
    return str(tokenizer.decode(ids, clean_up_tokenization_spaces=False))


def test_a_system_prompt_changed_mid_chat_is_the_one_the_model_reads(chatml: Any) -> None:
    conversation = two_exchanges()
    before = rendered(chatml, conversation.to_chat_messages("You are helpful."))
    after = rendered(chatml, conversation.to_chat_messages("You are a pirate."))
    turns = (
        "<|im_start|>user\nName a dog.<|im_end|>\n<|im_start|>assistant\nRex.<|im_end|>\n"
        "<|im_start|>user\nMake tea?<|im_end|>\n<|im_start|>assistant\nBoil water.<|im_end|>\n"
        "<|im_start|>user\nBreakfast?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert before == "<|im_start|>system\nYou are helpful.<|im_end|>\n" + turns
    # Only the system part changed: the new persona is in the prompt, at its top.
    assert after == "<|im_start|>system\nYou are a pirate.<|im_end|>\n" + turns


def test_the_note_goes_depth_messages_from_the_end() -> None:
    messages = two_exchanges().to_chat_messages("Sys")
    roles = lambda ms: [(m.role, m.content) for m in ms]  # noqa: E731
    at_1 = with_persona_note(messages, NOTE)
    assert roles(at_1)[-2:] == [("system", "Talk like a pirate."), ("user", "Breakfast?")]
    assert len(at_1) == len(messages) + 1
    at_0 = with_persona_note(messages, Levers(persona_note=NOTE.persona_note, persona_depth=0))
    assert roles(at_0)[-1] == ("system", "Talk like a pirate.")
    at_3 = with_persona_note(
        messages, Levers(persona_note=NOTE.persona_note, persona_depth=3, persona_role="user")
    )
    assert roles(at_3)[:3] == [("system", "Sys"), ("user", "Name a dog."), ("assistant", "Rex.")]
    assert roles(at_3)[3] == ("user", "Talk like a pirate.")


def test_no_note_when_the_history_is_shorter_than_the_depth_or_the_note_is_empty() -> None:
    first = Conversation().with_user("Hi").to_chat_messages("Sys")
    deep = Levers(persona_note="Be a pirate.", persona_depth=2)
    assert with_persona_note(first, deep) == first
    # The depth counts the conversation, not the system prompt.
    assert len(with_persona_note(first, Levers(persona_note="x", persona_depth=1))) == 3
    assert with_persona_note(two_exchanges().to_chat_messages("Sys"), Levers()) == (
        two_exchanges().to_chat_messages("Sys")
    )
    # A blank note is no note; a note keeps its lines.
    assert with_persona_note(first, Levers(persona_note=" \n ", persona_depth=0)) == first
    noted = with_persona_note(first, Levers(persona_note="One.\nTwo.", persona_depth=0))
    assert noted[-1].content == "One.\nTwo."


def test_the_engine_sends_the_note_and_leaves_the_conversation_alone(tiny_model_dir: Path) -> None:
    loaded = load_model(ModelSpec(source=str(tiny_model_dir), device="cpu"))
    gen = Generator(loaded.model, loaded.tokenizer, loaded.device, loaded.info.context_window)
    messages = two_exchanges().to_chat_messages("Sys")
    levers = Levers(temperature=0.0, max_new_tokens=2, persona_note="Be a pirate.", persona_depth=1)
    result = gen.run(GenerationRequest(messages, FixedLevers(levers)), None)
    expected = encode_messages(loaded.tokenizer, with_persona_note(messages, levers), "auto")
    assert result.stats.prompt_tokens == len(expected)
    assert result.stats.prompt_tokens > len(encode_messages(loaded.tokenizer, messages, "auto"))
    # Recorded in provenance: the levers the reply started with carry the note.
    assert result.levers.persona_note == "Be a pirate."
    assert messages == two_exchanges().to_chat_messages("Sys")


def test_persona_levers_are_validated_with_the_key_named(tmp_path: Path) -> None:
    with pytest.raises(LeverError, match="persona_role must be one of system, user, assistant"):
        Levers(persona_role="narrator")
    path = tmp_path / "p.toml"
    raw = b'name = "p"\n[levers]\npersona_depth = -1\n'
    with pytest.raises(ProfileError) as caught:
        profile_from_toml_bytes(raw, path)
    assert str(caught.value) == (
        f"{path}:3:1: persona_depth = -1 is out of range: allowed 0 to 100"
    )
    good = profile_from_toml_bytes(
        b'name = "p"\n[levers]\npersona_note = "Arr."\npersona_depth = 2\npersona_role = "user"\n',
        path,
    )
    assert good.levers.persona_note == "Arr."
    with pytest.raises(ProfileError, match=r":3:1: persona_note must be a text, not \['Arr'\]"):
        profile_from_toml_bytes(b'name = "p"\n[levers]\npersona_note = ["Arr"]\n', path)
    assert (good.levers.persona_depth, good.levers.persona_role) == (2, "user")


def test_ask_takes_the_persona_levers_as_options() -> None:
    import argparse

    from leverchat.commands.options import add_lever_options, levers_from_args

    parser = argparse.ArgumentParser()
    add_lever_options(parser)
    args = parser.parse_args(
        ["--persona-note", "Arr, be a pirate", "--persona-depth", "2", "--persona-role", "user"]
    )
    assert levers_from_args(args) == {
        "persona_note": "Arr, be a pirate",
        "persona_depth": 2,
        "persona_role": "user",
    }
    with pytest.raises(SystemExit):
        parser.parse_args(["--persona-role", "narrator"])
    assert "default none" in " ".join(parser.format_help().split())
