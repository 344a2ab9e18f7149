"""``profiles show`` TOML: valid, the same data, readable, and nothing raw for a terminal."""

from __future__ import annotations

import tomllib
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from leverchat.commands.toml_display import dumps_for_display
from leverchat.safetext import UNSAFE

# TOML strings hold any Unicode scalar value: everything but lone surrogates.
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]))
KEY = TEXT.filter(bool) | st.from_regex(r"[A-Za-z0-9_-]+", fullmatch=True)
SCALAR = (
    TEXT
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
)
VALUE = SCALAR | st.lists(TEXT, max_size=4) | st.lists(st.integers(0, 9), max_size=4)
TABLE = st.dictionaries(KEY, VALUE, max_size=6)
DOCUMENT = st.dictionaries(KEY, VALUE | TABLE, max_size=6)


@given(DOCUMENT)
def test_the_text_reads_back_as_the_same_data_and_holds_nothing_raw(data: dict[str, Any]) -> None:
    text = dumps_for_display(data, header="shown \x1b]0;t\x07\n\u202eheader")
    assert tomllib.loads(text) == data
    assert UNSAFE.search(text) is None  # newline and tab are all that is left raw


def test_stop_strings_stay_on_one_line_and_a_system_prompt_is_a_readable_block() -> None:
    text = dumps_for_display(
        {
            "name": "evil\u202e",
            "system_prompt": 'Say "hi".\n\x9b2J \\ end\n',
            "levers": {"temperature": 0.7, "stop": ["\n\n", "END"], "seed": None},
        },
        header="Profile 'evil' with every lever resolved.",
    )
    assert text == (
        "# Profile 'evil' with every lever resolved.\n"
        'name = "evil\\u202E"\n'
        'system_prompt = """\n'
        'Say \\"hi\\".\n'
        "\\u009B2J \\\\ end\n"
        '"""\n'
        "\n"
        "[levers]\n"
        "temperature = 0.7\n"
        'stop = ["\\n\\n", "END"]\n'
    )
