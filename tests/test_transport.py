"""The pipelined transport: each defect of the old one-command-per-lease layer reproduced
against a real server, and the properties that replace it (coalesced writes, shared
connections, cancellation safety, per-caller deadlines, loss-free bulk results).

Server behaviour comes from the embedded server (or ``FAKTORY_TEST_URL``); the only
fault injected on the client side is a transport whose ``write`` raises, which no
server can cause on demand.
"""
from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time

import pytest

from faktory import Client, Job, Worker
from faktory.connection import Connection, TransportStats
from faktory.errors import BulkPushError, FaktoryConnectionError, ServerUnreachableError
from faktory.server import ServerThread, free_port


async def info(client: Client) -> dict:
    return (await client.info())["faktory"]


async def wait_for_state(predicate, client: Client, timeout: float = 10.0) -> dict:
    """Poll INFO (a server round trip each time, no sleep) until ``predicate(info)``."""
    deadline = time.monotonic() + timeout
    while True:
        state = await info(client)
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"server state never matched: {state}")


# -- 1. a cancelled FETCH does not leave its job reserved ------------------------------------

async def test_a_fetch_cancelled_while_the_server_holds_it_hands_its_job_back(faktory_url):
    async with Client(faktory_url) as consumer, Client(faktory_url) as producer:
        fetch = asyncio.ensure_future(consumer.fetch("handback"))
        # The FETCH is on the wire and held by the server (empty queue).
        await wait_for_state(lambda s: True, producer)
        fetch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fetch
        # The job goes to the FETCH nobody waits for any more ...
        jid = await producer.push(Job("HandedBack", 1, queue="handback"))
        # ... which pushes it back and ACKs the reservation: nothing stays reserved, and
        # the job is in its queue again (not waiting out 30 minutes of reservation).
        state = await wait_for_state(
            lambda s: s["sets"]["working"] == 0 and s["queues"].get("handback") == 1, producer)
        assert state["sets"]["retries"] == 0  # handed back, not FAILed
        job = await consumer.fetch("handback")
        assert job is not None and job["jid"] == jid and job["args"] == [1]
        await consumer.ack(jid)


async def test_wait_for_timeout_on_fetch_is_a_cancellation_too(faktory_url):
    async with Client(faktory_url) as consumer, Client(faktory_url) as producer:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(consumer.fetch("handback2"), 0.3)
        jid = await producer.push(Job("HandedBack", queue="handback2"))
        await wait_for_state(lambda s: s["sets"]["working"] == 0 and s["queues"].get("handback2") == 1,
                             producer)
        job = await consumer.fetch("handback2")
        assert job is not None and job["jid"] == jid
        await consumer.ack(jid)


async def test_a_cancelled_command_leaves_the_connection_in_step(faktory_url):
    async with Client(faktory_url, pool_size=1) as client:
        cancelled = asyncio.ensure_future(client.info())
        await asyncio.sleep(0)  # queued on the only connection
        cancelled.cancel()
        jid = await client.push(Job("InStep", queue="instep"))
        assert isinstance(jid, str)
        assert (await info(client))["queues"]["instep"] == 1  # INFO got INFO's reply
        assert client._size == 1


# -- 2. a failed write never hands a reply to the wrong caller -------------------------------

