"""Durable storage (``--storage PATH``, :mod:`faktory.server.sqlite`).

Three kinds of test:

* the real thing: ``python -m faktory server --storage F`` in a child process, jobs put in
  every state, the child killed with SIGKILL, a new child on the same file, and every job
  checked where it was (INFO counts, FETCH order, MUTATE-visible sets, reservations);
* in process, where the clock can be moved: a :class:`ServerThread` with a
  :class:`ManualClock`, its files copied while it runs (exactly what a SIGKILL at that
  instant leaves on disk), a second server on the copy, the reservation expiry and the
  scheduler run by ``tick()`` with the clock advanced;
* a model check: seeded random workloads through the protocol, the files copied at
  several points, and a server on each copy holding exactly the live store's state then;
* :class:`SqlitePersistence` on its own: buffering semantics, files that are not ours,
  a failed write, the WAL staying bounded under sustained load.

Everything here needs the embedded server's internals or its process, so it is skipped
against a real Faktory (``FAKTORY_TEST_URL``).
"""
from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest

from durable_kit import Wire, WireError, job, rfc3339, snapshot_files
from faktory.server import (FaktoryServer, ManualClock, ServerProcess, ServerStartError,
                            ServerThread)
from faktory.server.persist import JobRecord
from faktory.server.sqlite import SCHEMA_VERSION, SqlitePersistence, StorageError

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("FAKTORY_TEST_URL")),
    reason="durability tests run the embedded server (process and internals); "
           "skipped because FAKTORY_TEST_URL points to a real server")


def jids(jobs: list[dict | None]) -> list[str]:
    return [j["jid"] if j else None for j in jobs]


def summary(info: dict) -> dict:
    """What must survive a restart: queue sizes, set sizes, counters."""
    f = info["faktory"]
    return {"queues": f["queues"], "sets": f["sets"], "processed": f["total_processed"],
            "failures": f["total_failures"]}


# ----------------------------------------------------------------------------- processes


