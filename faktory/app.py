"""The module-level singletons: ``faktory.register``, ``use``, ``connect``, ``work``, ``stop``.

Built the way the standard library's ``random`` module is: a :class:`Faktory` instance
holds the job registry, the middleware and the running worker, and its bound methods are
exported at module level.  ``create()`` gives a fresh, independent instance (tests)::

    import faktory

    @faktory.register
    async def hello(name):
        ...

    faktory.use(my_middleware)
    await faktory.work(queues=["critical", "default"])   # runs until stopped

    async with faktory.connect() as client:               # or: client = await faktory.connect()
        await client.job("hello", "world").push()

    @faktory.task(queue="mail")                            # a Task: pushes itself, checked
    def send_email(address: str, template: str = "plain") -> None:
        ...

    send_email.push_sync("ada@example.com", template="welcome")
"""
from __future__ import annotations

import asyncio
import threading
import weakref
from typing import TYPE_CHECKING, Any, AsyncGenerator, Awaitable, Callable, Generator, Mapping, TypeVar, overload

from faktory.middleware import Middleware
from faktory.registry import register_into
from faktory.tasks import P, R, Task
from faktory.worker import Worker

if TYPE_CHECKING:  # pragma: no cover
    from datetime import datetime

    from faktory.client import Client
    from faktory.sync import SyncClient

__all__ = ["Faktory", "create", "default", "register", "task", "use", "connect", "configure",
           "work", "stop"]

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=Middleware)


class _Connecting:
    """What ``connect()`` returns: awaitable (a connected Client) and an async context
    manager (connected on entry, closed on exit)."""

    __slots__ = ("client",)

    def __init__(self, client: Client) -> None:
        self.client = client

    def __await__(self) -> Generator[Any, None, Client]:
        return self.client.connect().__await__()

    async def __aenter__(self) -> Client:
        await self.client.connect()
        return self.client

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.close()


async def _closing(client: Client) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.close(timeout=1.0)


def _close_at_loop_shutdown(loop: asyncio.AbstractEventLoop, client: Client) -> None:
    # An event loop has no close hook, but asyncio.run() (and uvloop's) ends with
    # loop.shutdown_asyncgens(), which closes every async generator started on the loop:
    # one started here, held at its yield, closes the loop's client there, so that a
    # script calling asyncio.run() twice does not leave the first loop's sockets open.
    closer = _closing(client)
    try:
        closer.__anext__().send(None)  # runs to the yield: registered with the running loop
    except StopIteration:
        pass
    _closers[loop] = closer  # alive as long as the loop (collected, it would close at once)


_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
    weakref.WeakKeyDictionary())


class _Done:
    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return None
        yield  # pragma: no cover - makes this a generator


