"""Testing helpers for code that uses faktory, and the pytest plugin.

Testing modes (process-wide; each restores the previous mode when it ends):

* ``fake()``: pushes from :class:`~faktory.Client`, :class:`~faktory.SyncClient` and task
  objects are validated and encoded exactly as for the server, then recorded in memory
  (nothing is sent, no server is needed): ``jobs["default"]`` lists a queue's payloads,
  ``jobs.of_type("send_email")`` a jobtype's, in push order.  ``drain()`` runs the recorded
  jobs through the registered functions and the middleware, oldest first, including the
  jobs those jobs push, until none is left.
* ``inline()``: every push runs its job at once, in the pushing thread, through the
  middleware; the arguments go through JSON first (so a ``datetime`` or a ``set`` fails in
  tests as in production), and a job's exception is raised by the push.

Both are context managers (``with faktory.testing.fake() as jobs:``) and pytest fixtures
(``faktory_fake``, ``faktory_inline``).  In these modes plain job functions run in the
calling thread (they see the test's database transaction, for instance), ``async`` ones on
an event loop; only ``push`` and ``push_bulk`` are intercepted (``connect()`` opens
nothing; other client methods still talk to a server).

``execute(job)`` (``await execute_async(job)``) is a single-job executor, like the Go
client's test executor: it runs one payload through the middleware chain and the function
and returns an :class:`Outcome` (``ok``, ``error``, ``result``) without any server.

The pytest plugin (the ``pytest11`` entry point) adds the fixtures ``faktory_fake``,
``faktory_inline``, ``faktory_server`` (an embedded server in a thread, in memory on a free
port, stopped after the test; skipped when ``FAKTORY_TEST_URL`` is set, since such tests
reach into the server) and ``faktory_url`` (``FAKTORY_TEST_URL``, FLUSHed first, or the url
of a fresh embedded server).  Loading the plugin imports neither the client nor the server:
a session that uses none of the fixtures pays for this module alone.
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence, TypeVar
from urllib.parse import unquote, urlsplit

from faktory import _testmode

if TYPE_CHECKING:  # pragma: no cover
    from faktory.job import Job
    from faktory.middleware import JobContext, Middleware
    from faktory.server import ServerThread

try:
    import pytest
except ImportError:  # pragma: no cover - the modes work without pytest
    pytest = None  # type: ignore[assignment]

__all__ = ["jobs", "FakeJobs", "Outcome", "fake", "inline", "drain", "drain_async", "execute",
           "execute_async", "flush_url", "faktory_fake", "faktory_inline", "faktory_server",
           "faktory_url"]

ENV = "FAKTORY_TEST_URL"
_T = TypeVar("_T")


class _Registry(Protocol):
    """Where jobs find their functions: a :class:`faktory.Faktory` or a :class:`faktory.Worker`."""

    registry: dict[str, Callable[..., Any]]
    middleware: list[Middleware]


# ---------------------------------------------------------------------------------------
# outcome and the single-job executor


class Outcome:
    """What running one job gave: ``ok`` (it would be ACKed) or ``error`` (the exception
    it would be FAILed with), the function's ``result``, the ``job`` payload as the worker
    saw it and the ``ctx`` (:class:`~faktory.JobContext`) the middleware saw."""

    __slots__ = ("job", "ctx", "result", "error")

    def __init__(self, job: dict[str, Any], ctx: JobContext, result: Any, error: BaseException | None) -> None:
        self.job = job
        self.ctx = ctx
        self.result = result
        self.error = error

    @property
    def ok(self) -> bool:
        """True when the job succeeded (a worker would ACK it)."""
        return self.error is None

    @property
    def jid(self) -> str:
        return str(self.job.get("jid", ""))

    @property
    def jobtype(self) -> str:
        return str(self.job.get("jobtype", ""))

    def raise_error(self) -> None:
        """Raise the job's exception, if it failed."""
        if self.error is not None:
            raise self.error

    def __repr__(self) -> str:
        state = "ok" if self.error is None else f"failed: {self.error!r}"
        return f"<Outcome {self.jobtype} {self.jid} {state}>"


def _app(app: _Registry | None) -> _Registry:
    if app is not None:
        return app
    from faktory.app import default

    return default


def _wire_payload(job: Job | dict[str, Any]) -> dict[str, Any]:
    # Validate like a push, then round-trip through the codec's JSON: the job a worker gets.
    from faktory import protocol
    from faktory.job import Job, check_json

    payload = job.to_dict() if isinstance(job, Job) else Job.from_payload(job).to_dict()
    try:
        text = protocol.codec.dumps(payload)
    except (TypeError, ValueError, OverflowError):
        check_json(payload, protocol.codec.dumps)
        raise
    decoded: dict[str, Any] = json.loads(text)
    return decoded


