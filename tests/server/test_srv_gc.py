"""The jobs the embedded server holds are not tracked by the cyclic garbage collector (the
compiled faktory.server._record.JobRecord), so that its full collections do not walk
every stored job; the big values a big command leaves are let go of a slice at a time,
with the collector held off until they are gone, and never turned on when the
application had turned it off.

Counts and states, never elapsed time (the latency figures are a benchmark's).
"""
from __future__ import annotations

import gc
import json
import threading
from typing import Any, Generator

import pytest
from conftest import internals
from srv_helpers import Raw, wait_for

from faktory.server import ServerThread, bigline, server
from faktory.server.persist import JobRecord, PyJobRecord

compiled = pytest.mark.skipif(JobRecord is PyJobRecord, reason="the compiled JobRecord is not built "
                              "(or FAKTORY_NO_EXTENSIONS is set): records are tracked then")


def _jobs(n: int, queue: str, **extra: Any) -> list[dict[str, Any]]:
    return [dict({"jid": f"gc-{queue}-{i:08d}", "jobtype": "X", "args": [i, "abc", 2.5], "queue": queue,
                  "custom": {"k": [i]}}, **extra) for i in range(n)]


def _records(srv: ServerThread) -> list[Any]:
    def collect() -> list[Any]:
        store = srv.server.store
        out = [rec for q in store.queues.values() for rec in q]
        out += list(store.working.values())
        for sset in store.sets.values():
            out += sset.ordered()
        return out
    return srv.call(collect)  # type: ignore[no-any-return]


@internals
@compiled
def test_the_jobs_held_in_every_place_are_not_tracked() -> None:
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as raw:
        raw.hello()
        assert raw.cmd(b"PUSHB " + json.dumps(_jobs(3000, "bulk")).encode() + b"\r\n") == b"$2\r\n{}\r\n"
        assert raw.cmd(b'PUSH {"jid":"gc-single-1","jobtype":"X","queue":"one","args":[1]}\r\n') == b"+OK\r\n"
        assert raw.cmd(b'PUSH {"jid":"gc-later-01","jobtype":"X","args":[1],"at":"2999-01-01T00:00:00Z"}\r\n') == b"+OK\r\n"
        fetched = json.loads(raw.body(b"FETCH one\r\n"))
        assert raw.cmd(b'PUSH {"jid":"gc-failed-1","jobtype":"X","queue":"one","args":[1]}\r\n') == b"+OK\r\n"
        failed = json.loads(raw.body(b"FETCH one\r\n"))
        assert raw.cmd(b'FAIL {"jid":"%s","message":"no"}\r\n' % failed["jid"].encode()) == b"+OK\r\n"
        records = _records(srv)
        assert {r.where for r in records} == {"queue", "working", "scheduled", "retries"}
        assert fetched["jid"] in {r.jid for r in records}
        assert len(records) == 3003
        assert [r for r in records if gc.is_tracked(r)] == []


@internals
@compiled
def test_the_collector_has_no_more_to_walk_with_more_jobs_stored() -> None:
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as raw:
        raw.hello()
        line = b"PUSHB " + json.dumps(_jobs(20_000, "many")).encode() + b"\r\n"
        assert raw.cmd(line) == b"$2\r\n{}\r\n"  # once: the server's own first-time objects
        assert raw.cmd(b"FLUSH\r\n") == b"+OK\r\n"
        wait_for(lambda: not server._gc_hold.holders, timeout=30)
        gc.collect()
        before = len(gc.get_objects())
        assert raw.cmd(line) == b"$2\r\n{}\r\n"
        wait_for(lambda: not server._gc_hold.holders, timeout=30)
        gc.collect()
        assert srv.call(lambda: srv.server.store.queue_sizes()) == {"many": 20_000}
        # 20,000 more jobs held, next to nothing more for the collector (the pure-Python
        # records: one tracked object per job)
        assert len(gc.get_objects()) - before < 200


@internals
def test_the_collector_is_on_again_once_a_big_pushb_let_go_of_its_jobs() -> None:
    assert gc.isenabled()
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as raw:
        raw.hello()
        assert raw.cmd(b"PUSHB " + json.dumps(_jobs(20_000, "again")).encode() + b"\r\n") == b"$2\r\n{}\r\n"
        wait_for(lambda: not server._gc_hold.holders, timeout=30)
        assert gc.isenabled()


@internals
def test_a_collector_turned_off_by_the_application_stays_off_after_a_big_pushb() -> None:
    gc.disable()
    try:
        with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as raw:
            raw.hello()
            assert raw.cmd(b"PUSHB " + json.dumps(_jobs(20_000, "off")).encode() + b"\r\n") == b"$2\r\n{}\r\n"
            wait_for(lambda: not server._gc_hold.holders, timeout=30)
            assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_compiled_record_is_the_pure_one_untracked() -> None:
    args = (7, "queue", "q", 3.0, "jid-0001", b'{"jid":"jid-0001"}')
    for cls in {JobRecord, PyJobRecord}:
        rec = cls(*args)
        assert (rec.rid, rec.where, rec.name, rec.score, rec.jid, rec.payload) == args
        assert (rec.wid, rec.since, rec.reserve_for, rec.enqueued_at, rec.alive) == ("", 0.0, 0, 0.0, True)
        assert repr(rec) == "JobRecord(rid=7, where='queue', name='q', score=3.0, jid='jid-0001')"
        rec.where, rec.score, rec.alive, rec.wid = "working", 9.5, False, "w1"
        assert (rec.where, rec.score, rec.alive, rec.wid) == ("working", 9.5, False, "w1")
        with pytest.raises(AttributeError):
            rec.other = 1  # type: ignore[attr-defined]
        kw = cls(*args, wid="w", since=1.5, reserve_for=60, enqueued_at=2.5)
        assert (kw.wid, kw.since, kw.reserve_for, kw.enqueued_at) == ("w", 1.5, 60, 2.5)
    assert gc.is_tracked(PyJobRecord(*args))
    assert gc.is_tracked(JobRecord(*args)) is (JobRecord is PyJobRecord)


@internals
def test_a_server_stopped_while_letting_go_of_a_big_pushb_releases_the_collector(
        monkeypatch: pytest.MonkeyPatch) -> None:
    go = threading.Event()
    dispose = bigline.dispose

    def gated(*values: Any) -> Generator[None, None, None]:
        while not go.is_set():
            yield
        yield from dispose(*values)
    monkeypatch.setattr(bigline, "dispose", gated)
    srv = ServerThread()
    srv.start()
    try:
        with Raw("127.0.0.1", srv.port, timeout=60) as raw:
            raw.hello()
            assert raw.cmd(b"PUSHB " + json.dumps(_jobs(5000, "stop")).encode() + b"\r\n") == b"$2\r\n{}\r\n"
            assert srv.call(lambda: len(srv.server._disposing)) == 1
            assert not gc.isenabled()  # held until the jobs are gone
            srv.stop()
        assert not server._gc_hold.holders
        assert gc.isenabled()
    finally:
        go.set()
        srv.stop()
