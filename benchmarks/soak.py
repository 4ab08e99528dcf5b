"""Soak: the durable embedded server and a worker process under a steady load for minutes,
with the memory and open files of both sampled over time.

    python benchmarks/soak.py --minutes 10

The producer (this process) keeps the queue topped up, pushing ``--batch`` jobs whenever
fewer than that many wait, so the rate is the highest the server and the worker sustain
together; a worker (``faktory worker``, concurrency 20, its own process) runs no-op jobs.
Every ``--every`` seconds a line: elapsed time, jobs processed and their rate, then RSS
(MB) and open file descriptors of the server and of the worker.  At the end, the first and
last samples side by side; the exit status is 1 when memory or fds grew more than
``--max-growth-mb`` / ``--max-fd-growth`` from the end of the first minute (warm-up) to the
end.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

from faktory import Client, Job
from faktory.server import ServerProcess

JOBS_MODULE = '''
import faktory

@faktory.register
async def soak(n):
    pass
'''


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def soak(url: str, server_pid: int, worker_pid: int, minutes: float, every: float, batch: int,
               out=sys.stdout) -> list[tuple[float, int, float, int, float, int]]:
    samples: list[tuple[float, int, float, int, float, int]] = []
    started = time.monotonic()
    next_sample = started
    pushed = 0
    out.write(f"{'s':>6}{'processed':>11}{'jobs/s':>9}{'server MB':>11}{'fds':>6}{'worker MB':>11}{'fds':>6}\n")
    async with Client(url) as client:
        last_processed, last_time = 0, started
        while time.monotonic() - started < minutes * 60:
            info = (await client.info())["faktory"]
            if info["queues"].get("soak", 0) < batch:
                await client.push_bulk(Job("soak", pushed + n, queue="soak", retry=0) for n in range(batch))
                pushed += batch
            now = time.monotonic()
            if now >= next_sample:
                processed = info["total_processed"]
                rate = (processed - last_processed) / max(now - last_time, 1e-9)
                last_processed, last_time = processed, now
                sample = (now - started, processed, rss_mb(server_pid), fds(server_pid), rss_mb(worker_pid),
                          fds(worker_pid))
                samples.append(sample)
                out.write(f"{sample[0]:>6.0f}{processed:>11,}{rate:>9,.0f}{sample[2]:>11.1f}{sample[3]:>6}"
                          f"{sample[4]:>11.1f}{sample[5]:>6}\n")
                out.flush()
                next_sample += every
            await asyncio.sleep(0.05)
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument("--batch", type=int, default=2000, help="jobs pushed at a time (default 2000)")
    parser.add_argument("--max-growth-mb", type=float, default=50.0)
    parser.add_argument("--max-fd-growth", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "soak_jobs.py"), "w") as f:
            f.write(JOBS_MODULE)
        with ServerProcess(os.path.join(tmp, "soak.db")) as server:
            worker = subprocess.Popen([sys.executable, "-m", "faktory", "worker", "-r", "soak_jobs", "-q", "soak",
                                       "-c", "20", "--url", server.url], cwd=tmp,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                samples = asyncio.run(soak(server.url, server.pid, worker.pid, args.minutes, args.every,
                                           args.batch))
            finally:
                worker.terminate()
                worker.wait(30)
    warm = next((s for s in samples if s[0] >= 60), samples[0])
    last = samples[-1]
    print(f"\nfrom {warm[0]:.0f} s to {last[0]:.0f} s: {last[1] - warm[1]:,} jobs "
          f"({(last[1] - warm[1]) / max(last[0] - warm[0], 1e-9):,.0f}/s); server {warm[2]:.1f} -> {last[2]:.1f} MB, "
          f"fds {warm[3]} -> {last[3]}; worker {warm[4]:.1f} -> {last[4]:.1f} MB, fds {warm[5]} -> {last[5]}")
    grew = (last[2] - warm[2] > args.max_growth_mb or last[4] - warm[4] > args.max_growth_mb
            or last[3] - warm[3] > args.max_fd_growth or last[5] - warm[5] > args.max_fd_growth)
    return 1 if grew else 0


if __name__ == "__main__":
    sys.exit(main())
