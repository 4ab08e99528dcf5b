"""Connection: handshake, FIFO of futures, timeouts, END, and the failures only a raw
peer can produce (garbage bytes, a close mid-reply, protocol v3).  What the server
decides is tested against the embedded server over TCP."""
from __future__ import annotations

import asyncio
import hashlib
import json
import socket

import pytest

from _fakes import HI, FakePeer, answers, closes_mid_reply, handshake, rejects_password
from faktory import protocol
from faktory.connection import Connection, hash_password
from faktory.errors import ConnectionProtocolError, NotSentError
from faktory.errors import (
    CommandTimeout,
    FaktoryConnectionError,
    HandshakeError,
    InvalidPasswordError,
    ProtocolError,
    ServerError,
)

CODECS = sorted(protocol.CODECS)


# -- password hashing --------------------------------------------------------------------

def test_hash_password_is_iterated_sha256_over_password_and_salt():
    password, salt = "s3cret", "239d1f44a8341c"
    once = hashlib.sha256((password + salt).encode()).digest()
    assert hash_password(password, salt, 1) == once.hex()
    assert hash_password(password, salt, 2) == hashlib.sha256(once).hexdigest()
    digest = once
    for _ in range(4507):
        digest = hashlib.sha256(digest).digest()
    assert hash_password(password, salt, 4508) == digest.hex()


def test_hash_password_encodes_utf8():
    assert hash_password("pä", "01", 1) == hashlib.sha256("pä01".encode("utf-8")).hexdigest()


# -- handshake (bytes the client sends) ----------------------------------------------------

async def test_hello_fields_and_pwdhash():
    async def script(reader, writer):
        await handshake(reader, writer, b'+HI {"v":2,"i":4508,"s":"239d1f44a8341c"}\r\n')
        await reader.readline()

    async with FakePeer(script) as peer:
        conn = await Connection.open("127.0.0.1", peer.port, password="pw",
                                     hello={"wid": "w1", "pid": 42, "labels": ["a"], "hostname": "h"})
        conn.close()
    hello = peer.received[0][0]
    assert hello.startswith(b"HELLO {") and hello.endswith(b"}\r\n") and b" " not in hello[6:]
    body = json.loads(hello[6:])
    assert body == {"v": 2, "hostname": "h", "wid": "w1", "pid": 42, "labels": ["a"],
                    "pwdhash": hash_password("pw", "239d1f44a8341c", 4508)}


async def test_producer_hello_has_hostname_and_no_password_without_salt():
    async with FakePeer(answers()) as peer:
        conn = await Connection.open("127.0.0.1", peer.port, password="ignored")
        conn.close()
    body = json.loads(peer.received[0][0][6:])
    assert body == {"v": 2, "hostname": socket.gethostname()}


async def test_close_sends_end_without_waiting():
    async def script(reader, writer):
        await handshake(reader, writer)
        await reader.readline()  # END
        assert await reader.read() == b""  # then EOF: the client closed
        peer.closed.set()

    async with FakePeer(script) as peer:
        conn = await Connection.open("127.0.0.1", peer.port)
        conn.close()
        assert conn.closed
        await peer.closed.wait()
    assert peer.received[0][1:] == [b"END\r\n"]


async def test_protocol_v3_is_a_handshake_error():
    async def script(reader, writer):
        writer.write(b'+HI {"v":3}\r\n')
        await reader.readline()

    async with FakePeer(script) as peer:
        with pytest.raises(HandshakeError, match="v3") as info:
            await Connection.open("127.0.0.1", peer.port)
    assert getattr(info.value, "permanent", False)
    assert peer.received[0] == []  # no HELLO sent to a server we do not understand


async def test_not_hi_is_a_handshake_error():
    async def script(reader, writer):
        writer.write(b"+HELLO there\r\n")
        await reader.readline()

    async with FakePeer(script) as peer:
        with pytest.raises(HandshakeError, match="expected HI"):
            await Connection.open("127.0.0.1", peer.port)


async def test_close_before_hi_is_a_handshake_error():
    async def script(reader, writer):
        writer.close()

    async with FakePeer(script) as peer:
        with pytest.raises(HandshakeError, match="closed the connection without a word instead of greeting "
                                                 "with HI: a TLS server") as info:
            await Connection.open("127.0.0.1", peer.port)
        assert info.value.no_greeting is False  # may be a restart: retried


async def test_hi_split_across_segments():
    async def script(reader, writer):
        for byte in HI:
            writer.write(bytes([byte]))
            await writer.drain()
        await reader.readline()
        writer.write(b"+OK\r\n")
        await reader.readline()

    async with FakePeer(script) as peer:
        conn = await Connection.open("127.0.0.1", peer.port)
        assert conn.server_info == {"v": 2}
        conn.close()


async def test_silent_server_times_out_the_handshake():
    async def script(reader, writer):
        await reader.readline()  # never says HI

    async with FakePeer(script) as peer:
        # TCP is up and not one byte came: most likely a TLS server waiting for a hello.
        with pytest.raises(HandshakeError, match=r"sent nothing within 0\.2s instead of greeting with HI: "
                                                 r"a TLS server\? Then use tcp\+tls://") as info:
            await Connection.open("127.0.0.1", peer.port, connect_timeout=0.2)
        assert info.value.no_greeting is True  # the pool fails fast on it at first connect


