"""Client: every method and every error, through a real server over TCP (the embedded
server, or a real Faktory when FAKTORY_TEST_URL is set; tests that reach into the
embedded server skip there)."""
from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from faktory import Client, Job
from faktory.client import DEFAULT_URL, format_backtrace, parse_url
from faktory.errors import (
    CommandTimeout,
    FaktoryConnectionError,
    InvalidPasswordError,
    JobNotFoundError,
    ServerError,
    UnknownWorkerError,
)
from faktory.server import ServerThread


async def queue_sizes(client: Client) -> dict[str, int]:
    return (await client.info())["faktory"]["queues"]


# -- URL, environment, options (no I/O) -------------------------------------------------------

@pytest.mark.parametrize("url,expected", [
    ("tcp://localhost:7420", ("localhost", 7420, None, False)),
    ("tcp://example.com", ("example.com", 7419, None, False)),
    ("tcp+tls://:secret@faktory.example.com:1234", ("faktory.example.com", 1234, "secret", True)),
    ("tcp://:p%40ss%20w%2Frd%25@127.0.0.1:7419", ("127.0.0.1", 7419, "p@ss w/rd%", False)),
    ("tcp://user:pw@[::1]:7419", ("::1", 7419, "pw", False)),
])
def test_parse_url(url, expected):
    assert parse_url(url) == expected


@pytest.mark.parametrize("url", ["http://localhost:7419", "localhost:7419", "tcp://h:notaport"])
def test_parse_url_rejects(url):
    with pytest.raises(ValueError, match="URL"):
        parse_url(url)


def test_url_from_environment(monkeypatch):
    monkeypatch.delenv("FAKTORY_PROVIDER", raising=False)
    monkeypatch.delenv("FAKTORY_URL", raising=False)
    assert Client().url == DEFAULT_URL
    monkeypatch.setenv("FAKTORY_URL", "tcp://:pw@envhost:7500")
    client = Client()
    assert (client.host, client.port, client.password) == ("envhost", 7500, "pw")
    monkeypatch.setenv("FAKTORY_PROVIDER", "MY_FAKTORY")
    monkeypatch.setenv("MY_FAKTORY", "tcp+tls://other:7600")
    client = Client()
    assert (client.host, client.port, client.ssl is not None) == ("other", 7600, True)
    monkeypatch.setenv("FAKTORY_PROVIDER", "tcp://oops:7419")
    with pytest.raises(ValueError, match="FAKTORY_PROVIDER"):
        Client()


def test_explicit_arguments_override_the_url():
    client = Client("tcp+tls://:urlpw@urlhost:1111", host="h", port=2222, password="pw", tls=False)
    assert (client.host, client.port, client.password, client.ssl) == ("h", 2222, "pw", None)
    assert "urlpw" not in repr(client) and "pw" not in client.url


def test_bad_options():
    with pytest.raises(ValueError, match="pool_size"):
        Client("tcp://h", pool_size=0)
    with pytest.raises(TypeError, match="tls"):
        Client("tcp://h", tls="yes")  # type: ignore[arg-type]


def test_format_backtrace_innermost_first_and_limited():
    def inner():
        raise ValueError("boom")

    def outer():
        inner()

    try:
        outer()
    except ValueError as exc:
        lines = format_backtrace(exc)
        assert "in inner" in lines[0] and "in outer" in lines[1]
        assert format_backtrace(exc, 1) == lines[:1]
    assert format_backtrace(ValueError("never raised")) == []


# -- commands against the server ---------------------------------------------------------------

async def test_connect_info_close(faktory_url):
    async with Client(faktory_url) as client:
        info = await client.info()
        assert {"now", "faktory", "server"} <= set(info)
        assert {"queues", "sets", "total_enqueued"} <= set(info["faktory"])
        assert client._size == 1
    assert client._size == 0
    with pytest.raises(FaktoryConnectionError, match="closed"):
        await client.info()


