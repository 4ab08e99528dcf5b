"""The module-level singletons (``faktory.register``, ``use``, ``connect``, ``work``, ``stop``)."""
from __future__ import annotations

import asyncio
import os

import pytest

import faktory
from faktory import app
from faktory.worker import Worker


def test_module_functions_are_bound_to_the_default_instance():
    assert app.register.__self__ is app.default
    assert app.use.__self__ is app.default
    assert app.work.__self__ is app.default
    assert app.stop.__self__ is app.default
    assert app.connect.__self__ is app.default


def test_create_gives_an_independent_instance():
    one, two = app.create(), app.create()

    @one.register
    def only_in_one():
        return None

    assert "only_in_one" in one.registry
    assert "only_in_one" not in two.registry
    assert "only_in_one" not in app.default.registry


def test_register_is_a_decorator_in_every_form():
    fk = app.create()

    @fk.register
    async def plain():
        return None

    @fk.register("Custom")
    def custom():
        return None

    assert fk.register("direct", print) is print
    assert fk.registry == {"plain": plain, "Custom": custom, "direct": print}


def test_use_appends_in_order_and_returns_the_middleware():
    fk = app.create()

    async def first(ctx, next):
        await next()

    async def second(ctx, next):
        await next()

    assert fk.use(first) is first
    fk.use(second)
    assert fk.middleware == [first, second]
    with pytest.raises(TypeError):
        fk.use("not callable")


def test_create_worker_shares_registry_and_middleware():
    fk = app.create()

    async def mw(ctx, next):
        await next()

    fk.use(mw)
    worker = fk.create_worker(concurrency=3)
    assert isinstance(worker, Worker) and fk.worker is worker
    assert worker.registry is fk.registry
    assert worker.middleware == [mw]
    fk.register("late", print)
    assert worker.registry["late"] is print


def test_stop_without_a_worker_does_nothing():
    app.create().stop()


def test_package_reexports_the_singletons():
    for name in ("register", "use", "connect", "work", "stop", "create", "Worker"):
        assert hasattr(faktory, name), name
    assert faktory.register.__self__ is app.default
    assert faktory.create is app.create


async def test_connect_is_awaitable_and_an_async_context_manager(faktory_url):
    fk = app.create()
    async with fk.connect(faktory_url) as client:
        assert "faktory" in await client.info()
    client = await fk.connect(faktory_url)
    try:
        assert "faktory" in await client.info()
    finally:
        await client.close()


@pytest.fixture
def quick_server():
    """An embedded server whose empty FETCH blocks 0.25 s (a graceful stop waits for it)."""
    if os.environ.get("FAKTORY_TEST_URL"):
        pytest.skip("needs the embedded server (fetch_timeout)")
    from faktory.server import ServerThread

    with ServerThread(fetch_timeout=0.25) as st:
        yield st


async def test_work_and_stop_through_an_instance(quick_server):
    faktory_url = quick_server.url
    fk = app.create()
    done = asyncio.Event()

    @fk.register
    async def ping(value):
        done.set()

    async with fk.connect(faktory_url) as client:
        await client.job("ping", 1).push()
        runner = asyncio.ensure_future(fk.work(url=faktory_url, beat_interval=1,
                                               handle_signals=False))
        await done.wait()
        fk.stop()
        worker = await runner
    assert worker is fk.worker
    assert worker.processed == 1 and worker.state == "stopped"
