"""``faktory bench``: measure a Faktory server and this library against it.

With no URL it starts the embedded server in a child process (its own core, its own GIL);
with ``--url`` (or ``FAKTORY_URL``, or the variable ``FAKTORY_PROVIDER`` names) it measures that server, a real Faktory included,
on a queue of its own that it removes afterwards (nothing else is touched).  Phases:

* ``push``: ``--jobs`` single PUSHes from ``--producers`` concurrent tasks;
* ``bulk``: ``--jobs`` jobs with ``push_bulk`` (PUSHB batches of 1,000);
* ``work``: a worker at ``--concurrency`` drains the jobs of the two phases (no-op jobs);
* ``latency``: with the worker idle, ``--producers`` tasks each push a job and wait for
  its ACK to be answered, ``--latency-jobs`` times in all: push-to-ACK p50 and p99.

For each phase: jobs/s, the client's CPU per 1,000 jobs (this process; the embedded
server's CPU is its own), and socket writes per job.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from typing import Any, Callable, Sequence, TextIO

from faktory import logsetup

__all__ = ["main", "run_bench"]

PHASES = ("push", "bulk", "work", "latency")


class _Progress:
    """A live line on a terminal (redrawn five times a second), plain lines elsewhere
    (one every ``plain_every`` seconds), never both."""

    def __init__(self, out: TextIO, enabled: bool, plain_every: float = 5.0) -> None:
        self.out = out
        self.tty = enabled and out.isatty()
        self.enabled = enabled
        self.plain_every = plain_every
        self._task: asyncio.Task[None] | None = None

    def start(self, phase: str, total: int, done: Callable[[], int]) -> None:
        if not self.enabled:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(phase, total, done))

    async def _run(self, phase: str, total: int, done: Callable[[], int]) -> None:
        started = time.perf_counter()
        interval = 0.2 if self.tty else self.plain_every
        while True:
            await asyncio.sleep(interval)
            count = done()
            rate = count / max(time.perf_counter() - started, 1e-9)
            line = f"  {phase}: {count:,}/{total:,} jobs, {rate:,.0f} jobs/s"
            if self.tty:
                self.out.write("\r" + line.ljust(60))
            else:
                self.out.write(line + "\n")
            self.out.flush()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            if self.tty:
                self.out.write("\r" + " " * 60 + "\r")
                self.out.flush()


class _Meter:
    def __init__(self) -> None:
        from faktory.connection import TransportStats

        self._stats = TransportStats
        self.writes, self.cpu, self.wall = self._stats.writes, time.process_time(), time.perf_counter()

    def figures(self, jobs: int) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        return {"jobs": jobs, "seconds": round(wall, 4), "jobs_per_s": round(jobs / wall, 1),
                "cpu_ms_per_1000_jobs": round((time.process_time() - self.cpu) * 1e6 / jobs, 2),
                "writes_per_job": round((self._stats.writes - self.writes) / jobs, 4)}


def _timed_worker_class() -> Any:
    from faktory.worker import Worker

    class TimedWorker(Worker):
        """Notes when each job's ACK (or FAIL) was answered."""

        on_reported: Callable[[str], None] = staticmethod(lambda jid: None)

        def _reported(self, item: Any, reply: Any) -> None:
            super()._reported(item, reply)
            self.on_reported(item[0].jid)

    return TimedWorker


def _job(queue: str, n: int) -> Any:
    from faktory.job import Job

    return Job("noop", n, queue=queue, retry=0, jid=uuid.uuid4().hex)


