"""Transport faults: a connection dropped in the middle of a command, a server that is
down and comes back, one that stays down, and the retry policy (what is resent, what
is not).  Server behaviour comes from the embedded server; raw peers only for bytes a
real server never sends."""
from __future__ import annotations

import asyncio

import pytest

from _fakes import FakePeer, answers, closes_mid_reply, handshake, rejects_password
from faktory import Client, Job
from faktory.errors import (
    FaktoryConnectionError,
    HandshakeError,
    InvalidPasswordError,
    ProtocolError,
)
from faktory.server import ServerThread, free_port


@pytest.mark.internals
async def test_connection_dropped_while_fetch_is_blocked(faktory_server):
    async with Client(faktory_server.url, pool_size=1) as client:
        fetch = asyncio.ensure_future(client.fetch("dropq"))
        await asyncio.sleep(0)  # the FETCH is written and its reply awaited
        assert len(client._leased) == 1  # the FETCH holds the only connection
        dropped = faktory_server.call(faktory_server.server.drop_connections)
        assert dropped >= 1
        async with Client(faktory_server.url) as producer:
            jid = await producer.push(Job("Dropped", queue="dropq"))
        job = await fetch  # resent on a fresh connection: the job arrives, nothing raised
        assert job is not None and job["jid"] == jid
        assert client._size == 1
        await client.ack(jid)


@pytest.mark.internals
async def test_idle_connections_dropped_are_replaced(faktory_server):
    async with Client(faktory_server.url, pool_size=3) as client:
        await asyncio.gather(*(client.info() for _ in range(3)))
        faktory_server.call(faktory_server.server.drop_connections)
        results = await asyncio.gather(*(client.push(Job("After", queue="repl")) for _ in range(5)))
        assert len(results) == 5
        assert (await client.info())["faktory"]["queues"]["repl"] == 5


@pytest.mark.internals
@pytest.mark.timeout_s(60)
async def test_server_down_then_back_same_client_carries_on():
    with ServerThread(port=0) as first:
        port = first.port
        client = Client(first.url, reconnect_timeout=20)
        await client.connect()
        await client.push(Job("Before", queue="rb"))
    # The server is gone; a push issued now waits (with backoff) for it to come back.
    pending_push = asyncio.ensure_future(client.push(Job("During", queue="rb")))
    await asyncio.sleep(0)
    assert not pending_push.done()
    with ServerThread(port=port) as second:
        jid = await pending_push
        fetched = await client.fetch("rb")  # a fresh in-memory server: only the new job
        assert fetched["jid"] == jid and fetched["jobtype"] == "During"
        assert second.port == port
    await client.close()


async def test_server_down_for_good_gives_up_naming_the_address():
    port = free_port()
    client = Client(f"tcp://127.0.0.1:{port}", reconnect_timeout=0.3)
    with pytest.raises(FaktoryConnectionError, match=rf"127\.0\.0\.1:{port}") as info:
        await client.info()
    assert "attempts" in str(info.value)
    assert client._size == 0
    await client.close()


# -- raw peers: the retry policy ---------------------------------------------------------------

async def test_idempotent_command_is_resent_once_after_a_drop():
    async with FakePeer(closes_mid_reply) as peer:
        client = Client(peer.url, reconnect_timeout=0)
        with pytest.raises(FaktoryConnectionError, match="closed the connection"):
            await client.fetch("q")
        assert peer.connections == 2  # first try, one resend
        assert [lines[1] for lines in peer.received] == [b"FETCH q\r\n", b"FETCH q\r\n"]
        await client.close()


async def test_raw_send_is_not_resent_after_a_drop():
    async with FakePeer(closes_mid_reply) as peer:
        client = Client(peer.url, reconnect_timeout=0)
        with pytest.raises(FaktoryConnectionError):
            await client.send("FETCH", "q")
        assert peer.connections == 1
        await client.close()


async def test_bad_bytes_are_not_retried():
    async with FakePeer(answers(b"?what\r\n")) as peer:
        client = Client(peer.url)
        with pytest.raises(ProtocolError):
            await client.info()
        assert peer.connections == 1
        assert client._size == 0
        await client.close()


async def test_invalid_password_is_not_retried():
    async with FakePeer(rejects_password) as peer:
        client = Client(peer.url, password="nope", reconnect_timeout=30)
        with pytest.raises(InvalidPasswordError):
            await client.connect()
        assert peer.connections == 1


async def test_other_protocol_version_is_not_retried():
    async def script(reader, writer):
        writer.write(b'+HI {"v":3}\r\n')
        await reader.read()

    async with FakePeer(script) as peer:
        client = Client(peer.url, reconnect_timeout=30)
        with pytest.raises(HandshakeError, match="v3"):
            await client.connect()
        assert peer.connections == 1


async def test_handshake_drops_are_retried_with_backoff():
    attempts = []

    async def script(reader, writer):
        attempts.append(1)
        if len(attempts) < 3:
            writer.close()  # dies before HI, twice
            return
        await handshake(reader, writer)
        while await reader.readline():
            writer.write(b"+OK\r\n")

    async with FakePeer(script) as peer:
        async with Client(peer.url, reconnect_timeout=10) as client:
            assert await client.send("FLUSH") == "OK"
        assert peer.connections == 3


async def test_push_bulk_raises_when_a_chunk_fails_for_good_and_leaves_no_task_behind():
    async with FakePeer(closes_mid_reply) as peer:
        client = Client(peer.url, pool_size=4, reconnect_timeout=0)
        jobs = (Job("Bulk", i, queue="b") for i in range(5000))
        with pytest.raises(FaktoryConnectionError):
            await client.push_bulk(jobs, chunk_size=1000, concurrency=2)
        assert all(lines[1].startswith(b"PUSHB [") for lines in peer.received if len(lines) > 1)
        assert client._size == 0
        await client.close()