def test_sigkill_restores_every_state(tmp_path):
    """Enqueued (FIFO, several queues), paused, scheduled, retrying, dead, in progress and
    the counters, all back after SIGKILL + restart on the same file."""
    db = str(tmp_path / "faktory.db")
    future = time.time() + 3600
    with ServerProcess(db) as srv:
        with Wire(srv.port, wid="durable-w1") as w:
            for i in range(5):
                w.push(job(f"alpha-{i:04d}", "alpha"))
            for i in range(3):
                w.push(job(f"beta-{i:05d}", "beta"))
            for i in range(2):
                w.push(job(f"gamma-{i:04d}", "gamma"))
            assert w.cmd("QUEUE PAUSE gamma") == "OK"
            w.push(job("sched-0001", "alpha", at=rfc3339(future)))
            w.push(job("sched-0002", "alpha", at=rfc3339(future + 60)))
            w.push(job("sched-kill", "alpha", at=rfc3339(future + 120)))
            w.mutate("kill", "scheduled", jids=["sched-kill"])            # -> dead
            w.push(job("retry-0001", "work", retry=5))
            w.push(job("dead-00001", "work", retry=-1))
            w.push(job("acked-0001", "work"))
            w.push(job("busy-00001", "work", reserve_for=60))
            assert w.fetch("work")["jid"] == "retry-0001"
            assert w.cmd("FAIL", {"jid": "retry-0001", "errtype": "Boom", "message": "m1",
                                  "backtrace": ["a.py:1"]}) == "OK"    # -> retries
            assert w.fetch("work")["jid"] == "dead-00001"
            assert w.cmd("FAIL", {"jid": "dead-00001", "errtype": "Boom",
                                  "message": "m2"}) == "OK"            # retry -1 -> dead
            assert w.fetch("work")["jid"] == "acked-0001"
            assert w.cmd("ACK", {"jid": "acked-0001"}) == "OK"
            busy = w.fetch("work")
            assert busy["jid"] == "busy-00001"                           # in progress
            before = summary(w.info())
            srv.kill()  # while the connection is still open, like a crash
    assert before == {
        "queues": {"alpha": 5, "beta": 3, "gamma": 2, "work": 0},
        "sets": {"dead": 2, "retries": 1, "scheduled": 2, "working": 1},
        "processed": 3, "failures": 2}   # FAIL counts as processed too, as on Faktory

    with ServerProcess(db) as srv, Wire(srv.port, wid="durable-w2") as w:
        assert summary(w.info()) == before
        # gamma is still paused: FETCH skips it
        assert w.fetch("gamma", "beta")["jid"] == "beta-00000"
        assert jids([w.fetch("alpha") for _ in range(5)]) == [f"alpha-{i:04d}" for i in range(5)]
        assert jids([w.fetch("beta") for _ in range(2)]) == ["beta-00001", "beta-00002"]
        assert w.cmd("QUEUE RESUME gamma") == "OK"
        fetched = w.fetch("gamma")
        assert fetched["jid"] == "gamma-0000"
        assert fetched["args"] == ["gamma-0000"] and fetched["jobtype"] == "Durable"
        assert fetched["enqueued_at"] and fetched["created_at"]
        assert w.fetch("gamma")["jid"] == "gamma-0001"
        # the retrying job, with its failure record
        w.mutate("requeue", "retries", jids=["retry-0001"])
        retried = w.fetch("work")
        assert retried["jid"] == "retry-0001"
        assert retried["failure"]["errtype"] == "Boom" and retried["failure"]["message"] == "m1"
        assert retried["failure"]["retry_count"] == 0 and retried["failure"]["next_at"]
        # the dead set: the exhausted job and the killed scheduled one
        w.mutate("requeue", "dead")
        assert sorted(jids([w.fetch("work", "alpha"), w.fetch("work", "alpha")])) == [
            "dead-00001", "sched-kill"]
        # the scheduled set
        w.mutate("requeue", "scheduled")
        assert sorted(jids([w.fetch("alpha"), w.fetch("alpha")])) == ["sched-0001", "sched-0002"]
        # the reservation survived: FAIL knows the job (an unknown jid is "Job not found")
        assert w.cmd("FAIL", {"jid": "busy-00001", "errtype": "Late", "message": "x"}) == "OK"
        with pytest.raises(WireError, match="Job not found"):
            w.cmd("FAIL", {"jid": "never-fetched", "errtype": "X", "message": "x"})
        after = summary(w.info())
        # 15 jobs fetched since the restart are in progress; busy-00001 now waits to retry
        assert after["sets"] == {"dead": 0, "retries": 1, "scheduled": 0, "working": 15}
        assert after["failures"] == 3 and after["processed"] == 4


def test_each_acknowledged_change_survives_immediate_sigkill(tmp_path):
    """The reply is the proof: SIGKILL right after each reply loses nothing
    (PUSH, FETCH, FAIL, MUTATE, ACK)."""
    db = str(tmp_path / "faktory.db")

    def step(action, expect):
        with ServerProcess(db) as srv:
            with Wire(srv.port, wid="durable-step") as w:
                action(w)
                srv.kill()  # immediately after the reply arrived
        with ServerProcess(db) as srv, Wire(srv.port) as w:
            assert summary(w.info()) == expect

    sets0 = {"dead": 0, "retries": 0, "scheduled": 0, "working": 0}
    step(lambda w: w.push(job("step-00001")),
         {"queues": {"default": 1}, "sets": sets0, "processed": 0, "failures": 0})
    step(lambda w: w.fetch("default"),
         {"queues": {"default": 0}, "sets": dict(sets0, working=1), "processed": 0,
          "failures": 0})
    step(lambda w: w.cmd("FAIL", {"jid": "step-00001", "errtype": "E", "message": "m"}),
         {"queues": {"default": 0}, "sets": dict(sets0, retries=1), "processed": 1,
          "failures": 1})
    step(lambda w: w.mutate("requeue", "retries"),
         {"queues": {"default": 1}, "sets": sets0, "processed": 1, "failures": 1})

    def fetch_ack(w):
        assert w.cmd("ACK", {"jid": w.fetch("default")["jid"]}) == "OK"
    step(fetch_ack, {"queues": {"default": 0}, "sets": sets0, "processed": 2, "failures": 1})


