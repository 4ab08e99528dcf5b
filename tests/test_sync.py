"""``SyncClient``: the blocking client against the embedded server: every method, the same
results and errors as ``Client``, TLS and passwords, the pool, and 8 threads pushing at
once through one client while the server drops every connection."""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from faktory import Client, Job, SyncClient
from faktory.errors import (
    BulkPushError,
    CommandTimeout,
    FaktoryConnectionError,
    HandshakeError,
    InvalidPasswordError,
    JobNotFoundError,
    ServerError,
)
from faktory.server import ServerThread, free_port


def sizes(client: SyncClient) -> dict[str, int]:
    return client.info()["faktory"]["queues"]


def test_push_fetch_ack_fail_round_trip(faktory_url):
    with SyncClient(faktory_url) as client:
        jid = client.push(Job("SyncJob", 1, "two", queue="sq"))
        job = client.fetch("sq")
        assert job is not None and job["jid"] == jid and job["args"] == [1, "two"]
        client.ack(jid)
        jid2 = client.push({"jobtype": "SyncJob", "args": [], "queue": "sq", "retry": 3})
        assert client.fetch("other", "sq")["jid"] == jid2
        try:
            raise ValueError("boom")
        except ValueError as exc:
            client.fail(jid2, exc)
        with pytest.raises(JobNotFoundError):
            client.fail("no-such-job-here", errtype="X", message="y")
        assert sizes(client).get("sq", 0) == 0
        assert client.fetch("sq") is None or True  # empty: None after the server's wait


def test_bad_jobs_raise_before_anything_is_sent():
    client = SyncClient(f"tcp://127.0.0.1:{free_port()}", reconnect_timeout=0.1)  # nobody listens
    with pytest.raises(TypeError, match="args"):
        client.push(Job("X", {1, 2}))
    with pytest.raises(ValueError, match="queue"):
        client.push({"jobtype": "X", "args": [], "queue": "no good"})
    with pytest.raises(TypeError):
        client.push("not a job")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one queue"):
        client.fetch()
    with pytest.raises(ValueError, match="wid"):
        client.beat()
    assert client._size == 0


def test_push_bulk_gives_the_same_rejections_as_client(faktory_url):
    def jobs():
        for i in range(5000):
            if i == 3:
                yield Job.from_payload({"jid": "bulk-bad-no-jobtype", "args": [], "queue": "sb"},
                                       validate=False)
            elif i == 1500:
                yield {"jid": "bulk-bad-queue-1", "jobtype": "B", "args": [], "queue": "no good"}
            elif i == 2500:
                yield Job("B", {1, 2}, jid="bulk-bad-unencodable", queue="sb")
            else:
                yield Job("B", i, queue="sb", jid=f"bulk-job-{i:06d}")

    import asyncio

    async def with_client():
        async with Client(faktory_url) as client:
            return await client.push_bulk(jobs(), chunk_size=700)

    expected = asyncio.run(with_client())
    with SyncClient(faktory_url, pool_size=2) as client:
        rejected = client.push_bulk(jobs(), chunk_size=700)
        assert rejected == expected
        assert set(rejected) == {"bulk-bad-no-jobtype", "bulk-bad-queue-1", "bulk-bad-unencodable"}
        assert rejected["bulk-bad-no-jobtype"][0] == "jobs must have a jobtype parameter"
        assert sizes(client)["sb"] == 2 * (5000 - 3)
        assert client.push_bulk([]) == {}
        with pytest.raises(ValueError, match="chunk_size"):
            client.push_bulk([], chunk_size=0)
        with pytest.raises(ValueError, match="concurrency"):
            client.push_bulk([], concurrency=0)


def test_push_bulk_to_an_unreachable_server_raises_the_same_bulk_push_error_as_client():
    url = f"tcp://127.0.0.1:{free_port()}"
    jobs = [Job("B", n, jid=f"unreachable-{n:04d}") for n in range(2500)] + [{"jobtype": "B"}]

    import asyncio

    async def with_client():
        with pytest.raises(BulkPushError) as info:
            await Client(url, reconnect_timeout=0.2).push_bulk(jobs, chunk_size=1000)
        return info.value

    expected = asyncio.run(with_client())
    with pytest.raises(BulkPushError) as info:
        SyncClient(url, reconnect_timeout=0.2).push_bulk(jobs, chunk_size=1000)
    got = info.value
    assert got.rejected == expected.rejected and 2500 in got.rejected  # keyed by its index
    assert got.enqueued == expected.enqueued == 0
    # no connection was ever made, so nothing was written: every job is certainly not
    # enqueued, none "unknown"
    assert (got.not_enqueued, got.unknown, got.unknown_jids) == (2501, 0, [])
    assert isinstance(got.__cause__, FaktoryConnectionError)