async def test_push_fetch_ack_round_trip(faktory_url):
    async with Client(faktory_url) as client:
        job = client.job("Probe", 1, "two", {"three": 3}, queue="round")
        assert await job.push() == job.jid
        assert (await queue_sizes(client))["round"] == 1
        fetched = await client.fetch("round")
        assert fetched is not None
        assert fetched["jid"] == job.jid and fetched["jobtype"] == "Probe"
        assert fetched["args"] == [1, "two", {"three": 3}] and fetched["retry"] == 25
        assert "enqueued_at" in fetched and "created_at" in fetched
        assert await client.ack(job.jid) is None
        assert (await client.info())["faktory"]["sets"]["working"] == 0


async def test_push_dict_and_options(faktory_url):
    async with Client(faktory_url) as client:
        jid = await client.push({"jobtype": "D", "args": [5], "queue": "dicts", "retry": 3,
                                 "reserve_for": 120, "custom": {"k": "v"}})
        fetched = await client.fetch("dicts")
        assert fetched["jid"] == jid and fetched["retry"] == 3
        assert fetched["reserve_for"] == 120 and fetched["custom"] == {"k": "v"}


async def test_push_future_at_goes_to_scheduled(faktory_url):
    async with Client(faktory_url) as client:
        await client.push(Job("Later", at=datetime.now(timezone.utc) + timedelta(days=1)))
        info = await client.info()
        assert info["faktory"]["sets"]["scheduled"] == 1
        assert info["faktory"]["queues"].get("default", 0) == 0


@pytest.mark.parametrize("bad,exc,field", [
    ({"jobtype": "X", "args": [], "queue": "bad/queue"}, ValueError, "queue"),
    ({"jobtype": "X", "args": [], "jid": "short"}, ValueError, "jid"),
    ({"args": []}, ValueError, "jobtype"),
    ({"jobtype": "X", "args": [{1, 2}]}, TypeError, "args"),
    ({"jobtype": "X", "args": [], "custom": {"when": datetime(2030, 1, 1)}}, TypeError, "custom"),
    ({"jobtype": "X", "args": [float("nan")]}, ValueError, "args"),
    ({"jobtype": "X", "args": [], "at": "2030-01-01T00:00:00"}, ValueError, "at"),
])
async def test_bad_jobs_raise_before_anything_is_sent(faktory_url, bad, exc, field):
    client = Client(faktory_url)
    with pytest.raises(exc, match=field):
        await client.push(bad)
    assert client._size == 0  # no connection was even opened
    await client.close()


async def test_push_rejects_other_types(faktory_url):
    client = Client(faktory_url)
    with pytest.raises(TypeError, match="Job or a dict"):
        await client.push(["X", 1])  # type: ignore[arg-type]


async def test_fetch_takes_queues_in_priority_order(faktory_url):
    async with Client(faktory_url) as client:
        low = await client.push(Job("P", queue="low"))
        high = await client.push(Job("P", queue="high"))
        assert (await client.fetch("high", "low"))["jid"] == high
        assert (await client.fetch("high", "low"))["jid"] == low


async def test_fetch_validates_queue_names_before_sending(faktory_url):
    client = Client(faktory_url)
    with pytest.raises(ValueError, match="at least one"):
        await client.fetch()
    with pytest.raises(ValueError, match="queue"):
        await client.fetch("ok", "not ok")
    assert client._size == 0


@pytest.mark.internals
async def test_fetch_returns_none_when_nothing_arrives():
    with ServerThread(port=0, fetch_timeout=0.1) as server:
        async with Client(server.url) as client:
            assert await client.fetch("empty") is None


@pytest.mark.internals
async def test_fetch_allows_for_the_servers_blocking_wait():
    # The server holds an empty FETCH longer than the command timeout: FETCH gets 2 s more.
    with ServerThread(port=0, fetch_timeout=0.6) as server:
        async with Client(server.url, command_timeout=0.2) as client:
            assert await client.fetch("empty") is None
            assert client._size == 1  # no timeout, the connection is kept


async def test_ack_unknown_jid_is_ok(faktory_url):
    async with Client(faktory_url) as client:
        assert await client.ack("no-such-jid-123") is None


