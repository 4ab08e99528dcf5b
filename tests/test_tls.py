"""TLS: a throw-away self-signed certificate made here, the embedded server listening
with it, and clients that verify (or refuse) it."""
from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess

import pytest

from faktory import Client, Job
from faktory.errors import CommandTimeout, FaktoryConnectionError, HandshakeError

try:
    from faktory.server import ServerThread
except ImportError:  # pragma: no cover - the server is being written in parallel
    ServerThread = None  # type: ignore[assignment,misc]

pytestmark = [
    pytest.mark.skipif(ServerThread is None, reason="faktory.server is not available"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed"),
]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """(cert.pem, key.pem) for CN=localhost, valid for 127.0.0.1 and localhost."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return str(cert), str(key)


@pytest.fixture
def tls_server(certificate):
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with ServerThread(port=0, ssl=context) as server:
        yield server


def trusting(certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certificate[0])


async def test_tls_round_trip_with_verification(tls_server, certificate):
    assert tls_server.url.startswith("tcp+tls://")
    async with Client(tls_server.url, tls=trusting(certificate)) as client:
        jid = await client.push(Job("Secure", queue="tls"))
        assert (await client.fetch("tls"))["jid"] == jid
        await client.ack(jid)
        async with client.acquire() as conn:
            assert conn._transport.get_extra_info("ssl_object") is not None


async def test_tls_hostname_is_checked(tls_server, certificate):
    url = f"tcp+tls://localhost:{tls_server.port}"
    async with Client(url, tls=trusting(certificate)) as client:
        assert await client.info()


async def test_untrusted_certificate_is_refused_at_once(tls_server):
    client = Client(tls_server.url, reconnect_timeout=30)  # default context: system CAs only
    with pytest.raises(HandshakeError, match="certificate") as info:
        await client.connect()
    assert getattr(info.value, "permanent", False)  # not retried for 30 s
    assert client._size == 0


async def test_tls_true_turns_tls_on_for_a_tcp_url(tls_server, certificate):
    plain_url = f"tcp://127.0.0.1:{tls_server.port}"
    with pytest.raises(HandshakeError):
        await Client(plain_url, tls=True).connect()  # TLS attempted, untrusted cert
    with pytest.raises((CommandTimeout, FaktoryConnectionError)):
        await Client(plain_url, connect_timeout=0.3, reconnect_timeout=0).connect()  # no TLS: no HI


async def test_a_plain_client_against_a_tls_server_fails_at_once_naming_tls(tls_server):
    plain = tls_server.url.replace("tcp+tls://", "tcp://")
    client = Client(plain, connect_timeout=0.5, first_connect_timeout=30, reconnect_timeout=30)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(HandshakeError, match=r"sent nothing within 0\.5s instead of greeting with HI: "
                                             r"a TLS server\? Then use tcp\+tls://"):
        await client.info()
    assert loop.time() - started < 3  # one attempt, not 30 s of retrying
    assert client._connect_attempts == 1
    await client.close()
