"""Test infrastructure: every ``async def`` test runs once per event loop (asyncio, uvloop),
under a bounded timeout, and fails on exceptions the loop reports but nobody awaited.

Mark a test ``@pytest.mark.timeout_s(N)`` to change its budget (default 30 s).
"""
from __future__ import annotations

import asyncio
import gc
import inspect

import pytest

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
    uvloop = None

LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])
DEFAULT_TIMEOUT = 30.0


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout_s(seconds): time budget of an async test")


def pytest_generate_tests(metafunc):
    if inspect.iscoroutinefunction(metafunc.function):
        if "loop_kind" not in metafunc.fixturenames:
            metafunc.fixturenames.append("loop_kind")
        metafunc.parametrize("loop_kind", LOOPS)


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_in_loop(kind: str, coro_fn, kwargs, timeout: float):
    loop = new_loop(kind)
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        loop.run_until_complete(asyncio.wait_for(coro_fn(**kwargs), timeout))
        # let callbacks scheduled by the test's last actions run, then cancel leftovers
        loop.run_until_complete(asyncio.sleep(0))
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
        gc.collect()
    if errors:
        raise AssertionError(f"unhandled event-loop errors: {errors!r}")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn):
        return None
    marker = pyfuncitem.get_closest_marker("timeout_s")
    timeout = float(marker.args[0]) if marker else DEFAULT_TIMEOUT
    argnames = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in argnames}
    kind = pyfuncitem.funcargs.get("loop_kind", "asyncio")
    run_in_loop(kind, fn, kwargs, timeout)
    return True


@pytest.fixture
def loop_kind(request):
    return getattr(request, "param", "asyncio")
