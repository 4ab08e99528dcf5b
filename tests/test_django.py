"""faktory.contrib.django: a minimal Django project (tests/django_project) enqueues its
tasks to the embedded server, and a worker (in process, and `faktory worker --django`)
runs them with Django set up, closing database connections between jobs."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("django")
fdj = pytest.importorskip("faktory.contrib.django")

from faktory import Client  # noqa: E402
from faktory.worker import Worker  # noqa: E402

TESTS = Path(__file__).resolve().parent
SHOP = "django_project.shop.tasks"


@pytest.fixture(scope="module")
def django_db(tmp_path_factory):
    """Django set up once for this module, on a SQLite file."""
    db = tmp_path_factory.mktemp("django") / "db.sqlite3"
    os.environ["FAKTORY_TEST_DJANGO_DB"] = str(db)
    fdj.setup("django_project.settings")
    return db


def _tasks_setting(url: str, **options):
    opts = {"URL": url, "RETRY": 2, "PRIORITY_QUEUES": {"critical": 50, "{queue}.high": 10}}
    opts.update(options)
    return {"default": {"BACKEND": "faktory.contrib.django.FaktoryBackend",
                        "QUEUES": ["default", "emails"], "OPTIONS": opts}}


@contextmanager
def tasks_on(url: str, **options):
    from django.test import override_settings
    with override_settings(TASKS=_tasks_setting(url, **options)):
        yield


@pytest.fixture
def shop(django_db, faktory_url):
    """The test app's tasks module, its backend pointed at this test's server, table emptied."""
    import importlib
    with sqlite3.connect(django_db) as db:
        db.execute("CREATE TABLE IF NOT EXISTS runs (kind TEXT, value TEXT)")
        db.execute("DELETE FROM runs")
    with tasks_on(faktory_url):
        yield importlib.import_module(SHOP)


def runs(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("SELECT kind, value FROM runs").fetchall())


def fetch(url: str, *queues: str):
    async def go():
        async with Client(url) as client:
            return await client.fetch(*queues)
    return asyncio.run(go())


# -- producing ------------------------------------------------------------------------------

def test_enqueue_pushes_the_task_as_a_job_and_returns_its_jid(shop, faktory_url):
    result = shop.send_email.enqueue("ada@example.com", subject="welcome")
    assert result.status == fdj.TaskResultStatus.READY and result.enqueued_at is not None
    job = fetch(faktory_url, "emails")
    assert job["jid"] == result.id
    assert job["jobtype"] == f"{SHOP}.send_email"
    assert job["args"] == ["ada@example.com"]
    assert job["queue"] == "emails" and job["retry"] == 2
    assert job["custom"] == {"django": {"backend": "default", "kwargs": {"subject": "welcome"}}}


async def test_aenqueue_returns_the_jid_without_blocking_the_loop(shop, faktory_url):
    result = await shop.send_email.aenqueue("bob@example.com")
    async with Client(faktory_url) as client:
        job = await client.fetch("emails")
    assert job["jid"] == result.id and job["args"] == ["bob@example.com"]
    assert "kwargs" not in job["custom"]["django"]


def test_priority_picks_the_queue(shop, faktory_url):
    backend = shop.send_email.get_backend()
    assert backend.faktory_queue(shop.urgent) == "critical"                          # 60 >= 50
    assert backend.faktory_queue(shop.send_email.using(priority=20)) == "emails.high"  # 10..49
    assert backend.faktory_queue(shop.send_email.using(priority=9)) == "emails"
    assert backend.faktory_queue(shop.send_email.using(priority=-100)) == "emails"
    assert backend.worker_queues() == ["critical", "default.high", "emails.high", "default", "emails"]
    shop.urgent.enqueue(1)
    assert fetch(faktory_url, "critical")["jobtype"] == f"{SHOP}.urgent"


def test_priority_without_priority_queues_is_refused(django_db, faktory_url):
    import importlib
    shop = importlib.import_module(SHOP)
    with tasks_on(faktory_url, PRIORITY_QUEUES=None):
        with pytest.raises(fdj.InvalidTask, match="priority"):
            shop.send_email.using(priority=5)


def test_unknown_option_and_bad_values_are_refused(django_db, faktory_url):
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings
    import importlib
    shop = importlib.import_module(SHOP)
    with override_settings(TASKS={"default": {"BACKEND": "faktory.contrib.django.FaktoryBackend",
                                              "OPTIONS": {"URLS": "x"}}}):
        with pytest.raises(ImproperlyConfigured, match="unknown option.*URLS"):
            shop.send_email.get_backend()
    with tasks_on(faktory_url):
        with pytest.raises(TypeError, match="not JSON|Unsupported type"):
            shop.send_email.enqueue(object())


def test_run_after_becomes_at(shop, faktory_url):
    when = datetime.now(timezone.utc) + timedelta(hours=1)
    result = shop.send_email.using(run_after=when).enqueue("later@example.com")

    async def scheduled():
        async with Client(faktory_url) as client:
            return (await client.info())["faktory"]["sets"]["scheduled"]
    assert asyncio.run(scheduled()) == 1
    assert len(result.id) >= 8


# -- running --------------------------------------------------------------------------------

async def run_worker(url: str, jobs: int) -> tuple[Worker, list]:
    """Run a worker (concurrency 1) until ``jobs`` tasks have sent ``task_finished``, stop
    it (a graceful stop delivers the ACK/FAILs first); the TaskResults seen."""
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()
    results: list = []

    def on_finished(sender, task_result, **kwargs):
        results.append(task_result)
        if len(results) == jobs:
            loop.call_soon_threadsafe(finished.set)

    fdj._signals.task_finished.connect(on_finished)
    worker = Worker(url=url, concurrency=1, **fdj.worker_options())
    task = asyncio.ensure_future(worker.work(handle_signals=False))
    try:
        await asyncio.wait_for(finished.wait(), 20)
    finally:
        fdj._signals.task_finished.disconnect(on_finished)
        await worker.stop()
        await asyncio.wait_for(task, 20)
    return worker, results


async def test_worker_runs_tasks_with_django_and_closes_connections_between_jobs(shop, faktory_url, django_db):
    from django.db.backends.signals import connection_created

    created: list[str] = []

    def on_created(sender, connection, **kwargs):
        created.append(threading.current_thread().name)

    connection_created.connect(on_created)
    try:
        r1 = await shop.send_email.aenqueue("ada@example.com", subject="hi")
        await shop.send_email.aenqueue("bob@example.com")
        await shop.urgent.aenqueue(7)
        await shop.async_task.aenqueue(3)
        worker, results = await run_worker(faktory_url, 4)
    finally:
        connection_created.disconnect(on_created)
    assert runs(django_db) == [("async", "3"), ("email", "ada@example.com:hi"),
                               ("email", "bob@example.com:hello"), ("urgent", "7")]
    assert worker.processed == 4 and worker.failed == 0
    assert [r.status for r in results] == [fdj.TaskResultStatus.SUCCESSFUL] * 4
    assert results[0].task.func is shop.urgent.func  # "critical" is fetched first
    by_id = {r.id: r for r in results}
    assert by_id[r1.id].return_value == "ada@example.com" and by_id[r1.id].worker_ids == [worker.wid]
    # each of the three sync jobs opened its own connection in the job thread: the one
    # before was closed after its job (CONN_MAX_AGE = 0), as Django does per request
    assert sum(name.startswith("faktory-") for name in created) == 3, created


async def test_failed_task_fails_the_job_and_the_retry_sees_the_next_attempt(shop, faktory_url, django_db):
    result = await shop.flaky.aenqueue(5)
    worker, results = await run_worker(faktory_url, 1)
    assert worker.failed == 1 and results[0].status == fdj.TaskResultStatus.FAILED
    assert results[0].errors[0].exception_class is RuntimeError
    assert "first attempt fails" in results[0].errors[0].traceback
    assert runs(django_db) == [("flaky", "5:attempt1")]
    async with Client(faktory_url) as client:
        assert (await client.info())["faktory"]["sets"]["retries"] == 1
        await client.retries.with_jids(result.id).requeue()
    worker, results = await run_worker(faktory_url, 1)
    assert worker.processed == 1 and results[0].attempts == 2  # from the job's failure record
    assert results[0].id == result.id and results[0].status == fdj.TaskResultStatus.SUCCESSFUL
    assert runs(django_db) == [("flaky", "5:attempt1"), ("flaky", "5:attempt2")]


def test_registry_runs_only_tasks_of_a_faktory_backend(shop):
    registry = fdj.TaskRegistry({"plain": len})
    assert registry.get("plain") is len
    assert registry.get(f"{SHOP}.send_email") is not None
    assert registry.get(f"{SHOP}.record") is None       # a plain function, not a task
    assert registry.get("os.system") is None             # outside the installed apps
    assert registry.get("subprocess.run") is None
    assert "subprocess" not in sys.modules or registry.get("subprocess.Popen") is None
    assert registry.get("nodots") is None


@pytest.mark.parametrize("entry", [
    ["-m", "faktory", "worker", "--django"],
    ["-m", "django", "faktory_worker"],  # manage.py faktory_worker (faktory.contrib.django_app)
], ids=["faktory worker --django", "manage.py faktory_worker"])
def test_worker_entry_points_run_a_task(entry, shop, faktory_url, django_db):
    shop.send_email.enqueue("cli@example.com", subject="from the cli")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]),
               FAKTORY_URL=faktory_url, FAKTORY_TEST_DJANGO_DB=str(django_db), PYTHONUNBUFFERED="1")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.Popen(
        [sys.executable, *entry, "--settings", "django_project.settings",
         "--log-level", "debug", "--url", faktory_url, "--loop", "asyncio", "-c", "1"],
        stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    try:
        deadline = threading.Timer(60, proc.kill)
        deadline.start()
        for line in proc.stderr:  # wait for the worker's own "job ... ok" line
            lines.append(line)
            if f"{SHOP}.send_email" in line and " ok in " in line:
                break
        deadline.cancel()
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = "".join(lines) + (rest or "")
    assert proc.returncode == 0, output
    assert "Django" in output and "task modules: django_project.shop.tasks" in output
    assert "queues critical, default.high, emails.high, default, emails (strict order)" in output
    assert runs(django_db) == [("email", "cli@example.com:from the cli")]


def test_enqueue_gives_up_after_timeout_and_says_not_enqueued(shop):
    import socket
    from faktory.errors import CommandTimeout
    with socket.socket() as listener:  # accepts TCP connections, never says HI
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        with tasks_on(url, TIMEOUT=0.3):
            with pytest.raises(CommandTimeout, match=r"send_email .*within 0.3 s .*not enqueued"):
                shop.send_email.enqueue("x@example.com")

            async def attempt():
                with pytest.raises(CommandTimeout, match="not enqueued"):
                    await shop.send_email.aenqueue("y@example.com")
            asyncio.run(attempt())
