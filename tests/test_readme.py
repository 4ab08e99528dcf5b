"""The README's commands and examples run as written (against the embedded server)."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from faktory.client import Client

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def _env(url: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, FAKTORY_URL=url, PYTHONPATH=path, PYTHONUNBUFFERED="1")


def test_readme_starts_with_the_main_job_and_the_test_command():
    first, second = _blocks("sh")[:2]
    assert first.strip() == "pip install . && faktory bench"
    assert second.strip() == 'pip install -e ".[test]" && python -m pytest'
    assert README.index(first) < README.index(second) < README.index("## Quick start")


@pytest.mark.slow
def test_main_job_prints_the_codec_and_the_figures_of_each_phase():
    # the first README command, less the install, on a smaller run
    from faktory import protocol

    proc = subprocess.run([sys.executable, "-m", "faktory", "bench", "--jobs", "3000", "--latency-jobs", "300"],
                          capture_output=True, text=True, timeout=240, env=_env(""))
    assert proc.returncode == 0, proc.stderr
    header, columns, *rows = [line for line in proc.stdout.splitlines() if line.strip()]
    assert f"codec {protocol.IMPLEMENTATION}" in header and "embedded server" in header
    assert columns.split() == ["phase", "jobs/s", "CPU", "ms/1000", "jobs", "writes/job", "p50", "ms", "p99", "ms"]
    assert [row.split()[0] for row in rows] == ["push", "bulk", "work", "latency"]
    for row in rows:
        rate, cpu, writes = (float(x.replace(",", "")) for x in row.split()[1:4])
        assert rate > 0 and cpu > 0 and writes > 0, row
    assert float(rows[-1].split()[4]) > 0  # p50 of push-to-ACK


def test_producer_quick_start_runs_as_written(faktory_url, tmp_path):
    script = tmp_path / "producer.py"
    script.write_text(_blocks("python")[0])
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=_env(faktory_url))
    assert proc.returncode == 0, proc.stderr
    jid, enqueued = proc.stdout.split()
    assert len(jid) >= 8 and int(enqueued) == 10_001  # one immediate job + the bulk push


async def test_worker_quick_start_processes_jobs_and_stops_on_sigterm(faktory_url, tmp_path):
    (tmp_path / "tasks.py").write_text(_blocks("python")[1])
    async with Client(faktory_url) as client:
        await client.job("send_email", "ada@example.com", {}).push()
        job = client.job("resize", 3)
        job.queue = "critical"
        await job.push()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(tmp_path / "tasks.py"), cwd=tmp_path, env=_env(faktory_url),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            seen: list[str] = []
            while sum("took" in line for line in seen) < 2:
                line = await asyncio.wait_for(proc.stdout.readline(), 20)
                assert line, (seen, await proc.stderr.read())
                seen.append(line.decode())
            assert "sending to ada@example.com\n" in seen
            assert {line.split()[0] for line in seen if "took" in line} == {"send_email", "resize"}
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        info = await client.info()
        assert info["faktory"]["queues"].get("critical", 0) == 0
        assert info["faktory"]["queues"].get("default", 0) == 0
