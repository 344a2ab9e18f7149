"""Inspector records from untrusted places (an export file, a server's stream) never crash the
reader: a record reads back exactly, anything else is refused with a ValueError naming the key.

CI runs a bounded number of examples; set ``LEVERCHAT_FUZZ_EXAMPLES`` for a longer run."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from leverchat.engine.inspection import (
    Alternative,
    TokenInspection,
    inspections_from_list,
    inspections_to_list,
)
from leverchat.engine.remote import logprobs

EXAMPLES = int(os.environ.get("LEVERCHAT_FUZZ_EXAMPLES", "60"))

probability = st.none() | st.floats(min_value=0.0, max_value=1.0)
rank = st.none() | st.integers(min_value=1, max_value=50_000)
token_id = st.none() | st.integers(min_value=0, max_value=200_000)
lever = st.none() | st.sampled_from(["top_k", "top_p", "min_p", "repetition_penalty"])
alternative = st.builds(
    Alternative, token_id, st.text(), probability, probability, lever, probability
)
record = st.builds(
    TokenInspection,
    token_id,
    st.text(),
    probability,
    probability,
    rank,
    rank,
    st.lists(alternative, max_size=5).map(tuple),
    st.none() | st.just("stop"),
    st.text(max_size=20),
    probability,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(record, max_size=4))
def test_records_survive_json_text_exactly(items: list[TokenInspection]) -> None:
    text = json.dumps(inspections_to_list(items), ensure_ascii=False)
    assert inspections_from_list(json.loads(text), "inspection") == tuple(items)


@settings(max_examples=EXAMPLES, deadline=None)
@given(json_values)
def test_any_json_is_read_or_refused_with_a_value_error(value: Any) -> None:
    try:
        inspections_from_list(value, "inspection")
    except ValueError as error:
        assert str(error).startswith("inspection")


@settings(max_examples=EXAMPLES, deadline=None)
@given(json_values, st.integers(min_value=1, max_value=30))
def test_any_server_event_gives_records_or_none(event: Any, top_n: int) -> None:
    shaped = {"choices": [{"delta": {}, "logprobs": {"content": [event, {"top_logprobs": event}]}}]}
    for candidate in (event, shaped):
        for item in logprobs.read(candidate, "vLLM", top_n):
            assert len(item.alternatives) <= top_n
            assert item.raw is None and item.after is None
            assert item.reported is None or 0.0 <= item.reported <= 1.0
