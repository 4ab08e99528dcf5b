"""Job lifecycle with an injected clock: time is moved, never waited for.

Scheduled jobs, retry backoff and the failure record, the dead set and its purge,
reservation expiry and clamping, heartbeat expiry.  All need the embedded server.
"""
from __future__ import annotations

import json
from typing import Iterator

import pytest
from srv_helpers import NEEDS_INTERNALS, REAL, Raw

from faktory.server import ManualClock, ServerThread
from faktory.server.gojson import format_time, parse_time
from faktory.server.store import next_retry_delay

pytestmark = [pytest.mark.internals, pytest.mark.skipif(REAL, reason=NEEDS_INTERNALS)]

START = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class Life:
    """A server on a ManualClock plus helpers to move time and look inside."""

    def __init__(self, st: ServerThread, clock: ManualClock) -> None:
        self.st = st
        self.clock = clock
        self.raws: list[Raw] = []

    def raw(self, **hello) -> Raw:
        raw = Raw("127.0.0.1", self.st.port)
        self.raws.append(raw)
        assert raw.hello(**hello) == b"+OK\r\n"
        return raw

    def advance(self, seconds: float) -> None:
        self.st.call(self.clock.advance, seconds)

    def tick(self) -> None:
        self.st.call(self.st.server.tick)

    def info(self) -> dict:
        return self.st.call(self.st.server.info)

    def set_payloads(self, name: str) -> list[dict]:
        def read() -> list[bytes]:
            return [r.payload for r in self.st.server.store.sets[name].ordered()]
        return [json.loads(p) for p in self.st.call(read)]


@pytest.fixture
def life() -> Iterator[Life]:
    clock = ManualClock(START)
    with ServerThread(clock=clock, fetch_timeout=0.2) as st:
        life = Life(st, clock)
        try:
            yield life
        finally:
            for raw in life.raws:
                raw.close()


def push(raw: Raw, jid: str, queue: str = "lq", **extra) -> None:
    body = {"jid": jid, "jobtype": "Life", "args": [1], "queue": queue, "retry": 25}
    body.update(extra)
    assert raw.cmd(b"PUSH " + json.dumps(body, separators=(",", ":")).encode() + b"\r\n") == b"+OK\r\n"


def fetch(raw: Raw, queue: str = "lq") -> dict | None:
    reply = raw.cmd(b"FETCH " + queue.encode() + b"\r\n")
    if reply == b"$-1\r\n":
        return None
    return json.loads(reply.split(b"\r\n", 1)[1][:-2])


def fail(raw: Raw, jid: str, **extra) -> bytes:
    body = {"jid": jid, "errtype": "RuntimeError", "message": "boom"}
    body.update(extra)
    return raw.cmd(b"FAIL " + json.dumps(body, separators=(",", ":")).encode() + b"\r\n")


def test_scheduled_job_enqueued_when_at_passes(life: Life) -> None:
    raw = life.raw()
    at = format_time(START + 100)
    push(raw, "sched-life-1", at=at)
    assert life.info()["faktory"]["sets"]["scheduled"] == 1
    life.advance(99.5)
    life.tick()
    assert life.info()["faktory"]["sets"]["scheduled"] == 1
    assert fetch(raw) is None
    life.advance(1)
    life.tick()
    stats = life.info()["faktory"]
    assert stats["sets"]["scheduled"] == 0 and stats["queues"]["lq"] == 1
    assert stats["tasks"]["Scheduled"]["enqueued"] == 1 and stats["tasks"]["Scheduled"]["cycles"] == 2
    job = fetch(raw)
    assert job["jid"] == "sched-life-1" and job["at"] == at
    assert job["enqueued_at"] == format_time(START + 100.5)


def test_retry_delay_formula_bounds() -> None:
    for count in range(0, 30):
        low = next_retry_delay(count, lambda n: 0)
        high = next_retry_delay(count, lambda n: n - 1)
        assert low == count ** 4 + 15
        assert high == count ** 4 + 15 + 29 * (count + 1)


