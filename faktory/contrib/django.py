"""A Faktory backend for Django's tasks framework (``django.tasks`` in Django 6, the
``django-tasks`` backport before it).  Needs the ``django`` extra:
``pip install 'faktory-turbo[django]'``.

Settings::

    TASKS = {
        "default": {
            "BACKEND": "faktory.contrib.django.FaktoryBackend",
            "QUEUES": ["default", "emails"],          # Django's own check of queue_name
            "OPTIONS": {
                "URL": "tcp://:secret@faktory.internal:7419",   # default: $FAKTORY_URL
                "RETRY": 25,                          # Faktory retries of a failed task
                "PRIORITY_QUEUES": {"critical": 50, "{queue}.high": 10},
                "CLIENT": {"pool_size": 4},           # more keyword arguments of faktory.Client
                "TIMEOUT": 10,                        # seconds enqueue() waits for the server
            },
        }
    }

A ``@task`` function becomes a Faktory job whose jobtype is the function's dotted path
(``myapp.tasks.send_email``), whose ``args`` are the positional arguments and whose
keyword arguments travel in ``custom.django.kwargs``; ``run_after`` becomes ``at``.
``enqueue()``/``aenqueue()`` return a ``TaskResult`` whose ``id`` is the job's jid
(Faktory keeps no results: ``get_result`` is not supported).

**Priority.** Faktory has no per-job priority (it orders work by queue), so a task's
priority picks its queue.  ``PRIORITY_QUEUES`` maps a queue name to the lowest priority
that goes there; ``{queue}`` in a name stands for the task's ``queue_name``.  With the
settings above a task of priority 60 goes to ``critical``, one of 10..49 on queue
``emails`` goes to ``emails.high``, anything lower to its own ``queue_name``.  Without
``PRIORITY_QUEUES`` a non-zero priority is refused (``InvalidTask``), never ignored.
``faktory worker --django`` fetches, in strict order, the priority queues from the
highest threshold down and then the ``QUEUES``, unless ``-q`` says otherwise.

**Worker.** ``faktory worker --django [--settings mysite.settings]`` calls
``django.setup()``, imports the ``tasks`` module of every installed app (and the ``-r``
modules), and runs every task whose module lies in an installed app.  Around each task
it calls ``close_old_connections()`` before and after, in the thread that ran the task,
as Django does around a request (so ``CONN_MAX_AGE`` applies per job and a broken
connection never leaks into the next job), and it sends ``task_started`` and
``task_finished``.  An exception FAILs the job (Faktory retries it: ``TaskContext.attempt``
counts the tries).  With ``"faktory.contrib.django_app"`` in ``INSTALLED_APPS``,
``python manage.py faktory_worker [options]`` is the same command driven by the project's
settings.  In Python: ``setup()`` then ``Worker(**worker_options())``.
"""
from __future__ import annotations

import asyncio
import atexit
import dataclasses
import importlib
import importlib.util
import logging
import os
import sys
import threading
import traceback
from concurrent.futures import Future, TimeoutError as FutureTimeout
from datetime import datetime, timezone as dt_timezone
from typing import Any, Callable, Mapping

from faktory._extras import require
from faktory.job import Job, validate_queue

_django = require("django", "django", "faktory.contrib.django")


def _framework() -> str:
    try:
        importlib.import_module("django.tasks.base")
        return "django.tasks"
    except ImportError:
        require("django_tasks", "django", "faktory.contrib.django on Django < 6 (the django-tasks backport)")
        return "django_tasks"


FRAMEWORK = _framework()
_base = importlib.import_module(FRAMEWORK + ".base")
_backends_base = importlib.import_module(FRAMEWORK + ".backends.base")
_exceptions = importlib.import_module(FRAMEWORK + ".exceptions")
_signals = importlib.import_module(FRAMEWORK + ".signals")

from asgiref.sync import sync_to_async  # noqa: E402  (a Django dependency)
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from django.utils import timezone  # noqa: E402

