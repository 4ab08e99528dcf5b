"""The benchmark gates fail when what they guard regresses, and say what failed.

Each test runs a small benchmark selection in a child pytest with a fault put in on
purpose (the compiled codec disabled, pipelining turned off, a sleep in the ACK path) and
checks that the run fails and names the gate, the figure, its bound and what it measured.
A gate that cannot fail would pass these runs; they are the gates' own tests.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.slow, pytest.mark.internals]


def run_benchmarks(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, FAKTORY_BENCH_JOBS="4000", FAKTORY_BENCH_PAIRS="2")
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "pytest", "--benchmark-only", "-p", "no:cacheprovider",
                           "-q", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=environment)


def failed_gates(output: str) -> dict[str, str]:
    """The 'N benchmark gate(s) FAILED:' lines: {gate name: what it says}."""
    _, _, tail = output.partition("benchmark gate(s) FAILED:")
    lines = [line.strip() for line in tail.splitlines() if line.startswith("  ") and " | " in line]
    return dict(line.split(" | ", 1) for line in lines)


def test_with_the_compiled_codec_disabled_the_codec_gates_fail_naming_the_skip():
    proc = run_benchmarks("benchmarks/bench_codec.py", "-k", "codec_ratio and FETCH", FAKTORY_NO_EXTENSIONS="1")
    assert proc.returncode == 1, proc.stdout[-3000:]
    failed = failed_gates(proc.stdout)
    gate = next(name for name in failed if name.startswith("parse FETCH: compiled"))
    assert "not measured, bound >=" in failed[gate]
    assert re.search(r"test_codec_ratio\[parse FETCH compiled/pure\] skipped \(cython codec not available\)",
                     failed[gate]), failed[gate]


def test_with_pipelining_turned_off_the_write_gates_fail_with_the_figure_and_bound():
    proc = run_benchmarks("benchmarks/bench_transport.py", "-k", "worker-memory or push-memory",
                          FAKTORY_BENCH_INJECT="no-pipelining")
    assert proc.returncode == 1, proc.stdout[-3000:]
    failed = failed_gates(proc.stdout)
    for gate, figure in (("worker: socket writes per job", "worker memory writes/job"),
                         ("10 producers' push: socket writes per job", "push memory writes/job")):
        name = next(n for n in failed if n.startswith(gate))
        measured, bound = re.fullmatch(rf"{re.escape(figure)} = ([\d.]+), bound <= ([\d.]+)", failed[name]).groups()
        assert float(measured) > 0.9 > float(bound)  # one write per command, or about


def test_with_a_sleep_in_the_ack_path_the_worker_gates_fail():
    proc = run_benchmarks("benchmarks/bench_transport.py", "-k", "worker-memory or worker-durable",
                          FAKTORY_BENCH_INJECT="slow-ack")
    assert proc.returncode == 1, proc.stdout[-3000:]
    failed = failed_gates(proc.stdout)
    name = next(n for n in failed if n.startswith("durable server, worker: jobs/s"))
    measured, bound = re.fullmatch(r"worker durable speed ratio = ([\d.]+), bound >= ([\d.]+)", failed[name]).groups()
    assert float(measured) < float(bound)
    # The cost figures are measured and reported too, whether or not they fail.
    assert "worker: socket writes per job" in proc.stdout


def test_a_gate_whose_benchmark_does_not_exist_fails(tmp_path):
    module = tmp_path / "bench_renamed.py"
    module.write_text(
        "BENCHMARK_GATES = [{'name': 'renamed gate', 'slow': 'test_old[a]', 'fast': 'test_old[b]',"
        " 'min_ratio': 1.0}]\n"
        "def test_new(benchmark):\n    benchmark(lambda: None)\n")
    (tmp_path / "conftest.py").write_text((ROOT / "benchmarks" / "conftest.py").read_text())
    proc = subprocess.run([sys.executable, "-m", "pytest", "--benchmark-only", "-p", "no:cacheprovider",
                           "-q", str(module)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout
    assert "renamed gate | not measured, bound >= 1: no benchmark test_old[a] in bench_renamed" in proc.stdout


def test_with_the_server_push_fast_path_off_the_server_cpu_gate_fails():
    proc = run_benchmarks("benchmarks/bench_server.py", "-k", "pipelined and PUSHB",
                          FAKTORY_BENCH_INJECT="no-push-fast-path")
    assert proc.returncode == 1, proc.stdout[-3000:]
    failed = failed_gates(proc.stdout)
    name = next(n for n in failed if n.startswith("memory server CPU/job, pipelined single PUSH"))
    figure = "memory pipelined PUSH vs PUSHB (server CPU)"
    measured, bound = re.fullmatch(rf"{re.escape(figure)} = ([\d.]+), bound <= ([\d.]+)", failed[name]).groups()
    assert float(measured) > float(bound)
    # the gate on the same figure's other side (a PUSHB that costs more) still passes
    assert not any(n.startswith("memory server CPU/job, a PUSHB job") for n in failed), failed


def test_with_a_costlier_sync_push_the_sync_cpu_gate_fails():
    # with the gate's own 9 rounds (FAKTORY_BENCH_PAIRS=5, as CI runs it), each block of
    # SyncClient pushes costing a bare push's CPU more: read 2.56 against 1.22-1.36
    proc = run_benchmarks("benchmarks/bench_sync.py", "-k", "push_cpu", FAKTORY_BENCH_INJECT="slow-sync-push",
                          FAKTORY_BENCH_PAIRS="5")
    assert proc.returncode == 1, proc.stdout[-3000:]
    failed = failed_gates(proc.stdout)
    name = next(n for n in failed if n.startswith("SyncClient.push: client CPU"))
    measured, bound = re.fullmatch(r"sync push CPU ratio = ([\d.]+), bound <= ([\d.]+)", failed[name]).groups()
    assert float(measured) > float(bound)