async def _run_function(ctx: JobContext) -> Any:
    # The innermost handler, as the worker's: the function (with custom["kwargs"]), then a
    # context provider it returned, awaiting what is awaitable.  In the calling thread.
    import asyncio

    from faktory.job import job_kwargs
    from faktory.errors import UnknownJobTypeError

    fn = ctx.fn
    if fn is None:
        raise UnknownJobTypeError(ctx.jobtype)
    kwargs = job_kwargs(ctx.job) or {}
    result = fn(*ctx.args, **kwargs)
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        result = await result
    if callable(result):
        result = result(ctx)
    if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
        result = await result
    return result


async def _execute_payload(payload: dict[str, Any], app: _Registry) -> Outcome:
    from faktory.middleware import JobContext, compose

    ctx = JobContext(payload, app.registry.get(payload["jobtype"]), None)
    chain = compose(app.middleware, _run_function) if app.middleware else _run_function
    try:
        result = await chain(ctx)
    except Exception as exc:  # the job's failure; BaseExceptions (KeyboardInterrupt...) propagate
        return Outcome(payload, ctx, None, exc)
    return Outcome(payload, ctx, result, None)


async def execute_async(job: Job | dict[str, Any], *, app: _Registry | None = None) -> Outcome:
    """Run one job (a ``Job`` or a payload dict) through ``app``'s middleware and function
    (default: the ``faktory.register``/``faktory.task`` registry) and return the outcome.

    The payload is validated and round-tripped through JSON as a push would; a job
    function's exception is in ``outcome.error``, never raised."""
    return await _execute_payload(_wire_payload(job), _app(app))


def execute(job: Job | dict[str, Any], *, app: _Registry | None = None) -> Outcome:
    """Blocking :func:`execute_async` (from a test function without an event loop)."""
    payload = _wire_payload(job)
    registry = _app(app)
    outcome: Outcome = _run_blocking(lambda: _execute_payload(payload, registry))
    return outcome


def _run_blocking(make: Callable[[], Any]) -> Any:
    """Run the coroutine ``make()`` builds to completion from synchronous code: on a new
    event loop here, or in a helper thread when this thread already runs a loop."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    box: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            box.append(asyncio.run(make()))
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="faktory-testing")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return box[0]


# ---------------------------------------------------------------------------------------
# fake mode: the recorded jobs


def _now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


class FakeJobs:
    """The jobs pushed under ``fake()``, in push order (thread-safe).

    ``jobs["queue"]`` is that queue's payloads (a list, oldest first; empty for an unknown
    queue), ``jobs.queues`` every non-empty queue, ``jobs.of_type("send_email")`` (or a
    task) the payloads of a jobtype, ``len(jobs)`` and ``iter(jobs)`` all of them.
    Payloads are what a worker would receive (JSON round-tripped, with ``enqueued_at``).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: list[dict[str, Any]] = []

    def _record(self, payloads: Sequence[dict[str, Any]]) -> None:
        stamp = _now_rfc3339()
        decoded = []
        for payload in payloads:
            job: dict[str, Any] = json.loads(json.dumps(payload))
            job.setdefault("created_at", stamp)
            job["enqueued_at"] = stamp
            decoded.append(job)
        with self._lock:
            self._jobs.extend(decoded)

    def _pop(self, queues: Sequence[str]) -> dict[str, Any] | None:
        with self._lock:
            for index, job in enumerate(self._jobs):
                if not queues or job.get("queue", "default") in queues:
                    return self._jobs.pop(index)
        return None

    def __getitem__(self, queue: str) -> list[dict[str, Any]]:
        with self._lock:
            return [job for job in self._jobs if job.get("queue", "default") == queue]

    @property
    def queues(self) -> dict[str, list[dict[str, Any]]]:
        """``{queue: [payload, ...]}`` for every queue holding jobs."""
        result: dict[str, list[dict[str, Any]]] = {}
        with self._lock:
            for job in self._jobs:
                result.setdefault(job.get("queue", "default"), []).append(job)
        return result

    def of_type(self, jobtype: str | Any) -> list[dict[str, Any]]:
        """The payloads of one jobtype (a name, or a task object), oldest first."""
        name = jobtype if isinstance(jobtype, str) else getattr(jobtype, "name", jobtype)
        with self._lock:
            return [job for job in self._jobs if job.get("jobtype") == name]

    def clear(self) -> None:
        """Forget every recorded job."""
        with self._lock:
            self._jobs.clear()

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            return iter(list(self._jobs))

    def __repr__(self) -> str:
        return f"<FakeJobs {({q: len(js) for q, js in self.queues.items()})!r}>"


