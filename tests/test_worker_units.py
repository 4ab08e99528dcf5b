"""Worker parts that need no server: middleware composition, the job context, the
registry, queue ordering and the weighted shuffle."""
from __future__ import annotations

import asyncio
import collections
import functools
import json
import random
import threading

import pytest

from faktory import protocol
from faktory.client import parse_beat
from faktory.errors import ConnectionProtocolError
from faktory.middleware import JobContext, compose
from faktory.errors import UnknownJobTypeError
from faktory.executor import is_async_callable as _is_async_callable
from faktory.queues import queue_order, weighted_shuffle
from faktory.rss import rss_kb
from faktory.worker import Worker

JOB = {"jid": "jid-00000001", "jobtype": "Add", "args": [1, 2], "queue": "q", "custom": {"k": 1}}


# -- middleware composition -------------------------------------------------------------


async def test_compose_runs_middleware_outermost_first_around_the_handler():
    trail = []

    def named(name):
        async def mw(ctx, next):
            trail.append(f"{name}>")
            result = await next()
            trail.append(f"<{name}")
            return result

        return mw

    async def handler(ctx):
        trail.append("job")
        return 42

    chain = compose([named("a"), named("b"), named("c")], handler)
    assert await chain(JobContext(dict(JOB), None)) == 42
    assert trail == ["a>", "b>", "c>", "job", "<c", "<b", "<a"]


async def test_compose_without_middleware_is_the_handler_itself():
    async def handler(ctx):
        return 1

    assert compose([], handler) is handler


async def test_middleware_can_short_circuit_and_attach_to_the_context():
    ran = []

    async def attach(ctx, next):
        ctx.db = "conn"
        return await next()

    async def gate(ctx, next):
        if ctx.args[0] == 0:
            return "skipped"
        return await next()

    async def handler(ctx):
        ran.append(ctx.db)
        return "ran"

    chain = compose([attach, gate], handler)
    assert await chain(JobContext({**JOB, "args": [0]}, None)) == "skipped"
    assert ran == []
    assert await chain(JobContext(dict(JOB), None)) == "ran"
    assert ran == ["conn"]


async def test_errors_propagate_through_the_chain_and_middleware_sees_them():
    seen = []

    async def observer(ctx, next):
        try:
            await next()
        except ValueError as exc:
            seen.append(str(exc))
            raise

    async def handler(ctx):
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await compose([observer], handler)(JobContext(dict(JOB), None))
    assert seen == ["boom"]


async def test_next_called_twice_is_an_error():
    async def twice(ctx, next):
        await next()
        await next()

    async def handler(ctx):
        return None

    with pytest.raises(RuntimeError, match="more than once"):
        await compose([twice], handler)(JobContext(dict(JOB), None))


def test_compose_rejects_a_non_callable():
    async def handler(ctx):
        return None

    with pytest.raises(TypeError):
        compose(["nope"], handler)


# -- the context ------------------------------------------------------------------------


def test_context_exposes_the_job():
    ctx = JobContext(dict(JOB), len)
    assert (ctx.jid, ctx.jobtype, ctx.args, ctx.queue, ctx.fn) == ("jid-00000001", "Add", [1, 2], "q", len)
    assert ctx.custom == {"k": 1}
    assert ctx.job["jid"] == "jid-00000001"
    assert not ctx.cancelled
    ctx.anything = 1  # middleware may attach attributes
    assert ctx.anything == 1


def test_cancel_sets_the_thread_event_even_when_created_later():
    early = JobContext(dict(JOB), None)
    event = early.cancel_event
    assert not event.is_set()
    early.cancel()
    assert early.cancelled and event.is_set()
    late = JobContext(dict(JOB), None)
    late.cancel()
    assert late.cancel_event.is_set()


def test_cancel_event_wakes_a_thread_waiting_on_it():
    ctx = JobContext(dict(JOB), None)
    woke = threading.Event()

    def sync_job():
        if ctx.cancel_event.wait(10):
            woke.set()

    thread = threading.Thread(target=sync_job)
    thread.start()
    ctx.cancel()
    thread.join(10)
    assert woke.is_set()


async def test_wait_cancelled_wakes_on_cancel_and_times_out_otherwise():
    ctx = JobContext(dict(JOB), None)
    assert await ctx.wait_cancelled(0.01) is False
    waiter = asyncio.ensure_future(ctx.wait_cancelled())
    await asyncio.sleep(0)
    ctx.cancel()
    assert await waiter is True
    assert await ctx.wait_cancelled() is True


# -- registry ---------------------------------------------------------------------------


def test_register_forms():
    worker = Worker()

    def plain(a):
        return a

    assert worker.register("plain", plain) is plain

    @worker.register
    async def decorated():
        return None

    @worker.register("Named")
    def named():
        return None

    assert worker.registry == {"plain": plain, "decorated": decorated, "Named": named}
    with pytest.raises(TypeError):
        worker.register("", plain)
    with pytest.raises(TypeError):
        worker.register("x", 3)


def test_shared_registry_dict_is_used_as_given():
    registry = {}
    worker = Worker(registry=registry)
    worker.register("later", print)
    assert registry == {"later": print}


def test_async_detection():
    async def coro(a):
        return a

    class AsyncCallable:
        async def __call__(self):
            return None

    assert _is_async_callable(coro)
    assert _is_async_callable(functools.partial(coro, 1))
    assert _is_async_callable(AsyncCallable())
    assert not _is_async_callable(print)
    assert not _is_async_callable(lambda: coro(1))