def test_info_flush_queues_latency_send(faktory_url):
    with SyncClient(faktory_url) as client:
        client.push(Job("Q", queue="qa"))
        client.push(Job("Q", queue="qb"))
        assert client.send("INFO")  # raw reply
        latency = client.queue_latency("qa", "qb")
        assert set(latency) == {"qa", "qb"} and all(v >= 0 for v in latency.values())
        client.queue_pause("qa")
        assert client.fetch("qa") is None
        client.queue_resume("*")
        assert client.fetch("qa")["queue"] == "qa"
        client.queue_remove("qb")
        assert sizes(client).get("qb", 0) == 0
        with pytest.raises(ValueError, match="wildcard"):
            client.queue_latency("*")
        with pytest.raises(ServerError):
            client.send("NOSUCHCOMMAND")
        client.flush()
        assert client.info()["faktory"]["total_enqueued"] == 0


def test_mutations(faktory_url):
    with SyncClient(faktory_url) as client:
        later = datetime.now(timezone.utc) + timedelta(hours=1)
        keep = client.push(Job("Keep", at=later, queue="mq"))
        drop = client.push(Job("Drop", at=later, queue="mq"))
        client.scheduled.of_type("Drop").discard()
        assert client.info()["faktory"]["tasks"]["Scheduled"]["size"] == 1
        client.scheduled.with_jids(keep).requeue()
        assert client.fetch("mq")["jid"] == keep
        client.fail(keep, errtype="E", message="m")
        client.retries.matching("*Keep*").kill()
        client.dead.of_type("Keep").requeue()
        assert client.fetch("mq")["jid"] == keep
        with pytest.raises(ValueError, match="clear"):
            client.dead.of_type("X").clear()
        client.retries.clear()
        assert drop != keep


@pytest.mark.internals
def test_worker_identity_and_beat(faktory_server):
    with SyncClient(faktory_server.url, wid="sync-wid-1", labels=["a"], hostname="h1") as client:
        assert client.beat() == "OK"
        assert client.beat("quiet", rss_kb=1234) == "quiet"  # the server echoes the state it holds
        record = next(w for w in faktory_server.call(faktory_server.server.workers) if w["wid"] == "sync-wid-1")
        assert record["hostname"] == "h1" and record["labels"] == ["a"]
        faktory_server.call(faktory_server.server.terminate_worker, "sync-wid-1")
        assert client.beat() == "terminate"
        with pytest.raises(ValueError, match="current_state"):
            client.beat("sleepy")


