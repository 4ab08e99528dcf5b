"""Fixtures of the server tests: a target server (embedded, or FAKTORY_TEST_URL) and raw sockets."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
from srv_helpers import NEEDS_INTERNALS, REAL, TEST_URL, Raw, real_target

from faktory.server import ServerThread
from faktory.testing import flush_url

try:
    import uvloop  # noqa: F401
    SERVER_LOOPS = ["asyncio", "uvloop"]
except ImportError:  # pragma: no cover
    SERVER_LOOPS = ["asyncio"]

def internals(fn: Any) -> Any:
    """Mark a test that needs the embedded server (skipped, saying why, against a real one)."""
    return pytest.mark.internals(pytest.mark.skipif(REAL, reason=NEEDS_INTERNALS)(fn))


class Target:
    """The server under test and a factory of handshaken raw connections."""

    def __init__(self, host: str, port: int, password: str | None,
                 thread: ServerThread | None = None) -> None:
        self.host = host
        self.port = port
        self.password = password
        self.thread = thread
        self._raws: list[Raw] = []

    @property
    def embedded(self) -> bool:
        return self.thread is not None

    @property
    def server(self) -> Any:
        assert self.thread is not None, "only the embedded server has internals"
        return self.thread.server

    def call(self, fn: Any, *args: Any) -> Any:
        assert self.thread is not None
        return self.thread.call(fn, *args)

    def connect(self) -> Raw:
        """A raw socket, before the handshake."""
        raw = Raw(self.host, self.port)
        self._raws.append(raw)
        return raw

    def raw(self, **hello: Any) -> Raw:
        """A raw socket after a successful HELLO (``hello`` adds fields: wid, labels...)."""
        raw = self.connect()
        reply = raw.hello(self.password, **hello)
        assert reply == b"+OK\r\n", reply
        return raw

    def close(self) -> None:
        for raw in self._raws:
            raw.close()


def _target(request: pytest.FixtureRequest, **kwargs: Any) -> Iterator[Target]:
    if request.param == "real":
        host, port, password = real_target()
        flush_url(TEST_URL)
        target = Target(host, port, password)
        try:
            yield target
        finally:
            target.close()
        return
    kwargs.setdefault("fetch_timeout", 0.25)
    kwargs.setdefault("handshake_timeout", 0.5)
    with ServerThread(loop=request.param, **kwargs) as st:
        target = Target("127.0.0.1", st.port, kwargs.get("password"), st)
        try:
            yield target
        finally:
            target.close()


PARAMS = ["real"] if REAL else SERVER_LOOPS


@pytest.fixture(params=PARAMS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The server under test; embedded ones block FETCH 0.25 s (the block length is
    tested separately with the default 2 s)."""
    yield from _target(request)


@pytest.fixture(params=PARAMS)
def slow_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The server under test with the real timings (2 s FETCH block, 2 s handshake)."""
    yield from _target(request, fetch_timeout=2.0, handshake_timeout=2.0)


@pytest.fixture(params=PARAMS)
def pw_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A server that requires a password ("secret" when embedded)."""
    if request.param == "real":
        if not real_target()[2]:
            pytest.skip("FAKTORY_TEST_URL has no password: password tests need one")
        yield from _target(request)
    else:
        yield from _target(request, password="secret")


@pytest.fixture
def raw(target: Target) -> Raw:
    """A producer connection (HELLO without wid) to the target."""
    return target.raw()
