"""Child processes (the embedded server of ``ServerProcess`` and ``faktory bench``, the
``faktory worker --processes`` children) run the parent's ``faktory``, not the one in the
current directory: ``python -m faktory`` in a source checkout imported the uncompiled tree,
so README command 1, run where the README is, benchmarked a pure-Python server."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import faktory
from faktory import Client, Job
from faktory._spawn import PACKAGE_DIR, faktory_argv
from faktory.protocol import IMPLEMENTATION
from faktory.server import ServerProcess, ServerThread


@pytest.fixture
def decoy(tmp_path: Path) -> Path:
    """A directory holding another ``faktory`` package, as a source checkout does."""
    pkg = tmp_path / "faktory"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise SystemExit('the decoy faktory was imported')\n")
    (pkg / "__main__.py").write_text("raise SystemExit('the decoy faktory was run')\n")
    return tmp_path


def test_the_decoy_is_what_python_m_faktory_runs_there(decoy: Path) -> None:
    # What the children did before: the current directory's package wins.
    proc = subprocess.run([sys.executable, "-m", "faktory", "--version"], cwd=decoy,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "decoy" in proc.stderr


def test_a_child_runs_this_process_faktory_in_a_directory_holding_another(decoy: Path) -> None:
    proc = subprocess.run([*faktory_argv("--version")], cwd=decoy, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # the same package (and so the same codec: compiled where this process's is)
    assert proc.stdout.startswith(f"faktory-turbo {faktory.__version__} (codec {IMPLEMENTATION},")
    assert PACKAGE_DIR == str(Path(faktory.__file__).resolve().parent)


def test_a_worker_child_imports_the_project_modules_of_its_current_directory(decoy: Path) -> None:
    # faktory worker children (--processes) import the project's modules (-r) from where they
    # run, and faktory from where their parent did
    out = decoy / "out.txt"
    (decoy / "projectjobs.py").write_text(textwrap.dedent(f"""
        import faktory

        @faktory.register("record")
        def record(text):
            with open({str(out)!r}, "a") as f:
                f.write(text + " " + faktory.__file__ + "\\n")
    """))
    with ServerThread(port=0, fetch_timeout=0.25) as server:
        asyncio.run(_push(server.url, [Job("record", f"job{n}") for n in range(3)]))
        proc = subprocess.run(faktory_argv("worker", "-r", "projectjobs", "--burst", "--url", server.url),
                              cwd=decoy, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = sorted(out.read_text().splitlines())
    assert [line.split()[0] for line in lines] == ["job0", "job1", "job2"]
    assert {Path(line.split()[1]).resolve().parent for line in lines} == {Path(PACKAGE_DIR)}


async def _push(url: str, jobs: list[Job]) -> None:
    async with Client(url) as client:
        await client.push_bulk(jobs)


async def test_server_process_started_in_a_directory_holding_another_faktory(decoy: Path) -> None:
    with ServerProcess(cwd=decoy) as server:
        async with Client(server.url) as client:
            jid = await client.push(Job("Spawned", queue="spawned"))
            job = await client.fetch("spawned")
            assert job is not None and job["jid"] == jid
            await client.ack(jid)
