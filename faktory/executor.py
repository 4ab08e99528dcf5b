"""Running one job function: ``async def`` functions on the event loop, plain ones in a
thread pool (so a blocking function never stalls the loop), and the context provider a
function may return (``return lambda ctx: ...``), called where the function ran."""
from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from faktory.errors import UnknownJobTypeError
from faktory.job import job_kwargs
from faktory.middleware import JobContext

__all__ = ["Executor", "is_async_callable"]


def is_async_callable(fn: Any) -> bool:
    """True for an ``async def`` function, a ``functools.partial`` of one, or an object
    whose ``__call__`` is ``async def``."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004  # an instance with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _call_sync(fn: Callable[..., Any], ctx: JobContext) -> Any:
    # Runs in a worker thread: the function and, when it returns one, its context
    # provider (a plain function's provider runs where the function ran).
    kwargs = job_kwargs(ctx.job)  # custom["kwargs"]: keyword arguments of a task
    result = fn(*ctx.args, **kwargs) if kwargs else fn(*ctx.args)
    if callable(result):
        result = result(ctx)
    return result


class Executor:
    """Runs job functions for a worker: ``await executor.run(ctx)`` is the innermost
    handler of the middleware chain.  The thread pool (``threads`` threads, named after
    ``name``) is created on the first plain function."""

    def __init__(self, threads: int, name: str) -> None:
        self.threads = threads
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._async: dict[Any, bool] = {}

    def _is_async(self, fn: Any) -> bool:
        try:
            return self._async[fn]
        except KeyError:
            result = self._async[fn] = is_async_callable(fn)
            return result
        except TypeError:  # unhashable callable
            return is_async_callable(fn)

    async def run(self, ctx: JobContext) -> Any:
        """Run ``ctx.fn`` with ``ctx.args`` (and its context provider); its result."""
        fn = ctx.fn
        if fn is None:
            raise UnknownJobTypeError(ctx.jobtype)
        if self._is_async(fn):
            kwargs = job_kwargs(ctx.job)  # custom["kwargs"]: keyword arguments of a task
            result = await (fn(*ctx.args, **kwargs) if kwargs else fn(*ctx.args))
            if callable(result):
                result = result(ctx)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix=self.name)
            # in the job's context (what middleware set, e.g. the current trace span),
            # as asyncio.to_thread does
            result = await asyncio.get_running_loop().run_in_executor(
                self._pool, contextvars.copy_context().run, _call_sync, fn, ctx)
        if result is not None and inspect.isawaitable(result):
            result = await result
        return result

    def shutdown(self) -> None:
        """Stop the threads (without waiting for functions still running in them)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