async def test_refused_connection_is_a_connection_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(FaktoryConnectionError, match=f"127.0.0.1:{port}") as info:
        await Connection.open("127.0.0.1", port)
    assert isinstance(info.value, ConnectionError)


async def test_invalid_password_reply_raises_invalid_password_error():
    async with FakePeer(rejects_password) as peer:
        with pytest.raises(InvalidPasswordError):
            await Connection.open("127.0.0.1", peer.port, password="x")


# -- replies the server cannot be made to send -----------------------------------------------

@pytest.mark.parametrize("codec_name", CODECS)
async def test_garbage_bytes_fail_every_pending_command_with_one_protocol_error(codec_name):
    async def script(reader, writer):
        await handshake(reader, writer)
        await reader.readline()
        await reader.readline()
        writer.write(b"+OK\r\n!garbage\r\n")
        await reader.read()

    async with FakePeer(script) as peer:
        with protocol.selected(codec_name):
            conn = await Connection.open("127.0.0.1", peer.port)
        assert conn.codec is protocol.CODECS[codec_name]
        first = asyncio.ensure_future(conn.execute(b"INFO\r\n"))
        second = asyncio.ensure_future(conn.execute(b"INFO\r\n"))
        third = asyncio.ensure_future(conn.execute(b"INFO\r\n"))
        assert await first == "OK"
        with pytest.raises(ProtocolError) as info:
            await second
        with pytest.raises(FaktoryConnectionError) as info3:
            await third
        assert info3.value is info.value
        assert isinstance(info.value, ConnectionProtocolError)
        assert isinstance(info.value.__cause__, ProtocolError)
        assert conn.closed
        with pytest.raises(NotSentError):
            await conn.execute(b"INFO\r\n")


async def test_close_in_the_middle_of_a_reply():
    async with FakePeer(closes_mid_reply) as peer:
        conn = await Connection.open("127.0.0.1", peer.port)
        with pytest.raises(FaktoryConnectionError, match="closed the connection"):
            await conn.execute(b"FETCH default\r\n")
        assert conn.closed


async def test_unsolicited_error_closes_the_connection():
    async def script(reader, writer):
        await handshake(reader, writer)
        writer.write(b"-ERR too many connections: 2001\r\n")
        writer.close()

    async with FakePeer(script) as peer:
        conn = await Connection.open("127.0.0.1", peer.port)
        with pytest.raises(FaktoryConnectionError):
            await conn.execute(b"INFO\r\n")
        assert conn.closed


async def test_server_error_reply_is_raised_and_connection_stays_usable():
    async with FakePeer(answers(b"-NOTUNIQUE Job not unique\r\n", b"+OK\r\n")) as peer:
        conn = await Connection.open("127.0.0.1", peer.port)
        with pytest.raises(ServerError) as info:
            await conn.execute(b"PUSH {}\r\n")
        assert info.value.code == "NOTUNIQUE"
        assert await conn.execute(b"INFO\r\n") == "OK"
        conn.close()


async def test_command_timeout_closes_the_connection_and_fails_the_others_as_resendable():
    async with FakePeer(answers()) as peer:  # never answers a command
        conn = await Connection.open("127.0.0.1", peer.port, command_timeout=30)
        other = asyncio.ensure_future(conn.execute(b"INFO\r\n"))
        with pytest.raises(CommandTimeout) as info:
            await conn.execute(b"INFO\r\n", timeout=0.1)
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, FaktoryConnectionError)
        # The command whose own deadline had not passed fails with a plain connection
        # error (the client may send it again elsewhere), caused by the timeout.
        with pytest.raises(FaktoryConnectionError) as other_info:
            await other
        assert not isinstance(other_info.value, CommandTimeout)
        assert isinstance(other_info.value.__cause__, CommandTimeout)
        assert conn.closed


async def test_pause_writing_holds_commands_until_resumed():
    async def script(reader, writer):
        await handshake(reader, writer)
        while await reader.readline():
            writer.write(b"+OK\r\n")

    async with FakePeer(script) as peer:
        conn = await Connection.open("127.0.0.1", peer.port)
        conn.pause_writing()
        task = asyncio.ensure_future(conn.execute(b"INFO\r\n"))
        await asyncio.sleep(0)
        assert conn.pending == 0 and not task.done()  # not written while paused
        conn.resume_writing()
        assert await task == "OK"
        conn.close()


async def test_tcp_nodelay_is_set():
    async with FakePeer(answers()) as peer:
        conn = await Connection.open("127.0.0.1", peer.port)
        sock = conn._transport.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        conn.close()


async def test_a_command_behind_a_short_timeout_in_one_batch_keeps_its_own_deadline(faktory_url):
    # Commands of one batch share the deadline of its first default-timeout command; one
    # with a timeout of its own must not lend it to those behind it.  The FETCH of an empty
    # queue is held ~2 s by the server and must come back empty, not time out at 0.2 s.
    host, port = faktory_url.rsplit("/", 1)[1].rsplit(":", 1)
    conn = await Connection.open(host, int(port), command_timeout=10.0)
    try:
        info = conn.send(protocol.codec.pack_command("INFO"), timeout=0.2)
        held = conn.send(protocol.codec.pack_fetch(["never-filled-queue"]))
        assert (await asyncio.wait_for(info, 5))
        assert await asyncio.wait_for(held, 8) is None
        assert not conn.closed
    finally:
        conn.close()