def test_retries_back_off_then_die_with_a_failure_record(life: Life) -> None:
    raw = life.raw()
    retry = 6
    push(raw, "retry-life-1", retry=retry)
    first_failed_at = None
    for count in range(retry + 1):
        job = fetch(raw)
        assert job is not None and job["jid"] == "retry-life-1"
        if count:
            assert job["failure"]["retry_count"] == count - 1
        backtrace = [f"frame {i}" for i in range(60)]
        assert fail(raw, "retry-life-1", errtype=f"E{count}", message=f"m{count}",
                    backtrace=backtrace) == b"+OK\r\n"
        now = life.clock.now()
        if count < retry:
            (stored,) = life.set_payloads("retries")
            failure = stored["failure"]
            assert failure["retry_count"] == count
            assert failure["remaining"] == retry - count
            assert failure["errtype"] == f"E{count}" and failure["message"] == f"m{count}"
            assert failure["backtrace"] == backtrace[:50]
            first_failed_at = first_failed_at or failure["failed_at"]
            assert failure["failed_at"] == first_failed_at
            delay = parse_time(failure["next_at"]) - now
            assert count ** 4 + 15 - 1e-3 <= delay <= count ** 4 + 15 + 29 * (count + 1) + 1e-3
            life.advance(delay - 1)
            life.tick()
            assert fetch(raw) is None  # not yet
            life.advance(1)
            life.tick()
        else:
            assert life.set_payloads("retries") == []
            (dead,) = life.set_payloads("dead")
            assert dead["failure"]["retry_count"] == retry
            assert dead["failure"]["remaining"] == 0
    stats = life.info()["faktory"]
    assert stats["total_failures"] == retry + 1 and stats["total_processed"] == retry + 1
    assert stats["tasks"]["Retries"]["enqueued"] == retry


def test_first_retry_delays_are_random(life: Life) -> None:
    raw = life.raw()
    for i in range(12):
        push(raw, f"rand-life-{i:02d}")
        fetch(raw)
        fail(raw, f"rand-life-{i:02d}")
    delays = {parse_time(p["failure"]["next_at"]) - life.clock.now() for p in life.set_payloads("retries")}
    assert all(15 <= d <= 44 for d in delays)
    assert len(delays) > 1


def test_retry_zero_discards_and_minus_one_goes_straight_to_dead(life: Life) -> None:
    raw = life.raw()
    push(raw, "ephemeral-1", retry=0)
    push(raw, "morgue-0001", retry=-1)
    fetch(raw)
    fetch(raw)
    assert fail(raw, "ephemeral-1") == b"+OK\r\n"
    assert fail(raw, "morgue-0001") == b"+OK\r\n"
    stats = life.info()["faktory"]
    assert stats["sets"] == {"dead": 1, "retries": 0, "scheduled": 0, "working": 0}
    assert stats["total_failures"] == 2
    (dead,) = life.set_payloads("dead")
    assert dead["jid"] == "morgue-0001" and dead["failure"]["remaining"] == -1


def test_dead_jobs_purged_after_180_days(life: Life) -> None:
    raw = life.raw()
    push(raw, "dead-life-1", retry=-1)
    fetch(raw)
    fail(raw, "dead-life-1")
    life.advance(180 * 86400 - 1)
    life.tick()
    assert life.info()["faktory"]["sets"]["dead"] == 1
    life.advance(2)
    life.tick()
    stats = life.info()["faktory"]
    assert stats["sets"]["dead"] == 0 and stats["tasks"]["Dead"]["enqueued"] == 1