Task = _base.Task
_BaseTaskBackend: Any = _backends_base.BaseTaskBackend
TaskResult = _base.TaskResult
TaskResultStatus = _base.TaskResultStatus
TaskContext = _base.TaskContext
TaskError = _base.TaskError
#: Django 6's ``InvalidTask``, the backport's ``InvalidTaskError``.
InvalidTask = getattr(_exceptions, "InvalidTask", None) or _exceptions.InvalidTaskError

__all__ = ["FaktoryBackend", "TaskRegistry", "setup", "worker_options", "autodiscover",
           "FRAMEWORK", "InvalidTask"]

log = logging.getLogger("faktory.django")


def _task_backends() -> Any:
    module = importlib.import_module(FRAMEWORK)
    return getattr(module, "task_backends", None) or module.tasks


_RESULT_FIELDS = {f.name for f in dataclasses.fields(TaskResult) if f.init}


def _task_result(**fields: Any) -> Any:
    # the fields this version of the framework has (worker_ids, last_attempted_at... came
    # with later versions)
    return TaskResult(**{k: v for k, v in fields.items() if k in _RESULT_FIELDS})


def _send(signal_name: str, sender: Any, result: Any) -> None:
    signal = getattr(_signals, signal_name, None)
    if signal is not None:
        signal.send(sender, task_result=result)


async def _asend(signal_name: str, sender: Any, result: Any) -> None:
    signal = getattr(_signals, signal_name, None)
    if signal is not None:
        await signal.asend(sender, task_result=result)


def _module_path(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


# -- the producer: one event loop thread per process ----------------------------------------

class _Producer:
    """A daemon thread running an event loop with one pooled ``Client`` per backend
    configuration; ``enqueue()`` from any thread (or any loop) pushes through it."""

    _lock = threading.Lock()
    _instance: _Producer | None = None

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.clients: dict[Any, Any] = {}
        self.thread = threading.Thread(target=self.loop.run_forever, name="faktory-django-producer",
                                       daemon=True)
        self.thread.start()

    @classmethod
    def get(cls) -> _Producer:
        with cls._lock:
            if cls._instance is None or cls._instance.pid != os.getpid():  # new, or forked
                cls._instance = cls()
            return cls._instance

    def push(self, key: Any, make_client: Callable[[], Any], payload: dict[str, Any]) -> Future[str]:
        async def push() -> str:
            client = self.clients.get(key)
            if client is None:
                client = self.clients[key] = make_client()
            jid: str = await client.push(payload)
            return jid

        return asyncio.run_coroutine_threadsafe(push(), self.loop)

    def close(self) -> None:
        async def close() -> None:
            for client in self.clients.values():
                await client.close()

        if self.thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
            except Exception:  # pragma: no cover - best effort at exit
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)


@atexit.register
def _close_producer() -> None:
    producer = _Producer._instance
    if producer is not None and producer.pid == os.getpid():
        producer.close()


# -- the backend -------------------------------------------------------------------------

def _priority_queues(value: Any) -> list[tuple[int, str]]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise TypeError(f"OPTIONS['PRIORITY_QUEUES'] must be a dict {{queue: min_priority}}, got {value!r}")
    result = []
    for name, threshold in value.items():
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise TypeError(f"OPTIONS['PRIORITY_QUEUES'][{name!r}] must be an int priority, got {threshold!r}")
        validate_queue(str(name).replace("{queue}", "q"), "OPTIONS['PRIORITY_QUEUES'] queue")
        result.append((threshold, str(name)))
    result.sort(key=lambda item: -item[0])
    return result