def test_worker_validates_its_options():
    with pytest.raises(ValueError):
        Worker(concurrency=0)
    with pytest.raises(ValueError):
        Worker(timeout=-1)
    with pytest.raises(ValueError):
        Worker(beat_interval=0)
    with pytest.raises(ValueError):
        Worker(queues=[])
    with pytest.raises(ValueError):
        Worker(queues={"a": 0})
    with pytest.raises(TypeError):
        Worker(queues="default")
    assert Worker().wid != Worker().wid


def test_unknown_jobtype_error_message():
    exc = UnknownJobTypeError("Nope")
    assert "Nope" in str(exc) and isinstance(exc, LookupError)


# -- queue order ------------------------------------------------------------------------


@pytest.fixture(params=sorted(protocol.CODECS))
def codec(request):
    return protocol.CODECS[request.param]


def test_strict_order_is_one_constant_command(codec):
    order = queue_order(["critical", "default", "low"], codec)
    assert order() == b"FETCH critical default low\r\n"
    assert order() is order()


def test_weighted_order_reshuffles_and_follows_the_weights(codec):
    order = queue_order({"a": 3, "b": 1}, codec, random.Random(7))
    firsts = collections.Counter(order().split()[1] for _ in range(4000))
    assert set(firsts) == {b"a", b"b"}
    share = firsts[b"a"] / 4000
    assert 0.70 < share < 0.80  # expected 0.75


def test_weighted_shuffle_equal_weights_is_uniform():
    rng = random.Random(11)
    counts = collections.Counter(tuple(weighted_shuffle({"a": 1, "b": 1, "c": 1}, rng))
                                 for _ in range(6000))
    assert len(counts) == 6
    for count in counts.values():
        assert 850 < count < 1150  # expected 1000 each


def test_weighted_shuffle_second_place_among_the_rest():
    # With a:b:c = 6:3:1, given a first, b is second with probability 3/4.
    rng = random.Random(3)
    orders = [weighted_shuffle({"a": 6, "b": 3, "c": 1}, rng) for _ in range(20000)]
    after_a = [o[1] for o in orders if o[0] == "a"]
    share = after_a.count("b") / len(after_a)
    assert 0.72 < share < 0.78
    first_share = sum(o[0] == "a" for o in orders) / len(orders)
    assert 0.58 < first_share < 0.62  # expected 0.6


def test_callable_order_is_called_for_each_fetch(codec):
    calls = []

    def pick():
        calls.append(1)
        return ["x", "y"] if len(calls) % 2 else ["y", "x"]

    order = queue_order(pick, codec)
    assert order() == b"FETCH x y\r\n"
    assert order() == b"FETCH y x\r\n"


def test_queue_names_are_validated():
    with pytest.raises(ValueError):
        queue_order(["has space"])
    with pytest.raises(ValueError):
        queue_order(["a", "a"])


# -- heartbeat helpers ------------------------------------------------------------------


def test_beat_reply_parsing_is_one_function_for_client_and_worker():
    assert parse_beat("OK") == "OK"
    assert parse_beat(b'{"state":"quiet"}') == "quiet"  # the real server: a bulk string
    assert parse_beat('{"state":"terminate"}') == "terminate"  # the spec: a simple string
    assert parse_beat(b'{"state":""}') == "OK"
    for garbage in (b"garbage", b'{"state":"dancing"}', b"[1]", None):
        with pytest.raises(ConnectionProtocolError, match="BEAT"):
            parse_beat(garbage)


def test_rss_kb_is_plausible():
    assert 1000 < rss_kb() < 10_000_000


# -- ACK/FAIL retry policy (the worker's decision, over a client that fails on demand) ---


class FlakyClient:
    """Stands in for the Client to script transport failures and server answers."""

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.calls = []

    async def _call(self, data):
        verb, _, payload = data.partition(b" ")
        self.calls.append((verb.decode(), json.loads(payload)["jid"]))
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome


ACK = b'ACK {"jid":"jid-00000001"}\r\n'
FAIL = b'FAIL {"jid":"jid-00000001","errtype":"ValueError","message":"boom"}\r\n'


def _reporting_worker(client) -> Worker:
    worker = Worker()
    worker._client = client
    worker._state = "running"
    worker._reports = 1
    return worker


async def test_ack_is_retried_on_transport_errors_until_it_goes_through(monkeypatch):
    from faktory.errors import CommandTimeout, FaktoryConnectionError
    import faktory.worker as worker_module

    monkeypatch.setattr(worker_module, "_backoff", lambda attempt, **kw: 0)
    client = FlakyClient([FaktoryConnectionError("reset"), CommandTimeout("slow"), OSError("x")])
    worker = _reporting_worker(client)
    await worker._report(JobContext(dict(JOB), None), None, ACK)
    assert client.calls == [("ACK", "jid-00000001")] * 4
    assert worker._reports == 0


@pytest.mark.parametrize("final", ["not found", "server error"])
async def test_fail_is_not_retried_on_server_errors(final):
    from faktory.errors import JobNotFoundError, ServerError

    error = (JobNotFoundError("ERR", "Job not found jid-00000001") if final == "not found"
             else ServerError("ERR", "invalid FAIL"))
    client = FlakyClient([error])
    worker = _reporting_worker(client)
    await worker._report(JobContext(dict(JOB), None), ValueError("boom"), FAIL)
    assert client.calls == [("FAIL", "jid-00000001")]
    assert worker._reports == 0


async def test_retries_end_when_the_worker_has_stopped(monkeypatch):
    from faktory.errors import FaktoryConnectionError
    import faktory.worker as worker_module

    monkeypatch.setattr(worker_module, "_backoff", lambda attempt, **kw: 0)
    client = FlakyClient([FaktoryConnectionError("down")] * 100)
    worker = _reporting_worker(client)
    worker._state = "stopped"
    await worker._report(JobContext(dict(JOB), None), None, ACK)
    assert len(client.calls) == 1
