"""Worker metrics: a middleware that measures every job, and hooks that export it.

``Metrics(*hooks)`` is a worker middleware (``worker.use(Metrics(hook))``, outermost
first so that it times the whole chain).  For each job it builds a :class:`JobMetric`
(jobtype, queue, jid, outcome ``"ok"``/``"failed"``, seconds running, seconds spent
queued since the server's ``enqueued_at``) and hands it to every hook's ``job()``.
:class:`QueueStats` polls the server's ``INFO`` and ``QUEUE LATENCY`` and hands a
:class:`QueueSnapshot` (queue sizes, latencies, set sizes) to every hook's ``queues()``.

The hook is the extension point for other systems (StatsD, Datadog, logs...)::

    class StatsdHook(MetricsHook):
        def job(self, m: JobMetric) -> None:
            statsd.timing(f"jobs.{m.jobtype}.{m.outcome}", m.duration * 1000)
        def queues(self, snapshot: QueueSnapshot) -> None:
            for name, size in snapshot.sizes.items():
                statsd.gauge(f"queue.{name}.size", size)

Hooks run in the worker's event loop: keep them fast and non-blocking; an exception a
hook raises is logged and never fails the job.

:class:`PrometheusMetrics` is the bundled hook (needs ``prometheus-client``: extra
``metrics``); ``faktory worker --metrics PORT`` serves it on 127.0.0.1:PORT
(``--metrics-bind`` for another address).  Its series:

==========================================  ====================================================
``faktory_jobs_processed_total``            counter {jobtype, queue}: jobs run (ok or failed)
``faktory_jobs_failed_total``               counter {jobtype, queue}: jobs that failed
``faktory_job_duration_seconds``            histogram {jobtype, queue}: time running
``faktory_job_queued_seconds``              histogram {jobtype, queue}: ``enqueued_at`` to start
``faktory_jobs_in_progress``                gauge {jobtype, queue}: jobs running now
``faktory_queue_size``                      gauge {queue}: jobs waiting (``INFO``)
``faktory_queue_latency_seconds``           gauge {queue}: age of the oldest job (``QUEUE LATENCY``)
``faktory_set_size``                        gauge {set}: scheduled, retries, dead, working
==========================================  ====================================================
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

from faktory._extras import require

if TYPE_CHECKING:  # pragma: no cover
    from faktory.client import Client
    from faktory.middleware import JobContext

__all__ = ["Metrics", "MetricsHook", "JobMetric", "QueueSnapshot", "QueueStats",
           "PrometheusMetrics", "PrometheusServer", "serve_prometheus", "parse_time", "install",
           "WorkerExport"]

log = logging.getLogger("faktory.metrics")

_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})")


def parse_time(text: Any) -> float | None:
    """An RFC 3339 timestamp (as Faktory writes ``enqueued_at``: nanoseconds, ``Z``) as
    epoch seconds; ``None`` for anything else."""
    if not isinstance(text, str):
        return None
    match = _TIME_RE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    try:
        epoch = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None
    fraction = match.group(7)
    if fraction:
        epoch += int(fraction) / 10 ** len(fraction)
    zone = match.group(8)
    if zone != "Z":
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        epoch -= offset if zone[0] == "+" else -offset
    return epoch


@dataclass(frozen=True)
class JobMetric:
    """One job's measurements, handed to ``MetricsHook.job``."""

    jobtype: str
    queue: str
    jid: str
    #: ``"ok"`` (the job returned: it is ACKed) or ``"failed"`` (it raised or was
    #: cancelled: it is FAILed).
    outcome: str
    #: Seconds from entering the middleware to the job's end.
    duration: float
    #: Seconds from the server's ``enqueued_at`` to the job's start (``None`` when the job
    #: has no usable ``enqueued_at``); clamped at 0 against clock skew.
    queued: float | None
    error: BaseException | None = None


@dataclass(frozen=True)
class QueueSnapshot:
    """The server's queues at one moment, handed to ``MetricsHook.queues``."""

    sizes: dict[str, int]
    latencies: dict[str, float]
    sets: dict[str, int] = field(default_factory=dict)
    at: float = 0.0


class MetricsHook:
    """Base class of metrics hooks: override ``job`` and/or ``queues``; ``started`` is
    called when a job starts (for in-progress gauges)."""

    def started(self, jobtype: str, queue: str) -> None:
        """A job starts running."""

    def job(self, metric: JobMetric) -> None:
        """A job has finished (``metric.outcome`` says how)."""

    def queues(self, snapshot: QueueSnapshot) -> None:
        """A new queue snapshot from :class:`QueueStats`."""