async def run_bench(url: str, *, jobs: int = 20_000, concurrency: int = 20, producers: int = 10,
                    latency_jobs: int = 2_000, phases: Sequence[str] = PHASES,
                    progress: _Progress | None = None) -> dict[str, dict[str, float]]:
    """Run the phases against the server at ``url``; the figures of each, by phase."""
    from faktory.client import Client

    progress = progress or _Progress(sys.stderr, False)
    queue = "bench-" + uuid.uuid4().hex[:10]
    results: dict[str, dict[str, float]] = {}
    pushed = 0
    async with Client(url, pool_size=max(10, producers), reconnect_timeout=5.0) as client:
        try:
            if "push" in phases:
                batches = [[_job(queue, n) for n in range(p, jobs, producers)] for p in range(producers)]
                count = 0

                async def producer(mine: list[Any]) -> None:
                    nonlocal count
                    push = client.push
                    for job in mine:
                        await push(job)
                        count += 1

                progress.start("push", jobs, lambda: count)
                meter = _Meter()
                await asyncio.gather(*(producer(mine) for mine in batches))
                results["push"] = meter.figures(jobs)
                await progress.stop()
                pushed += jobs
            if "bulk" in phases:
                batch = [_job(queue, n) for n in range(jobs)]
                taken = 0

                def counted() -> Any:
                    nonlocal taken
                    for job in batch:
                        taken += 1
                        yield job

                progress.start("bulk", jobs, lambda: taken)
                meter = _Meter()
                rejected = await client.push_bulk(counted())
                results["bulk"] = meter.figures(jobs)
                await progress.stop()
                if rejected:
                    raise SystemExit(f"faktory bench: the server rejected {len(rejected)} jobs, e.g. "
                                     f"{next(iter(rejected.values()))[0]}")
                pushed += jobs
            if "work" in phases or "latency" in phases:
                await _work_phases(url, client, queue, pushed, concurrency, producers, latency_jobs,
                                   phases, progress, results)
        finally:
            await progress.stop()
            with contextlib.suppress(Exception):
                await client.queue_remove(queue)
    return results