def test_pipelined_burst_all_acknowledged_none_lost(tmp_path):
    """3,000 pipelined PUSHes and two PUSHB of 500 on other connections, every reply read,
    then SIGKILL at once: all 4,000 jobs are there, in order."""
    db = str(tmp_path / "faktory.db")
    n = 3000
    with ServerProcess(db) as srv:
        with Wire(srv.port) as w, Wire(srv.port) as wb1, Wire(srv.port) as wb2:
            w.send(b"".join(Wire.pack("PUSH", job(f"burst-{i:06d}", "burst")) for i in range(n)))
            for b, wb in enumerate((wb1, wb2)):
                wb.send(Wire.pack("PUSHB", [job(f"bulk{b}-{i:05d}", f"bulk{b}")
                                            for i in range(500)]))
            replies = [w.reply() for _ in range(n)]
            assert replies == ["OK"] * n
            assert wb1.reply() == b"{}" and wb2.reply() == b"{}"
            srv.kill()
    with ServerProcess(db) as srv, Wire(srv.port) as w:
        assert w.info()["faktory"]["queues"] == {"burst": n, "bulk0": 500, "bulk1": 500}
        assert jids([w.fetch("burst") for _ in range(3)]) == [f"burst-{i:06d}" for i in range(3)]
        assert w.fetch("bulk1")["jid"] == "bulk1-00000"


def test_flush_queue_remove_and_mutate_persist(tmp_path):
    db = str(tmp_path / "faktory.db")
    future = time.time() + 3600
    with ServerProcess(db) as srv:
        with Wire(srv.port) as w:
            for q, n in (("qa", 3), ("qb", 2), ("qc", 1)):
                for i in range(n):
                    w.push(job(f"{q}-job-{i:03d}", q))
            w.push(job("sched-a001", "qc", at=rfc3339(future)))
            w.push(job("sched-b001", "qc", at=rfc3339(future), jobtype="Other"))
            w.push(job("sched-c001", "qc", at=rfc3339(future + 1)))
            w.push(job("sched-d001", "qc", at=rfc3339(future + 2)))
            assert w.cmd("QUEUE PAUSE qb") == "OK"
            assert w.cmd("QUEUE REMOVE qa qb") == "OK"           # jobs, names, pause gone
            w.mutate("discard", "scheduled", jids=["sched-a001"])
            w.mutate("kill", "scheduled", jobtype="Other")         # sched-b001 -> dead
            w.mutate("requeue", "scheduled", jids=["sched-d001"])  # -> qc
            before = summary(w.info())
            srv.kill()
    assert before["queues"] == {"qc": 2}
    assert before["sets"] == {"dead": 1, "retries": 0, "scheduled": 1, "working": 0}
    with ServerProcess(db) as srv:
        with Wire(srv.port) as w:
            assert summary(w.info()) == before
            assert jids([w.fetch("qc"), w.fetch("qc")]) == ["qc-job-000", "sched-d001"]
            w.push(job("qb-again-01", "qb"))        # qb no longer paused after REMOVE
            assert w.fetch("qb")["jid"] == "qb-again-01"
            w.mutate("clear", "dead")
            assert w.info()["faktory"]["sets"]["dead"] == 0
            w.push(job("pre-flush1", "qd"))
            assert w.cmd("ACK", {"jid": "qb-again-01"}) == "OK"
            assert w.cmd("FLUSH") == "OK"
            srv.kill()
    with ServerProcess(db) as srv, Wire(srv.port) as w:
        assert summary(w.info()) == {
            "queues": {}, "sets": {"dead": 0, "retries": 0, "scheduled": 0, "working": 0},
            "processed": 0, "failures": 0}


