"""The worker: fetches jobs, runs their functions, reports the outcome, beats.

Architecture (why it is dense and never stalls):

* ``concurrency`` *slots*.  A slot is taken by a FETCH before it is sent and kept by the
  job it brings until the job function returns, so at most ``concurrency`` jobs are ever
  held in memory, and a FETCH only starts when a slot is free.
* A fixed number of *fetcher* tasks (``fetchers``, a handful), each owning one connection
  of the fetch client for as long as it can: several FETCHes are in flight at once, so
  short jobs keep every slot busy.  A FETCH blocks up to 2 s on the server when the queues
  are empty; nothing else ever waits behind it.
* Results (ACK/FAIL) and heartbeats go through a second client: they never queue behind a
  blocking FETCH.  The heartbeat task holds one of its connections for the whole life of
  the worker, so the server never forgets the wid.
* Each job runs as a task: ``async def`` functions on the loop, plain functions in a
  ``ThreadPoolExecutor`` sized to ``concurrency``.  The middleware chain is composed once
  at start (no composition at all when there is none).

Shutdown (``stop()``, SIGTERM, SIGINT, ``terminate`` from the server): no new FETCH;
FETCHes already sent complete (the server answers within 2 s) and their jobs run like the
others; running jobs get ``timeout`` seconds, then they are cancelled and FAILed (so the
server retries them); pending ACK/FAILs get ``report_grace`` seconds; connections END.
``kill()`` (a second SIGINT) does the same without waiting for the jobs.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import signal
import socket
import threading
import time
import warnings
from types import ModuleType
from typing import Any, Awaitable, Callable, Iterable, TypeVar, overload

from faktory import protocol
from faktory.connection import Connection
from faktory.errors import (
    FaktoryConnectionError,
    FaktoryError,
    InvalidJobError,
    JobNotFoundError,
    NotSentError,
    ServerError,
    UnknownWorkerError,
)
from faktory import errors as _errors
from faktory._checks import check_seconds as _check_seconds
from faktory.executor import Executor
from faktory.middleware import JobContext, Middleware, compose
from faktory.queues import QueueSpec as _QueueSpec
from faktory.queues import queue_order as _queue_order
from faktory.registry import register_into as _register_into
from faktory.rss import rss_kb as _rss_kb

__all__ = ["Worker", "Stopping", "JobContext"]

# Moved out in 0.2 (one concept per file); importable from here for one more release.
_MOVED = {
    "QueueSpec": "faktory.queues", "queue_order": "faktory.queues", "weighted_shuffle": "faktory.queues",
    "rss_kb": "faktory.rss", "register_into": "faktory.registry",
    "UnknownJobTypeError": "faktory.errors", "JobCancelledError": "faktory.errors",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module 'faktory.worker' has no attribute {name!r}")
    warnings.warn(f"faktory.worker.{name} moved to {module}.{name}; import it from there "
                  "(the old name goes in the next release)", DeprecationWarning, stacklevel=2)
    import importlib

    return getattr(importlib.import_module(module), name)


log = logging.getLogger("faktory.worker")

# States only move forward.
NEW, RUNNING, QUIET, STOPPING, STOPPED = "new", "running", "quiet", "stopping", "stopped"
_ORDER = {NEW: 0, RUNNING: 1, QUIET: 2, STOPPING: 3, STOPPED: 4}

_json_decode = json.JSONDecoder().decode


def _json_loads(reply: bytes) -> Any:
    # json.loads(bytes) sniffs the encoding first; the server always sends UTF-8.
    return _json_decode(reply.decode("utf-8"))

FETCH_BLOCK = 2.0  # seconds the server may hold a FETCH on empty queues
_monotonic = time.monotonic
_F = TypeVar("_F", bound=Callable[..., Any])
_M = TypeVar("_M", bound=Middleware)


def _resolve(future: "asyncio.Future[Any]") -> None:
    if not future.done():
        future.set_result(None)


def _backoff(attempt: int, base: float = 0.1, cap: float = 5.0) -> float:
    return float(min(cap, base * (2 ** min(attempt, 16))) * (0.5 + random.random() / 2))


def _pending_of(conn: Connection) -> int:
    return len(conn._waiters)


# ---------------------------------------------------------------------------------------
# the worker


class Stopping:
    """Returned by ``Worker.stop()``/``kill()``: await it to wait until the worker has
    stopped (immediately done when the worker never started)."""

    __slots__ = ("_worker",)

    def __init__(self, worker: "Worker") -> None:
        self._worker = worker

    def __await__(self) -> Any:
        worker = self._worker
        if worker._state == NEW and worker._loop is None:
            return None
        return (yield from worker.wait_state(STOPPED).__await__())


class Worker:
    """Fetches jobs from Faktory and runs the registered functions for them.

    ``queues`` is a sequence (strict order: the first non-empty queue wins), a mapping
    ``{queue: weight}`` (weighted random order, reshuffled for every FETCH) or a callable
    returning the list for each FETCH.  ``timeout`` is the shutdown grace given to
    running jobs.  ``pool_size`` is the number of connections for ACK/FAIL (default:
    enough for ``concurrency``); ``fetchers`` the number of concurrent FETCH loops
    (default ``min(concurrency, 4)``).  ``url``/``password``/``tls`` go to the clients
    (``None``: ``FAKTORY_URL``/``FAKTORY_PROVIDER``, then ``tcp://localhost:7419``).
    ``burst=True``: process until the queues are empty, then stop gracefully and return
    (a FETCH that comes back empty while no job is running ends the run: about 2 s, the
    server's FETCH wait, after the last job); for scripts, cron and tests.
    Keyword arguments of a job (``custom["kwargs"]``, see ``faktory.task``) are passed to
    its function as keywords.

    Usage::

        worker = Worker(concurrency=10, queues={"critical": 3, "default": 1})

        @worker.register("send_email")
        async def send_email(to, subject):
            ...

        await worker.work()      # until stop(), a signal or the server says terminate
    """

    #: Seconds pending ACK/FAILs are retried for once the worker is stopping.
    report_grace: float = 5.0
    #: The client class (benchmarks swap in one over a baseline transport).
    _client_class: Any = None

    def __init__(
        self,
        *,
        wid: str | None = None,
        concurrency: int = 20,
        timeout: float = 8.0,
        beat_interval: float = 15.0,
        queues: _QueueSpec = ("default",),
        middleware: Iterable[Middleware] = (),
        registry: dict[str, Callable[..., Any]] | None = None,
        pool_size: int | None = None,
        labels: Iterable[str] = (),
        url: str | None = None,
        password: str | None = None,
        tls: Any = None,
        fetchers: int | None = None,
        hostname: str | None = None,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        codec: ModuleType | str | None = None,
        rng: random.Random | None = None,
        burst: bool = False,
    ) -> None:
        for field, value in (("concurrency", concurrency), ("pool_size", pool_size), ("fetchers", fetchers)):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{field} must be an int >= 1, not {value!r}")
        _check_seconds(timeout, "timeout")
        _check_seconds(beat_interval, "beat_interval", zero=False)
        _check_seconds(connect_timeout, "connect_timeout", zero=False)
        _check_seconds(command_timeout, "command_timeout", zero=False, none=True)
        if wid is not None and (not isinstance(wid, str) or not wid):
            raise ValueError(f"wid must be a non-empty str, not {wid!r}")
        if isinstance(labels, str):
            raise TypeError(f"labels must be an iterable of str, not the str {labels!r}")
        self.wid: str = wid or os.urandom(8).hex()
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.beat_interval = float(beat_interval)
        self.registry: dict[str, Callable[..., Any]] = {} if registry is None else registry
        self.middleware: list[Middleware] = list(middleware)
        self.labels: tuple[str, ...] = tuple(labels)
        self.url = url
        self.password = password
        self.tls = tls
        self.hostname = hostname or socket.gethostname()
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.fetchers = fetchers if fetchers is not None else min(concurrency, 4)
        if self.fetchers < 1:
            raise ValueError(f"fetchers must be >= 1, not {fetchers!r}")
        self.pool_size = pool_size if pool_size is not None else min(concurrency, 10)
        self._codec = protocol.codec if codec is None else protocol.deprecated_codec_argument(codec, "Worker")
        self._queue_spec = queues
        #: Burst mode: stop (gracefully) once the queues are empty and no job is running.
        self.burst = bool(burst)
        self._next_fetch = _queue_order(queues, self._codec, rng)

        #: Counters since start: jobs ACKed, jobs FAILed (including unknown jobtypes
        #: and jobs given up on at shutdown), and jobs given up on at shutdown.
        self.processed = 0
        self.failed = 0
        self.abandoned = 0
        #: True when the worker was stopped at once (``kill()``, a second SIGINT).
        self.killed = False

        self._state = NEW
        self._state_waiters: list[tuple[int, asyncio.Future[str]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._fetch_client: Any = None
        self._executor = Executor(concurrency, f"faktory-{self.wid[:8]}")
        self._chain: Callable[[JobContext], Awaitable[Any]] = self._executor.run
        self._free = concurrency  # job slots: taken by a FETCH, kept by its job until it ends
        self._fetch_cap = -(-concurrency // self.fetchers)  # FETCHes in flight per connection, at most
        self._fetch_timeout = None if command_timeout is None else command_timeout + 2.0  # the server's 2 s
        self._fetch_conns: list[Connection] = []  # the fetchers' connections, open for FETCHes
        # FETCHes a connection may have in flight: 1 at first and after one came back
        # empty, one more for each that brings a job, up to _fetch_cap.  (The server serves
        # a connection's FETCHes in turn, so FETCHes pipelined on empty queues each wait 2 s
        # behind the previous one: a full queue earns the depth within a round, a short
        # burst leaves at most a FETCH or two queued for a stop to wait for.)
        self._fetch_limit: dict[Connection, int] = {}
        self._fetch_in_flight: dict[Connection, int] = {}  # FETCHes unanswered, per connection
        self._fetcher_waiters: list[asyncio.Future[None]] = []
        self._fetch_waiters: list[asyncio.Future[None]] = []  # wait_fetches_answered()
        self._pump_handle: asyncio.Handle | None = None
        self._accepting = True  # FETCHed jobs are run (False once a stop gave up waiting)
        self._pack_ack = self._codec.pack_ack
        self._running: dict[JobContext, asyncio.Task[Any]] = {}
        self._reports = 0  # ACK/FAILs not yet answered
        self._fetching = 0  # FETCHes in flight
        self._generation = 0  # bumped to make fetchers reconnect (new HELLO)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop_requested: asyncio.Event | None = None
        self._kill_requested: asyncio.Event | None = None
        self._changed: asyncio.Event | None = None
        self._beat_waiter: asyncio.Future[None] | None = None
        self._beat_again = False
        self._pending_call: str | None = None  # stop()/quiet() called before work()
        self._log_jobs = False
        self._signals: list[tuple[int, Any]] = []
        self._sigint_count = 0

    # -- registration ------------------------------------------------------------------

    @overload
    def register(self, name: _F, fn: None = None) -> _F: ...
    @overload
    def register(self, name: str | None = None, fn: None = None) -> Callable[[_F], _F]: ...
    @overload
    def register(self, name: str, fn: _F) -> _F: ...

    def register(self, name: str | Callable[..., Any] | None = None,
                 fn: Callable[..., Any] | None = None) -> Any:
        """Register ``fn`` for jobtype ``name``; returns ``fn``.

        Also a decorator: ``@worker.register`` (jobtype = the function's name) or
        ``@worker.register("jobtype")``.
        """
        return _register_into(self.registry, name, fn)

    def use(self, middleware: _M) -> _M:
        """Append a middleware ``async def mw(ctx, next)``; returns it (decorator-friendly).

        Middleware added after ``work()`` started is used by the next run only.
        """
        if not callable(middleware):
            raise TypeError(f"middleware must be an async callable mw(ctx, next), not {middleware!r}")
        self.middleware.append(middleware)
        return middleware

    # -- state -------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``new``, ``running``, ``quiet``, ``stopping`` or ``stopped``."""
        return self._state

    @property
    def busy(self) -> int:
        """Jobs currently running."""
        return len(self._running)

    @property
    def fetching(self) -> int:
        """FETCHes sent whose replies have not arrived yet."""
        return self._fetching

    async def wait_fetches_answered(self) -> None:
        """After ``quiet()`` (or a stop): wait until every FETCH already sent has been
        answered (the server holds one for at most 2 s), so that no job arrives after this
        returns.  Returns at once when none is in flight."""
        while self._fetching or (self._state == RUNNING and self._loop is not None):
            if self._state == RUNNING:
                await self.wait_state(QUIET)
                continue
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._fetch_waiters.append(waiter)
            await waiter

    @property
    def client(self) -> Any:
        """The client for ACK/FAIL/BEAT while working (``None`` before ``work()``): jobs may
        use it too (push more jobs, Enterprise tracking)."""
        return self._client

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop ``work()`` runs on (``None`` before it started)."""
        return self._loop

    def _set_state(self, state: str) -> None:
        self._state = state
        rank = _ORDER[state]
        waiters = self._state_waiters
        for item in list(waiters):
            if item[0] <= rank:
                waiters.remove(item)
                if not item[1].done():
                    item[1].set_result(state)

    async def wait_state(self, state: str) -> str:
        """Wait until the worker has reached ``state`` (or a later one: states only move
        forward, ``new`` -> ``running`` -> ``quiet`` -> ``stopping`` -> ``stopped``, and
        ``quiet`` may be skipped); return the state it is in then."""
        rank = _ORDER[state]
        if _ORDER[self._state] >= rank:
            return self._state
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        item = (rank, waiter)
        self._state_waiters.append(item)
        try:
            return await waiter
        finally:
            if item in self._state_waiters:
                self._state_waiters.remove(item)

    def _in_loop_thread(self) -> bool:
        loop = self._loop
        if loop is None:
            return True
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    def quiet(self) -> None:
        """Stop fetching; running jobs finish; keep beating. Thread-safe."""
        if not self._in_loop_thread():
            self._loop.call_soon_threadsafe(self.quiet)  # type: ignore[union-attr]
            return
        if self._state == NEW:
            self._pending_call = self._pending_call or "quiet"
            return
        if self._state != RUNNING:
            return
        log.info("worker %s quiet: no more fetches", self.wid)
        self._set_state(QUIET)
        self._wake_fetchers()
        self._beat_soon()

    def stop(self) -> "Stopping":
        """Stop gracefully (see the module docstring); ``work()`` returns when done.

        Thread-safe; calling it again has no effect (see ``kill()``).  The result may be
        awaited (in the worker's loop) to wait until the worker has stopped:
        ``await worker.stop()``; plain ``worker.stop()`` just asks.
        """
        if not self._in_loop_thread():
            self._loop.call_soon_threadsafe(self.stop)  # type: ignore[union-attr]
        elif self._state == NEW:
            if self._pending_call != "kill":
                self._pending_call = "stop"
        elif self._stop_requested is not None:
            self._stop_requested.set()
        return Stopping(self)

    def kill(self) -> "Stopping":
        """Stop at once: running jobs are cancelled and FAILed without waiting.

        Thread-safe; awaitable like ``stop()``.
        """
        if not self._in_loop_thread():
            self._loop.call_soon_threadsafe(self.kill)  # type: ignore[union-attr]
        elif self._state == NEW:
            self._pending_call = "kill"
        elif self._kill_requested is not None and self._state != STOPPED:
            self._kill_requested.set()
            self._stop_requested.set()  # type: ignore[union-attr]
            self._changed.set()  # type: ignore[union-attr]  # wakes a graceful wait
        return Stopping(self)

    # -- main --------------------------------------------------------------------------

    async def work(self, *, handle_signals: bool = True) -> None:
        """Connect and process jobs until stopped.

        Returns after a graceful stop (``stop()``, SIGTERM/SIGINT, ``terminate`` from the
        server) or an immediate one (``kill()``, a second SIGINT).  Connection errors at
        start are raised; later ones are retried with backoff.  When ``handle_signals``
        and running in the main thread, SIGTERM/SIGINT/SIGTSTP handlers are installed for
        the duration (and the previous handlers restored).

        Cancelling the task running ``work()`` (an outer ``wait_for``, a TaskGroup, an
        application shutting down) stops the worker the graceful way, as ``stop()`` does
        (running jobs get ``timeout`` seconds, then are FAILed; every result is reported),
        and then re-raises the cancellation; a second cancellation stops at once, as
        ``kill()`` does.
        """
        if self._state != NEW:
            raise RuntimeError("a Worker can work() only once; create a new one")
        from faktory.client import Client  # late: keeps `import faktory.worker` light

        loop = self._loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        self._kill_requested = asyncio.Event()
        self._changed = asyncio.Event()
        run = self._executor.run
        self._chain = compose(self.middleware, run) if self.middleware else run
        self._log_jobs = log.isEnabledFor(logging.DEBUG)
        common = dict(url=self.url, password=self.password, tls=self.tls, wid=self.wid,
                      labels=self.labels, hostname=self.hostname,
                      connect_timeout=self.connect_timeout, command_timeout=self.command_timeout)
        # ACK, FAIL and BEAT share the pipelined connections of one client (the results of
        # jobs that end together leave in one write: a pipeline as deep as the slots); each
        # FETCH connection belongs to one fetcher, so nothing waits behind a blocking FETCH.
        client_class = self._client_class or Client
        self._client = client_class(pool_size=self.pool_size, pipeline_depth=max(8, self.concurrency),
                                    _codec=self._codec, **common)
        self._fetch_client = client_class(pool_size=self.fetchers, _codec=self._codec, **common)
        self._pack_ack = self._codec.pack_ack
        try:
            await self._client.connect()
            await self._fetch_client.connect()
        except BaseException:
            self._set_state(STOPPED)
            await self._close_clients()
            raise
        self._set_state(RUNNING)
        if handle_signals:
            self._install_signals(loop)
        cancelled: asyncio.CancelledError | None = None
        try:
            log.info("worker %s running: concurrency %d, queues %s, %d fetchers", self.wid,
                     self.concurrency, self._next_fetch.describe(), self.fetchers)  # type: ignore[attr-defined]
            pending, self._pending_call = self._pending_call, None
            if pending == "quiet":
                self.quiet()
            elif pending == "stop":
                self.stop()
            elif pending == "kill":
                self.kill()
            self._spawn(self._heartbeat(), "heartbeat")
            for index in range(self.fetchers):
                self._spawn(self._fetcher(index), f"fetcher-{index}")
            try:
                await self._stop_requested.wait()
            except asyncio.CancelledError as exc:
                cancelled = exc
                log.info("worker %s: work() cancelled: stopping gracefully (jobs get %g s)",
                         self.wid, self.timeout)
            try:
                await self._shutdown()
            except asyncio.CancelledError as exc:  # cancelled again while stopping: at once
                cancelled = cancelled or exc
                self.kill()
                await self._shutdown_at_once()
        finally:
            self._set_state(STOPPED)
            self._remove_signals()
            leftovers = list(self._tasks)
            for task in leftovers:
                task.cancel()
            if leftovers:
                await asyncio.gather(*leftovers, return_exceptions=True)
            await self._close_clients()
            self._executor.shutdown()
            log.info("worker %s stopped: %d processed, %d failed, %d abandoned", self.wid,
                     self.processed, self.failed, self.abandoned)
        if cancelled is not None:
            raise cancelled

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = self._loop.create_task(coro, name=name)  # type: ignore[union-attr, arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("worker %s: internal task failed", self.wid, exc_info=task.exception())

    async def _close_clients(self) -> None:
        # The results were waited for already; FETCHes still out are dropped (see _shutdown),
        # but jobs being handed back get their second.
        for client, grace in ((self._fetch_client, 1.0), (self._client, 1.0)):
            if client is not None:
                try:
                    await client.close(grace)
                except Exception:  # pragma: no cover - closing is best effort
                    log.debug("closing a client failed", exc_info=True)

    # -- shutdown ----------------------------------------------------------------------

    async def _wait_until(self, done: Callable[[], bool], deadline: float,
                          stop_on_kill: bool = True) -> bool:
        """Wait until ``done()`` (re-checked whenever something changes) or the deadline
        (or a kill, with ``stop_on_kill``); True when ``done()``."""
        changed = self._changed
        assert changed is not None and self._kill_requested is not None
        while not done():
            if stop_on_kill and self._kill_requested.is_set():
                return False
            remaining = deadline - _monotonic()
            if remaining <= 0:
                return False
            changed.clear()
            waiter = asyncio.ensure_future(changed.wait())
            try:
                await asyncio.wait((waiter,), timeout=remaining)
            finally:
                waiter.cancel()
        return True

    async def _shutdown(self) -> None:
        """Stop: no new FETCH; running jobs and the FETCHes already sent get ``timeout``
        seconds (a FETCH's job runs like the others); then jobs still running are
        cancelled and FAILed, the results get ``report_grace`` seconds, and FETCHes the
        server still holds are dropped with their connections.  So a stop takes at most
        ``timeout + report_grace`` seconds, and ``kill()`` about one second.

        (FETCHes are pipelined while the queues have a backlog.  Right after one drains,
        the server serves a connection's FETCHes one after the other, each held up to 2 s:
        a stop then waits for them, within ``timeout``, so that a job pushed meanwhile is
        run, not left reserved.)"""
        assert self._kill_requested is not None
        self._set_state(STOPPING)
        self._wake_fetchers()
        self._beat_soon()
        killed = self._kill_requested.is_set()
        if not killed:
            log.info("worker %s stopping: %d running jobs get %.1f s", self.wid,
                     len(self._running), self.timeout)
            finished = await self._wait_until(
                lambda: not self._running and not self._fetching, _monotonic() + self.timeout)
            killed = self._kill_requested.is_set()
        else:
            finished = not self._running and not self._fetching
        self._accepting = False  # from here on, a FETCHed job is handed back, not run
        if killed:
            self.killed = True
            log.warning("worker %s stopping at once", self.wid)
        if not finished:
            if self._fetching:
                log.info("worker %s: dropping %d FETCHes the server still holds", self.wid, self._fetching)
            self._abandon_running("worker stopped at once" if killed else
                                  f"worker shutdown: job still running after {self.timeout:g} s")
        await self._wait_reports(min(self.report_grace, 1.0) if killed else self.report_grace)

    async def _shutdown_at_once(self) -> None:
        # A second cancellation: give up on the jobs, report them within a second.
        self.killed = True
        self._accepting = False
        self._set_state(STOPPING)
        self._abandon_running("worker stopped at once (work() cancelled twice)")
        try:
            await self._wait_reports(1.0)
        except asyncio.CancelledError:
            pass

    async def _wait_reports(self, grace: float) -> None:
        # ACK/FAILs still unanswered (each retried on transport errors until the grace ends).
        if not await self._wait_until(lambda: self._reports == 0, _monotonic() + grace, stop_on_kill=False):
            log.warning("worker %s: %d ACK/FAIL not delivered at shutdown", self.wid, self._reports)

    def _abandon_running(self, reason: str) -> None:
        for ctx, task in list(self._running.items()):
            if ctx._cancelled:
                continue
            ctx.cancel()
            task.cancel()
            self.abandoned += 1
            self.failed += 1
            log.warning("job %s (%s) cancelled and FAILed: %s", ctx.jid, ctx.jobtype, reason)
            self._report_nowait(ctx, _errors.JobCancelledError(reason))

    # -- signals -----------------------------------------------------------------------

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        handlers = {signal.SIGTERM: self._on_sigterm, signal.SIGINT: self._on_sigint}
        if hasattr(signal, "SIGTSTP"):
            handlers[signal.SIGTSTP] = self._on_sigtstp
        for sig, handler in handlers.items():
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, handler)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                continue
            self._signals.append((sig, previous))

    def _remove_signals(self) -> None:
        loop = self._loop
        while self._signals:
            sig, previous = self._signals.pop()
            try:
                if loop is not None:
                    loop.remove_signal_handler(sig)
                signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
            except (ValueError, RuntimeError, OSError):  # pragma: no cover
                log.debug("could not restore the handler of signal %s", sig, exc_info=True)

    def _on_sigterm(self) -> None:
        log.info("SIGTERM: stopping gracefully (jobs get %g s)", self.timeout)
        self.stop()

    def _on_sigint(self) -> None:
        self._sigint_count += 1
        if self._sigint_count == 1:
            log.info("SIGINT: stopping gracefully (jobs get %g s); SIGINT again stops at once",
                     self.timeout)
            self.stop()
        else:
            log.info("second SIGINT: stopping at once")
            self.kill()

    def _on_sigtstp(self) -> None:
        log.info("SIGTSTP: quiet (no more fetches)")
        self.quiet()

    # -- slots and fetching --------------------------------------------------------------
    #
    # Each fetcher task owns one connection of the fetch client and only supervises it
    # (opens it, reconnects after a fault).  The FETCHes themselves are sent by the pump:
    # whenever job slots are free it sends that many FETCHes at once, spread evenly over
    # the fetch connections (one write each), and each reply is handled by ``_fetched``
    # straight from the connection's reader: no task wakes up per FETCH.

    def _wake_fetchers(self) -> None:
        waiters = self._fetcher_waiters
        self._fetcher_waiters = []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _release_slot(self) -> None:
        self._free += 1
        if self._pump_handle is None and self._state == RUNNING:
            self._pump_handle = self._loop.call_soon(self._pump)  # type: ignore[union-attr]

    def _pump(self) -> None:
        """Send one FETCH per free slot, in one write per connection, to the fetch
        connections that have no FETCH in flight (up to their ramped limit each).

        A connection with FETCHes in flight gets no more until they are all answered: on
        a full queue its replies come within a round trip anyway, so the slots they free
        meanwhile wait at most that long, and go out together, with the ACKs of their
        jobs (``_report_nowait``), in one write."""
        self._pump_handle = None
        free = self._free
        if self._state != RUNNING or free <= 0:
            return
        next_fetch = self._next_fetch
        fetched = self._fetched
        timeout = self._fetch_timeout
        limits = self._fetch_limit
        in_flight = self._fetch_in_flight
        for conn in list(self._fetch_conns):
            if in_flight.get(conn, 0):
                continue
            count = min(limits.get(conn, 1), free)
            sent = 0
            try:
                for position in range(count):
                    # Behind ``position`` FETCHes the server may hold 2 s each.
                    conn.send_callback(next_fetch(), fetched, conn,
                                       None if timeout is None else timeout + FETCH_BLOCK * position)
                    sent += 1
            except NotSentError:
                if conn in self._fetch_conns:
                    self._fetch_conns.remove(conn)
            free -= sent
            self._fetching += sent
            in_flight[conn] = sent
            conn.flush()
            if free <= 0:
                break
        self._free = free

    def _idle_fetch_conn(self) -> Connection | None:
        # The fetch connection the pump fills next (the first with no FETCH in flight):
        # an ACK or FAIL sent there goes out in the same write as those FETCHes, and the
        # server answers it at once, since nothing is ahead of it on that connection.
        if self._state != RUNNING:
            return None
        in_flight = self._fetch_in_flight
        for conn in self._fetch_conns:
            if not in_flight.get(conn, 0) and not conn._paused:
                return conn
        return None

    def _fetched(self, conn: Connection, reply: Any) -> None:
        # A FETCH reply (or its failure), straight from the connection's reader.
        self._fetching -= 1
        left = self._fetch_in_flight.get(conn)
        if left:
            self._fetch_in_flight[conn] = left - 1
            if left == 1 and self._free > 0 and self._pump_handle is None and self._state == RUNNING:
                self._pump_handle = self._loop.call_soon(self._pump)  # type: ignore[union-attr]
        if self._state != RUNNING:
            if self._state == STOPPING:
                self._changed.set()  # type: ignore[union-attr]
            if not self._fetching and self._fetch_waiters:
                waiters, self._fetch_waiters = self._fetch_waiters, []
                for waiter in waiters:
                    _resolve(waiter)
        if type(reply) is bytes:
            limit = self._fetch_limit.get(conn, 1)
            if limit < self._fetch_cap:  # a job: one more FETCH may be pipelined here
                self._fetch_limit[conn] = limit + 1
            if not self._accepting:
                self._free += 1
                self._hand_back(reply)
            else:
                self._dispatch(reply)
            return
        if reply is None:
            self._fetch_limit[conn] = 1  # empty queues: one FETCH at a time here
        self._release_slot()
        if reply is None:
            if self.burst and not self._running and self._state == RUNNING:
                log.info("worker %s: queues empty (burst mode): stopping", self.wid)
                self.stop()
            return  # nothing within the server's 2 s: the pump sends another
        if isinstance(reply, UnknownWorkerError):
            self._forgotten()
        elif isinstance(reply, BaseException):
            if self._state == RUNNING:
                log.warning("worker %s: FETCH failed: %s", self.wid, reply)
        else:
            log.error("worker %s: unexpected reply to FETCH: %.200r", self.wid, reply)

    def _hand_back(self, reply: bytes) -> None:
        # A job fetched after the worker gave up: back to its queue, not left reserved.
        client = self._fetch_client
        if client is None:
            return
        client._orphaned_fetch(reply)

    async def _fetcher(self, index: int) -> None:
        attempt = 0
        loop = self._loop
        assert loop is not None
        while self._state == RUNNING:
            try:
                async with self._fetch_client.acquire() as conn:
                    generation = self._generation
                    self._fetch_conns.append(conn)
                    self._fetch_limit[conn] = 1  # queues presumed empty until a job comes
                    self._fetch_in_flight[conn] = 0
                    conn.add_close_callback(self._fetch_conn_closed)
                    attempt = 0
                    self._pump()
                    try:
                        while self._state == RUNNING and generation == self._generation and not conn.closed:
                            waiter = loop.create_future()
                            self._fetcher_waiters.append(waiter)
                            await waiter
                    finally:
                        if conn in self._fetch_conns:
                            self._fetch_conns.remove(conn)
                    # Replies still due (at most the server's 2 s) are handled as they come.
                    if not conn.closed:
                        await asyncio.wait_for(conn.wait_idle(), self._fetch_timeout)
                    if generation != self._generation:
                        conn.close()  # reconnect: a fresh HELLO registers the wid again
                if self._state == RUNNING and conn.closed and generation == self._generation:
                    raise FaktoryConnectionError("fetch connection lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._state != RUNNING:
                    break
                delay = _backoff(attempt)
                attempt += 1
                log.warning("worker %s fetcher %d: %s; retrying in %.2f s", self.wid, index,
                            exc or type(exc).__name__, delay)
                await asyncio.sleep(delay)

    def _fetch_conn_closed(self, conn: Connection) -> None:
        if conn in self._fetch_conns:
            self._fetch_conns.remove(conn)
        self._fetch_limit.pop(conn, None)
        self._fetch_in_flight.pop(conn, None)
        self._wake_fetchers()

    def _forgotten(self) -> None:
        # The server forgot this worker (no BEAT for too long): reconnect with HELLO.
        log.warning("worker %s: the server forgot this worker; reconnecting", self.wid)
        self._generation += 1
        self._wake_fetchers()

    def _dispatch(self, reply: bytes) -> None:
        # The hot path: FETCH reply -> job dict -> a task running the chain.
        try:
            job = _json_loads(reply)
            jobtype = job["jobtype"]
            if type(jobtype) is not str:
                raise TypeError(f"jobtype is {type(jobtype).__name__}, not str")
        except (ValueError, TypeError, KeyError) as exc:
            self._unusable(reply, exc)
            return
        ctx = JobContext(job, self.registry.get(jobtype), self)
        self._running[ctx] = self._loop.create_task(self._process(ctx))  # type: ignore[union-attr]

    def _unusable(self, reply: bytes, exc: BaseException) -> None:
        # A job the worker cannot even start: FAIL it at once (when it has a jid) rather
        # than let it wait out its reservation.
        self._release_slot()
        self.failed += 1
        jid = None
        try:
            job = _json_loads(reply)
            jid = job.get("jid") if isinstance(job, dict) else None
        except ValueError:
            pass
        reason = f"the fetched job cannot be run: {type(exc).__name__}: {exc}"
        if not isinstance(jid, str):
            log.error("worker %s: unusable job without a jid from the server (%s): %.200r",
                      self.wid, reason, reply)
            return
        log.error("worker %s: job %s FAILed: %s", self.wid, jid, reason)
        ctx = JobContext({"jid": jid, "jobtype": "", "args": []}, None, self)
        self._report_nowait(ctx, InvalidJobError(reason))

    # -- running a job -------------------------------------------------------------------

    async def _process(self, ctx: JobContext) -> None:
        started = _monotonic() if self._log_jobs else 0.0
        error: BaseException | None = None
        try:
            await self._chain(ctx)
        except BaseException as exc:  # the job's failure, whatever it is, FAILs the job
            error = exc
        self._running.pop(ctx, None)
        self._release_slot()
        if self._state == STOPPING:
            self._changed.set()  # type: ignore[union-attr]
        if ctx._cancelled:
            return  # given up on at shutdown: the worker has FAILed it already
        if self._log_jobs:
            log.debug("job %s %s (%s) %s in %.1f ms", ctx.jid, ctx.jobtype, ctx.queue,
                      "ok" if error is None else f"failed: {error!r}",
                      (_monotonic() - started) * 1000)
        if error is None:
            self.processed += 1
        else:
            self.failed += 1
            if not isinstance(error, Exception):
                log.warning("job %s (%s) ended with %r", ctx.jid, ctx.jobtype, error)
            else:  # once per execution (not per FAIL attempt), with the traceback
                log.warning("job %s (%s) failed: %s: %s", ctx.jid, ctx.jobtype,
                            type(error).__name__, error, exc_info=error)
        self._report_nowait(ctx, error)

    def _report_nowait(self, ctx: JobContext, error: BaseException | None) -> None:
        """ACK (error None) or FAIL the job: pipelined with the other results of this
        loop iteration, the reply handled by ``_reported``; the slow path (no connection
        now, or a transport fault) is ``_report``, which retries."""
        self._reports += 1
        if error is None:
            data = self._pack_ack(ctx.jid)
        else:
            data = self._client._fail_command(ctx.jid, error, backtrace_limit=self._backtrace_limit(ctx))
        item = (ctx, error, data)
        conn = self._idle_fetch_conn()
        if conn is not None:
            try:
                conn.send_callback(data, self._reported, item)
                return
            except NotSentError:
                pass
        if not self._client._send_callback(data, self._reported, item):
            self._spawn(self._report(ctx, error, data), "report")

    def _reported(self, item: tuple[JobContext, BaseException | None, bytes], reply: Any) -> None:
        ctx, error, data = item
        if isinstance(reply, FaktoryConnectionError):
            if self._state != STOPPED:
                self._spawn(self._report(ctx, error, data), "report")  # keeps its count
                return
        elif isinstance(reply, ServerError):
            self._report_refused(ctx, error, reply)
        self._report_done()

    def _report_done(self) -> None:
        self._reports -= 1
        if self._state == STOPPING:
            self._changed.set()  # type: ignore[union-attr]

    def _report_refused(self, ctx: JobContext, error: BaseException | None, exc: ServerError) -> None:
        if isinstance(exc, JobNotFoundError):
            log.warning("FAIL of job %s: the server does not hold it any more", ctx.jid)
        else:
            log.error("%s of job %s refused by the server: %s", "ACK" if error is None else "FAIL", ctx.jid, exc)

    async def _report(self, ctx: JobContext, error: BaseException | None, data: bytes) -> None:
        """The slow path of ``_report_nowait``: send the ACK/FAIL, retried on transport
        errors only (with backoff) until it is answered or the worker has stopped.

        The caller has counted it in ``_reports`` already (so that a shutdown never
        misses it)."""
        attempt = 0
        try:
            while True:
                try:
                    await self._client._call(data)
                    return
                except ServerError as exc:
                    self._report_refused(ctx, error, exc)
                    return
                except (OSError, asyncio.TimeoutError, FaktoryError) as exc:
                    if self._state == STOPPED:
                        return
                    delay = _backoff(attempt)
                    attempt += 1
                    log.warning("%s of job %s failed (%s); retrying in %.2f s",
                                "ACK" if error is None else "FAIL", ctx.jid, exc, delay)
                    await asyncio.sleep(delay)
        finally:
            self._report_done()

    @staticmethod
    def _backtrace_limit(ctx: JobContext) -> int:
        limit = ctx.job.get("backtrace")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            return 50
        return min(limit, 50)

    # -- heartbeat -----------------------------------------------------------------------

    def _beat_state(self) -> str | None:
        if self._state == QUIET:
            return "quiet"
        if self._state in (STOPPING, STOPPED):
            return "terminate"
        return None

    async def _beat_pause(self) -> None:
        # Sleep ``beat_interval`` or until _beat_soon().  (Not asyncio.wait_for on an
        # Event: before 3.12 it can swallow a cancellation that races the event.)
        loop = self._loop
        assert loop is not None
        if self._beat_again:
            self._beat_again = False
            return
        waiter = self._beat_waiter = loop.create_future()
        timer = loop.call_later(self.beat_interval, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._beat_waiter = None

    def _beat_soon(self) -> None:
        """Send the next heartbeat now (the state changed)."""
        if self._beat_waiter is not None:
            _resolve(self._beat_waiter)
        else:  # a BEAT is on its way: send another one right after it
            self._beat_again = True

    async def _heartbeat(self) -> None:
        attempt = 0
        while self._state != STOPPED:
            try:
                current, rss = self._beat_state(), _rss_kb()
                state = await self._client.beat(current, rss)
                attempt = 0
                log.debug("worker %s beat (%s, %d KiB): %s", self.wid, current or "running", rss, state)
                if state == "quiet" and self._state == RUNNING:
                    log.info("worker %s: the server says quiet", self.wid)
                    self.quiet()
                elif state == "terminate" and self._state in (RUNNING, QUIET):
                    log.info("worker %s: the server says terminate", self.wid)
                    self.stop()
                await self._beat_pause()
            except asyncio.CancelledError:
                raise
            except UnknownWorkerError:
                self._forgotten()
                # the client's connections HELLOed before the server forgot: renew them
                self._client.reconnect()
            except Exception as exc:
                delay = _backoff(attempt, base=0.2)
                attempt += 1
                log.warning("worker %s heartbeat: %s; retrying in %.2f s", self.wid,
                            exc or type(exc).__name__, delay)
                await asyncio.sleep(delay)

    def __repr__(self) -> str:
        return (f"<Worker wid={self.wid} state={self._state} concurrency={self.concurrency} "
                f"busy={len(self._running)}>")