class Faktory:
    """A registry of job functions, a middleware stack and (while working) a worker."""

    def __init__(self) -> None:
        self.registry: dict[str, Callable[..., Any]] = {}
        self.middleware: list[Middleware] = []
        #: The worker created by the last ``work()`` / ``create_worker()`` (None before).
        self.worker: Worker | None = None
        #: The tasks made by ``task()``, by jobtype.
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._url: str | None = None
        self._client_options: dict[str, Any] = {}
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Client] = weakref.WeakKeyDictionary()
        self._sync_client: SyncClient | None = None
        self._lock = threading.Lock()

    @overload
    def register(self, name: F, fn: None = None) -> F: ...
    @overload
    def register(self, name: str | None = None, fn: None = None) -> Callable[[F], F]: ...
    @overload
    def register(self, name: str, fn: F) -> F: ...

    def register(self, name: str | Callable[..., Any] | None = None,
                 fn: Callable[..., Any] | None = None) -> Any:
        """Register ``fn`` for jobtype ``name`` and return ``fn``.

        Also a decorator: ``@register`` (jobtype = the function's ``__name__``) or
        ``@register("jobtype")``.  Type checkers see the function's own type.
        """
        return register_into(self.registry, name, fn)

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(self, name: str | None = None, /, *, queue: str = "default", retry: int = 25,
             reserve_for: int | None = None, custom: Mapping[str, Any] | None = None,
             backtrace: int | None = None,
             at: datetime | str | None = None) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(self, fn: Callable[..., Any] | str | None = None, /, **options: Any) -> Any:
        """Register a job function and return it as a :class:`~faktory.tasks.Task`.

        ``@task`` (jobtype = the function's ``__name__``), ``@task("jobtype")``, or with
        job options every push uses unless ``.options()`` overrides them:
        ``@task(queue="mail", retry=5, reserve_for=600, custom={...}, backtrace=10)``.
        The options are checked here (a bad queue name raises at import time).
        """
        if callable(fn):
            return self._make_task(fn, None, options)
        if fn is not None and not isinstance(fn, str):
            raise TypeError(f"@task takes a function or a jobtype name (str), not {fn!r}")
        name = fn
        Task(lambda: None, name or "check", **options)  # check the options before decorating

        def decorator(func: Callable[P, R]) -> Task[P, R]:
            return self._make_task(func, name, options)
        return decorator

    def _make_task(self, fn: Callable[P, R], name: str | None, options: dict[str, Any]) -> Task[P, R]:
        made = Task(fn, name, app=self, **options)
        register_into(self.registry, made.name, fn)
        self.tasks[made.name] = made
        return made

    def use(self, middleware: M) -> M:
        """Append a middleware ``async def mw(ctx, next)``; returns it (a decorator too)."""
        if not callable(middleware):
            raise TypeError(f"middleware must be an async callable mw(ctx, next), not {middleware!r}")
        self.middleware.append(middleware)
        return middleware

    def connect(self, url: str | None = None, **options: Any) -> _Connecting:
        """A :class:`faktory.client.Client` for ``url`` (or ``FAKTORY_URL``...).

        ``client = await faktory.connect()`` connects it; ``async with faktory.connect() as
        client:`` also closes it.  ``options`` go to ``Client``.
        """
        from faktory.client import Client

        return _Connecting(Client(url, **options))

    # -- the clients tasks push through ----------------------------------------------------
    def configure(self, url: str | None = None, **options: Any) -> None:
        """Set the server tasks push to (``url``, else ``FAKTORY_URL``...) and options for
        their clients (``password``, ``tls``, ``pool_size``...: as for ``Client``).

        Clients made before are let go (the blocking one is closed)."""
        with self._lock:
            self._url = url
            self._client_options = dict(options)
            self._clients = weakref.WeakKeyDictionary()
            old, self._sync_client = self._sync_client, None
        if old is not None:
            old.close()

    def client(self) -> Client:
        """The :class:`~faktory.client.Client` that ``Task.push`` uses in the running event
        loop (one per loop, made on first use, never connected before a push)."""
        from faktory.client import Client

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = Client(self._url, **self._client_options)
            _close_at_loop_shutdown(loop, client)
        return client

    def sync_client(self) -> SyncClient:
        """The :class:`~faktory.sync.SyncClient` that ``Task.push_sync`` uses (one, shared by
        every thread, made on first use)."""
        client = self._sync_client
        if client is None:
            from faktory.sync import SyncClient

            with self._lock:
                client = self._sync_client
                if client is None:
                    client = self._sync_client = SyncClient(self._url, **self._client_options)
        return client

    def create_worker(self, **options: Any) -> Worker:
        """A :class:`Worker` over this instance's registry and middleware (not started)."""
        options.setdefault("registry", self.registry)
        options.setdefault("middleware", self.middleware)
        self.worker = Worker(**options)
        return self.worker

    async def work(self, **options: Any) -> Worker:
        """Create a worker (``options`` as for :class:`Worker`) and run it until stopped.

        Returns the worker once it has stopped (its counters say how it went).
        """
        handle_signals = options.pop("handle_signals", True)
        worker = self.create_worker(**options)
        await worker.work(handle_signals=handle_signals)
        return worker

    def stop(self) -> Awaitable[None]:
        """Stop the running worker gracefully (no effect when none runs). Thread-safe.

        Awaitable: ``await faktory.stop()`` waits until the worker has stopped.
        """
        if self.worker is not None:
            return self.worker.stop()
        return _Done()

    def __repr__(self) -> str:
        return (f"<Faktory jobtypes={sorted(self.registry)!r} middleware={len(self.middleware)} "
                f"worker={self.worker!r}>")


def create() -> Faktory:
    """A fresh :class:`Faktory` (registry, middleware, worker), independent of the default."""
    return Faktory()


#: The instance behind the module-level functions (and ``faktory worker``).
default = _default = Faktory()

register = _default.register
task = _default.task
configure = _default.configure
use = _default.use
connect = _default.connect
work = _default.work
stop = _default.stop
create_worker = _default.create_worker
