"""Koa-style worker middleware and the per-job context it sees.

A middleware is an async callable ``mw(ctx, next)``: it may act before and after the job
by awaiting ``next()`` (which runs the rest of the chain and finally the job function),
short-circuit by not calling it, or raise to fail the job::

    async def timing(ctx, next):
        started = time.perf_counter()
        try:
            await next()
        finally:
            log.info("%s took %.3f s", ctx.jid, time.perf_counter() - started)

The chain is composed once (``compose``) when the worker starts; with no middleware the
job handler is used as it is, so the hot path pays nothing for the feature.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable, Sequence

__all__ = ["JobContext", "Middleware", "Handler", "compose", "check_middleware"]

#: ``async def mw(ctx, next) -> Any``
Middleware = Callable[["JobContext", Callable[[], Awaitable[Any]]], Awaitable[Any]]
#: ``async def handler(ctx) -> Any``: the innermost step (runs the job function).
Handler = Callable[["JobContext"], Awaitable[Any]]


class JobContext:
    """What middleware and context providers know about the job being run.

    ``job`` is the job payload exactly as fetched (a dict: ``jid``, ``jobtype``, ``args``,
    ``queue``, ``custom``, ...); ``jid``, ``jobtype``, ``args`` and ``queue`` are shortcuts
    into it. ``fn`` is the registered job function (``None`` for an unknown jobtype: the
    innermost handler then fails the job). ``worker`` is the running :class:`Worker`.
    Middleware may attach any attribute it likes (``ctx.db = ...``); context providers
    see it.

    Cancellation: when the worker gives up on the job (shutdown deadline, immediate stop)
    ``cancelled`` becomes true and ``cancel_event`` (a ``threading.Event``, usable from
    synchronous job functions running in the worker's threads) is set; async job
    functions are in addition cancelled the asyncio way (``CancelledError``).
    """

    # Fixed fields in slots; ``__dict__`` holds what middleware attaches (created lazily
    # by CPython on the first such attribute, so plain jobs do not pay for it).
    __slots__ = ("job", "jid", "jobtype", "args", "queue", "fn", "worker", "_cancelled",
                 "_event", "_waiters", "__dict__")

    def __init__(self, job: dict[str, Any], fn: Callable[..., Any] | None, worker: Any = None) -> None:
        self.job = job
        self.jid: str = job.get("jid", "")
        self.jobtype: str = job.get("jobtype", "")
        self.args: list[Any] = job.get("args") or []
        self.queue: str = job.get("queue", "default")
        self.fn = fn
        self.worker = worker
        self._cancelled = False
        self._event: threading.Event | None = None
        self._waiters: list[asyncio.Future[None]] | None = None

    @property
    def custom(self) -> dict[str, Any]:
        """The job's ``custom`` hash (an empty dict when it has none)."""
        return self.job.get("custom") or {}

    @property
    def cancelled(self) -> bool:
        """True once the worker has given up on this job (see the class docstring)."""
        return self._cancelled

    @property
    def cancel_event(self) -> threading.Event:
        """A ``threading.Event`` set when the job is cancelled (created on first use)."""
        event = self._event
        if event is None:
            event = self._event = threading.Event()
            # Checked after publishing the event: whichever of cancel() and this runs
            # second sees the other's write, so the event is never left unset.
            if self._cancelled:
                event.set()
        return event

    async def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Wait (without blocking the loop) until the job is cancelled; False on timeout."""
        if self._cancelled:
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        # A timer rather than asyncio.wait_for, which before Python 3.12 can swallow a
        # cancellation of the caller that races the waiter's completion.
        timer = loop.call_later(timeout, _time_out, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            if timer is not None:
                timer.cancel()
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return self._cancelled

    def cancel(self) -> None:
        """Mark the job cancelled, set ``cancel_event`` and wake ``wait_cancelled()``.

        Called by the worker, in its event loop's thread.
        """
        self._cancelled = True
        event = self._event
        if event is not None:
            event.set()
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def __repr__(self) -> str:
        return f"<JobContext jid={self.jid!r} jobtype={self.jobtype!r} queue={self.queue!r}>"


def _time_out(waiter: "asyncio.Future[None]") -> None:
    if not waiter.done():
        waiter.set_result(None)


def check_middleware(mw: Any) -> Middleware:
    """Validate one middleware (a callable of ``(ctx, next)``) and return it."""
    if not callable(mw):
        raise TypeError(f"middleware must be an async callable mw(ctx, next), not {mw!r}")
    checked: Middleware = mw
    return checked


class _Next:
    """The ``next`` handed to one middleware for one job: runs the rest of the chain once."""

    __slots__ = ("_inner", "_ctx", "_called")

    def __init__(self, inner: Handler, ctx: JobContext) -> None:
        self._inner = inner
        self._ctx = ctx
        self._called = False

    def __call__(self) -> Awaitable[Any]:
        if self._called:
            raise RuntimeError("next() called more than once by the same middleware")
        self._called = True
        return self._inner(self._ctx)


def _link(mw: Middleware, inner: Handler) -> Handler:
    async def step(ctx: JobContext) -> Any:
        return await mw(ctx, _Next(inner, ctx))

    step.__qualname__ = f"middleware[{getattr(mw, '__qualname__', mw)!s}]"
    return step


def compose(middleware: Sequence[Middleware], handler: Handler) -> Handler:
    """Compose ``middleware`` (outermost first) around ``handler`` into one ``handler(ctx)``.

    With an empty sequence the handler itself is returned (no wrapper at all).
    """
    chain = handler
    for mw in reversed(list(middleware)):
        chain = _link(check_middleware(mw), chain)
    return chain
