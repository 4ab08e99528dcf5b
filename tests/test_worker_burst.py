"""Burst mode (``Worker(burst=True)``, ``faktory worker --burst``) and the keyword
arguments a job carries in ``custom["kwargs"]``, against the embedded server."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from faktory import Job
from faktory.client import Client
from faktory.server import ServerThread
from faktory.worker import Worker

pytestmark = pytest.mark.internals

FETCH_TIMEOUT = 0.25  # the server's wait on an empty FETCH: a burst run ends this long after its last job


@pytest.fixture
def server():
    if os.environ.get("FAKTORY_TEST_URL"):
        pytest.skip("needs the embedded server (fetch_timeout)")
    with ServerThread(port=0, fetch_timeout=FETCH_TIMEOUT) as st:
        yield st


async def test_burst_processes_every_job_then_returns(server):
    done: list[int] = []
    async with Client(server.url) as client:
        worker = Worker(url=server.url, concurrency=4, burst=True, queues=["bq"])

        @worker.register("Step")
        async def step(n: int) -> None:
            done.append(n)
            if n < 3:  # a job that pushes the next one: burst waits for it too
                await client.push(Job("Step", n + 1, queue="bq"))

        @worker.register("Plain")
        def plain(n: int) -> None:
            done.append(100 + n)

        await client.push_bulk([Job("Plain", n, queue="bq") for n in range(20)])
        await client.push(Job("Step", 0, queue="bq"))
        await worker.work(handle_signals=False)  # returns by itself
        assert worker.state == "stopped"
        assert sorted(done) == [0, 1, 2, 3] + [100 + n for n in range(20)]
        assert worker.processed == 24 and worker.failed == 0
        info = await client.info()
        assert info["faktory"]["queues"].get("bq", 0) == 0


async def test_burst_on_empty_queues_returns_at_once(server):
    worker = Worker(url=server.url, burst=True, queues=["nothing-here"])
    await worker.work(handle_signals=False)
    assert worker.state == "stopped" and worker.processed == 0


async def test_keyword_arguments_in_custom_reach_async_and_sync_functions(server):
    got: dict[str, object] = {}
    finished = threading.Event()
    worker = Worker(url=server.url, queues=["kw"], burst=True)

    @worker.register("AsyncKw")
    async def async_kw(a: int, *, b: str = "unset") -> None:
        got["async"] = (a, b)

    @worker.register("SyncKw")
    def sync_kw(a: int, **rest: object) -> None:
        got["sync"] = (a, rest)
        finished.set()

    async with Client(server.url) as client:
        await client.push(Job("AsyncKw", 1, queue="kw", custom={"kwargs": {"b": "given"}}))
        await client.push(Job("SyncKw", 2, queue="kw", custom={"kwargs": {"x": [1, 2]}, "other": 1}))
    await worker.work(handle_signals=False)
    assert got == {"async": (1, "given"), "sync": (2, {"x": [1, 2]})}
    assert worker.failed == 0


def test_cli_burst_exits_0_when_the_queues_are_empty(server, tmp_path):
    (tmp_path / "burst_tasks.py").write_text(textwrap.dedent("""
        import faktory

        @faktory.task
        def record(path: str, line: str) -> None:
            with open(path, "a") as f:
                f.write(line + "\\n")
    """))
    out = tmp_path / "out.txt"
    import asyncio

    async def push() -> None:
        async with Client(server.url) as client:
            await client.push_bulk([Job("record", str(out), f"job {n}") for n in range(5)])
    asyncio.run(push())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-m", "faktory", "worker", "-r", "burst_tasks", "--burst",
                           "--url", server.url, "-c", "2"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(out.read_text().splitlines()) == [f"job {n}" for n in range(5)]
    assert "burst" in proc.stderr
