"""The official Node client (faktory_worker_node, npm ``faktory-worker``) and this library on
one server, both ways round: jobs the Node client pushes (its own payload shape, with the
``priority`` field it adds to every job) are run by this library's ``Worker``; jobs this
library pushes are run, and failed, by the Node worker.

Against the embedded server, or a real Faktory when ``FAKTORY_TEST_URL`` names one.  Needs
``node`` and ``npm``: the client is installed once (``npm install``, the npm registry) into
a cache folder, or taken from ``$FAKTORY_NODE_MODULES`` (a folder whose ``node_modules``
holds it).  Without them the tests skip and say why; ``.ci/run`` installs Node and sets
``FAKTORY_REQUIRE_NODE=1``, so there a missing client fails instead.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from faktory.client import Client
from faktory.job import Job
from faktory.worker import Worker

pytestmark = pytest.mark.slow

#: the client version these tests were written against
NODE_CLIENT = "faktory-worker@4.7.1"
SCRIPT = Path(__file__).parent / "interop" / "node_client.js"
#: the fields of Go's client.Job: all a stored job may hold
GO_FIELDS = {"jid", "queue", "jobtype", "args", "created_at", "enqueued_at", "at", "reserve_for",
             "retry", "backtrace", "custom", "failure"}


def _install() -> str:
    """The folder whose node_modules holds the Node client (installed on first use)."""
    given = os.environ.get("FAKTORY_NODE_MODULES")
    if given:
        return given
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError("node and npm are not installed")
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "faktory-turbo-tests" / \
        NODE_CLIENT.replace("@", "-")
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:  # the two CI suites run side by side
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "node_modules" / "faktory-worker" / "package.json").exists():
            proc = subprocess.run([npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                                   "--silent", NODE_CLIENT], capture_output=True, text=True, timeout=300)
            if proc.returncode != 0:
                raise RuntimeError(f"npm install {NODE_CLIENT} failed: {proc.stderr.strip()[-500:]}")
    return str(folder)


@pytest.fixture(scope="session")
def node_modules() -> str:
    try:
        return _install()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        if os.environ.get("FAKTORY_REQUIRE_NODE") == "1":
            pytest.fail(f"the Node client is required here (FAKTORY_REQUIRE_NODE=1): {exc}")
        pytest.skip(f"the official Node client is not available: {exc}")


async def node(node_modules: str, url: str, *args: str) -> dict[str, Any]:
    """Run the Node helper script against ``url``; its JSON result."""
    env = dict(os.environ, FAKTORY_URL=url, NODE_PATH=str(Path(node_modules) / "node_modules"))
    proc = await asyncio.create_subprocess_exec(
        "node", str(SCRIPT), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_jobs_the_node_client_pushes_are_run_by_this_worker(node_modules, faktory_url):
    pushed = await node(node_modules, faktory_url, "push", "from-node", "10")
    assert pushed["rejected"] == {}
    jids = pushed["jids"]
    assert len(jids) == 20 and len(set(jids)) == 20

    async with Client(faktory_url) as client:
        assert (await client.info())["faktory"]["queues"]["from-node"] == 20
        # the job as stored: the Node client's fields, its "priority" dropped as Go drops it
        first = await client.fetch("from-node")
        assert first is not None
        assert first["jid"] == jids[0] and first["jobtype"] == "Add" and first["args"] == [0, 1]
        assert first["queue"] == "from-node" and first["retry"] == 25
        assert set(first) <= GO_FIELDS, set(first) - GO_FIELDS
        await client.ack(first["jid"])

        seen: list[list[Any]] = []
        all_ran = asyncio.Event()

        def add(a: int, b: int) -> int:
            seen.append([a, b])
            if len(seen) == 19:
                all_ran.set()
            return a + b

        worker = Worker(url=faktory_url, queues=["from-node"], concurrency=5)
        worker.register("Add", add)
        task = asyncio.ensure_future(worker.work(handle_signals=False))
        try:
            await asyncio.wait_for(all_ran.wait(), 20)
        finally:
            await worker.stop()
            await task
        assert sorted(seen) == [[i, 1] for i in range(1, 20)]
        info = (await client.info())["faktory"]
        assert info["queues"].get("from-node", 0) == 0 and info["sets"]["working"] == 0


async def test_jobs_this_client_pushes_are_run_and_failed_by_the_node_worker(node_modules, faktory_url):
    async with Client(faktory_url) as client:
        before = (await client.info())["faktory"]
        rejected = await client.push_bulk(Job("Add", i, 2, queue="to-node") for i in range(8))
        assert rejected == {}
        for i in range(8, 12):
            await client.push(Job("Add", i, 2, queue="to-node"))
        boom = await client.push(Job("Boom", queue="to-node", retry=3))

        result = await node(node_modules, faktory_url, "work", "to-node", "12")
        assert result["complete"] is True, result
        assert sorted(result["ran"]) == [[i, 2] for i in range(12)]
        assert result["failed"] == 1

        # the Node worker ACKed the twelve and FAILed the one (its stop waits for both
        # replies): the failed job is a retry that carries the error
        info = (await client.info())["faktory"]
        assert info["sets"]["retries"] == 1, info["sets"]
        assert info["sets"]["working"] == 0 and info["queues"].get("to-node", 0) == 0
        assert info["total_processed"] - before["total_processed"] == 13
        assert info["total_failures"] - before["total_failures"] == 1
        await client.retries.with_jids(boom).requeue()
        job = await client.fetch("to-node")
        assert job is not None and job["jid"] == boom
        failure = job["failure"]
        assert failure["retry_count"] == 0 and "kaboom from node" in failure["message"], failure
        await client.ack(boom)