@pytest.mark.parametrize("reserve_for, expires_after", [(None, 1800), (10, 60), (600, 600), (86400, 86400)])
def test_reservation_expires_into_a_failure(life: Life, reserve_for, expires_after) -> None:
    raw = life.raw()
    extra = {} if reserve_for is None else {"reserve_for": reserve_for}
    push(raw, "resv-life-1", **extra)
    assert fetch(raw)["jid"] == "resv-life-1"
    life.advance(expires_after - 0.5)
    life.tick()
    assert life.info()["faktory"]["sets"]["working"] == 1
    life.advance(1)
    life.tick()
    stats = life.info()["faktory"]
    assert stats["sets"]["working"] == 0 and stats["sets"]["retries"] == 1
    assert stats["tasks"]["Busy"]["reaped"] == 1 and stats["tasks"]["Busy"]["size"] == 0
    assert stats["total_failures"] == 1
    (stored,) = life.set_payloads("retries")
    assert stored["failure"]["errtype"] == "ReservationExpired"
    assert stored["failure"]["message"] == "Faktory job reservation expired"
    # the worker that held it learns nothing from ACK, and FAIL says the job is gone
    assert raw.cmd(b'ACK {"jid":"resv-life-1"}\r\n') == b"+OK\r\n"
    assert fail(raw, "resv-life-1") == b"-ERR Job not found resv-life-1\r\n"
    assert life.info()["faktory"]["total_processed"] == 1


def test_job_fetched_twice_under_one_jid(life: Life) -> None:
    # two working entries, one reservation: the ACK releases the second; the first expires
    # later and finds no reservation (the real server logs "Job not found" and drops it)
    raw = life.raw()
    push(raw, "twice-life-1")
    push(raw, "twice-life-1")
    fetch(raw)
    fetch(raw)
    stats = life.info()["faktory"]
    assert stats["sets"]["working"] == 2 and stats["tasks"]["Busy"]["size"] == 1
    assert raw.cmd(b'ACK {"jid":"twice-life-1"}\r\n') == b"+OK\r\n"
    stats = life.info()["faktory"]
    assert stats["sets"]["working"] == 1 and stats["tasks"]["Busy"]["size"] == 0
    life.advance(1801)
    life.tick()
    stats = life.info()["faktory"]
    assert stats["sets"] == {"dead": 0, "retries": 0, "scheduled": 0, "working": 0}


def test_heartbeat_expiry_forgets_worker_and_closes_its_connections(life: Life) -> None:
    worker = life.raw(wid="hb-worker-1")
    second = life.raw(wid="hb-worker-1")
    producer = life.raw()
    life.advance(50)
    assert producer.cmd(b'BEAT {"wid":"hb-worker-1"}\r\n') == b"+OK\r\n"
    life.advance(50)
    life.tick()
    assert producer.cmd(b'BEAT {"wid":"hb-worker-1"}\r\n') == b"+OK\r\n"  # beat 50 s ago: alive
    life.advance(60.5)
    life.tick()
    assert worker.wait_closed() == b""
    assert second.wait_closed() == b""
    assert producer.cmd(b'BEAT {"wid":"hb-worker-1"}\r\n') == b"-ERR unknown worker hb-worker-1\r\n"
    assert life.info()["faktory"]["tasks"]["Workers"] == {"reaped": 1, "size": 0}


def test_flush_resets_counters_but_keeps_known_queues(life: Life) -> None:
    raw = life.raw()
    push(raw, "flush-life-1")
    fetch(raw)
    raw.cmd(b'ACK {"jid":"flush-life-1"}\r\n')
    assert life.info()["faktory"]["total_processed"] == 1
    assert raw.cmd(b"FLUSH\r\n") == b"+OK\r\n"
    stats = life.info()["faktory"]
    assert stats["total_processed"] == 0 and stats["queues"] == {"lq": 0}


def test_acknowledged_reservations_do_not_accumulate(life: Life) -> None:
    raw = life.raw()
    for i in range(3000):
        raw.send(b'PUSH {"jid":"mem-%06d","jobtype":"M","args":[],"queue":"mem","retry":25}\r\n'
                 b"FETCH mem\r\n" b'ACK {"jid":"mem-%06d"}\r\n' % (i, i))
    for _ in range(3 * 3000):
        raw.reply()
    store = life.st.server.store
    assert life.st.call(lambda: (len(store.working), len(store.reservations))) == (0, 0)
    assert life.st.call(lambda: len(store._working_heap)) <= 1024 + 2
