"""pytest plugin (registered through the ``pytest11`` entry point): Faktory fixtures.

* ``faktory_server``: a :class:`~faktory.server.ServerThread` (in memory, on a free port),
  stopped after the test.  Skipped when ``FAKTORY_TEST_URL`` is set, since tests using it
  reach into the server (clock, operator controls).
* ``faktory_url``: ``FAKTORY_TEST_URL`` when set (the server is FLUSHed before the test),
  else the url of a fresh embedded server.

Async tests open their clients inside the test (``async with Client(faktory_url) as c``);
the fixtures themselves are synchronous because the server runs in its own thread.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
from typing import Iterator
from urllib.parse import unquote, urlsplit

import pytest

from faktory.server import ServerThread

__all__ = ["faktory_server", "faktory_url", "flush_url"]

ENV = "FAKTORY_TEST_URL"


def flush_url(url: str, timeout: float = 10.0) -> None:
    """Connect to the Faktory at ``url`` (``tcp://[:password@]host:port``, or ``tcp+tls``),
    FLUSH it and disconnect (blocking; used before each test against a real server)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 7419
    password = unquote(parts.password) if parts.password else None
    sock: socket.socket = socket.create_connection((host, port), timeout=timeout)
    try:
        if parts.scheme == "tcp+tls":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        reader = sock.makefile("rb")
        hi = reader.readline()
        if not hi.startswith(b"+HI "):
            raise RuntimeError(f"not a Faktory server at {host}:{port}: {hi!r}")
        hello: dict = {"v": 2}
        info = json.loads(hi[4:])
        if "s" in info:
            if password is None:
                raise RuntimeError(f"{ENV}: the server needs a password")
            digest = hashlib.sha256((password + info["s"]).encode()).digest()
            for _ in range(int(info.get("i", 1)) - 1):
                digest = hashlib.sha256(digest).digest()
            hello["pwdhash"] = digest.hex()
        sock.sendall(b"HELLO " + json.dumps(hello, separators=(",", ":")).encode() + b"\r\n")
        if reader.readline() != b"+OK\r\n":
            raise RuntimeError(f"handshake with {host}:{port} failed")
        sock.sendall(b"FLUSH\r\n")
        reply = reader.readline()
        if reply != b"+OK\r\n":
            raise RuntimeError(f"FLUSH failed: {reply!r}")
        sock.sendall(b"END\r\n")
    finally:
        sock.close()


@pytest.fixture
def faktory_server() -> Iterator[ServerThread]:
    """An embedded server in a thread (in memory, free port), stopped after the test."""
    if os.environ.get(ENV):
        pytest.skip(f"{ENV} is set: this test needs the embedded server's internals")
    with ServerThread() as st:
        yield st


@pytest.fixture
def faktory_url() -> Iterator[str]:
    """``FAKTORY_TEST_URL`` (FLUSHed first) or the url of a fresh embedded server."""
    url = os.environ.get(ENV)
    if url:
        flush_url(url)
        yield url
        return
    with ServerThread() as st:
        yield st.url