async def test_fail_from_exception_reaches_the_retry_set(faktory_url):
    async with Client(faktory_url) as client:
        jid = await client.push(Job("Boom", queue="failq"))
        await client.fetch("failq")
        try:
            raise ZeroDivisionError("division by zero")
        except ZeroDivisionError as exc:
            await client.fail(jid, exc)
        info = await client.info()
        assert info["faktory"]["sets"]["retries"] == 1
        await client.retries.with_jids(jid).requeue()
        again = await client.fetch("failq")
        failure = again["failure"]
        assert failure["errtype"] == "ZeroDivisionError"
        assert failure["message"] == "division by zero"
        assert failure["retry_count"] == 0
        assert failure["backtrace"] and "test_fail_from_exception" in failure["backtrace"][0]
        await client.ack(jid)


async def test_fail_explicit_values_and_backtrace_limit(faktory_url):
    async with Client(faktory_url) as client:
        jid = await client.push(Job("Boom", queue="failq2"))
        await client.fetch("failq2")
        await client.fail(jid, errtype="Custom", message="m", backtrace=[f"line {i}" for i in range(80)],
                          backtrace_limit=100)
        await client.retries.with_jids(jid).requeue()
        failure = (await client.fetch("failq2"))["failure"]
        assert (failure["errtype"], failure["message"]) == ("Custom", "m")
        assert failure["backtrace"] == [f"line {i}" for i in range(50)]  # capped at 50


async def test_fail_unknown_jid_is_job_not_found(faktory_url):
    async with Client(faktory_url) as client:
        with pytest.raises(JobNotFoundError, match="no-such-jid-456") as info:
            await client.fail("no-such-jid-456", RuntimeError("x"))
        assert info.value.code == "ERR"
        assert await client.info()  # the connection is still usable


async def test_beat_states(faktory_url):
    async with Client(faktory_url, wid="beat-worker-1", labels=["test"]) as client:
        assert await client.beat() == "OK"
        assert await client.beat(rss_kb=1234) == "OK"
        assert await client.beat(current_state="quiet") == "quiet"
        assert await client.beat() == "quiet"  # repeats; never back to running
        assert await client.beat(current_state="terminate") == "terminate"
        with pytest.raises(ValueError, match="current_state"):
            await client.beat(current_state="sleepy")


async def test_beat_needs_a_wid(faktory_url):
    async with Client(faktory_url) as client:
        with pytest.raises(ValueError, match="wid"):
            await client.beat()


async def test_unknown_worker(faktory_url):
    async with Client(faktory_url) as client:
        with pytest.raises(UnknownWorkerError, match="nobody-here"):
            await client.send("BEAT", '{"wid":"nobody-here"}')


@pytest.mark.internals
async def test_beat_reports_operator_quiet(faktory_server):
    async with Client(faktory_server.url, wid="beat-worker-2") as client:
        assert await client.beat() == "OK"
        faktory_server.call(faktory_server.server.quiet_worker, "beat-worker-2")
        assert await client.beat() == "quiet"
        faktory_server.call(faktory_server.server.terminate_worker, "beat-worker-2")
        assert await client.beat() == "terminate"


async def test_flush(faktory_url):
    async with Client(faktory_url) as client:
        await client.push(Job("F", queue="flushme"))
        await client.flush()
        assert (await client.info())["faktory"]["total_enqueued"] == 0


async def test_queue_pause_resume_remove(faktory_url):
    async with Client(faktory_url) as client:
        paused = await client.push(Job("Q", queue="qp"))
        other = await client.push(Job("Q", queue="qo"))
        await client.queue_pause("qp")
        assert (await client.fetch("qp", "qo"))["jid"] == other  # qp skipped
        await client.queue_resume("qp")
        assert (await client.fetch("qp", "qo"))["jid"] == paused
        await client.push(Job("Q", queue="qp"))
        await client.queue_pause("*")
        await client.queue_resume("*")
        await client.queue_remove("qp")
        assert "qp" not in await queue_sizes(client)
        await client.push(Job("Q", queue="qr"))
        await client.queue_remove("*")
        assert await queue_sizes(client) == {}


async def test_queue_commands_validate_names(faktory_url):
    client = Client(faktory_url)
    with pytest.raises(ValueError, match="at least one"):
        await client.queue_pause()
    with pytest.raises(ValueError, match="queue"):
        await client.queue_remove("a b")
    with pytest.raises(ValueError, match="wildcard"):
        await client.queue_latency("*")
    assert client._size == 0


