"""A huge valid job stored: its bytes encoded a step at a time (gojson.encode_steps), the
server's other clients served meanwhile, the bytes those the one-call encoder gives.

The checks are on replies, order, stored bytes and state, never on elapsed time.
"""
from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from faktory.server import gojson


# --------------------------------------------------------------------------- the same bytes as encode

_strings = st.text() | st.sampled_from(["", "<&>\u2028\u2029", "\udc80\udcff", "\ud83d", "\x00\x1f\x7f", '"\\'])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([-0.0, 1e-7, 1e21, 2.5e-5]) | _strings,
    lambda children: st.lists(children, max_size=8) | st.dictionaries(_strings, children, max_size=6),
    max_leaves=80)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from([1, 3, 16, 2048]), st.sampled_from([1, 2, 5, 1024]),
       st.sampled_from([1, 2, 7, 32768]))
def test_the_sliced_encode_gives_what_encode_gives(value: Any, cost: int, items: int, chars: int) -> None:
    # tiny steps make small values go through every path of a huge one's
    value = gojson.normalize_any(value)
    saved = gojson.STEP_COST, gojson.STEP_ITEMS, gojson.STEP_CHARS
    gojson.STEP_COST, gojson.STEP_ITEMS, gojson.STEP_CHARS = cost, items, chars
    try:
        work = gojson.encode_steps({"retry": 25, "custom": value, "jid": "x", "args": [value, value]})
        while True:
            try:
                next(work)
            except StopIteration as done:
                sliced = done.value
                break
    finally:
        gojson.STEP_COST, gojson.STEP_ITEMS, gojson.STEP_CHARS = saved
    assert sliced == gojson.encode({"retry": 25, "custom": value, "jid": "x", "args": [value, value]})


def test_a_huge_value_is_encoded_in_many_small_steps() -> None:
    value = {"args": [i * 1.5 for i in range(100_000)], "custom": {"s": "<é>" * 200_000}}
    work = gojson.encode_steps(value)
    steps = 0
    while True:
        try:
            next(work)
            steps += 1
        except StopIteration as done:
            assert done.value == gojson.encode(value)
            break
    # 100,000 floats and a 600,000-character string: each step a bounded part of them
    assert steps >= 100_000 // gojson.STEP_COST + 600_000 // gojson.STEP_CHARS