async def _work_phases(url: str, client: Any, queue: str, pushed: int, concurrency: int, producers: int,
                       latency_jobs: int, phases: Sequence[str], progress: _Progress,
                       results: dict[str, dict[str, float]]) -> None:
    worker_class = _timed_worker_class()
    drained = asyncio.Event()
    ran = 0

    async def noop(*_args: object) -> None:
        nonlocal ran
        ran += 1
        if ran == pushed:
            drained.set()

    acked: dict[str, asyncio.Future[float]] = {}

    def on_reported(jid: str) -> None:
        fut = acked.pop(jid, None)
        if fut is not None and not fut.done():
            fut.set_result(time.perf_counter())

    # timeout=1: when the phases are over the queue is empty, so a stop need not wait long
    # for the FETCHes the server holds.
    worker = worker_class(url=url, concurrency=concurrency, queues=[queue], timeout=1.0)
    worker.on_reported = on_reported
    worker.register("noop", noop)
    meter = _Meter()
    task = asyncio.ensure_future(worker.work(handle_signals=False))
    try:
        if "work" in phases and pushed:
            progress.start("work", pushed, lambda: ran)
            await asyncio.wait_for(drained.wait(), max(60.0, pushed / 200))
            results["work"] = meter.figures(pushed)
            await progress.stop()
        if "latency" in phases and latency_jobs:
            samples: list[float] = []
            loop = asyncio.get_running_loop()

            async def producer(count: int, base: int) -> None:
                for n in range(count):
                    job = _job(queue, base + n)
                    fut: asyncio.Future[float] = loop.create_future()
                    acked[job.jid] = fut
                    started = time.perf_counter()
                    await client.push(job)
                    samples.append(await asyncio.wait_for(fut, 30) - started)

            per = max(1, latency_jobs // producers)
            progress.start("latency", per * producers, lambda: len(samples))
            meter = _Meter()
            await asyncio.gather(*(producer(per, p * per) for p in range(producers)))
            figures = meter.figures(len(samples))
            samples.sort()
            figures["p50_ms"] = round(statistics.median(samples) * 1000, 3)
            figures["p99_ms"] = round(samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000, 3)
            results["latency"] = figures
            await progress.stop()
    finally:
        await worker.stop()
        await task


def _table(results: dict[str, dict[str, float]]) -> list[str]:
    lines = [f"  {'phase':<8}{'jobs/s':>11}{'CPU ms/1000 jobs':>18}{'writes/job':>12}{'p50 ms':>9}{'p99 ms':>9}"]
    for phase, fig in results.items():
        p50 = f"{fig['p50_ms']:.2f}" if "p50_ms" in fig else "-"
        p99 = f"{fig['p99_ms']:.2f}" if "p99_ms" in fig else "-"
        lines.append(f"  {phase:<8}{fig['jobs_per_s']:>11,.0f}{fig['cpu_ms_per_1000_jobs']:>18.1f}"
                     f"{fig['writes_per_job']:>12.3f}{p50:>9}{p99:>9}")
    return lines


def _codec_line() -> str:
    from faktory import protocol

    if protocol.IMPLEMENTATION == "cython":
        return "codec cython (compiled)"
    line = f"codec python (pure Python: {protocol.COMPILED_IMPORT_ERROR})"
    package = os.path.dirname(protocol.__file__)
    if os.path.commonpath([os.path.abspath(package), os.getcwd()]) == os.getcwd() and \
            not protocol.extensions_disabled():
        line += ("; this is the source tree in the current folder, not the installed package: run "
                 "'faktory bench' (or 'python -m faktory bench' from another folder), or 'pip install -e .'")
    return line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="faktory bench",
        description="Measure a Faktory server and this client: single pushes, bulk pushes, a worker "
                    "draining them, and push-to-ACK latency. Without --url (or FAKTORY_URL) it starts "
                    "the embedded server in a child process.")
    parser.add_argument("--url", help="measure the server at this URL (tcp://[:password@]host:port); it only "
                                      "uses, then removes, a queue of its own")
    parser.add_argument("--jobs", type=int, default=20_000, metavar="N",
                        help="jobs in the push phase and again in the bulk phase (default 20000)")
    parser.add_argument("-c", "--concurrency", type=int, default=20, metavar="N",
                        help="the worker's concurrency: jobs run at once (default 20)")
    parser.add_argument("--producers", type=int, default=10, metavar="N",
                        help="concurrent tasks calling push (default 10)")
    parser.add_argument("--latency-jobs", type=int, default=2_000, metavar="N",
                        help="jobs timed from push to ACK (default 2000; 0 skips the phase)")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated phases to run, of {','.join(PHASES)} (default: all)")
    parser.add_argument("--storage", metavar="FILE", help="run the embedded server durable, on this SQLite file")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=None,
                        help="event loop (default uvloop when installed)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--no-progress", action="store_true", help="no progress line while it runs")
    logsetup.add_arguments(parser)
    # The table is the output: the worker's own lines (running, stopping) only on request.
    parser.set_defaults(log_level=logsetup._env_choice("FAKTORY_LOG_LEVEL", logsetup.LEVELS, "warning"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logsetup.configure(args.log_level, args.log_format)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    bad = [p for p in phases if p not in PHASES]
    if bad or not phases:
        parser.error(f"--phases: unknown phase {bad[0]!r} (choose from {', '.join(PHASES)})" if bad
                     else "--phases: give at least one phase")
    for name in ("jobs", "concurrency", "producers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.latency_jobs < 0:
        parser.error(f"--latency-jobs must be at least 0, got {args.latency_jobs}")
    # --url, else the environment the way a Client reads it (FAKTORY_PROVIDER names the
    # variable, FAKTORY_URL by default); an empty one counts as unset.
    url = args.url or os.environ.get(os.environ.get("FAKTORY_PROVIDER") or "FAKTORY_URL") or None
    if url is not None:
        from faktory.url import mask_url, parse_url

        try:
            parse_url(url)
        except ValueError as exc:
            parser.error(f"--url: {exc}")
        if args.storage:
            parser.error("--storage is for the embedded server; it cannot be used with --url or FAKTORY_URL")

    from faktory.cli import loop_choice, run_loop
    from faktory.errors import FaktoryError

    loop = loop_choice(args.loop)
    out = sys.stdout
    with contextlib.ExitStack() as stack:
        if url is None:
            from faktory.server.process import ServerProcess
            from faktory.errors import ServerStartError

            try:
                url = stack.enter_context(ServerProcess(args.storage, loop=loop, start_timeout=15)).url
            except ServerStartError as exc:
                sys.stderr.write(f"faktory bench: the embedded server did not start: {exc}\n")
                return 1
            where = "embedded server in a child process (" + (f"durable: {args.storage}" if args.storage
                                                              else "in memory") + ")"
        else:
            where = mask_url(url)
        header = (f"faktory bench: {where}, {_codec_line()}, loop {loop}, {args.jobs:,} jobs, "
                  f"concurrency {args.concurrency}, {args.producers} producers")
        if not args.json:
            out.write(header + "\n")
            out.flush()
        progress = _Progress(sys.stderr if args.json else out, not args.no_progress)
        try:
            results = run_loop(lambda: run_bench(
                url, jobs=args.jobs, concurrency=args.concurrency, producers=args.producers,
                latency_jobs=args.latency_jobs, phases=phases, progress=progress), loop)
        except FaktoryError as exc:
            sys.stderr.write(f"faktory bench: {mask_url(url)}: {exc}\n")
            return 3
    from faktory import protocol

    if args.json:
        json.dump({"server": where, "codec": protocol.IMPLEMENTATION, "loop": loop, "jobs": args.jobs,
                   "concurrency": args.concurrency, "producers": args.producers, "phases": results},
                  out, indent=2)
        out.write("\n")
    else:
        out.write("\n".join(_table(results)) + "\n")
    return 0