def _call_hook(method: Callable[..., Any], *args: Any) -> None:
    try:
        method(*args)
    except Exception:
        log.exception("metrics hook %r failed", method)


class Metrics:
    """The worker middleware: ``worker.use(Metrics(PrometheusMetrics()))``.

    ``hooks`` are :class:`MetricsHook` objects (anything with ``job``/``queues``/
    ``started`` methods; missing ones are skipped).  ``clock`` gives epoch seconds
    (``time.time``) for the queued time; durations use ``time.perf_counter``.
    """

    def __init__(self, *hooks: Any, clock: Callable[[], float] = time.time) -> None:
        self.hooks: list[Any] = list(hooks)
        self.clock = clock

    def add(self, hook: Any) -> Any:
        """Add a hook; returns it."""
        self.hooks.append(hook)
        return hook

    async def __call__(self, ctx: JobContext, next: Callable[[], Awaitable[Any]]) -> Any:
        jobtype, queue = ctx.jobtype, ctx.queue
        enqueued = parse_time(ctx.job.get("enqueued_at"))
        queued = max(0.0, self.clock() - enqueued) if enqueued is not None else None
        for hook in self.hooks:
            started = getattr(hook, "started", None)
            if started is not None:
                _call_hook(started, jobtype, queue)
        t0 = time.perf_counter()
        error: BaseException | None = None
        try:
            return await next()
        except BaseException as exc:
            error = exc
            raise
        finally:
            metric = JobMetric(jobtype, queue, ctx.jid, "ok" if error is None else "failed",
                               time.perf_counter() - t0, queued, error)
            for hook in self.hooks:
                method = getattr(hook, "job", None)
                if method is not None:
                    _call_hook(method, metric)

    def publish_queues(self, snapshot: QueueSnapshot) -> None:
        """Hand ``snapshot`` to every hook's ``queues()`` (what :class:`QueueStats` calls)."""
        for hook in self.hooks:
            method = getattr(hook, "queues", None)
            if method is not None:
                _call_hook(method, snapshot)


class QueueStats:
    """Poll queue sizes (``INFO``) and latencies (``QUEUE LATENCY``) every ``interval``
    seconds and publish them to ``hooks`` (or a :class:`Metrics`' hooks).

    ``await stats.collect()`` takes one snapshot; ``await stats.run()`` polls until
    cancelled (errors are logged and retried at the next interval)."""

    def __init__(self, client: Client, *hooks: Any, interval: float = 15.0) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval!r}")
        self.client = client
        self.hooks = list(hooks)
        self.interval = float(interval)

    async def collect(self) -> QueueSnapshot:
        info = await self.client.info()
        faktory = info.get("faktory") or {}
        sizes = {str(k): int(v) for k, v in (faktory.get("queues") or {}).items()}
        latencies = await self.client.queue_latency(*sizes) if sizes else {}
        sets = {str(k): int(v) for k, v in (faktory.get("sets") or {}).items()}
        snapshot = QueueSnapshot(sizes, latencies, sets, time.time())
        for hook in self.hooks:
            if isinstance(hook, Metrics):
                hook.publish_queues(snapshot)
            else:
                method = getattr(hook, "queues", None)
                if method is not None:
                    _call_hook(method, snapshot)
        return snapshot

    async def run(self) -> None:
        while True:
            try:
                await self.collect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("queue stats: %s", exc or type(exc).__name__)
            await asyncio.sleep(self.interval)


_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                     60.0, 300.0, 900.0, 3600.0)
_QUEUED_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
                   86400.0)