async def test_queue_latency(faktory_url):
    async with Client(faktory_url) as client:
        await client.push(Job("L", queue="latq"))
        latency = await client.queue_latency("latq", "nonexistent-q")
        assert set(latency) == {"latq", "nonexistent-q"}
        assert all(isinstance(v, float) for v in latency.values())
        assert latency["latq"] >= 0.0 and latency["nonexistent-q"] == 0.0


async def test_send_raw_commands_and_server_errors(faktory_url):
    async with Client(faktory_url) as client:
        assert json.loads(await client.send("INFO"))["server"]
        with pytest.raises(ServerError, match="unknown command FROB") as info:
            await client.send("FROB")
        assert info.value.code == "ERR" and type(info.value) is ServerError
        with pytest.raises(ServerError, match="must call fetch"):
            await client.send("FETCH")
        with pytest.raises(ValueError):
            await client.send("QUEUE", "has space")


async def test_command_timeout_closes_only_that_connection(faktory_url):
    async with Client(faktory_url) as client:
        async with client.acquire() as conn:
            with pytest.raises(CommandTimeout):
                await conn.execute(b"FETCH nothing-here\r\n", timeout=0.05)
            assert conn.closed
        assert client._size == 0  # discarded, not returned to the pool
        assert await client.info()  # a fresh connection replaces it


# -- the pool ------------------------------------------------------------------------------------

async def test_many_tasks_share_a_small_pool(faktory_url):
    async with Client(faktory_url, pool_size=3) as client:
        jids = await asyncio.gather(*(client.push(Job("Many", i, queue="many")) for i in range(200)))
        assert len(set(jids)) == 200
        assert client._size <= 3
        assert (await queue_sizes(client))["many"] == 200


async def test_acquire_is_exclusive_and_reuses_connections(faktory_url):
    async with Client(faktory_url, pool_size=1) as client:
        async with client.acquire() as conn:
            waiting = asyncio.ensure_future(client.info())
            await asyncio.sleep(0)
            assert not waiting.done()  # the only connection is leased
            assert (await conn.execute(b"INFO\r\n"))
        assert await waiting
        async with client.acquire() as again:
            assert again is conn  # returned to the pool and reused


async def test_cancelled_command_still_consumes_its_reply(faktory_url):
    async with Client(faktory_url, pool_size=2) as client:
        async with client.acquire() as conn:
            blocked = asyncio.ensure_future(conn.execute(b"FETCH cancelq\r\n"))
            await asyncio.sleep(0)
            blocked.cancel()
            jid = await client.push(Job("C", queue="cancelq"))  # the cancelled FETCH gets it
            reply = await conn.execute(b"INFO\r\n")  # ...and this gets INFO, not the job
            assert json.loads(reply)["server"]
            assert not conn.closed
        assert blocked.cancelled()
        await client.ack(jid)


async def test_waiter_cancelled_while_pool_is_full(faktory_url):
    async with Client(faktory_url, pool_size=1) as client:
        async with client.acquire():
            waiter = asyncio.ensure_future(client.info())
            await asyncio.sleep(0)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        assert await client.info()
        assert client._size == 1


# -- password --------------------------------------------------------------------------------

@pytest.mark.internals
async def test_password_auth():
    password = "p@ss w/rd%é"
    with ServerThread(port=0, password=password) as server:
        url = f"tcp://:{quote(password, safe='')}@127.0.0.1:{server.port}"
        async with Client(url) as client:
            assert await client.info()
        assert server.url == url  # the server's own url carries the password
        bare = f"tcp://127.0.0.1:{server.port}"
        async with Client(bare, password=password) as client:
            assert await client.info()
        with pytest.raises(InvalidPasswordError):
            await Client(url, password="wrong").connect()  # the argument overrides the URL
        with pytest.raises(InvalidPasswordError):
            await Client(bare).connect()


# -- FAKTORY_PROVIDER end to end ------------------------------------------------------------

