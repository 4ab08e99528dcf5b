"""Task objects: a job function that knows how to push itself, with its signature checked.

``@faktory.task`` (or ``@app.task`` on a :class:`~faktory.app.Faktory` of your own)
registers the function under its jobtype and returns a :class:`Task`::

    @faktory.task(queue="mail", retry=5)
    async def send_email(address: str, *, template: str = "plain") -> None:
        ...

    await send_email.push("ada@example.com", template="welcome")      # from async code
    send_email.push_sync("ada@example.com", template="welcome")        # from a plain function
    await send_email.push_in(60, "ada@example.com")                    # in 60 s (or a timedelta)
    await send_email.push_at(tomorrow_9am, "ada@example.com")          # an aware datetime
    await send_email.options(queue="critical", retry=0).push("bob@example.com")
    await send_email("ada@example.com")                                # still the function

* The jobtype is the registered name (the function's ``__name__`` unless given).
* Arguments are bound to the function's signature (``inspect.signature(fn).bind``) before
  anything is sent: a missing, unexpected or doubled argument raises ``TypeError`` naming
  the jobtype; arguments that are not JSON raise ``TypeError`` naming the field, as for
  any job.  Type checkers see the function's own parameters on ``push()`` and friends
  (``ParamSpec``).
* Keyword arguments: Faktory's ``args`` is a JSON list, so every argument that can travel
  positionally does (``push("a", template="welcome")`` sends ``args = ["a", "welcome"]``
  when ``template`` is an ordinary parameter: what a worker in any language sees).  The
  rest (keyword-only parameters, ``**kwargs``) travel in ``custom["kwargs"]`` as a JSON
  object; this package's worker calls ``fn(*args, **custom["kwargs"])``.  Defaults are not
  sent: the worker's copy of the function applies its own.
* ``push_sync`` and the other ``*_sync`` methods block (a :class:`faktory.SyncClient`,
  shared by every thread); ``push`` and friends are coroutines on a :class:`faktory.Client`
  (one per event loop).  Both are created on first use from ``FAKTORY_URL`` (or what
  ``faktory.configure()`` set); ``options(client=...)`` pushes through a client of yours.
* Under ``faktory.testing.fake()`` / ``inline()`` nothing is sent: see ``faktory.testing``.
"""
from __future__ import annotations

import functools
import inspect
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Generic, Mapping, ParamSpec, TypeVar

from faktory.job import KWARGS_KEY, Job

if TYPE_CHECKING:  # pragma: no cover
    from faktory.app import Faktory
    from faktory.client import Client
    from faktory.sync import SyncClient

__all__ = ["Task"]

P = ParamSpec("P")
R = TypeVar("R", covariant=True)

_UNSET: Any = object()


def _seconds(delay: float | timedelta) -> float:
    if isinstance(delay, timedelta):
        return delay.total_seconds()
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise TypeError(f"delay must be a number of seconds or a timedelta, not {type(delay).__name__}: {delay!r}")
    if delay != delay:
        raise ValueError(f"delay must be a number of seconds, got {delay!r}")
    return float(delay)


