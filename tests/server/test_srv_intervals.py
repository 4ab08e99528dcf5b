"""The periods of the server's periodic tasks (scanners and reapers) are configurable."""
from __future__ import annotations

import json

import pytest
from srv_helpers import NEEDS_INTERNALS, REAL, Raw, wait_for

from faktory.server import ManualClock, ScanIntervals, ServerThread
from faktory.server import cli as server_cli
from faktory.server.gojson import format_time

pytestmark = [pytest.mark.internals, pytest.mark.skipif(REAL, reason=NEEDS_INTERNALS)]


def test_the_real_servers_timing_is_available() -> None:
    real = ScanIntervals.faktory()
    assert real.periods() == {"scheduled": 5.0, "retries": 5.0, "dead": 60.0, "reservations": 15.0,
                              "workers": 15.0}
    assert real.worker_ttl == 60.0
    assert ScanIntervals().periods() == dict.fromkeys(real.periods(), 1.0)
    with ServerThread(intervals=real) as st:
        assert st.server.intervals == real


@pytest.mark.parametrize("spec, expected", [
    ("faktory", ScanIntervals.faktory()),
    ("fast", ScanIntervals()),
    ("0.5", ScanIntervals.every(0.5)),
    ("scheduled=2, dead=30", ScanIntervals(scheduled=2.0, dead=30.0)),
    ("worker_ttl=90", ScanIntervals(worker_ttl=90.0)),
])
def test_parse(spec: str, expected: ScanIntervals) -> None:
    assert ScanIntervals.parse(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("sometimes", "bad scan interval 'sometimes'"),
    ("dead=soon", "'soon' is not a number"),
    ("dead=0", "ScanIntervals.dead must be a positive number of seconds, not 0.0"),
    ("-1", "ScanIntervals.scheduled must be a positive number of seconds, not -1.0"),
])
def test_bad_intervals_are_refused_naming_the_field(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ScanIntervals.parse(spec)


def test_cli_refuses_bad_intervals(capsys: pytest.CaptureFixture) -> None:
    assert server_cli.main(["--scan-intervals", "dead=never", "--bind", "127.0.0.1:0"]) == 2
    assert "--scan-intervals: bad scan interval 'dead=never'" in capsys.readouterr().err


def _tasks(st: ServerThread) -> dict:
    return json.loads(st.call(st.server.info_bytes))["faktory"]["tasks"]


def test_each_task_runs_on_its_own_period() -> None:
    # the scheduled scanner every 20 ms; the others not within the test
    slow = 3600.0
    with ServerThread(intervals=ScanIntervals(scheduled=0.02, retries=slow, dead=slow, reservations=slow,
                                              workers=slow)) as st, Raw("127.0.0.1", st.port) as raw:
        raw.hello()
        soon = format_time(st.call(st.server.clock.now) + 0.05)
        assert raw.cmd(b'PUSH {"jid":"interval-job-1","jobtype":"T","args":[],"queue":"iv","at":"'
                       + soon.encode() + b'"}\r\n') == b"+OK\r\n"
        wait_for(lambda: st.call(lambda: st.server.store.queue_sizes().get("iv")) == 1)
        tasks = _tasks(st)
        assert tasks["Scheduled"]["cycles"] >= 2 and tasks["Scheduled"]["enqueued"] == 1
        assert tasks["Retries"]["cycles"] == 0 and tasks["Dead"]["cycles"] == 0


def test_a_manual_clock_with_intervals_ticks_on_real_time() -> None:
    # a ManualClock alone runs no ticker (tests call tick()); given intervals, it does
    clock = ManualClock(1_800_000_000.0)
    with ServerThread(clock=clock) as quiet:
        assert quiet.server.tick_interval == 0
    with ServerThread(clock=clock, intervals=ScanIntervals.every(0.02)) as st:
        wait_for(lambda: _tasks(st)["Dead"]["cycles"] >= 2)


def test_workers_are_forgotten_after_worker_ttl() -> None:
    clock = ManualClock(1_800_000_000.0)
    with ServerThread(clock=clock, tick_interval=0, intervals=ScanIntervals(worker_ttl=120.0)) as st, \
            Raw("127.0.0.1", st.port) as raw:
        raw.hello(wid="ttl-worker-1")
        st.call(clock.advance, 100)
        st.call(st.server.tick)
        assert [w["wid"] for w in st.call(st.server.workers)] == ["ttl-worker-1"]  # 60 s would be gone
        st.call(clock.advance, 21)
        st.call(st.server.tick)
        assert st.call(st.server.workers) == []