@pytest.mark.internals
def test_password_and_unreachable_server():
    with ServerThread(port=0, password="s3cret") as st:
        url = f"tcp://:s3cret@127.0.0.1:{st.port}"
        with SyncClient(url) as client:
            assert client.info()
            assert "s3cret" not in repr(client) and "s3cret" not in client.url
        with pytest.raises(InvalidPasswordError):
            SyncClient(f"tcp://:wrong@127.0.0.1:{st.port}").connect()
    port = free_port()
    client = SyncClient(f"tcp://127.0.0.1:{port}", reconnect_timeout=0.3)
    with pytest.raises(FaktoryConnectionError, match=rf"127\.0\.0\.1:{port}") as info:
        client.info()
    assert "attempts" in str(info.value)
    assert client._size == 0


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")
@pytest.mark.internals
def test_tls_verified_and_refused(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    with ServerThread(port=0, ssl=context) as st:
        assert st.url.startswith("tcp+tls://")
        trusting = ssl.create_default_context(cafile=str(cert))
        with SyncClient(st.url, tls=trusting) as client:
            jid = client.push(Job("Secure", queue="tls"))
            assert client.fetch("tls")["jid"] == jid
            client.ack(jid)
            with client.acquire() as conn:
                assert isinstance(conn.sock, ssl.SSLSocket)
            assert client.info()  # the pooled TLS connection is reused, not taken for dead
            assert client._size == 1
        with pytest.raises(HandshakeError, match="certificate") as info:
            SyncClient(st.url, reconnect_timeout=30).connect()
        assert getattr(info.value, "permanent", False)


@pytest.mark.internals
def test_idle_connection_closed_by_the_server_is_replaced_without_resending(faktory_server):
    with SyncClient(faktory_server.url, pool_size=2) as client:
        client.push(Job("Before", queue="rq"))
        assert faktory_server.call(faktory_server.server.drop_connections) >= 1
        deadline = time.monotonic() + 5
        while client._idle and client._idle[-1].usable() and time.monotonic() < deadline:
            time.sleep(0.01)  # the drop reaches this side's socket
        client.push(Job("After", queue="rq"))
        assert sizes(client)["rq"] == 2  # nothing sent twice


def test_command_timeout_closes_the_connection(faktory_url):
    with SyncClient(faktory_url, command_timeout=0.2) as client:
        # FETCH waits command_timeout + 2 s; a raw BLOCKING command is not resent
        with client.acquire() as conn:
            with pytest.raises(CommandTimeout):
                conn.execute(b"FETCH emptyq\r\n", timeout=0.2)
            assert conn.closed
        assert client._size == 0
        assert client.info()  # a fresh connection


@pytest.mark.internals
@pytest.mark.timeout_s(60)
def test_eight_threads_at_once_with_connections_dropped_in_the_middle():
    with ServerThread(port=0, fetch_timeout=0.25) as st:
        client = SyncClient(st.url, pool_size=4)
        pushed: list[list[str]] = [[] for _ in range(8)]
        errors: list[BaseException] = []
        stop = threading.Event()
        enough = threading.Event()

        def producer(index: int) -> None:
            try:
                while not stop.is_set():
                    pushed[index].append(client.push(Job("T", index, queue="mt")))
                    if len(pushed[index]) % 25 == 0:  # the other commands share the pool too
                        assert client.info()["faktory"]["total_enqueued"] >= 1
                        assert client.queue_latency("mt")["mt"] >= 0
                    if sum(map(len, pushed)) >= 400:
                        enough.set()
                # and one bulk push each, after the drop
                pushed[index].extend(j.jid for j in [Job("T", index, n, queue="mt") for n in range(50)]
                                     if not client.push_bulk([j]))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=producer, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        assert enough.wait(20)
        dropped = st.call(st.server.drop_connections)
        assert dropped >= 1
        target = sum(map(len, pushed)) + 400
        deadline = time.monotonic() + 20
        while sum(map(len, pushed)) < target and time.monotonic() < deadline and not errors:
            time.sleep(0.01)
        stop.set()
        for thread in threads:
            thread.join(30)
        assert not errors, errors
        assert all(len(p) > 50 for p in pushed)
        assert client._size <= 4
        # every push that returned is on the server (a command written when the drop
        # happened is sent again: a duplicate is possible, a loss is not)
        jids = {jid for p in pushed for jid in p}
        assert len(jids) == sum(map(len, pushed))
        seen: set[str] = set()
        with SyncClient(st.url) as reader:
            while True:
                job = reader.fetch("mt")
                if job is None:
                    break
                seen.add(job["jid"])
                reader.ack(job["jid"])
        assert jids <= seen
        client.close()


def test_reconnect_retires_every_connection(faktory_url):
    with SyncClient(faktory_url, pool_size=2) as client:
        with client.acquire() as held:
            client.info()  # a second connection, returned idle
            assert len(client._idle) == 1
            client.reconnect()
            assert client._idle == [] and not held.closed
        assert held.closed and client._size == 0  # closed when its use ended
        assert client.info() and client._size == 1


def test_a_thread_blocked_on_the_server_does_not_hold_up_the_others(faktory_url):
    # One thread's FETCH waits on an empty queue (the server holds it 2 s); another thread
    # pushes and reads INFO meanwhile, on another pooled connection: no lock is held across I/O.
    with SyncClient(faktory_url, pool_size=2) as client:
        fetching = threading.Event()
        fetched: list[object] = []

        def fetch() -> None:
            fetching.set()
            fetched.append(client.fetch("nothing-ever-here"))

        thread = threading.Thread(target=fetch)
        thread.start()
        assert fetching.wait(5)
        try:
            for n in range(10):
                client.push(Job("Meanwhile", n, queue="meanwhile"))
            assert client.info()["faktory"]["queues"]["meanwhile"] == 10
            assert fetched == []  # done while the FETCH was still held by the server
        finally:
            thread.join(10)
        assert fetched == [None]


def test_close_refuses_and_connect_reopens(faktory_url):
    client = SyncClient(faktory_url)
    client.connect()
    client.close()
    with pytest.raises(FaktoryConnectionError, match="closed"):
        client.info()
    client.connect()
    assert client.info()
    client.close()
    assert client._size == 0


def test_constructor_checks_like_client():
    with pytest.raises(ValueError, match="tcp://"):
        SyncClient("http://x")
    with pytest.raises(ValueError, match="pool_size"):
        SyncClient("tcp://x", pool_size=0)
    with pytest.raises(TypeError, match="tls"):
        SyncClient("tcp://x", tls="yes")  # type: ignore[arg-type]
    client = SyncClient("tcp+tls://:pw@example.com:1234")
    assert (client.host, client.port, client.password, client.ssl is not None) == ("example.com", 1234, "pw", True)
    assert client.url == "tcp+tls://example.com:1234"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connections(faktory_url):
    # gunicorn --preload, multiprocessing: the child must not talk on the parent's sockets
    with SyncClient(faktory_url) as client:
        client.push(Job("Parent", queue="fork"))
        parent_conn = client._idle[-1]
        pid = os.fork()
        if pid == 0:  # the child: exits with 0 only when its push went through on a fresh socket
            code = 1
            try:
                client.push(Job("Child", queue="fork"))
                code = 0 if client._idle and client._idle[-1] is not parent_conn else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        client.push(Job("ParentAgain", queue="fork"))  # the parent's connection is untouched
        assert client._idle[-1] is parent_conn and not parent_conn.closed
        assert client.info()["faktory"]["queues"]["fork"] == 3