#: The jobs recorded by ``fake()`` (cleared when a ``fake()`` begins).
jobs = FakeJobs()


class _FakeMode:
    def __init__(self, recorded: FakeJobs) -> None:
        self.jobs = recorded

    def push(self, payloads: Sequence[dict[str, Any]]) -> None:
        self.jobs._record(payloads)

    async def apush(self, payloads: Sequence[dict[str, Any]]) -> None:
        self.jobs._record(payloads)


class _InlineMode:
    def __init__(self, app: _Registry | None) -> None:
        self.app = app
        #: Every job run, in order.
        self.outcomes: list[Outcome] = []

    async def apush(self, payloads: Sequence[dict[str, Any]]) -> None:
        app = _app(self.app)
        for payload in payloads:
            outcome = await _execute_payload(_wire_payload(payload), app)
            self.outcomes.append(outcome)
            outcome.raise_error()

    def push(self, payloads: Sequence[dict[str, Any]]) -> None:
        _run_blocking(lambda: self.apush(payloads))


@contextlib.contextmanager
def _mode(mode: Any) -> Iterator[None]:
    previous = _testmode.current
    _testmode.current = mode
    try:
        yield
    finally:
        _testmode.current = previous


@contextlib.contextmanager
def fake() -> Iterator[FakeJobs]:
    """Record pushes in memory instead of sending them; yields :data:`jobs` (cleared
    first).  The previous mode (normally: sending) comes back when the block ends."""
    jobs.clear()
    with _mode(_FakeMode(jobs)):
        yield jobs


@contextlib.contextmanager
def inline(app: _Registry | None = None) -> Iterator[list[Outcome]]:
    """Run each pushed job at once, through ``app``'s middleware and function (default:
    the ``faktory.register``/``faktory.task`` registry); the push raises the job's
    exception.  Yields the list of outcomes, growing as jobs run."""
    mode = _InlineMode(app)
    with _mode(mode):
        yield mode.outcomes


async def drain_async(*queues: str, app: _Registry | None = None,
                      raise_errors: bool = True) -> list[Outcome]:
    """Run the jobs recorded by ``fake()`` (of ``queues``, default all), oldest first,
    through ``app``'s middleware and functions, until none is left, jobs pushed by jobs
    included.  A failing job is removed and, with ``raise_errors`` (the default), its
    exception raised (the jobs after it stay recorded); else its outcome is returned with
    the others."""
    registry = _app(app)
    outcomes: list[Outcome] = []
    while True:
        payload = jobs._pop(queues)
        if payload is None:
            return outcomes
        outcome = await _execute_payload(payload, registry)
        outcomes.append(outcome)
        if raise_errors:
            outcome.raise_error()


def drain(*queues: str, app: _Registry | None = None, raise_errors: bool = True) -> list[Outcome]:
    """Blocking :func:`drain_async`: from a test function without an event loop."""
    result: list[Outcome] = _run_blocking(lambda: drain_async(*queues, app=app, raise_errors=raise_errors))
    return result


# ---------------------------------------------------------------------------------------
# the real server


def flush_url(url: str, timeout: float = 10.0) -> None:
    """Connect to the Faktory at ``url`` (``tcp://[:password@]host:port``, or ``tcp+tls``),
    FLUSH it and disconnect (blocking; used before each test against a real server)."""
    import hashlib
    import socket
    import ssl

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
        hello: dict[str, Any] = {"v": 2}
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


# ---------------------------------------------------------------------------------------
# the pytest plugin (fixtures only: nothing runs at collection time; every import that
# costs is inside a fixture or a function, see the module docstring)

if pytest is not None:

    @pytest.fixture
    def faktory_fake() -> Iterator[FakeJobs]:
        """Fake mode for the test (see ``fake()``): yields the recorded jobs."""
        with fake() as recorded:
            yield recorded

    @pytest.fixture
    def faktory_inline() -> Iterator[list[Outcome]]:
        """Inline mode for the test (see ``inline()``): yields the outcomes of the jobs run."""
        with inline() as outcomes:
            yield outcomes

    @pytest.fixture
    def faktory_server() -> Iterator[ServerThread]:
        """An embedded server in a thread (in memory, free port), stopped after the test."""
        if os.environ.get(ENV):
            pytest.skip(f"{ENV} is set: this test needs the embedded server's internals")
        from faktory.server import ServerThread

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
        from faktory.server import ServerThread

        with ServerThread() as st:
            yield st.url
