"""Benchmark plumbing: the gates that turn a benchmark run into a pass or a failure.

The machine is shared and noisy, so absolute timings mean little.  What a gate may use:

* the **ratio** of two things measured in the same run (pytest-benchmark statistics of two
  benchmark tests of one module);
* a **figure** a benchmark records that noise cannot move (socket writes per job, bytes,
  peak memory) or a ratio it measured itself, round against round (CPU of the new
  transport over the baseline's in the same round pair).

A module declares its gates in ``BENCHMARK_GATES``, a list of plain dicts::

    BENCHMARK_GATES = [
        {   # time ratio: stat(slow) / stat(fast) >= min_ratio
            "name": "compiled parses FETCH >= 10x pure",
            "slow": "test_parse_fetch[python]", "fast": "test_parse_fetch[cython]",
            "min_ratio": 10.0,
            "stat": "min",                                # optional: min (default) or median
            "note": "measured 19-23x over 5 runs",         # optional: spread, why this bound
        },
        {   # figure: recorded by a benchmark test through the ``record_figure`` fixture
            "name": "worker socket writes per job <= 0.5",
            "figure": "worker writes/job", "by": "test_worker_transport",
            "max": 0.5,                                    # or "min": ...
            "note": "...",
        },
    ]

After the run every gate is evaluated and a table printed at the end of the terminal
summary.  A gate fails the run (exit status "tests failed") when its bound is not met, and
also when what it needs did not happen: a benchmark that was skipped (a missing hiredis,
an unbuilt compiled module), failed, or does not exist (a renamed test), or a figure that
was never recorded; the table says which and why.  Only a benchmark deselected on purpose
(``-k``, ``-m``) leaves its gate "not run" without failing.  When benchmarks are not run
at all (plain ``pytest``, which passes ``--benchmark-skip``), no gate is evaluated.

A module may also define ``benchmark_report() -> list[str]``: lines of absolute figures
(jobs/s next to a target, say), printed in a "benchmark figures" section after the run.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import pytest

_STATS_KEY = pytest.StashKey[dict]()
_GATES_KEY = pytest.StashKey[list]()
_RESULTS_KEY = pytest.StashKey[list]()
_REPORTS_KEY = pytest.StashKey[list]()
_FIGURES_KEY = pytest.StashKey[dict]()
_OUTCOMES_KEY = pytest.StashKey[dict]()
_ITEMS_KEY = pytest.StashKey[set]()
_DESELECTED_KEY = pytest.StashKey[set]()

_RATIO_KEYS = {"name", "slow", "fast", "min_ratio", "stat", "note"}
_FIGURE_KEYS = {"name", "figure", "by", "max", "min", "note"}


@dataclasses.dataclass
class _Gate:
    module: str
    name: str
    slow: str | None = None
    fast: str | None = None
    min_ratio: float | None = None
    stat: str = "min"
    figure: str | None = None
    by: str | None = None
    max: float | None = None
    min: float | None = None
    note: str = ""

    @property
    def tests(self) -> list[str]:
        return [t for t in (self.slow, self.fast, self.by) if t]

    def bound(self) -> str:
        if self.figure is None:
            return f">= {self.min_ratio:.3g}"
        return f"<= {self.max:.3g}" if self.max is not None else f">= {self.min:.3g}"


@dataclasses.dataclass
class _Result:
    gate: _Gate
    value: float | None = None
    status: str = "not run"  # ok | FAILED | not run
    reason: str = ""


def _parse_gate(module: str, spec: dict[str, Any]) -> _Gate:
    keys = set(spec)
    if "figure" in spec:
        ok = keys <= _FIGURE_KEYS and {"name", "figure", "by"} <= keys and (("max" in spec) != ("min" in spec))
    else:
        ok = keys <= _RATIO_KEYS and {"name", "slow", "fast", "min_ratio"} <= keys and \
            spec.get("stat", "min") in ("min", "median")
    if not ok:
        raise pytest.UsageError(f"{module}: bad BENCHMARK_GATES entry {spec!r}")
    return _Gate(module=module, **spec)


def pytest_configure(config: pytest.Config) -> None:
    for key, value in ((_STATS_KEY, {}), (_GATES_KEY, []), (_RESULTS_KEY, []), (_REPORTS_KEY, []),
                       (_FIGURES_KEY, {}), (_OUTCOMES_KEY, {}), (_ITEMS_KEY, set()),
                       (_DESELECTED_KEY, set())):
        config.stash[key] = value


def _benchmarks_off(config: pytest.Config) -> bool:
    session = getattr(config, "_benchmarksession", None)
    return bool(getattr(session, "skip", False) or getattr(session, "disabled", False))


def pytest_deselected(items) -> None:
    for item in items:
        module = getattr(item, "module", None)
        if module is not None:
            item.config.stash[_DESELECTED_KEY].add((module.__name__, item.name))


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items) -> None:
    seen = set()
    for item in items:
        module = getattr(item, "module", None)
        if module is None:
            continue
        config.stash[_ITEMS_KEY].add((module.__name__, item.name))
        if module.__name__ in seen:
            continue
        seen.add(module.__name__)
        report = getattr(module, "benchmark_report", None)
        if callable(report):
            config.stash[_REPORTS_KEY].append(report)
        for spec in getattr(module, "BENCHMARK_GATES", ()):
            config.stash[_GATES_KEY].append(_parse_gate(module.__name__, spec))


@pytest.fixture
def record_figure(request: pytest.FixtureRequest):
    """``record_figure(name, value)``: a figure for this module's figure gates (and the
    table); also kept in the benchmark's ``extra_info`` when the test uses one."""
    module = request.module.__name__
    figures = request.config.stash[_FIGURES_KEY]

    def record(name: str, value: float) -> None:
        figures[(module, name)] = float(value)

    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    module = getattr(item, "module", None)
    key = (module.__name__ if module is not None else "", item.name)
    outcomes = item.config.stash[_OUTCOMES_KEY]
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        outcomes[key] = f"skipped ({reason.removeprefix('Skipped: ')})"
    elif report.failed:
        outcomes[key] = f"failed in {report.when}"
    elif report.when == "call":
        outcomes.setdefault(key, "passed")
        # The benchmark fixture still holds its statistics at the end of the call phase.
        fixture = getattr(item, "funcargs", {}).get("benchmark")
        metadata = getattr(fixture, "stats", None)
        if metadata is not None and getattr(metadata, "stats", None) is not None:
            item.config.stash[_STATS_KEY][key] = metadata.stats