class FailingWrites:
    """Wraps a connection's transport: the next ``write`` raises, as a broken TLS or
    closed transport does; everything else is the real transport."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.failed = 0

    def write(self, data: bytes) -> None:
        self.failed += 1
        raise RuntimeError("injected write failure")

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


async def test_a_failed_write_closes_the_connection_and_each_caller_gets_its_own_reply(faktory_url):
    async with Client(faktory_url, pool_size=2) as client:
        jid = await client.push(Job("Mine", 7, queue="wrongcaller"))
        conn = client._shared[0]
        faulty = FailingWrites(conn._transport)
        conn._transport = faulty  # type: ignore[assignment]
        # Three callers in the same loop iteration: one batch, one failing write.
        job, state, queues = await asyncio.gather(
            client.fetch("wrongcaller"), client.info(), client.queue_latency("wrongcaller"))
        assert faulty.failed == 1
        assert conn.closed and conn not in client._shared  # never used again
        assert job is not None and job["jid"] == jid and job["args"] == [7]
        assert "faktory" in state and "queues" in state["faktory"]
        assert set(queues) == {"wrongcaller"}
        await client.ack(jid)


# -- 3. a cancelled Worker.work() shuts down gracefully -------------------------------------

async def test_cancelling_work_runs_the_graceful_shutdown_then_reraises(faktory_url):
    started = asyncio.Event()
    finished: list[int] = []

    async def quick(n: int) -> None:
        finished.append(n)

    async def stuck(n: int) -> None:
        started.set()
        await asyncio.sleep(60)  # outlives the shutdown timeout: cancelled and FAILed

    async with Client(faktory_url) as client:
        await client.push_bulk([Job("quick", n, queue="cancelwork") for n in range(10)]
                               + [Job("stuck", n, queue="cancelwork") for n in range(3)])
        worker = Worker(url=faktory_url, concurrency=5, timeout=0.5, queues=["cancelwork"])
        worker.register("quick", quick)
        worker.register("stuck", stuck)
        task = asyncio.ensure_future(worker.work(handle_signals=False))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
        assert worker.state == "stopped"
        state = await info(client)
        # Nothing held by nobody: every job the worker took was ACKed or FAILed.
        assert state["sets"]["working"] == 0
        assert worker.abandoned >= 1
        assert state["sets"]["retries"] == worker.failed
        assert worker.processed == len(finished)
        left = state["queues"].get("cancelwork", 0)
        assert worker.processed + worker.failed + left == 13


async def test_a_stop_right_after_a_backlog_drains_is_bounded_and_loses_nothing(faktory_url):
    done = asyncio.Event()
    ran: list[int] = []

    async def noop(n: int) -> None:
        ran.append(n)
        if len(ran) == 300:
            done.set()

    async with Client(faktory_url) as client:
        await client.push_bulk(Job("noop", n, queue="drained") for n in range(300))
        worker = Worker(url=faktory_url, concurrency=20, timeout=3, queues=["drained"])
        worker.register("noop", noop)
        task = asyncio.ensure_future(worker.work(handle_signals=False))
        await asyncio.wait_for(done.wait(), 20)
        loop = asyncio.get_running_loop()
        started = loop.time()
        worker.stop()
        late = await client.push(Job("noop", 300, queue="drained"))  # while FETCHes are held
        await asyncio.wait_for(task, 15)
        assert loop.time() - started < 3 + 5 + 1.0  # timeout + report_grace, and a margin
        state = await info(client)
        assert state["sets"]["working"] == 0  # no job left reserved by a dropped FETCH
        # The late job was either run by a FETCH the stop waited for, or is still queued.
        assert (300 in ran) != (state["queues"].get("drained", 0) == 1), (ran[-3:], state["queues"])
        assert late


# -- 4. reconnect_timeout bounds every caller, however many wait ----------------------------

@pytest.mark.internals
@pytest.mark.timeout_s(60)
async def test_200_callers_during_an_outage_all_fail_within_reconnect_timeout():
    with ServerThread() as st:
        port = st.port
        client = Client(st.url, reconnect_timeout=1.0, connect_timeout=0.5)
        await client.info()  # the server was there; now it goes away
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def one(n: int) -> float:
        with pytest.raises(FaktoryConnectionError, match=rf"127\.0\.0\.1:{port}.*attempt"):
            await client.push(Job("Outage", n))
        return loop.time() - started

    ended = await asyncio.gather(*(one(n) for n in range(200)))
    assert max(ended) < 1.0 + 0.6, max(ended)
    assert min(ended) >= 1.0 - 0.05
    # The 200 calls shared one series of attempts (backoff 50 ms doubling), not one each.
    assert client._connect_attempts <= 10, client._connect_attempts
    await client.close()


@pytest.mark.internals
@pytest.mark.timeout_s(60)
async def test_200_callers_waiting_for_the_server_all_go_through_when_it_comes_back():
    port = free_port()
    client = Client(f"tcp://127.0.0.1:{port}", reconnect_timeout=20, pool_size=4)
    pushes = [asyncio.ensure_future(client.push(Job("Back", n, queue="back"))) for n in range(200)]
    await asyncio.sleep(0.3)  # the calls are waiting, the attempts failing
    assert not any(p.done() for p in pushes)
    with ServerThread(port=port) as st:
        jids = await asyncio.wait_for(asyncio.gather(*pushes), 15)
        assert len(set(jids)) == 200
        assert (await info(client))["queues"]["back"] == 200
        assert client._size <= 4
        await client.close()
    assert st.port == port


# -- 5. job ids do not repeat after random.seed ---------------------------------------------

def test_random_seed_does_not_repeat_jids():
    random.seed(1234)
    first = [Job("Seeded").jid for _ in range(3)]
    random.seed(1234)
    again = [Job("Seeded").jid for _ in range(3)]
    assert not set(first) & set(again)


def test_two_processes_that_seed_random_push_different_jids():
    code = "import random; random.seed(7); from faktory import Job; print(Job('X').jid)"
    jids = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip() for _ in range(2)}
    assert len(jids) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_jids():
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, Job("Forked").jid.encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child and child != Job("Forked").jid


# -- 6. push_bulk loses no rejection -------------------------------------------------------

async def test_push_bulk_reports_every_rejected_job_even_without_a_jid(faktory_url):
    jobs = [
        Job("Fine", 0, queue="bulkkeys"),
        42,                                                                 # not a job: index 1
        {"jid": 5, "jobtype": "X", "args": []},                             # jid not a str: index 2
        "text",                                                             # index 3
        {"jid": "dup-jid-0001", "jobtype": "X", "args": [], "queue": "bad queue"},
        {"jid": "dup-jid-0001", "jobtype": "X", "args": [], "queue": "bad queue"},  # same jid: 5
        Job("Fine", 1, queue="bulkkeys"),
    ]
    async with Client(faktory_url) as client:
        rejected = await client.push_bulk(jobs)
        assert set(rejected) == {1, 2, 3, "dup-jid-0001", 5}
        assert rejected[1][1] == {"job": 42}
        assert rejected[2][1]["jid"] == 5 and "jid" in rejected[2][0]
        assert rejected[5][1] == jobs[5]
        assert (await info(client))["queues"]["bulkkeys"] == 2


@pytest.mark.internals
async def test_push_bulk_that_fails_for_good_says_what_was_enqueued():
    with ServerThread() as st:
        client = Client(st.url, reconnect_timeout=0.3)

        def jobs():
            for n in range(30):
                if n == 20:  # chunk 1 is confirmed, chunk 2 sent or about to be: the server goes
                    st.stop()
                if n == 3:
                    yield "not a job"
                else:
                    yield Job("Bulk", n, queue="bulkfail")

        with pytest.raises(BulkPushError) as failure:
            await client.push_bulk(jobs(), chunk_size=10, concurrency=1)
        err = failure.value
        assert isinstance(err, FaktoryConnectionError) and err.__cause__ is not None
        assert err.rejected == {3: ("a job must be a Job or a dict, not str: 'not a job'", {"job": "not a job"})}
        assert err.enqueued == 9  # chunk 1, without the bad job
        assert err.enqueued + err.not_enqueued + err.unknown == 30
        assert err.unknown == len(err.unknown_jids) and err.unknown in (0, 10)
        assert "9 jobs enqueued" in str(err)
        await client.close()


async def test_push_bulk_to_a_server_never_reached_counts_every_job_as_not_enqueued():
    client = Client(f"tcp://127.0.0.1:{free_port()}", first_connect_timeout=0.2)
    with pytest.raises(BulkPushError) as failure:
        await client.push_bulk([Job("Never", n) for n in range(2500)])
    err = failure.value
    assert isinstance(err.__cause__, ServerUnreachableError)
    assert (err.enqueued, err.not_enqueued, err.unknown) == (0, 2500, 0)  # nothing was written
    assert client._connect_attempts <= 5
    await client.close()


# -- the pipelining itself ------------------------------------------------------------------

@pytest.mark.internals
async def test_commands_of_one_iteration_leave_in_one_write(faktory_url):
    async with Client(faktory_url, pool_size=4, pipeline_depth=8) as client:
        await client.info()
        conn = client._shared[0]
        before = TransportStats.snapshot()
        jids = await asyncio.gather(*(client.push(Job("Batch", n, queue="batch")) for n in range(8)))
        assert len(set(jids)) == 8
        # The burst tells the pool the client is busy, so it opens one more connection for
        # what comes next (spreading, see the next test): that one's HELLO is a write (of
        # one command) of its own, which may land before the replies to the burst do.
        if client._connector is not None:
            await asyncio.wait({client._connector}, timeout=5)
        opened = client._size - 1
        writes, _, commands = (now - then for now, then in zip(TransportStats.snapshot(), before, strict=True))
        assert (writes, commands) == (1 + opened, 8 + opened)
        assert client._shared[0] is conn and opened <= 1


@pytest.mark.internals
async def test_a_busy_client_spreads_over_the_pool(faktory_url):
    async with Client(faktory_url, pool_size=4, pipeline_depth=4) as client:
        await client.info()
        rounds = 0
        while client._size < 4 and rounds < 50:  # the pool grows while every pipeline is full
            await asyncio.gather(*(client.push(Job("Spread", n, queue="spread")) for n in range(16)))
            rounds += 1
        assert client._size == 4
        before = TransportStats.writes
        await asyncio.gather(*(client.push(Job("Spread", n, queue="spread")) for n in range(16)))
        assert TransportStats.writes - before == 4  # 16 in flight: 4 on each connection, one write each
        assert client._size == 4  # never more than pool_size
        assert (await info(client))["queues"]["spread"] == 16 * (rounds + 1)


class _RecordingConnection(Connection):
    """Records the commands of each write (a client-side view of coalescing)."""

    writes: list[list[bytes]] = []

    def flush(self) -> None:
        if self._out and self._exc is None:
            type(self).writes.append([cmd.split(b" ", 1)[0].strip() for cmd in self._out])
        super().flush()


class _RecordingClient(Client):
    _connection_class = _RecordingConnection


@pytest.mark.internals
async def test_a_busy_client_keeps_three_batches_in_flight(faktory_url):
    # 10 tasks pushing in a loop: two batches of 5 would leave the client and the server
    # taking turns; the pool caps a batch at a third of what is outstanding (4), so the
    # pushes go out as batches of at most 4 on at least 3 connections.
    async with _RecordingClient(faktory_url, pool_size=10, pipeline_depth=8) as client:
        await client.flush()

        async def producer(p: int) -> None:
            for n in range(300):
                await client.push(Job("Busy", p, n, queue="busy"))
                if p == 0 and n == 100:  # settled: measure from here
                    _RecordingConnection.writes.clear()

        await asyncio.gather(*(producer(p) for p in range(10)))
        sizes = [len(cmds) for cmds in _RecordingConnection.writes if cmds[0] == b"PUSH"]
        assert sizes and max(sizes) <= 4, sorted(set(sizes))
        assert sum(sizes) / len(sizes) >= 2.5, sizes  # still coalesced, not a write each
        assert client._size >= 3
        assert (await info(client))["queues"]["busy"] == 3000


class _RecordingWorker(Worker):
    _client_class = _RecordingClient


async def test_acks_of_jobs_that_finish_together_leave_with_the_next_fetches(faktory_url):
    go = asyncio.Event()
    ran: list[int] = []

    async def held(n: int) -> None:
        await go.wait()
        ran.append(n)

    async with Client(faktory_url) as client:
        await client.push_bulk([Job("held", n, queue="together") for n in range(10)])
        worker = _RecordingWorker(url=faktory_url, concurrency=5, fetchers=1, queues=["together"])
        worker.register("held", held)
        task = asyncio.ensure_future(worker.work(handle_signals=False))
        try:
            await wait_for_state(lambda s: s["sets"]["working"] == 5, client)
            _RecordingConnection.writes.clear()
            go.set()  # the 5 running jobs end in one iteration
            await wait_for_state(lambda s: s["sets"]["working"] == 0 and s["queues"].get("together", 0) == 0,
                                 client)
        finally:
            worker.stop()
            await asyncio.wait_for(task, 15)
    # Their 5 ACKs and the 5 FETCHes of the slots they freed went out in one write.
    assert [b"ACK"] * 5 + [b"FETCH"] * 5 in _RecordingConnection.writes, _RecordingConnection.writes
    assert sorted(ran) == list(range(10))


async def test_an_ack_never_waits_behind_a_fetch_the_server_holds(faktory_url):
    started = asyncio.Event()
    go = asyncio.Event()

    async def held() -> None:
        started.set()
        await go.wait()

    async with Client(faktory_url) as client:
        await client.push(Job("held", queue="behind"))
        worker = Worker(url=faktory_url, concurrency=4, fetchers=2, queues=["behind"])
        worker.register("held", held)
        task = asyncio.ensure_future(worker.work(handle_signals=False))
        try:
            await asyncio.wait_for(started.wait(), 10)
            # Both fetch connections now have a FETCH on the empty queue, held 2 s each.
            await wait_for_state(lambda s: s["sets"]["working"] == 1, client)
            loop = asyncio.get_running_loop()
            ended = loop.time()
            go.set()
            await wait_for_state(lambda s: s["sets"]["working"] == 0, client, timeout=1.5)
            assert loop.time() - ended < 1.0, "the ACK waited behind a held FETCH"
        finally:
            worker.stop()
            await asyncio.wait_for(task, 15)
        assert worker.processed == 1


async def test_nothing_waits_behind_a_blocked_fetch(faktory_url):
    async with Client(faktory_url, pool_size=2) as client:
        fetch = asyncio.ensure_future(client.fetch("emptyq"))
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await client.push(Job("NotBehind", queue="other"))
        await client.info()
        assert loop.time() - started < 1.0  # the FETCH is held for 2 s
        assert await fetch is None