async def test_faktory_provider_selects_the_url(faktory_url, monkeypatch):
    monkeypatch.setenv("FAKTORY_PROVIDER", "MY_QUEUE_SERVER")
    monkeypatch.setenv("MY_QUEUE_SERVER", faktory_url)
    monkeypatch.setenv("FAKTORY_URL", "tcp://127.0.0.1:1")  # must not be used
    async with Client() as client:
        assert await client.info()


# -- push_bulk -------------------------------------------------------------------------------

async def test_push_bulk_10000_with_a_few_bad_ones(faktory_url):
    # Rejected by the server: unvalidated Job objects are sent as they are.
    bad_server = {3: Job.from_payload({"jid": "bulk-bad-no-jobtype", "args": [], "queue": "bulk"},
                                      validate=False),
                  5005: Job.from_payload({"jid": "bulk-bad-no-args", "jobtype": "B", "queue": "bulk"},
                                         validate=False)}
    # Rejected by the client, before sending: a dict failing validation, unencodable args.
    bad_client = {7007: {"jid": "bulk-bad-queue-1", "jobtype": "B", "args": [], "queue": "no good"},
                  8008: {"jid": "bulk-bad-no-args-2", "jobtype": "B"},
                  9999: Job("B", {1, 2}, jid="bulk-bad-unencodable", queue="bulk")}

    def jobs():
        for i in range(10_000):
            if i in bad_server:
                yield bad_server[i]
            elif i in bad_client:
                yield bad_client[i]
            elif i % 2:
                yield Job("B", i, queue="bulk")
            else:
                yield {"jobtype": "B", "args": [i], "queue": "bulk"}

    async with Client(faktory_url, pool_size=4) as client:
        rejected = await client.push_bulk(jobs())
        assert set(rejected) == {"bulk-bad-no-jobtype", "bulk-bad-no-args", "bulk-bad-queue-1",
                                 "bulk-bad-no-args-2", "bulk-bad-unencodable"}
        assert rejected["bulk-bad-no-jobtype"] == ("jobs must have a jobtype parameter",
                                                   bad_server[3].to_dict())
        assert rejected["bulk-bad-no-args"][0] == "jobs must have an args parameter"
        assert "queue" in rejected["bulk-bad-queue-1"][0]
        assert rejected["bulk-bad-queue-1"][1] == bad_client[7007]
        assert "args" in rejected["bulk-bad-no-args-2"][0]
        assert "args" in rejected["bulk-bad-unencodable"][0]
        assert (await queue_sizes(client))["bulk"] == 10_000 - 5
        assert client._size > 1  # several chunks went out at once over pooled connections


async def test_push_bulk_small_inputs(faktory_url):
    async with Client(faktory_url) as client:
        assert await client.push_bulk([]) == {}
        assert await client.push_bulk(iter([Job("S", queue="small")])) == {}
        rejected = await client.push_bulk([Job("S", i, queue="small") for i in range(25)], chunk_size=7)
        assert rejected == {}
        assert (await queue_sizes(client))["small"] == 26
        with pytest.raises(ValueError, match="chunk_size"):
            await client.push_bulk([], chunk_size=0)


@pytest.mark.internals
async def test_worker_hello_registers_wid_hostname_pid_labels(faktory_server):
    async with Client(faktory_server.url, wid="hello-worker", labels=["blue", "green"],
                      hostname="box-1") as client, Client(faktory_server.url) as producer:
        assert await client.beat() == "OK"
        assert await producer.info()  # a producer (no wid) is not registered as a worker
        workers = faktory_server.call(faktory_server.server.workers)
        assert [w["wid"] for w in workers] == ["hello-worker"]
        worker = workers[0]
        assert worker["hostname"] == "box-1" and worker["pid"] == os.getpid()
        assert worker["labels"] == ["blue", "green"]


async def test_beat_parses_a_simple_string_state_too():
    # The real server sends the state as a bulk string; the spec shows "+{...}": accept both.
    from _fakes import FakePeer, answers

    async with FakePeer(answers(b'+{"state":"quiet"}\r\n',
                                b'$21\r\n{"state":"terminate"}\r\n')) as peer:
        async with Client(peer.url, wid="fake-worker") as client:
            assert await client.beat() == "quiet"
            assert await client.beat() == "terminate"