class FaktoryBackend(_BaseTaskBackend):  # type: ignore[misc]  # the framework is untyped here
    """``django.tasks`` backend pushing tasks to Faktory (see the module docstring)."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        options = dict(self.options)
        unknown = set(options) - {"URL", "RETRY", "PRIORITY_QUEUES", "CLIENT", "TIMEOUT"}
        if unknown:
            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']: unknown option(s) {', '.join(sorted(unknown))} "
                "(known: URL, RETRY, PRIORITY_QUEUES, CLIENT, TIMEOUT)")
        self.url: str | None = options.get("URL")
        self.retry: int = options.get("RETRY", 25)
        self.timeout: float = float(options.get("TIMEOUT", 10))
        self.client_options: dict[str, Any] = dict(options.get("CLIENT") or {})
        self.priority_queues = _priority_queues(options.get("PRIORITY_QUEUES"))
        #: Non-zero priorities are accepted only when they can be honoured.
        self.supports_priority = bool(self.priority_queues)
        Job("probe", retry=self.retry)  # validates RETRY now, naming the field

    # -- mapping -----------------------------------------------------------------------
    def faktory_queue(self, task: Any) -> str:
        """The Faktory queue of ``task``: from ``PRIORITY_QUEUES`` by its priority, else
        its ``queue_name``."""
        for threshold, name in self.priority_queues:
            if task.priority >= threshold:
                return name.replace("{queue}", task.queue_name)
        return str(task.queue_name)

    def worker_queues(self) -> list[str]:
        """Queues a worker for this backend fetches, highest priority first."""
        plain = sorted(self.queues) if self.queues else ["default"]
        ordered: list[str] = []
        for _threshold, name in self.priority_queues:
            for queue in ([name.replace("{queue}", q) for q in plain] if "{queue}" in name else [name]):
                if queue not in ordered:
                    ordered.append(queue)
        ordered += [q for q in plain if q not in ordered]
        return ordered

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        try:
            validate_queue(self.faktory_queue(task))
        except (TypeError, ValueError) as exc:
            raise InvalidTask(f"task {_module_path(task.func)}: {exc}") from None

    def job_payload(self, task: Any, args: Any, kwargs: Any) -> dict[str, Any]:
        """The Faktory job for ``task(*args, **kwargs)``."""
        custom: dict[str, Any] = {"django": {"backend": self.alias}}
        if kwargs:
            custom["django"]["kwargs"] = kwargs
        job = Job(_module_path(task.func), *args, queue=self.faktory_queue(task), retry=self.retry,
                  custom=custom)
        if task.run_after is not None:
            run_after = task.run_after
            if timezone.is_naive(run_after):
                run_after = timezone.make_aware(run_after)
            job.at = run_after
        return job.to_dict()

    # -- enqueueing --------------------------------------------------------------------
    def _make_client(self) -> Any:
        from faktory.client import Client
        return Client(self.url, **self.client_options)

    def _client_key(self) -> Any:
        return (self.url, tuple(sorted((k, repr(v)) for k, v in self.client_options.items())))

    def _prepare(self, task: Any, args: Any, kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.validate_task(task)
        result = _task_result(task=task, id="", status=TaskResultStatus.READY, enqueued_at=None,
                            started_at=None, last_attempted_at=None, finished_at=None,
                            args=list(args), kwargs=dict(kwargs), backend=self.alias, errors=[],
                            worker_ids=[])
        payload = self.job_payload(task, result.args, result.kwargs)
        object.__setattr__(result, "id", payload["jid"])
        return result, payload

    def _timed_out(self, payload: dict[str, Any]) -> Exception:
        from faktory.errors import CommandTimeout
        return CommandTimeout(f"enqueue of {payload['jobtype']} (jid {payload['jid']}): no answer from "
                              f"Faktory within {self.timeout:g} s (OPTIONS['TIMEOUT']); not enqueued")

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """Push the task to Faktory (waits up to ``TIMEOUT`` seconds); a ``TaskResult``
        with ``id`` = the jid."""
        result, payload = self._prepare(task, args, kwargs)
        future = _Producer.get().push(self._client_key(), self._make_client, payload)
        try:
            future.result(self.timeout)
        except FutureTimeout:
            future.cancel()  # never enqueued later behind the caller's back
            raise self._timed_out(payload) from None
        object.__setattr__(result, "enqueued_at", timezone.now())
        _send("task_enqueued", type(self), result)
        return result

    async def aenqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        """``enqueue`` without blocking the caller's event loop."""
        result, payload = self._prepare(task, args, kwargs)
        future = _Producer.get().push(self._client_key(), self._make_client, payload)
        try:  # a timeout cancels the push (wrap_future passes the cancellation on)
            await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except asyncio.TimeoutError:
            raise self._timed_out(payload) from None
        object.__setattr__(result, "enqueued_at", timezone.now())
        await _asend("task_enqueued", type(self), result)
        return result


