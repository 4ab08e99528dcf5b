"""The worker against the embedded server: job functions, queue order, concurrency,
middleware, FAIL payloads, quiet/terminate from the server, signals, the shutdown
timeout and reconnection.

The servers here block an empty FETCH for 0.25 s instead of 2 s (``fetch_timeout``), so
that a graceful stop, which lets the FETCHes in flight finish, is quick.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import threading
import time

import pytest

from faktory.client import Client
from faktory.server import ServerThread
from faktory.worker import Worker

pytestmark = pytest.mark.internals

FETCH_TIMEOUT = 0.25


@pytest.fixture
def server():
    if os.environ.get("FAKTORY_TEST_URL"):
        pytest.skip("needs the embedded server (its operator API and fetch_timeout)")
    with ServerThread(port=0, fetch_timeout=FETCH_TIMEOUT) as st:
        yield st


def make_worker(server, **options) -> Worker:
    options.setdefault("concurrency", 5)
    options.setdefault("timeout", 2)
    options.setdefault("beat_interval", 5)
    return Worker(url=server.url, **options)


@contextlib.asynccontextmanager
async def running(worker: Worker, handle_signals: bool = False):
    """Run ``worker`` in the background; stop it (and wait for it) on exit."""
    task = asyncio.ensure_future(worker.work(handle_signals=handle_signals))
    started = asyncio.ensure_future(worker.wait_state("running"))
    await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        started.cancel()
        task.result()  # raises the start-up error
    try:
        yield task
    finally:
        worker.stop()
        await task


async def failure_of(server: ServerThread, jid: str) -> dict:
    """The ``failure`` record the server stored for a FAILed job, read from its retries set
    (not requeued and fetched: a stopped worker's FETCH still blocked on the server could
    take the job first)."""
    def find() -> bytes | None:
        return next((rec.payload for rec in server.server.store.sets["retries"].ordered()
                     if rec.jid == jid), None)

    payload = await asyncio.to_thread(server.call, find)
    assert payload is not None, f"job {jid} is not in the retries set"
    return json.loads(payload)["failure"]


async def queue_sizes(client: Client) -> dict:
    return (await client.info())["faktory"]["queues"]


# -- job functions ------------------------------------------------------------------------


async def test_async_and_sync_job_functions_run_and_are_acked(server):
    worker = make_worker(server)
    seen = {}
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    @worker.register
    async def add(a, b):
        seen["async"] = (a + b, threading.current_thread() is threading.main_thread())
        if len(seen) == 2:
            done.set()

    @worker.register("Mul")
    def mul(a, b):
        seen["sync"] = (a * b, threading.current_thread() is threading.main_thread())
        if len(seen) == 2:
            loop.call_soon_threadsafe(done.set)

    async with Client(server.url) as client:
        async with running(worker):
            await client.job("add", 2, 3).push()
            await client.job("Mul", 2, 3).push()
            await done.wait()
        info = await client.info()
    assert seen == {"async": (5, True), "sync": (6, False)}  # sync ran in a thread
    assert worker.processed == 2 and worker.failed == 0
    assert info["faktory"]["sets"]["working"] == 0  # both ACKed
    assert info["faktory"]["sets"]["retries"] == 0


async def test_sync_job_does_not_block_the_loop(server):
    worker = make_worker(server, concurrency=2)
    release = threading.Event()
    async_ran = asyncio.Event()

    @worker.register
    def blocker():
        release.wait(10)

    @worker.register
    async def quick():
        async_ran.set()

    async with Client(server.url) as client:
        async with running(worker):
            await client.job("blocker").push()
            await client.job("quick").push()
            await async_ran.wait()  # ran while the sync job still blocks its thread
            release.set()
    assert worker.processed == 2


# -- queue order ----------------------------------------------------------------------------


async def test_strict_queue_order(server):
    worker = make_worker(server, concurrency=1, queues=["high", "low"])
    order = []
    done = asyncio.Event()

    @worker.register
    async def job(tag):
        order.append(tag)
        if len(order) == 10:
            done.set()

    async with Client(server.url) as client:
        for i in range(5):
            await client.job("job", f"low{i}", queue="low").push()
        for i in range(5):
            await client.job("job", f"high{i}", queue="high").push()
        async with running(worker):
            await done.wait()
    assert order == [f"high{i}" for i in range(5)] + [f"low{i}" for i in range(5)]


async def test_weighted_queue_order(server):
    worker = make_worker(server, concurrency=1, queues={"a": 3, "b": 1}, rng=random.Random(5))
    order = []
    enough = asyncio.Event()

    @worker.register
    async def job(tag):
        order.append(tag)
        if len(order) == 100:
            enough.set()

    async with Client(server.url) as client:
        await client.push_bulk(client.job("job", "a", queue="a") for _ in range(100))
        await client.push_bulk(client.job("job", "b", queue="b") for _ in range(100))
        async with running(worker):
            await enough.wait()
            worker.quiet()
    first = order[:100]
    # strict order would give 100 a's; weighted 3:1 picks b first a quarter of the time
    # (expected 25, standard deviation 4.3; the seed makes the run repeatable)
    assert 10 <= first.count("b") <= 40, first
    assert first.count("a") > first.count("b")


async def test_queue_callable_is_asked_for_every_fetch(server):
    calls = []

    def pick():
        calls.append(1)
        return ["x"]

    worker = make_worker(server, concurrency=1, queues=pick)
    done = asyncio.Event()

    @worker.register
    async def job():
        done.set()

    async with Client(server.url) as client:
        await client.job("job", queue="x").push()
        async with running(worker):
            await done.wait()
    assert calls


# -- concurrency ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_concurrency_is_reached_and_never_exceeded(server, kind):
    concurrency, total = 4, 40
    worker = make_worker(server, concurrency=concurrency, fetchers=4)
    lock = threading.Lock()
    state = {"now": 0, "max": 0, "done": 0, "held": 0}
    all_done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def enter():
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            # jobs held in memory by the worker (running or fetched) never exceed the slots
            state["held"] = max(state["held"], len(worker._running))

    def leave():
        with lock:
            state["now"] -= 1
            state["done"] += 1
            if state["done"] == total:
                loop.call_soon_threadsafe(all_done.set)

    if kind == "async":
        @worker.register
        async def job(i):
            enter()
            await asyncio.sleep(0.01)
            leave()
    else:
        @worker.register
        def job(i):
            enter()
            time.sleep(0.01)
            leave()

    async with Client(server.url) as client:
        await client.push_bulk(client.job("job", i) for i in range(total))
        async with running(worker):
            await all_done.wait()
    assert state["max"] == concurrency
    assert state["held"] <= concurrency
    assert worker.processed == total


# -- context providers and middleware --------------------------------------------------------


async def test_context_providers_for_async_and_sync_functions(server):
    worker = make_worker(server)
    got = {}
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def attach(ctx, next):
        ctx.greeting = "hi"
        await next()

    worker.use(attach)

    @worker.register
    async def async_job(x):
        async def provider(ctx):
            got["async"] = (x, ctx.jid, ctx.jobtype, ctx.greeting, ctx.fn is async_job)
            if len(got) == 2:
                done.set()
        return provider

    @worker.register
    def sync_job(x):
        def provider(ctx):
            got["sync"] = (x, ctx.jid, ctx.jobtype, ctx.greeting, ctx.job["args"])
            if len(got) == 2:
                loop.call_soon_threadsafe(done.set)
        return provider

    async with Client(server.url) as client:
        async with running(worker):
            jid1 = await client.job("async_job", 1).push()
            jid2 = await client.job("sync_job", 2).push()
            await done.wait()
    assert got["async"] == (1, jid1, "async_job", "hi", True)
    assert got["sync"] == (2, jid2, "sync_job", "hi", [2])
    assert worker.processed == 2


async def test_middleware_runs_in_order_around_the_job(server):
    worker = make_worker(server)
    trail = []
    done = asyncio.Event()

    def named(name):
        async def mw(ctx, next):
            trail.append(f"{name}>{ctx.jobtype}")
            await next()
            trail.append(f"<{name}")
        return mw

    worker.use(named("outer"))
    worker.use(named("inner"))

    @worker.register
    async def job():
        trail.append("job")

    worker.use(lambda ctx, next: _done_after(next, done))

    async with Client(server.url) as client:
        async with running(worker):
            await client.job("job").push()
            await done.wait()
    assert trail == ["outer>job", "inner>job", "job", "<inner", "<outer"]


async def _done_after(next, event):
    await next()
    event.set()


async def test_error_in_middleware_fails_the_job_and_skips_it(server):
    worker = make_worker(server)
    ran = []
    failed = asyncio.Event()

    async def guard(ctx, next):
        if ctx.args == ["forbidden"]:
            raise PermissionError("not allowed here")
        await next()

    async def watch(ctx, next):
        try:
            await next()
        finally:
            if ctx.args == ["forbidden"]:
                failed.set()

    worker.use(watch)
    worker.use(guard)

    @worker.register
    async def job(arg):
        ran.append(arg)

    async with Client(server.url) as client:
        async with running(worker):
            jid = await client.job("job", "forbidden").push()
            await failed.wait()
        assert ran == []
        assert worker.failed == 1
        failure = await failure_of(server, jid)
    assert failure["errtype"] == "PermissionError"
    assert failure["message"] == "not allowed here"


# -- FAIL payloads --------------------------------------------------------------------------


def _deep_failure(value):
    raise ValueError(f"bad input: {value}")


async def test_fail_payload_has_errtype_message_and_innermost_first_backtrace(server):
    worker = make_worker(server)
    finished = asyncio.Event()
    calls = []

    @worker.register
    async def explode(value):
        try:
            _deep_failure(value)
        finally:
            calls.append(value)
            if len(calls) == 2:
                finished.set()

    async with Client(server.url) as client:
        async with running(worker):
            jid = await client.job("explode", 42).push()
            short = await client.job("explode", 7, backtrace=1).push()
            await finished.wait()
        # the graceful stop waited for the FAILs to be answered
        assert worker.failed == 2
        failure = await failure_of(server, jid)
        short_failure = await failure_of(server, short)
    assert failure["errtype"] == "ValueError"
    assert failure["message"] == "bad input: 42"
    assert failure["retry_count"] == 0
    backtrace = failure["backtrace"]
    assert "_deep_failure" in backtrace[0]  # innermost frame first
    assert any("explode" in line for line in backtrace)
    assert 2 <= len(backtrace) <= 50
    assert len(short_failure["backtrace"]) == 1  # the job's own backtrace limit


async def test_unknown_jobtype_fails_and_the_worker_carries_on(server):
    worker = make_worker(server, concurrency=1)
    done = asyncio.Event()

    @worker.register
    async def known():
        done.set()

    async with Client(server.url) as client:
        async with running(worker):
            nope = await client.job("Nope", 1).push()
            await client.job("known").push()
            await done.wait()
        assert worker.failed == 1 and worker.processed == 1
        failure = await failure_of(server, nope)
    assert failure["errtype"] == "UnknownJobTypeError"
    assert "Nope" in failure["message"]


async def test_sync_exception_fails_with_its_class(server):
    worker = make_worker(server)
    raised = asyncio.Event()
    loop = asyncio.get_running_loop()

    @worker.register
    def broken():
        loop.call_soon_threadsafe(raised.set)
        raise KeyError("missing")

    async with Client(server.url) as client:
        async with running(worker):
            jid = await client.job("broken").push()
            await raised.wait()
        assert worker.failed == 1
        failure = await failure_of(server, jid)
    assert failure["errtype"] == "KeyError"
    assert "missing" in failure["message"]


# -- quiet and terminate from the server -----------------------------------------------------


async def test_quiet_from_the_server_stops_fetching_but_keeps_beating(server):
    worker = make_worker(server, beat_interval=0.05)
    done = asyncio.Event()

    @worker.register
    async def job():
        done.set()

    async with Client(server.url) as client:
        async with running(worker):
            await client.job("job").push()
            await done.wait()
            server.call(server.server.quiet_worker, worker.wid)
            assert await worker.wait_state("quiet") == "quiet"
            await asyncio.wait_for(worker.wait_fetches_answered(), 10)
            await client.job("job", queue="default").push()  # must stay in the queue
            record = [w for w in server.call(server.server.workers) if w["wid"] == worker.wid]
            assert record and record[0]["state"] == "quiet"
        assert (await queue_sizes(client))["default"] == 1
    assert worker.processed == 1


async def test_terminate_from_the_server_stops_the_worker(server):
    worker = make_worker(server, beat_interval=0.05)
    task = asyncio.ensure_future(worker.work(handle_signals=False))
    await worker.wait_state("running")
    server.call(server.server.terminate_worker, worker.wid)
    await asyncio.wait_for(task, 10)  # work() returns by itself
    assert worker.state == "stopped" and not worker.killed


async def test_quiet_and_stop_from_the_api(server):
    worker = make_worker(server)
    async with running(worker):
        worker.quiet()
        assert worker.state == "quiet"
        await asyncio.wait_for(worker.wait_fetches_answered(), 10)
    assert worker.state == "stopped"


# -- signals (sent to this process; handlers are restored afterwards) ---------------------------


def _handlers():
    sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGTSTP)
    return {sig: signal.getsignal(sig) for sig in sigs}


@contextlib.asynccontextmanager
async def signalled_worker(worker: Worker):
    before = _handlers()
    task = asyncio.ensure_future(worker.work(handle_signals=True))
    await worker.wait_state("running")
    # our handlers are in place: a signal cannot reach pytest's defaults
    assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT]
    try:
        yield task
    finally:
        if not task.done():
            worker.kill()
        await task
        assert _handlers() == before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_sigterm_and_sigint_stop_gracefully(server, sig):
    worker = make_worker(server, timeout=10)
    started = asyncio.Event()
    release = asyncio.Event()
    finished = []

    @worker.register
    async def slow():
        started.set()
        await release.wait()
        finished.append(1)

    async with Client(server.url) as client:
        await client.job("slow").push()
        async with signalled_worker(worker) as task:
            await started.wait()
            os.kill(os.getpid(), sig)
            await worker.wait_state("stopping")
            assert not task.done()  # the running job is waited for
            release.set()
            await task
        assert finished == [1] and worker.processed == 1 and worker.abandoned == 0
        assert (await client.info())["faktory"]["sets"]["working"] == 0


async def test_second_sigint_stops_at_once_and_fails_the_running_job(server):
    worker = make_worker(server, timeout=30)
    started = asyncio.Event()

    @worker.register
    async def forever():
        started.set()
        await asyncio.Event().wait()

    async with Client(server.url) as client:
        jid = await client.job("forever").push()
        async with signalled_worker(worker) as task:
            await started.wait()
            os.kill(os.getpid(), signal.SIGINT)
            await worker.wait_state("stopping")
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.wait_for(task, 5)  # not the 30 s timeout
        assert worker.killed and worker.abandoned == 1
        failure = await failure_of(server, jid)
    assert failure["errtype"] == "JobCancelledError"


async def test_sigtstp_quiets(server):
    worker = make_worker(server)
    async with signalled_worker(worker):
        os.kill(os.getpid(), signal.SIGTSTP)
        assert await worker.wait_state("quiet") == "quiet"
        worker.stop()


async def test_no_handlers_outside_the_main_thread_or_when_disabled(server):
    before = _handlers()
    worker = make_worker(server)
    async with running(worker, handle_signals=False):
        assert _handlers() == before


# -- shutdown timeout -------------------------------------------------------------------------


async def test_shutdown_timeout_cancels_and_fails_a_job_that_ignores_cancellation(server):
    worker = make_worker(server, timeout=0.3)
    started = asyncio.Event()
    cancelled = asyncio.Event()
    release = asyncio.Event()

    @worker.register
    async def stubborn():
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            await release.wait()  # ignores the cancellation and goes on

    async with Client(server.url) as client:
        jid = await client.job("stubborn").push()
        task = asyncio.ensure_future(worker.work(handle_signals=False))
        await started.wait()
        t0 = time.monotonic()
        worker.stop()
        await task
        elapsed = time.monotonic() - t0
        assert cancelled.is_set()
        assert 0.3 <= elapsed < 3
        assert worker.abandoned == 1 and worker.processed == 0
        release.set()  # the job ends now: it must not be ACKed after its FAIL
        failure = await failure_of(server, jid)
    assert failure["errtype"] == "JobCancelledError"
    assert "0.3" in failure["message"]
    assert worker.processed == 0


async def test_shutdown_timeout_with_a_sync_job_sets_the_cancel_event(server):
    worker = make_worker(server, timeout=0.2)
    started = asyncio.Event()
    loop = asyncio.get_running_loop()
    saw_cancel = threading.Event()

    @worker.register
    def sync_job():
        def provider(ctx):
            loop.call_soon_threadsafe(started.set)
            if ctx.cancel_event.wait(10):
                saw_cancel.set()
        return provider

    async with Client(server.url) as client:
        jid = await client.job("sync_job").push()
        task = asyncio.ensure_future(worker.work(handle_signals=False))
        await started.wait()
        worker.stop()
        await task
        assert worker.abandoned == 1
        assert await asyncio.get_running_loop().run_in_executor(None, saw_cancel.wait, 10)
        failure = await failure_of(server, jid)
    assert failure["errtype"] == "JobCancelledError"


# -- reconnection ---------------------------------------------------------------------------


async def test_worker_reconnects_after_the_server_restarts(server):
    server.__exit__(None, None, None)  # this test runs its own servers, on one port
    first = ServerThread(port=0, fetch_timeout=FETCH_TIMEOUT).__enter__()
    port = first.port
    worker = make_worker(first, beat_interval=0.1)
    seen = []
    got = {1: asyncio.Event(), 2: asyncio.Event()}

    @worker.register
    async def job(n):
        seen.append(n)
        got[n].set()

    try:
        async with Client(first.url) as client:
            await client.job("job", 1).push()
        async with running(worker):
            await got[1].wait()
            first.__exit__(None, None, None)  # the server goes away...
            with ServerThread(port=port, fetch_timeout=FETCH_TIMEOUT) as second:  # ...and comes back
                async with Client(second.url) as client:
                    await client.job("job", 2).push()
                    await got[2].wait()
                # the new server knows the worker: its connections said HELLO with the wid
                assert any(w["wid"] == worker.wid for w in second.call(second.server.workers))
                worker.stop()
    finally:
        first.__exit__(None, None, None)
    assert seen == [1, 2]


async def test_worker_survives_dropped_connections(server):
    worker = make_worker(server, beat_interval=0.1)
    got = {1: asyncio.Event(), 2: asyncio.Event()}

    @worker.register
    async def job(n):
        got[n].set()

    async with Client(server.url) as client:
        async with running(worker):
            await client.job("job", 1).push()
            await got[1].wait()
            assert server.call(server.server.drop_connections) >= 1
            await client.job("job", 2).push()
            await got[2].wait()
    assert worker.processed == 2


# -- heartbeat ------------------------------------------------------------------------------------


class LogEvent(logging.Handler):
    """Sets ``event`` (in ``loop``) when a ``faktory.worker`` record contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.loop.call_soon_threadsafe(self.event.set)

    def __enter__(self) -> "LogEvent":
        logger = logging.getLogger("faktory.worker")
        self._level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc_info) -> None:
        logger = logging.getLogger("faktory.worker")
        logger.removeHandler(self)
        logger.setLevel(self._level)


