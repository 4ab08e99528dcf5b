"""OpenTelemetry tracing: one trace from the code that pushes a job to the worker that
runs it.  Needs the ``tracing`` extra (``pip install 'faktory-turbo[tracing]'``) and an
SDK set up by the application (a ``TracerProvider`` with an exporter).

* :class:`TracingProducer` is a ``Client.before_push`` hook: it records a PRODUCER span
  ``push <jobtype>`` and writes its context into the job's ``custom`` hash with the
  configured propagator (by default W3C Trace Context: ``custom.traceparent``, and
  ``custom.tracestate`` when there is one).
* :class:`TracingMiddleware` is a worker middleware: it continues that context in a
  CONSUMER span ``perform <jobtype>`` around the job, with the attributes
  ``faktory.jobtype``, ``faktory.queue``, ``faktory.jid``, ``faktory.outcome`` (``ok`` or
  ``failed``; a failure also records the exception and sets the status to ERROR), and the
  ``messaging.*`` attributes of the OpenTelemetry messaging conventions.  Spans the job
  function starts (async, or plain in the worker's threads) are its children.

``instrument()`` installs both for the whole process: the hook for every ``Client``
created afterwards (``faktory.client.DEFAULT_BEFORE_PUSH``) and the middleware first in
the default app's (``faktory.use``)::

    from faktory.contrib import tracing
    tracing.instrument()
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

from faktory._extras import require

_trace = require("opentelemetry.trace", "tracing", "faktory.contrib.tracing")
_propagate = require("opentelemetry.propagate", "tracing", "faktory.contrib.tracing")

from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from faktory.middleware import JobContext

__all__ = ["TracingProducer", "TracingMiddleware", "instrument", "uninstrument", "TRACER_NAME"]

TRACER_NAME = "faktory"


def _tracer(tracer_provider: Any) -> Any:
    from faktory import __version__
    return _trace.get_tracer(TRACER_NAME, __version__, tracer_provider=tracer_provider)


def _attributes(jobtype: str, queue: str, jid: str, operation: str) -> dict[str, Any]:
    return {
        "messaging.system": "faktory",
        "messaging.operation.type": operation,
        "messaging.destination.name": queue,
        "messaging.message.id": jid,
        "faktory.jobtype": jobtype,
        "faktory.queue": queue,
        "faktory.jid": jid,
    }


class TracingProducer:
    """``Client(before_push=[TracingProducer()])``: a PRODUCER span per pushed job, its
    context injected into ``custom`` (see the module docstring).  ``propagator``
    defaults to the global one (``opentelemetry.propagate``)."""

    def __init__(self, tracer_provider: Any = None, propagator: Any = None) -> None:
        self.tracer = _tracer(tracer_provider)
        self.propagator = propagator

    def __call__(self, payload: dict[str, Any]) -> None:
        jobtype = str(payload.get("jobtype", ""))
        queue = str(payload.get("queue") or "default")
        jid = str(payload.get("jid", ""))
        carrier: dict[str, str] = {}
        with self.tracer.start_as_current_span(f"push {jobtype}", kind=SpanKind.PRODUCER,
                                               attributes=_attributes(jobtype, queue, jid, "send")):
            if self.propagator is not None:
                self.propagator.inject(carrier)
            else:
                _propagate.inject(carrier)
        if carrier:
            custom = payload.get("custom")
            merged = dict(custom) if isinstance(custom, dict) else {}
            merged.update(carrier)
            payload["custom"] = merged  # a new dict: the caller's custom is not changed


class TracingMiddleware:
    """``worker.use(TracingMiddleware())``: a CONSUMER span per job, continuing the trace
    found in the job's ``custom`` (see the module docstring)."""

    def __init__(self, tracer_provider: Any = None, propagator: Any = None) -> None:
        self.tracer = _tracer(tracer_provider)
        self.propagator = propagator

    async def __call__(self, ctx: JobContext, next: Callable[[], Awaitable[Any]]) -> Any:
        custom = ctx.custom
        carrier = {k: v for k, v in custom.items() if isinstance(v, str)} if isinstance(custom, dict) else {}
        parent = (self.propagator.extract(carrier) if self.propagator is not None
                  else _propagate.extract(carrier))
        attributes = _attributes(ctx.jobtype, ctx.queue, ctx.jid, "process")
        failure = ctx.job.get("failure")
        if isinstance(failure, dict) and isinstance(failure.get("retry_count"), int):
            attributes["faktory.retry_count"] = failure["retry_count"]
        with self.tracer.start_as_current_span(f"perform {ctx.jobtype}", context=parent,
                                               kind=SpanKind.CONSUMER, attributes=attributes,
                                               record_exception=False,
                                               set_status_on_exception=False) as span:
            try:
                result = await next()
            except BaseException as exc:
                span.set_attribute("faktory.outcome", "failed")
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                raise
            span.set_attribute("faktory.outcome", "ok")
            return result


_installed: list[tuple[Any, Any, Any]] = []


def instrument(app: Any = None, tracer_provider: Any = None) -> tuple[TracingProducer, TracingMiddleware]:
    """Trace every ``Client`` created from now on and every job of ``app`` (default: the
    ``faktory.register``/``faktory worker`` app); returns the hook and the middleware."""
    from faktory import client as client_module

    if app is None:
        from faktory.app import default as app
    producer = TracingProducer(tracer_provider)
    middleware = TracingMiddleware(tracer_provider)
    client_module.DEFAULT_BEFORE_PUSH.append(producer)
    app.middleware.insert(0, middleware)
    _installed.append((app, producer, middleware))
    return producer, middleware


def uninstrument() -> None:
    """Undo every ``instrument()`` (clients and workers already created keep theirs)."""
    from faktory import client as client_module

    while _installed:
        app, producer, middleware = _installed.pop()
        if producer in client_module.DEFAULT_BEFORE_PUSH:
            client_module.DEFAULT_BEFORE_PUSH.remove(producer)
        if middleware in app.middleware:
            app.middleware.remove(middleware)
