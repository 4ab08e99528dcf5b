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
"""
from __future__ import annotations

from typing import Any, Callable, Generator

from faktory.middleware import Middleware
from faktory.registry import register_into
from faktory.worker import Worker

__all__ = ["Faktory", "create", "default", "register", "use", "connect", "work", "stop"]


class _Connecting:
    """What ``connect()`` returns: awaitable (a connected Client) and an async context
    manager (connected on entry, closed on exit)."""

    __slots__ = ("client",)

    def __init__(self, client: Any) -> None:
        self.client = client

    def __await__(self) -> Generator[Any, None, Any]:
        return self.client.connect().__await__()

    async def __aenter__(self) -> Any:
        await self.client.connect()
        return self.client

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.client.close()


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

    def register(self, name: str | Callable[..., Any] | None = None,
                 fn: Callable[..., Any] | None = None) -> Any:
        """Register ``fn`` for jobtype ``name`` and return ``fn``.

        Also a decorator: ``@register`` (jobtype = the function's ``__name__``) or
        ``@register("jobtype")``.
        """
        return register_into(self.registry, name, fn)

    def use(self, middleware: Middleware) -> Middleware:
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

    def stop(self) -> Any:
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
use = _default.use
connect = _default.connect
work = _default.work
stop = _default.stop
create_worker = _default.create_worker