def _evaluate(config: pytest.Config, gate: _Gate) -> _Result:
    result = _Result(gate)
    deselected = config.stash[_DESELECTED_KEY]
    items = config.stash[_ITEMS_KEY]
    outcomes = config.stash[_OUTCOMES_KEY]
    missing = []
    for test in gate.tests:
        key = (gate.module, test)
        if key in deselected:
            result.reason = f"{test} deselected"
            return result
        if key not in items:
            missing.append(f"no benchmark {test} in {gate.module}")
        elif outcomes.get(key, "not run") != "passed":
            missing.append(f"{test} {outcomes.get(key, 'did not run')}")
    if missing:
        result.status, result.reason = "FAILED", "; ".join(missing)
        return result
    if gate.figure is not None:
        value = config.stash[_FIGURES_KEY].get((gate.module, gate.figure))
        if value is None:
            result.status, result.reason = "FAILED", f"{gate.by} recorded no figure {gate.figure!r}"
            return result
        result.value = value
        ok = value <= gate.max if gate.max is not None else value >= gate.min  # type: ignore[operator]
    else:
        stats = config.stash[_STATS_KEY]
        slow = getattr(stats.get((gate.module, gate.slow)), gate.stat, None)
        fast = getattr(stats.get((gate.module, gate.fast)), gate.stat, None)
        if slow is None or fast is None or fast <= 0:
            result.status, result.reason = "FAILED", "no timing statistics (benchmark fixture unused?)"
            return result
        result.value = slow / fast
        ok = result.value >= gate.min_ratio  # type: ignore[operator]
    result.status = "ok" if ok else "FAILED"
    return result


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _benchmarks_off(config):
        return
    results = config.stash[_RESULTS_KEY]
    results.extend(_evaluate(config, gate) for gate in config.stash[_GATES_KEY])
    if any(r.status == "FAILED" for r in results) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config):
    # Outermost wrapper: the figures and the gate table come after pytest's own summaries
    # (the "short test summary" lists every skipped test), so the last lines of a CI log
    # say which gate failed.
    yield
    _write_gates(terminalreporter, config)


def _write_gates(terminalreporter, config: pytest.Config) -> None:
    figures = [line for report in config.stash[_REPORTS_KEY] for line in (report() or ())]
    if figures:
        terminalreporter.section("benchmark figures")
        for line in figures:
            terminalreporter.write_line(line)
    results = config.stash[_RESULTS_KEY]
    if not results:
        return
    write = terminalreporter.write_line
    terminalreporter.section("benchmark gates")
    width = max(len(r.gate.name) for r in results)
    write(f"{'gate':<{width}}  {'measured':>10}  {'bound':>10}  status")
    for r in results:
        value = "-" if r.value is None else f"{r.value:.3g}" + ("x" if r.gate.figure is None else "")
        line = f"{r.gate.name:<{width}}  {value:>10}  {r.gate.bound():>10}  {r.status}"
        if r.reason:
            line += f"  ({r.reason})"
        write(line, red=r.status == "FAILED", green=r.status == "ok")
    failed = [r for r in results if r.status == "FAILED"]
    if failed:
        write(f"{len(failed)} benchmark gate(s) FAILED:", red=True, bold=True)
        for r in failed:
            what = (f"{r.gate.figure} = {r.value:.4g}" if r.gate.figure and r.value is not None
                    else f"ratio {r.value:.3g}x" if r.value is not None else "not measured")
            write(f"  {r.gate.name} | {what}, bound {r.gate.bound()}"
                  + (f": {r.reason}" if r.reason else ""), red=True)