# -- the worker side ---------------------------------------------------------------------

def _enqueued_at(job: dict[str, Any]) -> datetime | None:
    from faktory.contrib.metrics import parse_time  # stdlib-only module
    epoch = parse_time(job.get("enqueued_at"))
    return datetime.fromtimestamp(epoch, dt_timezone.utc) if epoch is not None else None


class _Run:
    """Runs one task for one job and keeps the TaskResult's bookkeeping."""

    def __init__(self, task: Any, backend: Any, ctx: Any) -> None:
        self.task = task
        self.backend = backend
        self.ctx = ctx
        job = ctx.job
        django = (ctx.custom.get("django") or {}) if isinstance(ctx.custom, dict) else {}
        self.kwargs = django.get("kwargs") or {}
        attempts = int(((job.get("failure") or {}).get("retry_count", -1))) + 2 if job.get("failure") else 1
        wid = getattr(ctx.worker, "wid", "") or ""
        now = timezone.now()
        self.result = _task_result(task=task, id=ctx.jid, status=TaskResultStatus.RUNNING,
                                 enqueued_at=_enqueued_at(job), started_at=now, last_attempted_at=now,
                                 finished_at=None, args=list(ctx.args), kwargs=dict(self.kwargs),
                                 backend=backend.alias, errors=[], worker_ids=[wid] * attempts)

    def call_args(self) -> tuple[list[Any], dict[str, Any]]:
        args = list(self.result.args)
        if self.task.takes_context:
            args.insert(0, TaskContext(task_result=self.result))
        return args, self.result.kwargs

    def finished(self, error: BaseException | None, value: Any = None) -> None:
        result = self.result
        object.__setattr__(result, "finished_at", timezone.now())
        if error is None:
            object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
            object.__setattr__(result, "_return_value", value)
        else:
            object.__setattr__(result, "status", TaskResultStatus.FAILED)
            result.errors.append(TaskError(exception_class_path=_module_path(type(error)),
                                           traceback="".join(traceback.format_exception(error))))

    def run_sync(self) -> Any:
        close_old_connections()
        try:
            _send("task_started", type(self.backend), self.result)
            args, kwargs = self.call_args()
            try:
                value = self.task.func(*args, **kwargs)
            except BaseException as exc:
                self.finished(exc)
                raise
            self.finished(None, value)
            return value
        finally:
            try:
                _send("task_finished", type(self.backend), self.result)
            finally:
                close_old_connections()

    async def run_async(self) -> Any:
        await sync_to_async(close_old_connections)()
        try:
            await _asend("task_started", type(self.backend), self.result)
            args, kwargs = self.call_args()
            try:
                value = await self.task.func(*args, **kwargs)
            except BaseException as exc:
                self.finished(exc)
                raise
            self.finished(None, value)
            return value
        finally:
            try:
                await _asend("task_finished", type(self.backend), self.result)
            finally:
                await sync_to_async(close_old_connections)()