def test_cli_refuses_a_file_that_is_not_ours(tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a database, just notes\n" * 100)
    with pytest.raises(ServerStartError) as refused:
        ServerProcess(bogus).start()
    assert refused.value.returncode != 0
    assert "not a faktory-turbo data file" in refused.value.output
    assert bogus.read_text().startswith("not a database")  # untouched


# ----------------------------------------------------------------------------- in process


def test_crash_in_process_then_reservation_expires_and_schedule_runs(tmp_path):
    """Copy the files of a running server (what a SIGKILL leaves), start on the copy with
    a later clock: the in-progress job comes back as a ReservationExpired failure when its
    reservation expires, the scheduled job is enqueued when its time comes."""
    db, copy = str(tmp_path / "live.db"), str(tmp_path / "crashed.db")
    t0 = 1_900_000_000.0
    with ServerThread(storage=db, clock=ManualClock(t0)) as st:
        with Wire(st.port, wid="inproc-w1") as w:
            w.push(job("busy-00001", "work", reserve_for=60))
            w.push(job("sched-0001", "work", at=rfc3339(t0 + 300)))
            w.push(job("waiting-01", "work"))
            assert w.fetch("work")["jid"] == "busy-00001"
            # the reply arrived: the change is on disk now, before any later event
            st.call(snapshot_files, db, copy)
            w.push(job("lost-00001", "work"))  # after the "crash": must not be in the copy
    clock = ManualClock(t0 + 30)
    with ServerThread(storage=copy, clock=clock) as st, Wire(st.port) as w:
        assert summary(w.info())["sets"] == {"dead": 0, "retries": 0, "scheduled": 1,
                                             "working": 1}
        assert w.info()["faktory"]["queues"] == {"work": 1}
        st.call(st.server.tick)                      # t0+30: not expired yet
        assert w.info()["faktory"]["sets"]["working"] == 1
        clock.advance(31)                            # t0+61: reservation (60 s) expired
        st.call(st.server.tick)
        info = summary(w.info())
        assert info["sets"] == {"dead": 0, "retries": 1, "scheduled": 1, "working": 0}
        assert info["failures"] == 1
        with pytest.raises(WireError, match="Job not found"):
            w.cmd("FAIL", {"jid": "busy-00001", "errtype": "X", "message": "x"})
        w.mutate("requeue", "retries")
        assert w.fetch("work")["jid"] == "waiting-01"
        expired = w.fetch("work")
        assert expired["jid"] == "busy-00001"
        assert expired["failure"]["errtype"] == "ReservationExpired"
        assert expired["failure"]["retry_count"] == 0
        clock.set(t0 + 301)      # also expires busy-00001's new reservation (t0+121)
        st.call(st.server.tick)
        assert w.fetch("work")["jid"] == "sched-0001"
        # and the restarted server's own changes are durable too
        st.call(snapshot_files, copy, str(tmp_path / "again.db"))
    with ServerThread(storage=str(tmp_path / "again.db"), clock=ManualClock(t0 + 400)) as st:
        with Wire(st.port) as w:
            assert summary(w.info()) == {
                "queues": {"work": 0},
                "sets": {"dead": 0, "retries": 1, "scheduled": 0, "working": 2},
                "processed": 2, "failures": 2}


def test_second_server_on_the_same_file_is_refused(tmp_path):
    db = str(tmp_path / "faktory.db")
    with ServerThread(storage=db):
        with pytest.raises(StorageError, match="in use by another server"):
            FaktoryServer(port=0, storage=db)


# ----------------------------------------------------------------------------- the class


def rec(rid: int, where: str, name: str = "", score: float = 0.0, *, wid: str = "",
        since: float = 0.0) -> JobRecord:
    jid = f"jid-{rid:05d}"
    payload = json.dumps({"jid": jid, "jobtype": "T", "args": [rid]}).encode()
    return JobRecord(rid, where, name, score, jid, payload, wid, since)


def reload(path: str) -> dict:
    p = SqlitePersistence(path)
    try:
        snap = p.load()
        return {"records": sorted((r.rid, r.where, r.name, r.score, r.wid, r.since)
                                  for r in snap.records),
                "payloads": {r.rid: r.payload for r in snap.records},
                "queues": sorted(snap.queues), "paused": sorted(snap.paused),
                "counters": (snap.processed, snap.failures)}
    finally:
        p.close()


@pytest.mark.parametrize("background_checkpoint", [True, False])
def test_buffered_changes_apply_in_order(tmp_path, background_checkpoint):
    path = str(tmp_path / "p.db")
    p = SqlitePersistence(path, background_checkpoint=background_checkpoint)
    assert p.durable and list(p.load().records) == []
    p.queue_added("q1")
    p.queue_added("q2")
    for r in (rec(1, "queue", "q1", 1), rec(2, "queue", "q1", 2), rec(3, "queue", "q2", 3),
              rec(4, "retries", "", 100.5), rec(5, "dead", "", 900.0)):
        p.add(r)
    p.paused("q2", True)
    p.counters(3, 1)
    p.commit()
    p.commit()  # nothing pending: cheap no-op
    r1 = rec(1, "working", "", 1860.0, wid="w1", since=60.0)
    p.update(r1)                      # FETCH
    p.remove(rec(2, "queue", "q1"))   # a committed record
    p.add(rec(6, "queue", "q1", 4))
    p.remove(rec(6, "queue", "q1"))   # added and removed before any commit: never written
    p.update(rec(4, "queue", "q2", 5))  # retries -> queue, then clear retries: stays
    p.add(rec(7, "retries", "", 50.0))
    p.clear_set("retries")            # removes 7 (pending) but not 4 (moved away)
    p.queue_added("q3")
    p.add(rec(8, "queue", "q3", 6))
    p.add(rec(9, "dead", "", 7.0))
    p.queue_removed("q3")             # 8 gone, q3 gone; the dead record stays
    p.paused("q2", False)
    p.paused("q1", True)
    p.counters(4, 1)
    p.counters(5, 2)                  # the latest values win
    p.commit()
    p.close()
    state = reload(path)
    assert state["records"] == [(1, "working", "", 1860.0, "w1", 60.0),
                                (3, "queue", "q2", 3.0, "", 0.0),
                                (4, "queue", "q2", 5.0, "", 0.0),
                                (5, "dead", "", 900.0, "", 0.0),
                                (9, "dead", "", 7.0, "", 0.0)]
    assert state["payloads"][1] == rec(1, "working").payload
    assert isinstance(state["payloads"][1], bytes)
    assert state["queues"] == ["q1", "q2"] and state["paused"] == ["q1"]
    assert state["counters"] == (5, 2)

    p = SqlitePersistence(path)
    p.load()
    p.add(rec(10, "queue", "q1", 8))
    p.flush()                         # everything before is gone...
    p.queue_added("q9")
    p.add(rec(11, "scheduled", "", 9.0))  # ...but not what comes after, in the same batch
    p.commit()
    p.add(rec(12, "queue", "q9", 1))  # never committed: a crash loses it (never acknowledged)
    snapshot_files(path, str(tmp_path / "crash.db"))
    p.close()
    crashed = reload(str(tmp_path / "crash.db"))
    assert crashed["records"] == [(11, "scheduled", "", 9.0, "", 0.0)]
    assert crashed["queues"] == ["q9"] and crashed["paused"] == []
    assert crashed["counters"] == (0, 0)


def test_files_that_are_not_ours(tmp_path):
    text = tmp_path / "text.db"
    text.write_bytes(b"hello\n" * 1000)
    with pytest.raises(StorageError, match="not a faktory-turbo data file"):
        SqlitePersistence(str(text))
    foreign = str(tmp_path / "foreign.db")
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE t (x)")
    con.close()
    with pytest.raises(StorageError, match="another application"):
        SqlitePersistence(foreign)
    newer = str(tmp_path / "newer.db")
    SqlitePersistence(newer).close()
    con = sqlite3.connect(newer)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StorageError, match="newer than this"):
        SqlitePersistence(newer)
    with pytest.raises(StorageError, match="does not exist"):
        SqlitePersistence(str(tmp_path / "no" / "such" / "dir.db"))
    with pytest.raises(ValueError):
        SqlitePersistence(str(tmp_path / "x.db"), synchronous="sometimes")
    with pytest.raises(StorageError, match="path of a file"):
        SqlitePersistence(":memory:")
    os.environ["FAKTORY_STORAGE_SYNC"] = "FULL"
    try:
        p = SqlitePersistence(str(tmp_path / "full.db"))
        assert p.synchronous == "full"
        assert p._db.execute("PRAGMA synchronous").fetchone()[0] == 2
        p.close()
    finally:
        del os.environ["FAKTORY_STORAGE_SYNC"]
    # an empty file (e.g. created by mktemp) is fine: it becomes ours
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    SqlitePersistence(str(empty)).close()
    con = sqlite3.connect(str(empty))
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    con.close()


