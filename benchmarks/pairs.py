"""Round pairs: the way these benchmarks compare two things on a shared, noisy machine.

``compare(a, b)`` runs one warm-up pair, then ``pairs`` pairs of rounds, ``a`` and ``b``
back to back in alternating order (so that neither always runs first, on a warmer or a
colder machine), and returns the medians of each side's figures and of the ratio of the
two within each pair.  A slow spell of the machine moves both rounds of a pair alike, so
the ratio of a pair is steadier than the ratio of two separate series.

Each round function returns a dict of per-job figures: ``writes`` (socket writes),
``cpu`` (seconds of this process's CPU), ``rate`` (jobs/s).
"""
from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Any, Awaitable, Callable, TypeVar

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
    uvloop = None

from faktory.connection import TransportStats

PAIRS = int(os.environ.get("FAKTORY_BENCH_PAIRS", "5"))
#: For the comparisons whose bounds the issues fixed (the transport against its baseline):
#: more pairs, so that the median stays put on a busy machine.
PAIRS_FIXED_BOUNDS = int(os.environ.get("FAKTORY_BENCH_PAIRS", "7"))
Round = Callable[[], Awaitable[dict[str, float]]]
_T = TypeVar("_T")


def _syscw() -> int | None:
    try:
        with open("/proc/self/io", "rb") as f:
            for line in f:
                if line.startswith(b"syscw:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def writes_now() -> int:
    """This process's socket writes so far: the kernel's count of its write system calls
    (``/proc/self/io`` ``syscw``; uvloop writes with ``write``/``writev``), else the
    library's count of ``transport.write`` calls (equal to it under uvloop)."""
    if uvloop is not None:
        count = _syscw()
        if count is not None:
            return count
    return TransportStats.writes


class Meter:
    """Writes, CPU and wall time from creation to ``stop(jobs)``."""

    def __init__(self) -> None:
        self.writes, self.cpu, self.wall = writes_now(), time.process_time(), time.perf_counter()

    def stop(self, jobs: int) -> dict[str, float]:
        wall = time.perf_counter() - self.wall
        return {"writes": (writes_now() - self.writes) / jobs, "cpu": (time.process_time() - self.cpu) / jobs,
                "rate": jobs / wall, "wall": wall}


def run(round_fn: Callable[[], Awaitable[_T]]) -> _T:
    """One round in a fresh event loop (uvloop when installed)."""
    if uvloop is not None:
        return uvloop.run(round_fn())
    return asyncio.run(round_fn())  # pragma: no cover


def compare(a: Round, b: Round, pairs: int = PAIRS) -> dict[str, Any]:
    """Medians over ``pairs`` round pairs (after a warm-up pair): ``a writes``, ``a cpu``,
    ``a rate``, the same for ``b``, and ``cpu ratio`` (a/b) and ``speed ratio``
    (rate a / rate b) taken within each pair; ``cpu ratios`` and ``speed ratios`` list
    the pairs' values (the spread)."""
    samples: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    for index in range(pairs + 1):
        order = (("a", a), ("b", b)) if index % 2 else (("b", b), ("a", a))
        pair = {name: run(fn) for name, fn in order}
        if index:  # the first pair warms up both sides
            for name in ("a", "b"):
                samples[name].append(pair[name])
    return _medians(samples)


def compare_interleaved(both: Callable[[], Awaitable[tuple[dict[str, float], dict[str, float]]]],
                        pairs: int = PAIRS) -> dict[str, Any]:
    """``compare``'s figures from ``pairs`` rounds of ``both``, a round that measures the
    two sides itself, interleaved in blocks (``loads.push_blocks``), and returns both."""
    samples: dict[str, list[dict[str, float]]] = {"a": [], "b": []}
    for _ in range(pairs):
        a, b = run(both)
        samples["a"].append(a)
        samples["b"].append(b)
    return _medians(samples)


def _medians(samples: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    fig: dict[str, Any] = {}
    for name, rounds in samples.items():
        for what in ("writes", "cpu", "rate"):
            fig[f"{name} {what}"] = statistics.median(r[what] for r in rounds)
    both = list(zip(samples["a"], samples["b"], strict=True))
    fig["cpu ratios"] = [round(x["cpu"] / y["cpu"], 3) for x, y in both]
    fig["speed ratios"] = [round(x["rate"] / y["rate"], 3) for x, y in both]
    fig["cpu ratio"] = statistics.median(fig["cpu ratios"])
    fig["speed ratio"] = statistics.median(fig["speed ratios"])
    return fig
