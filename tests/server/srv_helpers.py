"""Helpers for the server tests: a raw RESP socket, targets (embedded or real Faktory)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from urllib.parse import unquote, urlsplit

TEST_URL = os.environ.get("FAKTORY_TEST_URL") or ""
REAL = bool(TEST_URL)
NEEDS_INTERNALS = ("needs the embedded server's internals (clock, operator controls or "
                   "config); skipped because FAKTORY_TEST_URL points to a real server")


def real_target() -> tuple[str, int, str | None]:
    """(host, port, password) of FAKTORY_TEST_URL."""
    parts = urlsplit(TEST_URL)
    return parts.hostname or "127.0.0.1", parts.port or 7419, unquote(parts.password) if parts.password else None


def pwdhash(password: str, salt: str, iterations: int) -> str:
    digest = hashlib.sha256((password + salt).encode()).digest()
    for _ in range(iterations - 1):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


class Raw:
    """A blocking socket speaking raw bytes; replies returned exactly as received."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Raw":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"closed with {self.buf!r} buffered")
        i = self.buf.index(b"\r\n") + 2
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def reply(self) -> bytes:
        """One complete RESP reply, raw bytes."""
        first = self.line()
        if first[:1] == b"$" and first != b"$-1\r\n":
            n = int(first[1:-2])
            while len(self.buf) < n + 2:
                if not self._fill():
                    raise EOFError("closed inside a bulk string")
            body, self.buf = self.buf[:n + 2], self.buf[n + 2:]
            return first + body
        return first

    def cmd(self, data: bytes) -> bytes:
        self.send(data)
        return self.reply()

    def body(self, data: bytes) -> bytes:
        """Send, expect a bulk reply, return its payload."""
        reply = self.cmd(data)
        assert reply.startswith(b"$") and reply != b"$-1\r\n", reply
        return reply.split(b"\r\n", 1)[1][:-2]

    def hello(self, password: str | None = None, **fields) -> bytes:
        """Do the handshake; returns the reply to HELLO."""
        hi = self.line()
        assert hi.startswith(b'+HI {"v":2'), hi
        payload = {"v": 2}
        payload.update(fields)
        if password is not None and "pwdhash" not in fields:
            info = json.loads(hi[4:-2])
            if "s" in info:
                iters = info["i"] if payload.get("v", 0) >= 2 else 1
                payload["pwdhash"] = pwdhash(password, info["s"], iters)
        return self.cmd(b"HELLO " + json.dumps(payload, separators=(",", ":")).encode() + b"\r\n")

    def wait_closed(self, timeout: float = 5.0) -> bytes:
        """Read until the server closes; returns what arrived meanwhile."""
        self.sock.settimeout(timeout)
        got = self.buf
        self.buf = b""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return got
            if not chunk:
                return got
            got += chunk


_TS = re.compile(rb'"(created_at|enqueued_at|failed_at|next_at|now)":"[0-9T:.Z-]+"')


def normalize(reply: bytes) -> bytes:
    """Blank timestamps (and fix up bulk lengths) so replies compare across runs."""
    if not reply.startswith(b"$") or reply == b"$-1\r\n":
        return reply
    body = reply.split(b"\r\n", 1)[1][:-2]
    body = _TS.sub(rb'"\1":"T"', body)
    return b"$%d\r\n%s\r\n" % (len(body), body)


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.005):
    """Poll a condition that another thread or process makes true (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
