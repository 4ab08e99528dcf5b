"""``faktory.testing``: the fake and inline modes (Client, SyncClient and tasks), drain,
the single-job executor with middleware, the fixtures, and the plugin's import cost."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone

import pytest

import faktory
from faktory import Client, Job, SyncClient, testing
from faktory import _testmode
from faktory.server import free_port
from faktory.errors import UnknownJobTypeError


def dead_url() -> str:
    return f"tcp://127.0.0.1:{free_port()}"  # nobody listens: a mode that sent anything would fail


@pytest.fixture
def app():
    """A fresh registry with two tasks, a middleware that logs around each job, and a log."""
    app = faktory.create()
    app.log = []  # type: ignore[attr-defined]

    @app.use
    async def around(ctx, next):
        app.log.append(f"before {ctx.jobtype}")
        try:
            return await next()
        finally:
            app.log.append(f"after {ctx.jobtype}")

    @app.task(queue="mail")
    def send_email(address: str, *, template: str = "plain") -> str:
        app.log.append(f"send {address} {template}")
        if address == "bad":
            raise ValueError("no such address")
        follow_up.push_sync(address)  # a job that pushes a job
        return "sent"

    @app.task
    async def follow_up(address: str) -> None:
        app.log.append(f"follow {address}")

    app.send_email, app.follow_up = send_email, follow_up  # type: ignore[attr-defined]
    return app


# -- fake ---------------------------------------------------------------------------------------

async def test_fake_records_pushes_from_every_client_and_sends_nothing(app):
    with testing.fake() as jobs:
        assert jobs is testing.jobs and len(jobs) == 0
        async with Client(dead_url(), reconnect_timeout=0.1) as client:  # connect opens nothing
            jid1 = await client.push(Job("Report", 2024, queue="critical"))
            assert await client.push_bulk([Job("Resize", n) for n in range(3)] + [{"args": []}]) == {
                3: ("jobtype is required, missing from {'args': []}", {"args": []})}
        sync = SyncClient(dead_url(), reconnect_timeout=0.1).connect()
        jid2 = sync.push({"jobtype": "Report", "args": [2025], "queue": "critical"})
        sync.push_bulk(Job("Resize", n) for n in range(3, 5))
        await app.send_email.push("ada@example.com", template="welcome")
        app.send_email.push_sync("bob@example.com")
        assert [j["jid"] for j in jobs["critical"]] == [jid1, jid2]
        assert [j["args"] for j in jobs.of_type("Resize")] == [[0], [1], [2], [3], [4]]
        mail = jobs.of_type(app.send_email)
        assert [j["args"] for j in mail] == [["ada@example.com"], ["bob@example.com"]]
        assert mail[0]["custom"] == {"kwargs": {"template": "welcome"}}
        assert mail[0]["queue"] == "mail" and "enqueued_at" in mail[0]
        assert set(jobs.queues) == {"critical", "default", "mail"}
        assert len(jobs) == 2 + 5 + 2
        assert app.log == []  # nothing ran
        with pytest.raises(TypeError, match="args is not JSON"):
            await app.send_email.push(datetime.now(timezone.utc))  # type: ignore[arg-type]
    assert _testmode.current is None  # normal mode again
    assert len(testing.jobs) == 9  # still inspectable after the block


def test_drain_runs_jobs_in_order_through_middleware_including_jobs_pushed_by_jobs(app):
    with testing.fake() as jobs:
        app.send_email.push_sync("ada", template="welcome")
        app.send_email.push_sync("bob")
        outcomes = testing.drain(app=app)
        assert [o.jobtype for o in outcomes] == ["send_email", "send_email", "follow_up", "follow_up"]
        assert all(o.ok for o in outcomes) and outcomes[0].result == "sent"
        assert app.log == [
            "before send_email", "send ada welcome", "after send_email",
            "before send_email", "send bob plain", "after send_email",
            "before follow_up", "follow ada", "after follow_up",
            "before follow_up", "follow bob", "after follow_up",
        ]
        assert len(jobs) == 0


def test_drain_raises_a_failing_jobs_error_or_returns_it(app):
    with testing.fake() as jobs:
        app.send_email.push_sync("bad")
        app.send_email.push_sync("ada")
        with pytest.raises(ValueError, match="no such address"):
            testing.drain(app=app)
        assert [j["args"] for j in jobs] == [["ada"]]  # the failed job is gone, the next one waits
        app.send_email.push_sync("bad")
        outcomes = testing.drain(app=app, raise_errors=False)
        assert [o.ok for o in outcomes] == [True, False, True]
        assert isinstance(outcomes[1].error, ValueError)


def test_drain_only_the_queues_given(app):
    with testing.fake() as jobs:
        app.send_email.push_sync("ada")
        app.follow_up.push_sync("x")
        assert [o.jobtype for o in testing.drain("default", app=app)] == ["follow_up"]
        assert [j["jobtype"] for j in jobs] == ["send_email"]


async def test_drain_async_from_an_async_test(app):
    with testing.fake():
        await app.send_email.push("ada")
        outcomes = await testing.drain_async(app=app)
    assert [o.jobtype for o in outcomes] == ["send_email", "follow_up"]


def test_faktory_fake_fixture(faktory_fake, app):
    assert _testmode.current is not None
    app.follow_up.push_sync("z")
    assert faktory_fake.of_type("follow_up")[0]["args"] == ["z"]


# -- inline -------------------------------------------------------------------------------------

def test_inline_runs_each_job_at_push_time_with_json_round_trip(app):
    got: list[object] = []

    @app.task
    def echo(value: object) -> None:
        got.append(value)

    with testing.inline(app) as outcomes:
        app.send_email.push_sync("ada")
        assert app.log == ["before send_email", "send ada plain",
                           "before follow_up", "follow ada", "after follow_up", "after send_email"]
        echo.push_sync((1, "two"))  # a tuple arrives as the list JSON makes of it
        assert got == [[1, "two"]]
        with pytest.raises(TypeError, match="args is not JSON"):
            echo.push_sync({1, 2})
        with pytest.raises(TypeError, match="args is not JSON"):
            echo.push_sync(datetime.now(timezone.utc))
        with pytest.raises(ValueError, match="no such address"):
            app.send_email.push_sync("bad")  # the job's exception comes out of the push
        assert [o.ok for o in outcomes] == [True, True, True, False]
    assert _testmode.current is None


async def test_inline_from_async_code_and_a_client(app):
    with testing.inline(app):
        await app.send_email.push("ada", template="t")
        async with Client(dead_url(), reconnect_timeout=0.1) as client:
            await client.push(Job("follow_up", "direct"))
    assert app.log[1] == "send ada t" and "follow direct" in app.log


def test_faktory_inline_fixture(faktory_inline):
    calls: list[int] = []

    @faktory.task
    def inline_fixture_job(n: int) -> None:
        calls.append(n)

    try:
        inline_fixture_job.push_sync(7)
        assert calls == [7] and faktory_inline[0].ok
    finally:
        faktory.app.default.registry.pop("inline_fixture_job")
        faktory.app.default.tasks.pop("inline_fixture_job")


def test_modes_nest_and_restore(app):
    with testing.fake():
        with testing.inline(app):
            app.follow_up.push_sync("inner")
        app.follow_up.push_sync("outer")
        assert [j["args"] for j in testing.jobs] == [["outer"]]
    assert app.log == ["before follow_up", "follow inner", "after follow_up"]


# -- the single-job executor ---------------------------------------------------------------------

def test_execute_runs_one_payload_through_middleware_and_function(app, faktory_fake):
    outcome = testing.execute(Job("send_email", "ada", custom={"kwargs": {"template": "x"}}), app=app)
    assert faktory_fake.of_type("follow_up")[0]["args"] == ["ada"]  # what the job pushed
    assert outcome.ok and outcome.result == "sent" and outcome.jobtype == "send_email"
    assert app.log[:3] == ["before send_email", "send ada x", "after send_email"]
    failed = testing.execute({"jobtype": "send_email", "args": ["bad"]}, app=app)
    assert not failed.ok and isinstance(failed.error, ValueError)
    with pytest.raises(ValueError):
        failed.raise_error()
    unknown = testing.execute(Job("nobody_registered_this"), app=app)
    assert isinstance(unknown.error, UnknownJobTypeError)
    with pytest.raises(TypeError, match="args is not JSON"):
        testing.execute(Job("send_email", {1}), app=app)


async def test_execute_async_with_a_context_provider_and_short_circuiting_middleware():
    app = faktory.create()

    @app.use
    async def skip_vip(ctx, next):
        if ctx.args == ["vip"]:
            return "skipped"
        ctx.db = "a database handle"
        return await next()

    @app.register("provider")
    def provider(name: str):
        return lambda ctx: f"{name} via {ctx.db}"

    outcome = await testing.execute_async(Job("provider", "ada"), app=app)
    assert outcome.result == "ada via a database handle" and outcome.ctx.db == "a database handle"
    assert (await testing.execute_async(Job("provider", "vip"), app=app)).result == "skipped"


def test_execute_with_a_worker_registry():
    from faktory.worker import Worker

    worker = Worker(url=dead_url())
    worker.register("double", lambda n: n * 2)
    assert testing.execute(Job("double", 21), app=worker).result == 42


# -- the plugin -----------------------------------------------------------------------------------

def test_loading_the_plugin_imports_neither_client_nor_server_nor_asyncio():
    code = ("import sys; import faktory.testing; "
            "print(__import__('json').dumps(sorted(m for m in sys.modules "
            "if m.startswith(('faktory', 'asyncio', 'ssl', 'sqlite3', 'concurrent')))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["faktory", "faktory._testmode", "faktory.testing"]


def test_submodules_load_on_first_use_as_before():
    code = "import faktory; print(faktory.app.default.__class__.__name__, faktory.worker.Worker.__name__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Faktory", "Worker"]


def test_package_names_still_import_from_faktory():
    for name in faktory.__all__:
        assert getattr(faktory, name) is not None, name
    assert faktory.Client is __import__("faktory.client").client.Client
    assert "SyncClient" in dir(faktory)
    with pytest.raises(AttributeError):
        faktory.no_such_name  # noqa: B018