def job_function(task: Any) -> Callable[..., Any]:
    """The worker-side job function of ``task`` (plain for a sync task: it runs in the
    worker's threads; ``async`` for a coroutine task)."""
    backend = task.get_backend()
    if asyncio.iscoroutinefunction(task.func):
        async def run_async(*_args: Any) -> Any:
            return lambda ctx: _Run(task, backend, ctx).run_async()
        run_async.__qualname__ = f"django_task[{_module_path(task.func)}]"
        return run_async

    def run_sync(*_args: Any) -> Any:
        return lambda ctx: _Run(task, backend, ctx).run_sync()
    run_sync.__qualname__ = f"django_task[{_module_path(task.func)}]"
    return run_sync


def _app_configs() -> list[Any]:
    from django.apps import apps
    return list(apps.get_app_configs())


def _in_installed_app(module: str) -> bool:
    from django.apps import apps
    return apps.get_containing_app_config(module) is not None


def _faktory_task(obj: Any) -> bool:
    if not isinstance(obj, Task):
        return False
    try:
        return isinstance(obj.get_backend(), FaktoryBackend)
    except Exception:
        return False


class TaskRegistry(dict):  # type: ignore[type-arg]
    """A worker registry that also runs Django tasks by their jobtype (dotted path).

    Plain registrations (``faktory.register``) win.  A dotted path is looked up in a
    module already imported or, if not, imported when it lies inside an installed app,
    and is run only when it names a ``@task`` of a Faktory backend: a job cannot make the
    worker import or call anything else."""

    def get(self, jobtype: Any, default: Any = None) -> Any:
        fn = dict.get(self, jobtype)
        if fn is not None:
            return fn
        fn = self.resolve(jobtype) if isinstance(jobtype, str) else None
        if fn is None:
            return default
        self[jobtype] = fn
        return fn

    @staticmethod
    def resolve(jobtype: str) -> Callable[..., Any] | None:
        module_name, _, name = jobtype.rpartition(".")
        if not module_name or not name:
            return None
        module = sys.modules.get(module_name)
        if module is None:
            if not _in_installed_app(module_name):
                return None
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                return None
        obj = getattr(module, name, None)
        return job_function(obj) if _faktory_task(obj) else None


def autodiscover() -> list[str]:
    """Import the ``tasks`` module of every installed app that has one; their names."""
    found = []
    for config in _app_configs():
        name = f"{config.name}.tasks"
        if _has_parent(config.name) and importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
            found.append(name)
    return found


def _has_parent(package: str) -> bool:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.submodule_search_locations is not None


def setup(settings: str | None = None) -> list[str]:
    """``django.setup()`` (with ``settings`` as ``DJANGO_SETTINGS_MODULE`` when given)
    and :func:`autodiscover`; returns the task modules imported."""
    if settings:
        os.environ["DJANGO_SETTINGS_MODULE"] = settings
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        from django.conf import settings as conf
        if not conf.configured:
            raise ImproperlyConfigured(
                "set DJANGO_SETTINGS_MODULE (or pass --settings) to run Django tasks")
    _django.setup()
    modules = autodiscover()
    log.info("Django %s set up (%s); task modules: %s", _django.get_version(), FRAMEWORK,
             ", ".join(modules) or "(none)")
    return modules


def faktory_backends() -> list[FaktoryBackend]:
    """The configured backends (``TASKS``) that are Faktory backends."""
    handler = _task_backends()
    backends = []
    for alias in handler.settings:
        backend = handler[alias]
        if isinstance(backend, FaktoryBackend):
            backends.append(backend)
    return backends


def worker_options(registry: dict[str, Callable[..., Any]] | None = None,
                   queues: Any = None) -> dict[str, Any]:
    """``Worker`` keyword arguments for Django tasks: a :class:`TaskRegistry` (over
    ``registry``'s own registrations) and, unless ``queues`` is given, the queues of
    every Faktory backend, highest priority first.  Call after :func:`setup`."""
    if queues is None:
        queues = []
        for backend in faktory_backends():
            queues += [q for q in backend.worker_queues() if q not in queues]
        queues = queues or ["default"]
    return {"registry": TaskRegistry(registry or {}), "queues": queues}
