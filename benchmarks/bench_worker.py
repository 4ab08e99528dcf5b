"""The worker: what its codec is worth, and what its machinery costs over a bare loop.

Each round pre-fills ``JOBS`` no-op jobs (not measured) on the embedded server in a child
process (uvloop) and drains them at concurrency 20, here on uvloop; see ``loads.py``.
Two comparisons, each in round pairs (``pairs.py``: a warm-up pair, then ``PAIRS`` pairs
back to back in alternating order; the gates read the median of the per-pair ratios):

* ``codec``: a ``Worker`` over the compiled codec against one over the pure-Python codec:
  client CPU per job (the codec's share of a worker's CPU);
* ``bare``: a ``Worker`` against a bare FETCH/ACK loop (20 coroutines, each FETCH then ACK
  on its own connection, one command at a time, no worker machinery): jobs/s and CPU.

Run: ``python -m pytest benchmarks/bench_worker.py --benchmark-only``;
``FAKTORY_BENCH_JOBS`` and ``FAKTORY_BENCH_PAIRS`` change the size.
"""
from __future__ import annotations

from typing import Any, Iterator

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
    uvloop = None

import loads
from faktory import protocol
from faktory.server import ServerProcess
from pairs import PAIRS, compare

#: The worker issue's target on this 2-core machine: under 40 ms of client CPU per 1,000
#: no-op jobs (the official Go worker's figure was about 37).
TARGET_CPU_MS_PER_1000 = 40.0

BENCHMARK_GATES = [
    {"name": "worker: compiled codec's client CPU <= 0.95x the pure codec's",
     "figure": "codec CPU ratio", "by": "test_worker[codec]", "max": 0.95,
     "note": "5 runs: 0.66 / 0.73 / 0.93 (the last under heavy load); catches a worker that ignores "
             "its codec (1.0x), not a 25% slower compiled codec (the codec gates do)"},
    {"name": f"worker: client CPU per 1,000 jobs < {TARGET_CPU_MS_PER_1000:.0f} ms (the target)",
     "figure": "worker CPU ms/1000", "by": "test_worker[codec]", "max": TARGET_CPU_MS_PER_1000,
     "note": "the worker issue's absolute target (5 runs: 18.9 / 22.9 / 34.6 ms); the transport's "
             "CPU ratio is the regression gate"},
    {"name": "worker: jobs/s >= a bare one-command-at-a-time FETCH/ACK loop's",
     "figure": "bare speed ratio", "by": "test_worker[bare]", "min": 1.0,
     "note": "5 runs: 1.06 / 1.98 / 2.41 (wall-clock: the spread is too wide for a 25% bound)"},
    {"name": "worker: client CPU per job <= 0.85x a bare FETCH/ACK loop's",
     "figure": "bare CPU ratio", "by": "test_worker[bare]", "max": 0.85,
     "note": "5 runs: 0.45 / 0.54 / 0.69, and 0.76 in a CI run"},
]

_FIGURES: dict[str, dict[str, Any]] = {}


def benchmark_report() -> list[str]:
    """jobs/s and client CPU per 1,000 jobs of each variant (medians), next to the target."""
    if not _FIGURES:
        return []
    lines = [f"{'worker, ' + str(loads.JOBS) + ' no-op jobs, median of ' + str(PAIRS) + ' pairs':<44}"
             f"{'jobs/s':>10}{'CPU ms/1000 jobs':>18}"]
    labels = {"codec": ("Worker, compiled codec", "Worker, pure-Python codec"),
              "bare": ("Worker", "bare FETCH/ACK loop")}
    for case, fig in _FIGURES.items():
        for side, label in zip(("a", "b"), labels[case], strict=True):
            lines.append(f"{label:<44}{fig[side + ' rate']:>10,.0f}{fig[side + ' cpu'] * 1e6:>18.1f}")
    lines.append(f"(target: < {TARGET_CPU_MS_PER_1000:.0f} ms client CPU per 1,000 jobs)")
    return lines


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with ServerProcess(loop="uvloop" if uvloop else None) as srv:
        yield srv.url


@pytest.mark.parametrize("case", ["codec", "bare"])
def test_worker(benchmark, record_figure, server_url: str, case: str) -> None:
    """The worker against its pure-codec self, or against a bare FETCH/ACK loop."""
    if "cython" not in protocol.CODECS:
        pytest.skip(f"compiled codec not built ({protocol.COMPILED_IMPORT_ERROR})")
    result: dict[str, Any] = {}
    if case == "codec":
        def measure() -> None:
            result.update(compare(lambda: loads.worker_round(server_url, codec="cython"),
                                  lambda: loads.worker_round(server_url, codec="python")))
    else:
        def measure() -> None:
            result.update(compare(lambda: loads.worker_round(server_url, codec="cython"),
                                  lambda: loads.bare_round(server_url)))

    benchmark.group = "worker, round pairs"
    benchmark.pedantic(measure, rounds=1, iterations=1)
    _FIGURES[case] = result
    record_figure(f"{case} CPU ratio", result["cpu ratio"])
    record_figure(f"{case} speed ratio", result["speed ratio"])
    if case == "codec":
        record_figure("worker CPU ms/1000", result["a cpu"] * 1e6)
    benchmark.extra_info.update(result)