class PrometheusMetrics(MetricsHook):
    """A :class:`MetricsHook` keeping Prometheus series (see the module docstring) in
    ``registry`` (default: prometheus_client's global ``REGISTRY``).  Needs the
    ``metrics`` extra (``pip install 'faktory-turbo[metrics]'``)."""

    def __init__(self, registry: Any = None, namespace: str = "faktory",
                 duration_buckets: Iterable[float] = _DURATION_BUCKETS,
                 queued_buckets: Iterable[float] = _QUEUED_BUCKETS) -> None:
        prom = require("prometheus_client", "metrics", "faktory.contrib.metrics.PrometheusMetrics")
        if registry is None:
            registry = prom.REGISTRY
        self.registry = registry
        labels = ("jobtype", "queue")
        kw = dict(namespace=namespace, registry=registry)
        self.processed = prom.Counter("jobs_processed", "Jobs run (succeeded or failed)", labels, **kw)
        self.failed = prom.Counter("jobs_failed", "Jobs that failed", labels, **kw)
        self.duration = prom.Histogram("job_duration_seconds", "Time spent running a job", labels,
                                       buckets=tuple(duration_buckets), **kw)
        self.queued = prom.Histogram("job_queued_seconds", "Time from enqueued_at to the job's start",
                                     labels, buckets=tuple(queued_buckets), **kw)
        self.in_progress = prom.Gauge("jobs_in_progress", "Jobs running now", labels, **kw)
        self.queue_size = prom.Gauge("queue_size", "Jobs waiting in a queue", ("queue",), **kw)
        self.queue_latency = prom.Gauge("queue_latency_seconds", "Age of the oldest job in a queue",
                                        ("queue",), **kw)
        self.set_size = prom.Gauge("set_size", "Jobs in a set (scheduled, retries, dead, working)",
                                   ("set",), **kw)
        self._known_queues: set[str] = set()

    def started(self, jobtype: str, queue: str) -> None:
        self.in_progress.labels(jobtype, queue).inc()

    def job(self, metric: JobMetric) -> None:
        labels = (metric.jobtype, metric.queue)
        self.in_progress.labels(*labels).dec()
        self.processed.labels(*labels).inc()
        if metric.outcome != "ok":
            self.failed.labels(*labels).inc()
        self.duration.labels(*labels).observe(metric.duration)
        if metric.queued is not None:
            self.queued.labels(*labels).observe(metric.queued)

    def queues(self, snapshot: QueueSnapshot) -> None:
        for name in self._known_queues - snapshot.sizes.keys():  # removed queues
            for gauge in (self.queue_size, self.queue_latency):
                try:
                    gauge.remove(name)
                except KeyError:
                    pass
        self._known_queues = set(snapshot.sizes)
        for name, size in snapshot.sizes.items():
            self.queue_size.labels(name).set(size)
            self.queue_latency.labels(name).set(snapshot.latencies.get(name, 0.0))
        for name, size in snapshot.sets.items():
            self.set_size.labels(name).set(size)


class PrometheusServer:
    """The HTTP exporter started by :func:`serve_prometheus`; ``close()`` stops it."""

    def __init__(self, httpd: Any, thread: Any) -> None:
        self.httpd = httpd
        self.thread = thread
        self.host, self.port = httpd.server_address[:2]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def serve_prometheus(port: int, addr: str = "127.0.0.1", registry: Any = None) -> PrometheusServer:
    """Serve ``registry`` (default: the global one) at ``http://addr:port/metrics`` from
    a daemon thread (port 0: a free port, see ``.port``)."""
    prom = require("prometheus_client", "metrics", "the Prometheus exporter (--metrics)")
    httpd, thread = prom.start_http_server(port, addr=addr, registry=registry or prom.REGISTRY)
    return PrometheusServer(httpd, thread)


class WorkerExport:
    """What :func:`install` set up: the middleware, the Prometheus hook, the HTTP
    exporter and the queue poller (``await export.poll()`` until cancelled)."""

    def __init__(self, worker: Any, middleware: Metrics, prometheus: PrometheusMetrics,
                 server: PrometheusServer, interval: float) -> None:
        self.worker = worker
        self.middleware = middleware
        self.prometheus = prometheus
        self.server = server
        self.interval = interval

    async def poll(self) -> None:
        """Poll queue sizes and latencies every ``interval`` seconds until cancelled."""
        from faktory.client import Client

        # not connected up front: each poll connects when needed, so a server that is
        # down now is polled again at the next interval
        client = Client(self.worker.url, password=self.worker.password, tls=self.worker.tls,
                        pool_size=1, reconnect_timeout=min(self.interval, 30.0))
        try:
            await QueueStats(client, self.middleware, interval=self.interval).run()
        finally:
            await client.close()

    def close(self) -> None:
        self.server.close()


def install(worker: Any, port: int, addr: str = "127.0.0.1", *, registry: Any = None,
            interval: float = 15.0) -> WorkerExport:
    """Measure ``worker``'s jobs (a :class:`Metrics` middleware, put first) into a
    :class:`PrometheusMetrics` and serve them at ``http://addr:port/metrics``; what
    ``faktory worker --metrics PORT`` does.  Queue sizes and latencies come from
    ``poll()`` of the returned :class:`WorkerExport`.  Call before ``worker.work()``."""
    prometheus = PrometheusMetrics(registry)
    middleware = Metrics(prometheus)
    worker.middleware.insert(0, middleware)
    server = serve_prometheus(port, addr, prometheus.registry)
    return WorkerExport(worker, middleware, prometheus, server, interval)
