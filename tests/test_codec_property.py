"""The compiled and the pure-Python codec behave identically on any byte stream.

Both readers are fed the same valid RESP streams, mutated (byte flips, insertions,
deletions, truncation) and split at random points; after every chunk they must have
produced the same replies (a ``ServerError`` compared by type, code and message), raised
the same exceptions (type and message) and kept the same ``buffered()`` count.

- a hypothesis test: ``FAKTORY_HYPOTHESIS_EXAMPLES`` examples (default 10,000);
- a seeded fuzz loop without hypothesis: ``FAKTORY_FUZZ_EXAMPLES`` inputs (default 20,000;
  ``FAKTORY_FUZZ_EXAMPLES=1000000`` for a long local run), seed ``FAKTORY_FUZZ_SEED``.
"""
from __future__ import annotations

import os
import random
import time
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faktory import protocol
from faktory._const import MAX_DEPTH, NEED_DATA
from faktory.errors import ServerError

pytestmark = pytest.mark.skipif("cython" not in protocol.CODECS,
                                reason="compiled codec not built (or FAKTORY_NO_EXTENSIONS set): "
                                       "nothing to compare the pure codec with")

COMPILED = protocol.CODECS.get("cython")
PURE = protocol.CODECS["python"]

HYPOTHESIS_EXAMPLES = int(os.environ.get("FAKTORY_HYPOTHESIS_EXAMPLES", "10000"))
FUZZ_EXAMPLES = int(os.environ.get("FAKTORY_FUZZ_EXAMPLES", "20000"))
FUZZ_SEED = int(os.environ.get("FAKTORY_FUZZ_SEED", "20261128"))

# Reader limits worth exercising: the defaults, and small ones that valid streams cross.
LIMITS = [{}, {"max_line": 4}, {"max_bulk": 8}, {"max_bulk": 0, "max_line": 16}, {"max_line": 1}]


def normalise(reply):
    if isinstance(reply, ServerError):
        return ("error-reply", type(reply).__name__, reply.code, reply.message)
    if isinstance(reply, list):
        return ("array", [normalise(item) for item in reply])
    return (type(reply).__name__, reply)


class _Recorder:
    """A waiter for ``Reader.resolve`` that records its reply like the other modes."""

    __slots__ = ("events",)

    def __init__(self, events):
        self.events = events

    def done(self):
        return False

    def set_result(self, reply):
        self.events.append(normalise(reply))


def trace(codec, chunks, limits, use_dispatch):
    """Everything observable while feeding ``chunks``: replies, exceptions, buffered()."""
    reader = codec.Reader(**limits)
    events = []
    for chunk in chunks:
        reader.feed(chunk)
        try:
            if use_dispatch == "resolve":  # the connection's reply loop
                waiters = deque(_Recorder(events) for _ in range(8))
                deadlines = deque([0.0] * 8)
                while (left := reader.resolve(waiters, deadlines, {})) is not None:
                    events.append(normalise(left[0]))
                    waiters.extend(_Recorder(events) for _ in range(8))
                    deadlines.extend([0.0] * 8)
            elif use_dispatch:
                reader.dispatch(lambda reply: events.append(normalise(reply)))
            else:
                while (reply := reader.gets()) is not NEED_DATA:
                    events.append(normalise(reply))
        except Exception as exc:  # noqa: BLE001 - any exception must match
            events.append(("raised", type(exc).__name__, str(exc)))
        events.append(("buffered", reader.buffered()))
    return events


def check_same(chunks, limits, use_dispatch):
    expected = trace(PURE, chunks, limits, use_dispatch)
    got = trace(COMPILED, chunks, limits, use_dispatch)
    assert got == expected, (chunks, limits)


def mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op, where, byte in ops:
        if op == "truncate":
            del buf[where % (len(buf) + 1):]
        elif op == "insert":
            buf.insert(where % (len(buf) + 1), byte)
        elif not buf:
            continue
        elif op == "flip":
            buf[where % len(buf)] ^= 1 << (byte % 8)
        elif op == "set":
            buf[where % len(buf)] = byte
        elif op == "delete":
            del buf[where % len(buf)]
    return bytes(buf)


def split(data: bytes, cuts) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks, last = [], 0
    for point in points + [len(data)]:
        chunks.append(data[last:point])
        last = point
    return chunks


# ---------------------------------------------------------------- hypothesis

line = st.binary(max_size=24).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
scalar = st.one_of(
    line.map(lambda b: b"+" + b + b"\r\n"),
    st.tuples(st.sampled_from([b"ERR", b"NOTUNIQUE", b"WAT", b""]), line).map(
        lambda t: b"-" + t[0] + b" " + t[1] + b"\r\n"),
    st.sampled_from([b"-ERR unknown worker w1\r\n", b"-ERR Job not found j\r\n",
                     b"-ERR Invalid password\r\n", b"+OK\r\n", b"$-1\r\n", b"*-1\r\n"]),
    st.integers(-(10 ** 18) + 1, 10 ** 18 - 1).map(lambda n: b":%d\r\n" % n),
    st.binary(max_size=40).map(lambda b: b"$%d\r\n%s\r\n" % (len(b), b)),
)
reply = st.recursive(
    scalar, lambda inner: st.lists(inner, max_size=4).map(lambda xs: b"*%d\r\n" % len(xs) + b"".join(xs)),
    max_leaves=8)
