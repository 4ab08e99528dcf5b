"""faktory.contrib.metrics: the middleware's measurements, the hook, queue stats from
INFO/QUEUE LATENCY, and the Prometheus endpoint's text after 100 jobs."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from faktory import Client, Job
from faktory.contrib.metrics import (
    JobMetric,
    Metrics,
    MetricsHook,
    PrometheusMetrics,
    QueueStats,
    parse_time,
    serve_prometheus,
)
from faktory.worker import Worker

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_parse_time_reads_faktory_timestamps():
    assert parse_time("2024-01-02T03:04:05Z") == 1704164645.0
    assert parse_time("2024-01-02T03:04:05.123456789Z") == pytest.approx(1704164645.123456789)
    assert parse_time("2024-01-02T05:04:05.5+02:00") == 1704164645.5
    for bad in (None, 5, "", "2024-01-02 03:04:05", "2024-13-02T03:04:05Z"):
        assert parse_time(bad) is None


class Collect(MetricsHook):
    def __init__(self, expected: int) -> None:
        self.metrics: list[JobMetric] = []
        self.started_count = 0
        self.done = asyncio.Event()
        self.expected = expected

    def started(self, jobtype, queue):
        self.started_count += 1

    def job(self, metric):
        self.metrics.append(metric)
        if len(self.metrics) == self.expected:
            self.done.set()


class Broken(MetricsHook):
    def job(self, metric):
        raise RuntimeError("a broken hook")


async def run_jobs(url: str, jobs: list[Job], *hooks) -> Worker:
    worker = Worker(url=url, concurrency=2, queues=["media", "default"])
    worker.use(Metrics(*hooks))

    @worker.register("resize")
    async def resize(n):
        return n

    @worker.register("boom")
    def boom(n):
        raise ValueError(f"bad {n}")

    async with Client(url) as client:
        assert await client.push_bulk(jobs) == {}
    task = asyncio.ensure_future(worker.work(handle_signals=False))
    try:
        await asyncio.wait_for(hooks[0].done.wait(), 25)
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 20)
    return worker


def hundred_jobs() -> list[Job]:
    # 93 successes in "media", 7 failures in "default" (retry 1: each waits in the retry set)
    return ([Job("resize", n, queue="media") for n in range(93)]
            + [Job("boom", n, retry=1) for n in range(7)])


async def test_middleware_measures_each_job_and_a_broken_hook_never_fails_one(faktory_url):
    collect = Collect(100)
    worker = await run_jobs(faktory_url, hundred_jobs(), collect, Broken())
    assert worker.processed == 93 and worker.failed == 7
    by_outcome: dict[tuple[str, str, str], int] = {}
    for m in collect.metrics:
        by_outcome[(m.jobtype, m.queue, m.outcome)] = by_outcome.get((m.jobtype, m.queue, m.outcome), 0) + 1
        assert m.duration >= 0 and m.queued is not None and m.queued >= 0
    assert by_outcome == {("resize", "media", "ok"): 93, ("boom", "default", "failed"): 7}
    assert collect.started_count == 100
    assert all(isinstance(m.error, ValueError) for m in collect.metrics if m.outcome == "failed")


async def test_prometheus_endpoint_text_after_100_jobs(faktory_url):
    registry = prometheus_client.CollectorRegistry()
    prom = PrometheusMetrics(registry)
    collect = Collect(100)
    server = serve_prometheus(0, registry=registry)
    try:
        await run_jobs(faktory_url, hundred_jobs(), collect, prom)
        async with Client(faktory_url) as client:
            await client.push_bulk([Job("later", n, queue="backlog") for n in range(5)])
            snapshot = await QueueStats(client, prom).collect()
        assert snapshot.sizes == {"backlog": 5, "default": 0, "media": 0}
        text = await asyncio.get_running_loop().run_in_executor(
            None, lambda: urllib.request.urlopen(server.url, timeout=10).read().decode())
    finally:
        server.close()
    got = samples(text)
    media = (("jobtype", "resize"), ("queue", "media"))
    default = (("jobtype", "boom"), ("queue", "default"))
    assert got[("faktory_jobs_processed_total", media)] == 93
    assert got[("faktory_jobs_processed_total", default)] == 7
    assert got[("faktory_jobs_failed_total", default)] == 7
    assert ("faktory_jobs_failed_total", media) not in got  # never failed: no series
    assert got[("faktory_job_duration_seconds_count", media)] == 93
    assert got[("faktory_job_duration_seconds_count", default)] == 7
    assert got[("faktory_job_queued_seconds_count", media)] == 93
    assert got[("faktory_jobs_in_progress", media)] == 0
    assert got[("faktory_queue_size", (("queue", "backlog"),))] == 5
    assert got[("faktory_queue_latency_seconds", (("queue", "backlog"),))] >= 0
    assert got[("faktory_set_size", (("set", "retries"),))] == 7
    assert 'faktory_jobs_processed_total{jobtype="resize",queue="media"} 93.0' in text


async def test_queue_gauges_drop_removed_queues(faktory_url):
    registry = prometheus_client.CollectorRegistry()
    prom = PrometheusMetrics(registry)
    async with Client(faktory_url) as client:
        await client.push(Job("x", queue="gone"))
        await QueueStats(client, prom).collect()
        assert registry.get_sample_value("faktory_queue_size", {"queue": "gone"}) == 1
        await client.queue_remove("gone")
        await QueueStats(client, prom).collect()
    assert registry.get_sample_value("faktory_queue_size", {"queue": "gone"}) is None


def test_faktory_worker_metrics_flag_serves_the_counts(faktory_url, tmp_path):
    (tmp_path / "jobs.py").write_text(
        "import faktory\n\n@faktory.register\ndef work(n):\n    if n % 10 == 0:\n"
        "        raise ValueError(n)\n")

    async def push():
        async with Client(faktory_url) as client:
            await client.push_bulk(Job("work", n, retry=0) for n in range(100))
    asyncio.run(push())
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "faktory", "worker", "-r", str(tmp_path / "jobs.py"), "--url", faktory_url,
         "--metrics", "0", "--log-level", "debug", "--loop", "asyncio", "-c", "2"],
        stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines: list[str] = []
    url = None
    done = 0
    killer = threading.Timer(60, proc.kill)
    killer.start()
    try:
        for line in proc.stderr:  # the worker's own lines: the endpoint, then one per job
            lines.append(line)
            match = re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", line)
            if match:
                url = match.group(1)
            if re.search(r"job \S+ work \(default\) (ok|failed)", line):
                done += 1
                if done == 100:
                    break
        assert url and done == 100, "".join(lines)
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, "".join(lines)
    got = samples(text)
    labels = (("jobtype", "work"), ("queue", "default"))
    assert got[("faktory_jobs_processed_total", labels)] == 100
    assert got[("faktory_jobs_failed_total", labels)] == 10
    assert got[("faktory_job_duration_seconds_count", labels)] == 100