def test_failed_write_refuses_every_later_commit(tmp_path):
    path = str(tmp_path / "full.db")
    p = SqlitePersistence(path, synchronous="full")
    p.load()
    p.add(rec(1, "queue", "q", 1))
    p.commit()
    # a tiny page budget makes the next big transaction fail with SQLITE_FULL
    pages = p._db.execute("PRAGMA page_count").fetchone()[0]
    p._db.execute(f"PRAGMA max_page_count = {pages + 2}")
    big = b'{"jid":"big","args":["' + b"x" * 200_000 + b'"]}'
    p.add(JobRecord(2, "queue", "q", 2, "big-000001", big))
    with pytest.raises(StorageError, match="write failed"):
        p.commit()
    # the store's other calls never raise (they come from inside its operations)...
    p.add(rec(3, "queue", "q", 3))
    p.queue_added("q2")
    p.paused("q2", True)
    p.clear_set("dead")
    p.queue_removed("q")
    p.flush()
    # ...but no commit ever succeeds again: nothing unstored gets acknowledged
    with pytest.raises(StorageError, match="write failed"):
        p.commit()
    p.close()
    assert [r[0] for r in reload(path)["records"]] == [1]


def test_wal_stays_bounded_under_sustained_load(tmp_path, monkeypatch):
    """Commits never pause here, so a checkpoint beside the writer never copies the
    last frames; the writer finishes the job when asked, and the WAL starts over instead
    of growing with every commit."""
    from faktory.server import sqlite as storage
    monkeypatch.setattr(storage._Checkpointer, "EVERY_COMMITS", 16)
    monkeypatch.setattr(storage._Checkpointer, "RESET_FRAMES", 200)
    path = str(tmp_path / "wal.db")
    p = SqlitePersistence(path)
    p.load()
    payload = b'{"jid":"x","args":["' + b"y" * 300 + b'"]}'
    biggest = 0
    for i in range(1, 3001):   # push, fetch, ack: each commit dirties a few pages
        r = JobRecord(i, "queue", "q", float(i), f"jid-{i:06d}", payload)
        p.add(r)
        p.commit()
        r.where, r.score = "working", 1e9
        p.update(r)
        p.commit()
        p.remove(r)
        p.counters(i, 0)
        p.commit()
        biggest = max(biggest, os.path.getsize(path + "-wal"))
    checkpoints = p._checkpointer.checkpoints
    p.close()
    assert checkpoints > 0
    # without the writer's final checkpoint: ~9,000 commits x 2-3 frames x 4 KiB > 70 MB
    assert biggest < 16 * 1024 * 1024, biggest
    assert not os.path.exists(path + "-wal")  # a clean close leaves no WAL behind


