"""Typed user code: checked with ``mypy --strict`` by ``.ci/typecheck.py`` (never run).

``assert_type`` pins what the decorators and singletons give; each ``# type: ignore[...]``
marks a line mypy must reject (under ``--strict`` an ignore that is not needed is an error,
so a check that stopped catching the mistake fails the run)."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

from typing_extensions import assert_type

import faktory
from faktory import Client, Job, JobContext, SyncClient, Task, Worker


@faktory.task(queue="mail", retry=5)
def send_email(address: str, *, template: str = "plain") -> None:
    pass


@faktory.task
async def resize(n: int, factor: float = 1.0) -> int:
    return int(n * factor)


@faktory.register("plain")
def plain(x: int) -> str:
    return str(x)


@faktory.register
async def bare(x: int) -> None:
    pass


@faktory.use
async def mw(ctx: JobContext, next: Callable[[], Awaitable[Any]]) -> None:
    await next()


as_function: Callable[[int], str] = plain  # register returns the function, its type intact
wrong_function: Callable[[str], str] = plain  # type: ignore[assignment]
assert_type(plain(1), str)
a_task: Task[..., None] = send_email.options(queue="critical")
not_that_task: Task[..., int] = send_email  # type: ignore[assignment]
assert_type(send_email("ada@example.com"), None)
send_email()  # type: ignore[call-arg]


async def produce() -> None:
    assert_type(await resize(3), int)  # still the function
    assert_type(await send_email.push("ada@example.com", template="welcome"), str)
    await resize.push(3, factor=2.0)
    await resize.push_in(timedelta(seconds=5), 3)
    await resize.push_at(datetime.now(timezone.utc), 3)
    await send_email.push(42)  # type: ignore[arg-type]
    await send_email.push("a", templat="x")  # type: ignore[call-arg]
    await resize.push()  # type: ignore[call-arg]
    client = await faktory.connect()
    assert_type(client, Client)
    async with faktory.connect() as other:
        assert_type(other, Client)
        assert_type(await other.push(Job("x", 1)), str)
        assert_type(await other.push_bulk([Job("x")]), dict[str | int, tuple[str, dict[str, Any]]])
    assert_type(SyncClient().push_bulk([Job("x")]), dict[str | int, tuple[str, dict[str, Any]]])
    await faktory.stop()
    worker = await faktory.work(concurrency=2, burst=True)
    assert_type(worker, Worker)


def view(email: str) -> str:
    jid = send_email.push_sync(email, template="welcome")
    send_email.push_sync(email, template=3)  # type: ignore[arg-type]
    send_email.push_in_sync(30, email)
    sync = SyncClient()
    assert_type(sync.push(Job("x")), str)
    assert_type(sync.fetch("default"), dict[str, Any] | None)
    sync.dead.of_type("x").requeue()
    return jid


def tests() -> None:
    import faktory.testing

    with faktory.testing.fake() as jobs:
        view("ada@example.com")
        assert_type(jobs.of_type(send_email), list[dict[str, Any]])
        outcomes = faktory.testing.drain()
        assert_type(outcomes[0].ok, bool)
    with faktory.testing.inline():
        view("bob@example.com")
    assert_type(faktory.testing.execute(Job("x")), faktory.testing.Outcome)


asyncio.run(produce())
