"""Task objects (``@faktory.task``): calling, pushing with the signature checked, options
and their overrides, keyword arguments, the blocking twins, and a worker running them."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import faktory
from faktory import Client, SyncClient
from faktory.server import free_port
from faktory.tasks import Task
from faktory.worker import Worker


@pytest.fixture
def app():
    return faktory.create()


def dead_url() -> str:
    return f"tcp://127.0.0.1:{free_port()}"  # nobody listens: a push that got this far would fail


def test_task_calls_like_the_function_and_keeps_its_name(app):
    @app.task
    def add(a: int, b: int = 1) -> int:
        """Adds."""
        return a + b

    assert isinstance(add, Task)
    assert add(2) == 3 and add(2, b=5) == 7
    assert add.name == "add" and add.__name__ == "add" and add.__doc__ == "Adds."
    assert app.registry["add"] is add.fn and app.tasks["add"] is add
    assert repr(add).startswith("<Task 'add'")


def test_job_binds_arguments_positionally_and_keyword_only_ones_in_custom(app):
    @app.task("email.send", queue="mail", retry=3, reserve_for=600, custom={"team": "growth"},
              backtrace=5)
    def send_email(address: str, template: str = "plain", *, urgent: bool = False, **extra: int) -> None:
        pass

    job = send_email.job("ada@example.com", template="welcome", urgent=True, n=2)
    d = job.to_dict()
    assert d["jobtype"] == "email.send"
    assert d["args"] == ["ada@example.com", "welcome"]  # travels positionally: any worker reads it
    assert d["custom"] == {"team": "growth", "kwargs": {"urgent": True, "n": 2}}
    assert (d["queue"], d["retry"], d["reserve_for"], d["backtrace"]) == ("mail", 3, 600, 5)
    assert send_email.job("bob").to_dict()["args"] == ["bob"]  # defaults are not sent
    assert send_email.job("bob").to_dict()["custom"] == {"team": "growth"}


@pytest.mark.parametrize("call, message", [
    (lambda t: t.job(), "missing a required argument: 'address'"),
    (lambda t: t.job("a", "b", "c"), "too many positional arguments"),
    (lambda t: t.job("a", nope=1), "unexpected keyword argument 'nope'"),
    (lambda t: t.job("a", address="b"), "multiple values for argument 'address'"),
])
def test_wrong_arguments_raise_the_functions_type_error_at_push_time(app, call, message):
    @app.task
    def send_email(address: str, template: str = "plain") -> None:
        pass

    with pytest.raises(TypeError, match=message) as info:
        call(send_email)
    assert str(info.value).startswith("send_email(): ")


async def test_wrong_or_unencodable_arguments_fail_before_anything_is_sent(app):
    @app.task
    def when(at: object) -> None:
        pass

    client = Client(dead_url(), reconnect_timeout=0.1)
    with pytest.raises(TypeError, match="when"):
        await when.options(client=client).push()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="args is not JSON"):
        await when.options(client=client).push(datetime.now(timezone.utc))
    with pytest.raises(TypeError, match="args is not JSON"):
        when.options(client=SyncClient(dead_url(), reconnect_timeout=0.1)).push_sync({1, 2})
    assert client._size == 0


def test_bad_options_raise_at_decoration_naming_the_field(app):
    with pytest.raises(ValueError, match="queue"):
        @app.task(queue="no good")
        def a() -> None:
            pass
    with pytest.raises(ValueError, match="reserve_for"):
        @app.task(reserve_for=5)
        def b() -> None:
            pass
    with pytest.raises(TypeError, match="retry"):
        app.task(retry="many")
    with pytest.raises(TypeError):
        app.task(42)  # type: ignore[call-overload]
    assert "a" not in app.registry and "b" not in app.registry


def test_options_override_per_push_and_merge_custom(app):
    @app.task(queue="mail", retry=3, custom={"a": 1, "b": 2})
    def job_fn(x: int) -> None:
        pass

    other = job_fn.options(queue="critical", custom={"b": None, "c": 3})
    d = other.job(1).to_dict()
    assert (d["queue"], d["retry"], d["custom"]) == ("critical", 3, {"a": 1, "c": 3})
    assert job_fn.job(1).to_dict()["queue"] == "mail"  # the task itself is unchanged
    assert other.options(retry=0).job(1).to_dict()["retry"] == 0
    with pytest.raises(ValueError, match="queue"):
        job_fn.options(queue="bad queue")


async def test_push_push_at_push_in_through_a_client(app, faktory_url):
    @app.task(queue="tq")
    async def greet(name: str, *, loud: bool = False) -> None:
        pass

    async with Client(faktory_url) as client:
        bound = greet.options(client=client)
        jid = await bound.push("ada", loud=True)
        job = await client.fetch("tq")
        assert job["jid"] == jid and job["jobtype"] == "greet" and job["args"] == ["ada"]
        assert job["custom"] == {"kwargs": {"loud": True}}
        await client.ack(jid)
        when = datetime.now(timezone.utc) + timedelta(hours=1)
        await bound.push_at(when, "bob")
        await bound.push_in(timedelta(minutes=5), "cy")
        await bound.push_in(90, "di")
        info = await client.info()
        assert info["faktory"]["tasks"]["Scheduled"]["size"] == 3
        assert info["faktory"]["queues"].get("tq", 0) == 0
        before = datetime.now(timezone.utc)
        at = datetime.fromisoformat(greet._job(("x",), {}, greet._at_in(90)).at.replace("Z", "+00:00"))
        assert timedelta(seconds=89) < at - before < timedelta(seconds=91)
        with pytest.raises(TypeError, match="delay"):
            await bound.push_in("soon", "x")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="aware"):
            await bound.push_at(datetime.now(), "x")
        with pytest.raises(TypeError, match="SyncClient"):
            bound.push_sync("x")


def test_push_sync_and_friends_through_a_sync_client(app, faktory_url):
    @app.task(queue="tsq")
    def resize(n: int) -> None:
        pass

    with SyncClient(faktory_url) as client:
        bound = resize.options(client=client)
        jid = bound.push_sync(3)
        bound.push_in_sync(60, 4)
        bound.push_at_sync("2099-01-01T00:00:00Z", 5)
        job = client.fetch("tsq")
        assert job["jid"] == jid and job["args"] == [3]
        client.ack(jid)
        assert client.info()["faktory"]["tasks"]["Scheduled"]["size"] == 2


async def test_default_clients_follow_configure(app, faktory_url):
    @app.task(queue="cq")
    def ping(n: int) -> None:
        pass

    app.configure(faktory_url)
    try:
        first = await ping.push(1)
        assert app.client() is app.client()  # one per event loop
        second = ping.push_sync(2)  # the blocking client, also from async code
        async with Client(faktory_url) as client:
            got = {(await client.fetch("cq"))["jid"], (await client.fetch("cq"))["jid"]}
        assert got == {first, second}
    finally:
        app.configure(None)
        await app.client().close()


async def test_a_worker_runs_tasks_with_their_keyword_arguments(app, faktory_url):
    seen: list[tuple[str, bool]] = []

    @app.task(queue="kq")
    async def greet(name: str, *, loud: bool = False) -> None:
        seen.append((name, loud))
        if name == "ada":
            await shout.options(client=client).push(name.upper(), times=2)

    @app.task(queue="kq")
    def shout(text: str, **options: int) -> None:
        seen.append((text * options["times"], True))

    async with Client(faktory_url) as client:
        await greet.options(client=client).push("ada", loud=True)
        await greet.options(client=client).push("bob")
        worker = Worker(url=faktory_url, registry=app.registry, queues=["kq"], concurrency=1, burst=True)
        await worker.work(handle_signals=False)  # burst: returns once the queue is empty
    assert sorted(seen) == [("ADAADA", True), ("ada", True), ("bob", False)]
    assert worker.failed == 0


def test_register_keeps_returning_the_function_and_accepts_a_task(app):
    def plain(x: int) -> int:
        return x

    assert app.register(plain) is plain
    assert app.register("named")(plain) is plain
    made = Task(plain, "wrapped")
    app.register("wrapped", made)
    assert app.registry["wrapped"] is plain  # the worker calls the function itself


def test_push_from_two_event_loops_in_a_row(app, faktory_url):
    # The case that failed with a module-level Client: each asyncio.run() is a new loop.
    import asyncio

    @app.task(queue="loops")
    async def hop(n: int) -> None:
        pass

    app.configure(faktory_url)
    try:
        first = asyncio.run(hop.push(1))
        second = asyncio.run(hop.push(2))
        with SyncClient(faktory_url) as client:
            assert {client.fetch("loops")["jid"], client.fetch("loops")["jid"]} == {first, second}
    finally:
        app.configure(None)