def test_wal_stays_bounded_when_the_checkpoint_thread_falls_behind(tmp_path, monkeypatch):
    """A thread that never gets to run (a starved machine) does not let the WAL grow:
    the writer checkpoints itself once the WAL passes its hard bound."""
    from faktory.server import sqlite as storage
    monkeypatch.setattr(storage._Checkpointer, "EVERY_COMMITS", 16)
    monkeypatch.setattr(storage._Checkpointer, "RESET_FRAMES", 200)
    monkeypatch.setattr(storage._Checkpointer, "_wait", lambda self: False)  # the thread does nothing
    path = str(tmp_path / "starved.db")
    p = SqlitePersistence(path)
    p.load()
    payload = b'{"jid":"x","args":["' + b"y" * 300 + b'"]}'
    biggest = 0
    for i in range(1, 3001):
        r = JobRecord(i, "queue", "q", float(i), f"jid-{i:06d}", payload)
        p.add(r)
        p.commit()
        p.remove(r)
        p.commit()
        biggest = max(biggest, os.path.getsize(path + "-wal"))
    assert p._checkpointer.checkpoints == 0  # the thread never ran one
    p.close()
    # 6,000 commits x 2-3 frames x 4 KiB unchecked: > 40 MB; the hard bound is 4 x 200 frames
    assert biggest < 2 * 4 * 200 * (4096 + 24), biggest


# ----------------------------------------------------------------------------- model check


def store_state(store) -> dict:
    """Everything the store holds that must survive a restart, in comparable form."""
    return {
        "queues": {name: [(r.jid, r.payload) for r in q] for name, q in store.queues.items()},
        "sets": {name: sorted((r.score, r.payload, r.jid) for r in s.members.values())
                 for name, s in store.sets.items()},
        "working": sorted((r.jid, r.score, r.wid, r.since, r.payload)
                          for r in store.working.values()),
        "paused": sorted(store.paused),
        "counters": (store.processed, store.failures),
    }


