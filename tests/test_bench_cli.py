"""``faktory bench`` as a tool pointed at a server: its JSON, its errors, and that it
touches nothing but a queue of its own."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from faktory.server import ServerThread

SECRET = "s3cret-pw"


def bench(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("FAKTORY_URL", "FAKTORY_PROVIDER")}
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "faktory", "bench", *args], capture_output=True, text=True,
                          timeout=timeout, env=environment)


@pytest.mark.internals
def test_json_figures_of_a_server_given_by_url_and_nothing_else_touched():
    with ServerThread(password=SECRET) as st:
        url = f"tcp://:{SECRET}@127.0.0.1:{st.port}"
        proc = bench("--url", url, "--jobs", "500", "--latency-jobs", "100", "--json")
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["server"] == f"tcp://:***@127.0.0.1:{st.port}"
        assert set(report["phases"]) == {"push", "bulk", "work", "latency"}
        for phase in ("push", "bulk", "work"):
            figures = report["phases"][phase]
            assert figures["jobs"] == (1000 if phase == "work" else 500)
            assert figures["jobs_per_s"] > 0 and figures["writes_per_job"] > 0
        assert 0 < report["phases"]["latency"]["p50_ms"] <= report["phases"]["latency"]["p99_ms"]
        assert SECRET not in proc.stdout + proc.stderr
        state = st.call(st.server.info)
        assert state["faktory"]["queues"] == {}  # its queue is gone, nothing left behind


@pytest.mark.internals
def test_a_refused_password_is_reported_without_the_password():
    with ServerThread(password=SECRET) as st:
        proc = bench("--url", f"tcp://:wrong-{SECRET}@127.0.0.1:{st.port}", "--jobs", "10")
    assert proc.returncode == 3
    assert "Invalid password" in proc.stderr and SECRET not in proc.stdout + proc.stderr


def test_a_malformed_url_is_a_usage_error_that_hides_the_password():
    proc = bench("--url", f"tcp://:{SECRET}@localhost:notaport")
    assert proc.returncode == 2
    assert "invalid port" in proc.stderr and SECRET not in proc.stdout + proc.stderr
    proc = bench(env={"FAKTORY_URL": f"http://:{SECRET}@localhost"})
    assert proc.returncode == 2 and SECRET not in proc.stderr


def test_bad_options_are_usage_errors():
    assert bench("--phases", "push,nope").returncode == 2
    assert bench("--jobs", "0").returncode == 2
    assert bench("--url", "tcp://127.0.0.1:1", "--storage", "x.db").returncode == 2
    help_text = bench("--help").stdout
    assert "``" not in help_text and "--concurrency" in help_text and "jobs run at once" in help_text
