"""A profile's own prompt format: a Jinja chat template or prefix/suffix strings per role.

The ids are the tokenizer's own encoding of the rendered prompt, typed control tokens stay
text, each format brings its own stop strings, and a broken format is refused naming the
profile file, the key and the template line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from leverchat.engine.custom_format import CustomFormat, FormatError, format_from_mapping
from leverchat.engine.generate import Generator
from leverchat.engine.loading import load_model
from leverchat.engine.prompt import encode_messages, format_stops
from leverchat.engine.types import (
    ChatMessage,
    EngineError,
    FixedLevers,
    GenerationRequest,
    ModelSpec,
    StopReason,
)
from leverchat.levers import Levers
from leverchat.profiles import ProfileError, ProfileStore, profile_from_toml_bytes
from test_prompt import SPECIAL_CASES, overfit
from tinymodel import CHATML_TEMPLATE, build_tokenizer

VICUNA = CustomFormat(
    name="vicuna",
    system_prefix="",
    system_suffix="\n\n",
    user_prefix="USER: ",
    user_suffix="\n",
    assistant_prefix="ASSISTANT: ",
    assistant_suffix="\n",
    generation_prefix="ASSISTANT:",
)
JINJA = CustomFormat(
    name="plain-jinja",
    template=(
        "{% for m in messages %}"
        "{% if m.role == 'user' %}Q: {{ m.content }}\n"
        "{% elif m.role == 'assistant' %}A: {{ m.content }}{{ eos_token }}\n"
        "{% else %}{{ m.content }}\n\n{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}A:{% endif %}"
    ),
)
CONVERSATION = (
    ChatMessage("system", "Be brief. "),
    ChatMessage("user", "First question "),
    ChatMessage("assistant", "First answer\n"),
    ChatMessage("user", "Second  "),
)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    plain = build_tokenizer()
    plain.chat_template = None
    return plain


def test_prefix_format_renders_each_role_and_ids_are_the_tokenizers_own(tokenizer: Any) -> None:
    ids = encode_messages(tokenizer, CONVERSATION, VICUNA)
    rendered = (
        "Be brief. \n\nUSER: First question \nASSISTANT: First answer\n\nUSER: Second  \nASSISTANT:"
    )
    assert ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]


def test_jinja_format_ids_equal_apply_chat_template_with_the_same_template(tokenizer: Any) -> None:
    ids = encode_messages(tokenizer, CONVERSATION, JINJA)
    tokenizer.chat_template = JINJA.template
    try:
        expected = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in CONVERSATION],
            add_generation_prompt=True,
            tokenize=True,
        )["input_ids"]
    finally:
        tokenizer.chat_template = None
    assert ids == expected
    # The template's eos_token is the control token, once (after the reply).
    assert ids.count(tokenizer.eos_token_id) == 1


@pytest.mark.parametrize("fmt", [VICUNA, JINJA], ids=["prefix", "jinja"])
@pytest.mark.parametrize("text", SPECIAL_CASES)
def test_typed_control_tokens_stay_plain_text_in_custom_formats(
    tokenizer: Any, fmt: CustomFormat, text: str
) -> None:
    ids = encode_messages(tokenizer, (ChatMessage("user", text),), fmt)
    assert not set(ids) & set(tokenizer.all_special_ids)
    rendered = fmt.render(["user"], [text], "", tokenizer.eos_token)
    assert tokenizer.decode(ids, clean_up_tokenization_spaces=False) == rendered


def test_each_format_brings_the_start_of_a_user_turn_as_its_stop(tokenizer: Any) -> None:
    assert format_stops(tokenizer, VICUNA) == ("USER:",)
    # A Jinja template's stop: what it writes between a reply and the next question,
    # without the end-of-turn token (which ends the reply by itself).
    assert format_stops(tokenizer, JINJA) == ("Q:",)
    explicit = CustomFormat(name="x", user_prefix="<user>", stop=("</s>", "<user>"))
    assert format_stops(tokenizer, explicit) == ("</s>", "<user>")
    chatml = CustomFormat(name="chatml", template=CHATML_TEMPLATE)
    # ChatML's turn separator is all control-token text: nothing left that a reply could show.
    assert format_stops(tokenizer, chatml) == ("<|im_start|>user",)


def test_a_reply_ends_at_the_custom_formats_own_stop(tiny_plain_model_dir: Path) -> None:
    loaded = load_model(ModelSpec(source=str(tiny_plain_model_dir), device="cpu"))
    tokenizer = loaded.tokenizer
    messages = (ChatMessage("user", "Hello"),)
    prompt_ids = encode_messages(tokenizer, messages, VICUNA)
    invented = " Ahoy matey!\nUSER: Tell me more.\nASSISTANT: No."
    overfit(loaded.model, prompt_ids + tokenizer(invented, add_special_tokens=False)["input_ids"])
    gen = Generator(loaded.model, tokenizer, loaded.device, loaded.info.context_window)
    levers = Levers(temperature=0.0, top_p=1.0, min_p=0.0, max_new_tokens=40)
    result = gen.run(GenerationRequest(messages, FixedLevers(levers), prompt_format=VICUNA), None)
    assert result.text == " Ahoy matey!\n"
    assert result.stop_reason is StopReason.STOP_STRING
    assert result.format_stops == ("USER:",)
    assert result.prompt_format == "custom 'vicuna' (prefix/suffix)"


def test_a_template_failing_at_run_time_names_the_format_and_line(tokenizer: Any) -> None:
    strict = CustomFormat(
        name="strict",
        template=(
            "{% for m in messages %}\n"
            "{% if m.role == 'system' %}{{ raise_exception('no system role here') }}{% endif %}\n"
            "{{ m.content }}\n{% endfor %}"
        ),
    )
    with pytest.raises(EngineError, match=r"'strict' failed: template .*no system role here"):
        encode_messages(tokenizer, CONVERSATION, strict)


def test_the_sandbox_keeps_templates_away_from_python_internals(tokenizer: Any) -> None:
    escape = CustomFormat(
        name="escape", template="{{ messages.__class__.__mro__[1].__subclasses__() }}"
    )
    with pytest.raises(EngineError, match="'escape' failed"):
        encode_messages(tokenizer, CONVERSATION, escape)


# -- profiles ---------------------------------------------------------------------------------


def write_profile(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "custom.toml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def test_a_profile_with_its_own_format_loads_and_round_trips(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    write_profile(
        folder,
        """
        name = "custom"
        [prompt_format]
        name = "vicuna"
        user_prefix = "USER: "
        user_suffix = "\\n"
        assistant_prefix = "ASSISTANT: "
        assistant_suffix = "\\n"
        generation_prefix = "ASSISTANT:"
        """,
    )
    store = ProfileStore(folder, builtin_dir=tmp_path / "none")
    profile = store.load("custom").profile
    assert isinstance(profile.prompt_format, CustomFormat)
    assert profile.prompt_format.user_prefix == "USER: "
    saved = store.save(profile, expected_fingerprint=store.load("custom").fingerprint)
    assert store.load("custom").profile == profile == saved.profile


BROKEN_FORMATS = [
    (
        '[prompt_format]\ntemplate = """\n{% for m in messages %}\n{{ m.content }\n'
        '{% endfor %}"""\n',
        "{path}:3:1: template line 2: unexpected '}'",
    ),
    (
        '[prompt_format]\nuser_prefx = "U: "\n',
        "{path}:3:1: unknown key 'user_prefx': did you mean 'user_prefix'?",
    ),
    (
        '[prompt_format]\ntemplate = "{{ x }}"\nuser_prefix = "U: "\n',
        "{path}:4:1: user_prefix cannot be used with template: a format is either a Jinja "
        "template or prefix and suffix strings; remove one of them",
    ),
    (
        '[prompt_format]\nname = "empty"\n',
        "{path}:2:1: the format is empty: give template = '...' (a Jinja chat template) or "
        "prefix/suffix strings such as user_prefix and assistant_prefix",
    ),
    (
        'prompt_format = "alpaca"\n',
        "{path}:2:1: prompt_format must be one of 'auto', 'chat_template', 'instruction', or a "
        "[prompt_format] table with a Jinja template or prefix/suffix strings, not 'alpaca' (str)",
    ),
]


@pytest.mark.parametrize(("body", "expected"), BROKEN_FORMATS)
def test_a_broken_format_is_refused_naming_file_key_and_line(
    tmp_path: Path, body: str, expected: str
) -> None:
    path = write_profile(tmp_path / "profiles", 'name = "custom"\n' + body)
    before = path.read_bytes()
    with pytest.raises(ProfileError) as caught:
        profile_from_toml_bytes(before, path)
    assert str(caught.value) == expected.replace("{path}", str(path))
    assert path.read_bytes() == before


def test_format_tables_refuse_wrong_types_with_the_key() -> None:
    with pytest.raises(FormatError, match="user_prefix must be a string, not int") as caught:
        format_from_mapping({"user_prefix": 3})
    assert caught.value.key == "user_prefix"
    with pytest.raises(FormatError, match="stop must be a list of non-empty strings"):
        format_from_mapping({"user_prefix": "U:", "stop": [""]})