@pytest.mark.parametrize("seed", [20261128, 7, 1234])
def test_random_workload_restores_the_exact_state(tmp_path, seed):
    """A seeded random mix of every state change (PUSH, PUSHB, scheduled jobs, FETCH,
    ACK, FAIL, MUTATE, QUEUE PAUSE/RESUME/REMOVE, clock moves with the scheduler and the
    reservation reaper); at a few points the files are copied (a crash at that instant)
    and a server started on each copy must hold exactly the live server's state then."""
    import random

    rng = random.Random(seed)
    t0 = 1_900_000_000.0
    clock = ManualClock(t0)
    db = str(tmp_path / "live.db")
    queues = ("q1", "q2", "q3")
    snapshots: list[tuple[str, float, dict]] = []
    with ServerThread(storage=db, clock=clock) as st, Wire(st.port, wid="model-w1") as w:
        store = st.server.store
        store.rand = random.Random(seed).randrange  # retry backoff jitter: reproducible
        fetched: list[str] = []
        n = 0

        def next_jid() -> str:
            nonlocal n
            n += 1
            return f"model-{n:06d}"

        def random_job() -> dict:
            extra: dict = {"reserve_for": rng.choice((60, 120, 1800))}
            if rng.random() < 0.2:
                extra["at"] = rfc3339(clock.now() + rng.randint(5, 400))
            return job(next_jid(), rng.choice(queues), retry=rng.choice((0, 1, 3, -1, 25)),
                       jobtype=rng.choice(("A", "B")), **extra)

        for step in range(1, 361):
            op = rng.random()
            if op < 0.30:
                w.push(random_job())
            elif op < 0.36:
                assert w.cmd("PUSHB", [random_job() for _ in range(5)]) == b"{}"
            elif op < 0.56:
                order = rng.sample(queues, 3)
                ready = st.call(lambda qs: any(store.queues.get(q) and q not in store.paused
                                               for q in qs), order)
                if ready:  # never a blocking FETCH
                    fetched.append(w.fetch(*order)["jid"])
            elif op < 0.66 and fetched:
                assert w.cmd("ACK", {"jid": fetched.pop(rng.randrange(len(fetched)))}) == "OK"
            elif op < 0.76 and fetched:
                jid = fetched.pop(rng.randrange(len(fetched)))
                try:
                    w.cmd("FAIL", {"jid": jid, "errtype": "E", "message": f"step {step}"})
                except WireError as exc:  # its reservation expired meanwhile
                    assert "Job not found" in str(exc)
            elif op < 0.82:
                target = rng.choice(("retries", "scheduled", "dead"))
                cmd = rng.choice(("kill", "requeue", "discard", "clear"))
                if cmd == "clear" or rng.random() < 0.3:
                    w.mutate(cmd, target)
                else:
                    w.mutate(cmd, target, jobtype=rng.choice(("A", "B")))
            elif op < 0.88:
                sub = rng.choice(("PAUSE", "RESUME", "RESUME", "REMOVE"))
                assert w.cmd(f"QUEUE {sub} {rng.choice(queues)}") == "OK"
            else:
                clock.advance(rng.choice((1, 30, 90, 400)))
                assert w.cmd("BEAT", {"wid": "model-w1"}) == "OK"  # not reaped as silent
                st.call(st.server.tick)
            if step % 45 == 0:
                copy = str(tmp_path / f"crash-{step}.db")
                st.call(snapshot_files, db, copy)
                snapshots.append((copy, clock.now(), st.call(lambda: store_state(store))))
    assert len(snapshots) == 8
    kinds = [s for _, _, s in snapshots]
    assert any(s["working"] for s in kinds) and any(s["paused"] for s in kinds)
    assert any(s["sets"]["retries"] for s in kinds) and any(s["sets"]["dead"] for s in kinds)
    assert any(s["sets"]["scheduled"] for s in kinds)
    for copy, now, expected in snapshots:
        with ServerThread(storage=copy, clock=ManualClock(now)) as st:
            assert st.call(lambda: store_state(st.server.store)) == expected, copy
