"""A :class:`FaktoryServer` running on its own event loop in a daemon thread."""
from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
from typing import Any, Callable

from faktory.server.server import FaktoryServer

__all__ = ["ServerThread"]


class ServerThread:
    """Run a server in a background thread (tests, scripts, sync code).

    ``ServerThread(**server_kwargs)`` takes the :class:`FaktoryServer` arguments
    (``port`` defaults to 0: a free port) plus ``loop="asyncio"|"uvloop"``.  As a context
    manager it is listening when ``__enter__`` returns and stopped, with its thread
    joined, when ``__exit__`` returns.
    """

    def __init__(self, *, loop: str = "asyncio", **server_kwargs: Any) -> None:
        server_kwargs.setdefault("port", 0)
        self._kwargs = server_kwargs
        self._loop_kind = loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._stopped: asyncio.Event | None = None
        self.server: FaktoryServer = None  # type: ignore[assignment]

    @property
    def url(self) -> str:
        """The server's ``tcp://`` url."""
        return self.server.url

    @property
    def port(self) -> int:
        """The port it listens on."""
        return self.server.port

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The server's event loop (owned by the thread)."""
        assert self._loop is not None
        return self._loop

    def start(self) -> "ServerThread":
        """Start the thread; return once the server listens (or raise why it could not)."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._main, name="faktory-server", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise self._start_error
        return self

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop_kind == "uvloop":
            import uvloop
            return uvloop.new_event_loop()
        return asyncio.new_event_loop()

    def _main(self) -> None:
        loop = self._loop = self._new_loop()
        try:
            self.server = FaktoryServer(**self._kwargs)
            self._stopped = asyncio.Event()
            loop.run_until_complete(self.server.start())
        except BaseException as exc:  # reported to start()
            self._start_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_until_complete(self._stopped.wait())
            loop.run_until_complete(self.server.stop())
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def stop(self) -> None:
        """Stop the server and join the thread (idempotent)."""
        thread = self._thread
        if thread is None:
            return
        loop = self._loop
        if loop is not None and not loop.is_closed() and self._stopped is not None:
            try:
                loop.call_soon_threadsafe(self._stopped.set)
            except RuntimeError:  # loop already closed
                pass
        thread.join(30)
        self._thread = None

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float | None = 30) -> Any:
        """Run ``fn(*args)`` in the server's loop thread and return its result
        (coroutine functions are awaited there)."""
        loop = self.loop
        if inspect.iscoroutinefunction(fn):
            return asyncio.run_coroutine_threadsafe(fn(*args), loop).result(timeout)
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        loop.call_soon_threadsafe(run)
        return fut.result(timeout)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
