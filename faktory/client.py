"""``Client``: the producer/consumer API over a pool of pipelined ``Connection``\\ s.

The pool underneath (which connection a command takes, how long a call waits while the
server is down, which commands are sent again after a dropped connection) is
``faktory.pool``; this module is what the commands mean.
"""
from __future__ import annotations

import asyncio
import logging
import ssl as _ssl
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Iterable

from faktory import _testmode, commands, protocol
from faktory.commands import MAX_BACKTRACE, format_backtrace, parse_beat
from faktory._checks import client_target
from faktory.bulk import BulkState, Chunk, pack_chunk, record_reply, take_chunk, too_big
from faktory.errors import FaktoryConnectionError, FaktoryError, NotSentError, ServerError
from faktory.job import Job, check_json, validate_queue
from faktory.pool import Pool
from faktory.url import DEFAULT_URL, parse_url

if TYPE_CHECKING:  # pragma: no cover
    from faktory.mutation import Mutation

__all__ = ["Client", "parse_url", "parse_beat", "format_backtrace", "DEFAULT_URL",  # parse_url, DEFAULT_URL: from faktory.url
           "DEFAULT_BEFORE_PUSH", "BeforePush"]

log = logging.getLogger("faktory.client")

FETCH_BLOCK = 2.0  # seconds the server blocks a FETCH on empty queues
#: The longest command line sent (the embedded server's limit, and a sane one for any
#: server: a job that big belongs in storage, with a reference in the job).
MAX_COMMAND_BYTES = 16 * 1024 * 1024
_FETCH_CACHE_MAX = 256
_loads = commands.loads

#: A producer hook: ``hook(payload)`` gets each job's payload dict just before it is
#: encoded by ``push``/``push_bulk`` and may change it (e.g. add keys to ``custom``:
#: assign a new dict rather than changing the caller's ``custom`` in place).  An
#: exception it raises propagates to the caller and the job is not sent.
BeforePush = Callable[[dict[str, Any]], Any]
#: Hooks every new ``Client`` starts with (``Client(before_push=None)``): integrations
#: such as ``faktory.contrib.tracing.instrument()`` append theirs here.
DEFAULT_BEFORE_PUSH: list[BeforePush] = []