deep = st.integers(MAX_DEPTH - 1, MAX_DEPTH + 2).map(lambda d: b"*1\r\n" * d + b":1\r\n")
stream = st.lists(st.one_of(reply, reply, reply, deep), max_size=6).map(b"".join)
ops = st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
                         st.integers(0, 1 << 16),
                         st.one_of(st.sampled_from(b"+-:$*\r\n0123456789 _x"), st.integers(0, 255))),
               max_size=4)


@settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=stream, mutations=ops, cuts=st.lists(st.integers(0, 1 << 16), max_size=8),
       limits=st.sampled_from(LIMITS), use_dispatch=st.sampled_from([False, True, "resolve"]))
def test_codecs_agree_on_random_and_mutated_streams(data, mutations, cuts, limits, use_dispatch):
    check_same(split(mutate(data, mutations), cuts), limits, use_dispatch)


# ---------------------------------------------------------------- seeded fuzz loop

INTERESTING = b"+-:$*\r\n0123456789 _x\xff"


def random_reply(rng: random.Random, depth: int = 0) -> bytes:
    kind = rng.randrange(10)
    if kind == 0 and depth < 3:
        n = rng.randrange(4)
        return b"*%d\r\n" % n + b"".join(random_reply(rng, depth + 1) for _ in range(n))
    if kind == 1:
        return b"*1\r\n" * rng.randrange(MAX_DEPTH - 1, MAX_DEPTH + 2) + b"+x\r\n"
    if kind == 2:
        return b"-" + rng.choice([b"ERR", b"NOTUNIQUE", b"X"]) + b" " + rng.choice(
            [b"unknown worker w", b"Job not found j", b"Invalid password", b"boom"]) + b"\r\n"
    if kind == 3:
        return b":%d\r\n" % rng.randrange(-(10 ** 18) + 1, 10 ** 18)
    if kind == 4:
        return rng.choice([b"$-1\r\n", b"*-1\r\n", b"+OK\r\n", b"$0\r\n\r\n"])
    if kind in (5, 6):
        body = rng.randbytes(rng.randrange(48))
        return b"$%d\r\n%s\r\n" % (len(body), body)
    body = rng.randbytes(rng.randrange(24)).replace(b"\r", b"").replace(b"\n", b"")
    return b"+" + body + b"\r\n"


def random_case(rng: random.Random):
    data = bytearray(b"".join(random_reply(rng) for _ in range(rng.randrange(1, 6))))
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        op = rng.randrange(5)
        where = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[where % len(data)] ^= 1 << rng.randrange(8)
        elif op == 1:
            data.insert(where, rng.choice(INTERESTING) if rng.random() < 0.7 else rng.randrange(256))
        elif op == 2 and data:
            del data[where % len(data)]
        elif op == 3:
            del data[where:]
        elif data:
            data[where % len(data)] = rng.choice(INTERESTING)
    data = bytes(data)
    cuts = [rng.randrange(len(data) + 1) for _ in range(rng.randrange(4))]
    if rng.random() < 0.05:
        cuts = range(len(data))  # one byte at a time
    limits = LIMITS[0] if rng.random() < 0.5 else rng.choice(LIMITS)
    return split(data, cuts), limits, rng.choice([False, False, True, "resolve"])


def test_codecs_agree_on_seeded_fuzz_inputs():
    rng = random.Random(FUZZ_SEED)
    started = time.perf_counter()
    for i in range(FUZZ_EXAMPLES):
        chunks, limits, use_dispatch = random_case(rng)
        expected = trace(PURE, chunks, limits, use_dispatch)
        got = trace(COMPILED, chunks, limits, use_dispatch)
        assert got == expected, f"input #{i} (seed {FUZZ_SEED}): {chunks!r} {limits!r} dispatch={use_dispatch}"
    elapsed = time.perf_counter() - started
    print(f"fuzz: {FUZZ_EXAMPLES} inputs, seed {FUZZ_SEED}, {elapsed:.1f} s")


# ---------------------------------------------------------------- framing parity

class _Str(str):
    pass


class _Int(int):
    pass


JSON_EXAMPLES = int(os.environ.get("FAKTORY_JSON_EXAMPLES", "1500"))

json_text = st.text(st.characters(exclude_categories=()), max_size=12)
json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2 ** 70), 2 ** 70),
    st.floats(), st.floats(allow_nan=False, allow_infinity=False), json_text,
    st.sampled_from([_Str("sub"), _Int(7), b"bytes", object(), 1.5 + 2j, frozenset()]),
)
json_key = st.one_of(json_text, json_text, json_text, st.integers(), st.none(), st.booleans(),
                     st.floats(), st.tuples())
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.tuples(inner, inner),
                            st.dictionaries(json_key, inner, max_size=5)),
    max_leaves=20)


def framing_outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - any exception must match
        return ("raised", type(exc).__name__, str(exc))


@settings(max_examples=JSON_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_value, verb=st.sampled_from(["PUSH", "MUTATE", "VÉRB", "A B"]))
def test_codecs_frame_any_value_identically(value, verb):
    for name in ("dumps", "pack_push"):
        assert framing_outcome(getattr(COMPILED, name), value) == framing_outcome(getattr(PURE, name), value), name
    assert framing_outcome(COMPILED.pack_json, verb, value) == framing_outcome(PURE.pack_json, verb, value)
    jobs = [value, {"jid": "x", "args": [value]}]
    assert framing_outcome(COMPILED.pack_pushb, jobs) == framing_outcome(PURE.pack_pushb, jobs)
    assert framing_outcome(COMPILED.pack_pushb, iter(jobs)) == framing_outcome(PURE.pack_pushb, iter(jobs))
