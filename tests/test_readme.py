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


# -- the synchronous-app path: tasks, a view pushing with push_sync, a worker, the tests ------

def _write_named_blocks(directory: Path) -> dict[str, Path]:
    """The README blocks whose first line names a file (``# myapp/tasks.py``), written there."""
    written = {}
    for block in _blocks("python"):
        match = re.match(r"#\s*([\w/]+\.py)\b", block)
        if match:
            path = directory / match.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block)
            written[match.group(1)] = path
    (directory / "myapp" / "__init__.py").touch()
    return written


def _sync_view_then_burst_worker(app_dir: Path, env: dict[str, str]) -> None:
    view = subprocess.run(
        [sys.executable, "-c", "from myapp.views import signup; print(signup('ada@example.com'))"],
        cwd=app_dir, env=env, capture_output=True, text=True, timeout=60)
    assert view.returncode == 0, view.stderr
    assert view.stdout.startswith("queued ")
    # the README's worker command, with --burst so that it returns when the queue is empty
    command = re.search(r"`(faktory worker -r myapp\.tasks -q mail)`", README)
    assert command, "the README shows the worker command for the view's task"
    argv = [sys.executable, "-m", *command.group(1).split(), "--burst"]
    worker = subprocess.run(argv, cwd=app_dir, env=env, capture_output=True, text=True, timeout=120)
    assert worker.returncode == 0, worker.stderr
    assert "welcome mail to ada@example.com (Ada)" in worker.stdout


def test_readme_sync_view_pushes_a_task_and_a_worker_runs_it(faktory_url, tmp_path):
    written = _write_named_blocks(tmp_path)
    assert {"myapp/tasks.py", "myapp/views.py", "test_signup.py"} <= set(written)
    env = _env(faktory_url)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    _sync_view_then_burst_worker(tmp_path, env)


def test_readme_testing_example_passes_under_the_plugin(tmp_path):
    _write_named_blocks(tmp_path)
    env = _env("tcp://127.0.0.1:1")  # fake mode: nothing may reach a server
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_signup.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout_s(300)
def test_readme_path_from_pip_install(faktory_url, tmp_path):
    # pip install of this checkout (pure-Python build, to keep it quick) into a directory of
    # its own; then the README's view and worker run from that install, not from the checkout.
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                           str(ROOT)], env=dict(os.environ, FAKTORY_NO_EXTENSIONS="1"),
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr
    app_dir = tmp_path / "app"
    _write_named_blocks(app_dir)
    env = dict(os.environ, FAKTORY_URL=faktory_url, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(app_dir), str(site)]))
    where = subprocess.run([sys.executable, "-c", "import faktory; print(faktory.__file__)"],
                           cwd=app_dir, env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(site)), where
    _sync_view_then_burst_worker(app_dir, env)