async def test_heartbeat_reports_rss_and_the_workers_own_state(server):
    worker = make_worker(server, beat_interval=30)  # beats at start and on state changes
    with LogEvent("beat (quiet") as quiet_beat:
        async with running(worker):
            worker.quiet()
            await quiet_beat.event.wait()
            [record] = [w for w in server.call(server.server.workers) if w["wid"] == worker.wid]
    assert record["state"] == "quiet"  # the worker told the server (current_state)
    assert record["rss_kb"] > 1000


async def test_unknown_worker_reconnects_with_hello_and_carries_on(server):
    # one fetcher: no connection opens (and says HELLO) after the first beat
    worker = make_worker(server, beat_interval=0.05, concurrency=1, fetchers=1)
    got = asyncio.Event()

    @worker.register
    async def job():
        got.set()

    with LogEvent("forgot this worker") as forgot, LogEvent("beat (running") as beat:
        async with running(worker):
            await beat.event.wait()
            # the server forgets the worker while its connections stay open
            server.call(server.server._workers.pop, worker.wid)
            await forgot.event.wait()
            async with Client(server.url) as client:
                await client.job("job").push()
            await got.wait()
            # new HELLOs registered the wid again, and the worker still runs
            assert any(w["wid"] == worker.wid for w in server.call(server.server.workers))
            assert worker.state == "running"
