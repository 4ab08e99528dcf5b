"""faktory.contrib.tracing: one trace from the push to the worker's ACK, checked with the
OpenTelemetry SDK's in-memory exporter."""
from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from faktory import Client, Job  # noqa: E402
from faktory import client as client_module  # noqa: E402
from faktory.app import create  # noqa: E402
from faktory.contrib import tracing  # noqa: E402
from faktory.worker import Worker  # noqa: E402


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


async def run_until(url: str, worker: Worker, done: asyncio.Event) -> None:
    task = asyncio.ensure_future(worker.work(handle_signals=False))
    try:
        await asyncio.wait_for(done.wait(), 20)
    finally:
        await worker.stop()  # graceful: the ACK/FAIL is delivered before it returns
        await asyncio.wait_for(task, 20)


async def test_one_trace_from_push_to_ack(faktory_url, spans):
    provider, exporter = spans
    tracer = provider.get_tracer("app")
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    worker = Worker(url=faktory_url, queues=["traced"], concurrency=1, middleware=[tracing.TracingMiddleware(provider)])

    @worker.register("resize")
    def resize(n):  # a plain function: runs in a worker thread, inside the job's span
        with tracer.start_as_current_span("resize inner"):
            pass
        loop.call_soon_threadsafe(done.set)

    async with Client(faktory_url, before_push=[tracing.TracingProducer(provider)]) as client:
        job = Job("resize", 3, queue="traced", custom={"tenant": 1})
        with tracer.start_as_current_span("web request") as request:
            jid = await client.push(job)
        assert set(job.custom) == {"tenant", "traceparent"}
        await run_until(faktory_url, worker, done)
        info = await client.info()
    assert worker.processed == 1 and info["faktory"]["queues"].get("traced", 0) == 0  # ACKed
    by_name = {span.name: span for span in exporter.get_finished_spans()}
    assert set(by_name) == {"web request", "push resize", "perform resize", "resize inner"}
    trace_ids = {span.context.trace_id for span in by_name.values()}
    assert trace_ids == {request.get_span_context().trace_id}  # one trace
    push, perform, inner = by_name["push resize"], by_name["perform resize"], by_name["resize inner"]
    assert push.parent.span_id == request.get_span_context().span_id
    assert perform.parent.span_id == push.context.span_id
    assert inner.parent.span_id == perform.context.span_id
    assert push.kind == SpanKind.PRODUCER and perform.kind == SpanKind.CONSUMER
    version, trace_id, span_id, flags = job.custom["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{push.context.trace_id:032x}", f"{push.context.span_id:016x}")
    assert int(flags, 16) & 1  # sampled
    assert dict(perform.attributes) == {
        "messaging.system": "faktory", "messaging.operation.type": "process",
        "messaging.destination.name": "traced", "messaging.message.id": jid,
        "faktory.jobtype": "resize", "faktory.queue": "traced", "faktory.jid": jid, "faktory.outcome": "ok"}
    assert push.attributes["messaging.operation.type"] == "send"
    assert perform.status.status_code == StatusCode.UNSET


async def test_failed_job_span_records_the_exception(faktory_url, spans):
    provider, exporter = spans
    done = asyncio.Event()
    worker = Worker(url=faktory_url, queues=["traced"], concurrency=1, middleware=[tracing.TracingMiddleware(provider)])

    @worker.register("boom")
    async def boom():
        done.set()
        raise KeyError("missing")

    async with Client(faktory_url, before_push=[tracing.TracingProducer(provider)]) as client:
        await client.push_bulk([Job("boom", queue="traced", retry=0)])
        await run_until(faktory_url, worker, done)
    perform = next(s for s in exporter.get_finished_spans() if s.name == "perform boom")
    push = next(s for s in exporter.get_finished_spans() if s.name == "push boom")
    assert perform.context.trace_id == push.context.trace_id  # push_bulk injects too
    assert perform.attributes["faktory.outcome"] == "failed"
    assert perform.status.status_code == StatusCode.ERROR and "KeyError" in perform.status.description
    assert [e.name for e in perform.events] == ["exception"]
    assert worker.failed == 1


async def test_a_job_without_context_starts_its_own_trace(faktory_url, spans):
    provider, exporter = spans
    done = asyncio.Event()
    worker = Worker(url=faktory_url, queues=["traced"], concurrency=1, middleware=[tracing.TracingMiddleware(provider)])
    worker.register("plain", lambda: done.set())
    async with Client(faktory_url) as client:  # no producer hook
        await client.push(Job("plain", queue="traced"))
        await run_until(faktory_url, worker, done)
    (perform,) = exporter.get_finished_spans()
    assert perform.parent is None and perform.attributes["faktory.outcome"] == "ok"


def test_instrument_installs_the_hook_and_the_middleware_and_uninstrument_removes_them(spans):
    provider, _ = spans
    app = create()
    before = list(client_module.DEFAULT_BEFORE_PUSH)
    producer, middleware = tracing.instrument(app, provider)
    try:
        assert Client("tcp://127.0.0.1:1").before_push[-1] is producer
        assert app.middleware[0] is middleware
    finally:
        tracing.uninstrument()
    assert client_module.DEFAULT_BEFORE_PUSH == before and app.middleware == []
    assert producer not in Client("tcp://127.0.0.1:1").before_push
