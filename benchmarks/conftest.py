"""Benchmark plumbing: ratio gates computed from one run's pytest-benchmark statistics.

The machine is shared and noisy, so absolute timings mean little; what is stable is the
ratio of two things measured in the same run.  A benchmark module declares its gates in a
module-level list ``BENCHMARK_GATES`` of plain dicts (nothing to import)::

    BENCHMARK_GATES = [
        {
            "name": "compiled parses FETCH >= 10x pure",   # shown in the table
            "slow": "test_parse_fetch[python]",            # benchmark test names (item.name)
            "fast": "test_parse_fetch[cython]",            #   in the same module
            "min_ratio": 10.0,                             # time(slow) / time(fast) must be >= this
            "stat": "min",                                 # optional: min (default) or median
        },
    ]

"X must not be slower than Y by more than 20 %" is ``slow=Y, fast=X, min_ratio=1/1.2``.

After the run every gate whose two benchmarks both ran is evaluated, a table of ratios is
printed at the end of the terminal summary, and a failed gate turns the exit status into
"tests failed" (``python -m pytest benchmarks --benchmark-only`` exits non-zero).  A gate
whose benchmarks did not both run (skipped, deselected with ``-k``, ``--benchmark-disable``)
is listed as "not run" and does not fail the run.

A module may also define ``benchmark_report() -> list[str]``: lines of absolute figures
(jobs/s next to a target, say), printed in a "benchmark figures" section after the run.
Figures are for the reader; only ratios gate.
"""
from __future__ import annotations

import dataclasses

import pytest

_STATS_KEY = pytest.StashKey[dict]()
_GATES_KEY = pytest.StashKey[list]()
_RESULTS_KEY = pytest.StashKey[list]()
_REPORTS_KEY = pytest.StashKey[list]()


@dataclasses.dataclass
class _Gate:
    module: str
    name: str
    slow: str
    fast: str
    min_ratio: float
    stat: str = "min"


@dataclasses.dataclass
class _Result:
    gate: _Gate
    slow_time: float | None = None
    fast_time: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.slow_time is None or self.fast_time is None or self.fast_time <= 0:
            return None
        return self.slow_time / self.fast_time

    @property
    def status(self) -> str:
        if self.ratio is None:
            return "not run"
        return "ok" if self.ratio >= self.gate.min_ratio else "FAILED"


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_STATS_KEY] = {}
    config.stash[_GATES_KEY] = []
    config.stash[_RESULTS_KEY] = []
    config.stash[_REPORTS_KEY] = []


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items) -> None:
    seen = set()
    for item in items:
        module = getattr(item, "module", None)
        if module is None or module.__name__ in seen:
            continue
        seen.add(module.__name__)
        report = getattr(module, "benchmark_report", None)
        if callable(report):
            config.stash[_REPORTS_KEY].append(report)
        for spec in getattr(module, "BENCHMARK_GATES", ()):
            unknown = set(spec) - {"name", "slow", "fast", "min_ratio", "stat"}
            if unknown or spec.get("stat", "min") not in ("min", "median"):
                raise pytest.UsageError(f"{module.__name__}: bad BENCHMARK_GATES entry {spec!r}")
            config.stash[_GATES_KEY].append(_Gate(module=module.__name__, **spec))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    # The benchmark fixture still holds its statistics at the end of the call phase.
    if call.when == "call":
        fixture = getattr(item, "funcargs", {}).get("benchmark")
        metadata = getattr(fixture, "stats", None)
        if metadata is not None and getattr(metadata, "stats", None) is not None:
            module = getattr(item, "module", None)
            name = module.__name__ if module is not None else ""
            item.config.stash[_STATS_KEY][(name, item.name)] = metadata.stats
    yield


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stats = session.config.stash[_STATS_KEY]
    results = session.config.stash[_RESULTS_KEY]
    for gate in session.config.stash[_GATES_KEY]:
        slow = stats.get((gate.module, gate.slow))
        fast = stats.get((gate.module, gate.fast))
        results.append(_Result(gate, getattr(slow, gate.stat, None) if slow else None,
                               getattr(fast, gate.stat, None) if fast else None))
    if any(r.status == "FAILED" for r in results) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    figures = [line for report in config.stash[_REPORTS_KEY] for line in (report() or ())]
    if figures:
        terminalreporter.section("benchmark figures")
        for line in figures:
            terminalreporter.write_line(line)
    results = config.stash[_RESULTS_KEY]
    if not results:
        return
    write = terminalreporter.write_line
    terminalreporter.section("benchmark ratio gates")
    width = max(len(r.gate.name) for r in results)
    write(f"{'gate':<{width}}  {'slow':>10}  {'fast':>10}  {'ratio':>8}  {'needs':>8}  status")
    for r in results:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        write(f"{r.gate.name:<{width}}  {_fmt_time(r.slow_time):>10}  {_fmt_time(r.fast_time):>10}  "
              f"{ratio:>8}  {'>=' + format(r.gate.min_ratio, '.2f'):>8}  {r.status}"
              + ("" if r.status == "not run" else f"  ({r.gate.stat})"),
              red=r.status == "FAILED", green=r.status == "ok")
    failed = [r.gate.name for r in results if r.status == "FAILED"]
    if failed:
        write(f"{len(failed)} benchmark gate(s) FAILED: {', '.join(failed)}", red=True, bold=True)