class Client(Pool):
    """A Faktory client: a lazily-filled pool of up to ``pool_size`` pipelined connections.

    ``url``: ``tcp://[:password@]host[:port]`` or ``tcp+tls://...`` (TLS with
    certificate verification).  Without one, the URL comes from the environment
    variable named by ``FAKTORY_PROVIDER`` (default ``FAKTORY_URL``), else
    ``tcp://127.0.0.1:7419``.  ``host``, ``port``, ``password`` and ``tls`` given
    explicitly override the URL; ``tls`` may be ``True`` (default verifying context),
    ``False`` or an ``ssl.SSLContext``.

    ``wid`` (with ``labels``, ``hostname``, ``pid``) makes every connection HELLO as
    that worker.  ``command_timeout`` bounds each command (FETCH gets 2 s more for the
    server's blocking wait); ``None`` disables it.  ``connect_timeout`` bounds each
    connection attempt (TCP, TLS, HI and HELLO); ``reconnect_timeout`` is the longest
    any one call waits for a connection while the server is down (the waiting calls
    share one series of attempts, with capped backoff).
    ``before_push`` is a list of producer hooks (see ``BeforePush``) applied to every
    job payload that ``push``/``push_bulk`` send; default: a copy of ``DEFAULT_BEFORE_PUSH``.

    How commands use the pool: see ``faktory.pool.Pool``.  In short, commands the server
    answers at once are pipelined on shared connections (those issued in one event-loop
    iteration leave in one write per connection, at most ``pipeline_depth`` outstanding on
    a connection, fewer when the client is busy, so that it keeps three batches in
    flight); FETCH takes a connection to itself.

    Safe for many concurrent tasks on one event loop.  See the module docstring for
    which commands are retried after a transport fault.
    """

    def __init__(self, url: str | None = None, *, host: str | None = None, port: int | None = None,
                 password: str | None = None, wid: str | None = None, labels: Iterable[str] = (),
                 pool_size: int = 10, tls: bool | _ssl.SSLContext | None = None,
                 connect_timeout: float = 5.0, command_timeout: float | None = 10.0,
                 hostname: str | None = None, pid: int | None = None,
                 codec: ModuleType | None = None, reconnect_timeout: float = 30.0,
                 pipeline_depth: int = 8, first_connect_timeout: float = 3.0,
                 max_command_bytes: int | None = MAX_COMMAND_BYTES, _codec: ModuleType | None = None,
                 before_push: Iterable[BeforePush] | None = None) -> None:
        target = client_target(
            url, host=host, port=port, password=password, tls=tls, wid=wid,
            connect_timeout=connect_timeout, command_timeout=command_timeout,
            reconnect_timeout=reconnect_timeout, first_connect_timeout=first_connect_timeout,
            max_command_bytes=max_command_bytes, hostname=hostname, pid=pid, labels=labels)
        self.host: str = target.host
        self.port: int = target.port
        self.password: str | None = target.password
        self.ssl: _ssl.SSLContext | None = target.ssl
        self.wid = wid
        self.max_command_bytes = max_command_bytes
        self.labels: list[str] = target.labels
        self.hostname = hostname
        self.pid = pid
        if codec is not None:  # deprecated; _codec is the worker's, for its own clients
            _codec = protocol.deprecated_codec_argument(codec, "Client")
        super().__init__(self.host, self.port, password=self.password, ssl=self.ssl, pool_size=pool_size,
                         pipeline_depth=pipeline_depth, connect_timeout=connect_timeout,
                         command_timeout=command_timeout, reconnect_timeout=reconnect_timeout,
                         codec=_codec or protocol.codec, first_connect_timeout=first_connect_timeout)
        self._pack_ack = self.codec.pack_ack
        self._pack_push = self.codec.pack_push
        self._pack_json = self.codec.pack_json
        self._fetch_cache: dict[tuple[str, ...], bytes] = {}
        self.before_push: list[BeforePush] = list(DEFAULT_BEFORE_PUSH if before_push is None else before_push)

    # -- identity ----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The server URL, without the password."""
        return f"{'tcp+tls' if self.ssl else 'tcp'}://{self.address}"

    def __repr__(self) -> str:
        return f"<Client {self.url} pool {self._size}/{self.pool_size}{' wid=' + self.wid if self.wid else ''}>"

    def _hello(self) -> dict[str, Any]:
        return commands.hello_fields(self.hostname, self.wid, self.pid, self.labels)

    def _orphaned_fetch(self, reply: Any) -> None:
        # The caller of a FETCH stopped waiting before its job arrived: give the job back.
        if isinstance(reply, bytes) and not self._closed:
            self._spawn(self._hand_back(reply))
        elif isinstance(reply, bytes):
            log.warning("a FETCH was cancelled while the client closed: job %.200r stays reserved "
                        "until its reservation expires", reply)

    async def _hand_back(self, reply: bytes) -> None:
        """Return a FETCHed job nobody will run: PUSH it again (same payload and jid), then
        ACK the reservation, so it is fetched again at once instead of waiting out its
        reservation.  A fault between the two leaves a duplicate, never a loss."""
        job = _loads(reply)
        jid = job.get("jid")
        try:
            await self._call(self._pack_push(job))
            await self._call(self._pack_ack(jid))
        except FaktoryError as exc:
            log.warning("could not hand back job %s after its FETCH was cancelled (%s); the server "
                        "requeues it when its reservation expires", jid, exc)
            return
        log.info("FETCH cancelled: job %s (%s) pushed back to queue %r", jid, job.get("jobtype"),
                 job.get("queue"))

    async def send(self, verb: str, *args: str) -> Any:
        """Send a raw command ``VERB arg...`` and return the raw reply (``str``, ``bytes``
        or ``None``); a server error is raised.  Arguments must not contain spaces.
        Resent on another connection only when it was never written.  A raw ``FETCH``
        takes a connection of its own, like ``fetch()``."""
        data = self.codec.pack_command(verb, *args)
        if verb == "FETCH":
            timeout = self.command_timeout
            return await self._exclusive(data, None if timeout is None else timeout + FETCH_BLOCK,
                                         self._orphaned_fetch, resend=False)
        return await self._call(data, resend=False)

    def job(self, jobtype: str, *args: Any, **options: Any) -> Job:
        """A ``Job`` bound to this client (``await client.job("Email", 1).push()``);
        ``options`` are ``Job``'s keyword arguments (queue, retry, at, ...)."""
        return Job(jobtype, *args, client=self, **options)

    def _payload(self, job: Job | dict[str, Any]) -> dict[str, Any]:
        return commands.job_payload(job)

    async def push(self, job: Job | dict[str, Any]) -> str:
        """Enqueue one job (a ``Job`` or a payload dict, validated like a ``Job``); return its jid.

        Bad fields (and arguments that are not JSON-serialisable) raise ``TypeError`` or
        ``ValueError`` before anything is sent.  A PUSH written when the connection
        dropped is sent again, so a rare duplicate is possible (see the module docstring).
        """
        payload = job._d if type(job) is Job else self._payload(job)
        if self.before_push:
            for hook in self.before_push:
                hook(payload)
        try:
            data = self._pack_push(payload)
        except (TypeError, ValueError, OverflowError):
            check_json(payload, self.codec.dumps)
            raise
        limit = self.max_command_bytes
        if limit is not None and len(data) > limit:
            raise ValueError(too_big(payload, len(data), limit))
        if _testmode.current is not None:  # faktory.testing.fake()/inline(): nothing is sent
            await _testmode.current.apush((payload,))
            return str(payload["jid"])
        # The common case inline (a shared connection takes it now, the server says OK);
        # anything else is _call's: waiting for a connection, retries, errors.
        conn = self._current  # _pick's first case, inline: the connection collecting this batch
        if conn is None or not conn._out or len(conn._waiters) >= self._limit or conn.closed:
            conn = None if self._closed else self._pick()
        elif self._closed:
            conn = None
        if conn is None or conn._paused:
            await self._call(data)
        else:
            try:
                fut = conn.send(data)
                if len(conn._waiters) == self._limit > 1:
                    conn.flush()  # a full batch leaves now (see Pool._pick)
                reply = await fut
            except FaktoryConnectionError as exc:
                await self._call(data, first_error=exc)
            else:
                if type(reply) is not str and isinstance(reply, ServerError):
                    raise reply
        jid = payload["jid"]
        return jid if type(jid) is str else str(jid)

    async def push_bulk(self, jobs: Iterable[Job | dict[str, Any]], *, chunk_size: int = 1000,
                        concurrency: int | None = None) -> dict[str | int, tuple[str, dict[str, Any]]]:
        """Enqueue many jobs with PUSHB; return ``{key: (reason, payload)}`` for every job
        that was *not* enqueued (``{}`` when all were).

        ``key`` is the job's jid; a job without a usable jid (not a dict, a jid that is
        not a str) or whose jid is already a key of the result is keyed by its index in
        ``jobs`` (an ``int``, so it cannot collide with a jid).

        ``jobs`` may be any iterable, a generator included: it is consumed in chunks of
        ``chunk_size`` jobs, each encoded once into one PUSHB line, with up to
        ``concurrency`` chunks (default ``min(pool_size, 4)``) in flight at once over
        pooled connections, so memory stays bounded by the chunks in flight.

        Rejections come from the server (e.g. a dict without ``jobtype``) or from the
        client: a dict that fails ``Job`` validation or a job whose arguments are not
        JSON-serialisable is left out of its chunk and reported here with the error
        text, so one bad job never stops the others.  A chunk is resent once after a
        dropped connection (duplicates possible, see the module docstring).  If a chunk
        fails for good, no more of ``jobs`` is consumed, the chunks already sent are
        waited for, and ``BulkPushError`` is raised: it carries the rejections so far and
        how many jobs were certainly enqueued, certainly not, and unknown (with their jids).
        """
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
        if concurrency is None:
            concurrency = min(self.pool_size, 4)
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        loop = asyncio.get_running_loop()
        state = BulkState()
        in_flight: set[asyncio.Task[None]] = set()
        it = enumerate(jobs)
        try:
            while state.error is None:
                chunk, exhausted = take_chunk(it, chunk_size, state, self._payload)
                for hook in self.before_push:
                    for _, payload in chunk:
                        hook(payload)
                for part, data in pack_chunk(chunk, state, self.codec, self.max_command_bytes):
                    while len(in_flight) >= concurrency:
                        _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    if state.error is not None:
                        state.not_enqueued += len(part)
                        continue
                    in_flight.add(loop.create_task(self._push_chunk(data, part, state)))
                if exhausted:
                    break
            if in_flight:
                await asyncio.wait(in_flight)
        except BaseException:
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            raise
        state.raise_if_failed(self.address)
        return state.rejected

    async def _push_chunk(self, data: bytes, chunk: Chunk, state: BulkState) -> None:
        if _testmode.current is not None:  # faktory.testing.fake()/inline(): nothing is sent
            await _testmode.current.apush([payload for _, payload in chunk])
            state.enqueued += len(chunk)
            return
        try:
            reply = await self._call(data, heavy=True)
        except asyncio.CancelledError:
            state.unsure(chunk)
            raise
        except NotSentError as exc:
            state.not_sent(chunk, exc)
            return
        except Exception as exc:
            state.unsure(chunk, exc)
            return
        record_reply(reply, chunk, state)

    # -- consuming ---------------------------------------------------------------------
    async def fetch(self, *queues: str) -> dict[str, Any] | None:
        """FETCH a job from the first non-empty queue, in the order given (at least one
        queue, names checked before sending); ``None`` when none arrived within the
        server's 2 s wait.  Resent once after a dropped connection.

        The FETCH has a connection to itself while the server holds it.  If the caller
        is cancelled (or its ``wait_for`` times out) before the job arrives, the job is
        not lost with the reply: it is pushed back to its queue and its reservation
        ACKed, so another worker gets it at once."""
        data = self._fetch_cache.get(queues)
        if data is None:
            if not queues:
                raise ValueError("fetch needs at least one queue name")
            for queue in queues:
                validate_queue(queue)
            data = self.codec.pack_fetch(queues)
            if len(self._fetch_cache) < _FETCH_CACHE_MAX:
                self._fetch_cache[queues] = data
        timeout = self.command_timeout
        reply = await self._exclusive(data, None if timeout is None else timeout + FETCH_BLOCK,
                                      self._orphaned_fetch)
        if reply is None:
            return None
        job: dict[str, Any] = _loads(reply)
        return job

    async def ack(self, jid: str) -> None:
        """Acknowledge a fetched job (the server answers OK even for unknown jids)."""
        await self._call(self._pack_ack(jid))

    async def fail(self, jid: str, exc: BaseException | None = None, *, errtype: str | None = None,
                   message: str | None = None, backtrace: list[str] | None = None,
                   backtrace_limit: int = MAX_BACKTRACE) -> None:
        """Report a fetched job as failed.

        From ``exc``: ``errtype`` = the exception class name, ``message`` = ``str(exc)``,
        ``backtrace`` = its traceback (innermost frame first); explicit values win.
        At most ``backtrace_limit`` lines (clamped to 0..50, what the server keeps).
        ``JobNotFoundError`` when the server does not hold the job (final: do not retry).
        """
        await self._call(self._fail_command(jid, exc, errtype=errtype, message=message, backtrace=backtrace,
                                            backtrace_limit=backtrace_limit))

    def _fail_command(self, jid: str, exc: BaseException | None = None, *, errtype: str | None = None,
                      message: str | None = None, backtrace: list[str] | None = None,
                      backtrace_limit: int = MAX_BACKTRACE) -> bytes:
        """The packed FAIL command of ``fail()`` (the worker sends it on its hot path)."""
        payload = commands.fail_payload(jid, exc, errtype=errtype, message=message, backtrace=backtrace,
                                        backtrace_limit=backtrace_limit)
        data: bytes = self._pack_json("FAIL", payload)
        return data

    async def beat(self, current_state: str | None = None, rss_kb: int | None = None) -> str:
        """Heartbeat for this client's ``wid``; returns ``"OK"``, ``"quiet"`` or ``"terminate"``.

        ``current_state`` (``"quiet"``/``"terminate"``) tells the server the worker's own
        state; ``rss_kb`` its memory use.  ``UnknownWorkerError`` when the server forgot
        the worker (reconnect with HELLO)."""
        payload = commands.beat_payload(self.wid, current_state, rss_kb)
        return parse_beat(await self._call(self._pack_json("BEAT", payload)))

    # -- administration ----------------------------------------------------------------
    async def info(self) -> dict[str, Any]:
        """The server's INFO document (queues, sets, counters, server details)."""
        info: dict[str, Any] = _loads(await self._call(b"INFO\r\n"))
        return info

    async def flush(self) -> None:
        """Delete every queue, set and counter on the server."""
        await self._call(b"FLUSH\r\n")

    def _queue_args(self, queues: tuple[str, ...], wildcard: bool) -> tuple[str, ...]:
        return commands.queue_args(queues, wildcard)

    async def queue_pause(self, *queues: str) -> None:
        """Pause queues (``"*"`` = every known queue): FETCH skips them."""
        await self._call(self.codec.pack_command("QUEUE", "PAUSE", *self._queue_args(queues, True)))

    async def queue_resume(self, *queues: str) -> None:
        """Resume paused queues (``"*"`` = all)."""
        await self._call(self.codec.pack_command("QUEUE", "RESUME", *self._queue_args(queues, True)))

    async def queue_remove(self, *queues: str) -> None:
        """Delete queues and every job in them (``"*"`` = all)."""
        await self._call(self.codec.pack_command("QUEUE", "REMOVE", *self._queue_args(queues, True)))

    async def queue_latency(self, *queues: str) -> dict[str, float]:
        """Seconds since the oldest job of each queue was enqueued (0 for empty or unknown
        queues).  No wildcard."""
        reply = await self._call(self.codec.pack_command("QUEUE", "LATENCY", *self._queue_args(queues, False)))
        return {name: float(value) for name, value in _loads(reply).items()}

    @property
    def retries(self) -> Mutation:
        """The retry set, for MUTATE operations (``await client.retries.of_type("X").kill()``)."""
        from faktory.mutation import Mutation
        return Mutation(self, "retries")

    @property
    def scheduled(self) -> Mutation:
        """The scheduled set, for MUTATE operations."""
        from faktory.mutation import Mutation
        return Mutation(self, "scheduled")

    @property
    def dead(self) -> Mutation:
        """The dead set, for MUTATE operations."""
        from faktory.mutation import Mutation
        return Mutation(self, "dead")