class Task(Generic[P, R]):
    """A registered job function with ``push`` methods (see the module docstring).

    Calling the task calls the function.  ``name`` is the jobtype; ``fn`` the function;
    ``defaults`` the job options (``queue``, ``retry``, ``reserve_for``, ``custom``,
    ``backtrace``, ``at``) every push uses unless ``options()`` overrides them.
    """

    def __init__(self, fn: Callable[P, R], name: str | None = None, *, app: Faktory | None = None,
                 client: Client | SyncClient | None = None, queue: str = "default", retry: int = 25,
                 reserve_for: int | None = None, custom: Mapping[str, Any] | None = None,
                 backtrace: int | None = None, at: datetime | str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"a task must wrap a callable, not {fn!r}")
        name = getattr(fn, "__name__", None) if name is None else name
        if not isinstance(name, str) or not name:
            raise TypeError(f"jobtype must be a non-empty str, not {name!r}")
        self.fn: Callable[P, R] = fn
        self.name: str = name
        self.app = app
        self.client = client
        self.defaults: dict[str, Any] = {"queue": queue, "retry": retry, "reserve_for": reserve_for,
                                         "custom": dict(custom) if custom is not None else None,
                                         "backtrace": backtrace, "at": at}
        Job(name, **self.defaults)  # every option checked now, naming the field and the value
        try:
            self.signature: inspect.Signature | None = inspect.signature(fn)
        except (TypeError, ValueError):  # some builtins and C callables have none
            self.signature = None
        functools.update_wrapper(self, fn)
        #: What a registry stores for this task (``register_into`` unwraps it).
        self.__faktory_task_fn__ = fn

    # -- calling -------------------------------------------------------------------------
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the function itself, here and now."""
        return self.fn(*args, **kwargs)

    def options(self, *, queue: str = _UNSET, retry: int = _UNSET, reserve_for: int | None = _UNSET,
                custom: Mapping[str, Any] | None = _UNSET, backtrace: int | None = _UNSET,
                at: datetime | str | None = _UNSET,
                client: Client | SyncClient | None = _UNSET) -> Task[P, R]:
        """A copy of this task with other job options for its pushes (the registration
        is shared): ``await send_email.options(queue="critical").push(...)``.
        ``custom`` is merged into the defaults' ``custom`` (a key set to ``None`` is
        dropped); ``client`` pushes through that client instead of the default one."""
        given: dict[str, Any] = {"queue": queue, "retry": retry, "reserve_for": reserve_for, "custom": custom,
                 "backtrace": backtrace, "at": at}
        options = dict(self.defaults)
        for key, value in given.items():
            if value is _UNSET:
                continue
            if key == "custom" and value is not None and options["custom"]:
                merged = {**options["custom"], **value}
                value = {k: v for k, v in merged.items() if v is not None}
            options[key] = value
        Job(self.name, **options)  # checked now, naming the field and the value
        copy: Task[P, R] = object.__new__(Task)
        copy.__dict__.update(self.__dict__)  # the function, its signature, the wrapper attributes
        copy.defaults = options
        if client is not _UNSET:
            copy.client = client
        return copy

    # -- building the job ----------------------------------------------------------------
    def job(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """The :class:`~faktory.job.Job` a push with these arguments sends (not sent).

        ``TypeError`` when the arguments do not fit the function's signature."""
        return self._job(args, kwargs, None)

    def _job(self, args: tuple[Any, ...], kwargs: dict[str, Any], at: datetime | str | None) -> Job:
        positional: list[Any]
        keywords: dict[str, Any]
        if self.signature is not None:
            try:
                bound = self.signature.bind(*args, **kwargs)
            except TypeError as exc:
                raise TypeError(f"{self.name}(): {exc}") from None
            positional, keywords = list(bound.args), dict(bound.kwargs)
        else:
            positional, keywords = list(args), dict(kwargs)
        options = self.defaults
        custom = options["custom"]
        if keywords:
            custom = {**(custom or {}), KWARGS_KEY: keywords}
        elif custom is not None:
            custom = dict(custom)
        return Job(self.name, *positional, queue=options["queue"], retry=options["retry"],
                   reserve_for=options["reserve_for"], custom=custom, backtrace=options["backtrace"],
                   at=at if at is not None else options["at"])

    # -- pushing (async) -----------------------------------------------------------------
    async def push(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """Enqueue a job calling this function with these arguments; return its jid."""
        return await self._async_client().push(self._job(args, kwargs, None))

    async def push_at(self, when: datetime | str, /, *args: P.args, **kwargs: P.kwargs) -> str:
        """Enqueue a job to run at ``when`` (an aware ``datetime`` or an RFC 3339 string)."""
        return await self._async_client().push(self._job(args, kwargs, self._check_at(when)))

    async def push_in(self, delay: float | timedelta, /, *args: P.args, **kwargs: P.kwargs) -> str:
        """Enqueue a job to run ``delay`` seconds (or a ``timedelta``) from now."""
        return await self._async_client().push(self._job(args, kwargs, self._at_in(delay)))

    # -- pushing (blocking) --------------------------------------------------------------
    def push_sync(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """``push()`` for synchronous code (a WSGI view, a script, a thread): blocks until
        the server has the job; return its jid."""
        return self._sync_client().push(self._job(args, kwargs, None))

    def push_at_sync(self, when: datetime | str, /, *args: P.args, **kwargs: P.kwargs) -> str:
        """``push_at()`` for synchronous code."""
        return self._sync_client().push(self._job(args, kwargs, self._check_at(when)))

    def push_in_sync(self, delay: float | timedelta, /, *args: P.args, **kwargs: P.kwargs) -> str:
        """``push_in()`` for synchronous code."""
        return self._sync_client().push(self._job(args, kwargs, self._at_in(delay)))

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _check_at(when: datetime | str) -> datetime | str:
        if when is None:
            raise TypeError("push_at() needs a time: an aware datetime or an RFC 3339 str, not None")
        return when

    @staticmethod
    def _at_in(delay: float | timedelta) -> datetime:
        return datetime.now(timezone.utc) + timedelta(seconds=_seconds(delay))

    def _app(self) -> Faktory:
        if self.app is not None:
            return self.app
        from faktory.app import default

        return default

    def _async_client(self) -> Client:
        from faktory.client import Client

        client = self.client
        if client is None:
            return self._app().client()
        if not isinstance(client, Client):
            raise TypeError(f"{self.name}.push() is async and needs a faktory.Client; this task "
                            f"pushes through {client!r} (use push_sync(), or options(client=Client(...)))")
        return client

    def _sync_client(self) -> SyncClient:
        from faktory.sync import SyncClient

        client = self.client
        if client is None:
            return self._app().sync_client()
        if not isinstance(client, SyncClient):
            raise TypeError(f"{self.name}.push_sync() blocks and needs a faktory.SyncClient; this task "
                            f"pushes through {client!r} (await push(), or options(client=SyncClient(...)))")
        return client

    def __repr__(self) -> str:
        fn = getattr(self.fn, "__qualname__", self.fn)
        options = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items()
                            if v is not None and not (k == "queue" and v == "default")
                            and not (k == "retry" and v == 25))
        return f"<Task {self.name!r} {fn!s}{' ' + options if options else ''}>"
