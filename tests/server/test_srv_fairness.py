"""One connection never stalls the others; buffered input is bounded; idle connections close.

The checks are on order and counts, never on elapsed time: the server answers another
client (or the test's own call into its loop) while a big PUSHB or a long pipeline of one
connection is still being worked through.
"""
from __future__ import annotations

import json
import select
import socket
import threading
import time
from typing import Any

import pytest
from srv_helpers import NEEDS_INTERNALS, REAL, Raw, wait_for

from faktory.server import ServerThread, server

pytestmark = [pytest.mark.internals, pytest.mark.skipif(REAL, reason=NEEDS_INTERNALS)]


def _jobs_line(n: int, queue: str = "bulk") -> bytes:
    jobs = [{"jid": f"fair-job-{i:07d}", "jobtype": "F", "args": [i], "queue": queue, "retry": 25} for i in range(n)]
    return b"PUSHB " + json.dumps(jobs, separators=(",", ":")).encode() + b"\r\n"


def test_a_big_pushb_lets_other_connections_in_between(monkeypatch: pytest.MonkeyPatch) -> None:
    # The batch's push slices wait (a pass of the loop at a time, never blocking it) once the
    # first has run, until the test has seen another client answered: what is checked is
    # that the server answers in between slices, whatever the machine's timing (a test
    # thread held off the CPU once saw a 30,000-job batch finished before its INFO went out).
    n = 30_000
    release = threading.Event()
    push_slices = server.ServerConnection._push_slices

    def gated(self: server.ServerConnection, jobs: Any, start: int, *rest: Any) -> None:
        if start > 0 and not release.is_set():
            self.srv._loop.call_later(0.001, gated, self, jobs, start, *rest)
            return
        push_slices(self, jobs, start, *rest)
    monkeypatch.setattr(server.ServerConnection, "_push_slices", gated)
    with ServerThread() as st, Raw("127.0.0.1", st.port) as big, Raw("127.0.0.1", st.port) as other:
        big.hello()
        other.hello()
        store = st.server.store
        big.send(_jobs_line(n))
        # the test's own calls into the server's loop are answered while the batch is half done
        seen = wait_for(lambda: (lambda k: k if 0 < k < n else None)(
            st.call(lambda: len(store.queues.get("bulk", ())))), timeout=30)
        assert 0 < seen < n
        # and another client's command is answered before the PUSHB's reply
        other.send(b"INFO\r\n")
        assert json.loads(other.reply().split(b"\r\n", 1)[1])["faktory"]["queues"]["bulk"] == seen
        release.set()
        assert big.reply() == b"$2\r\n{}\r\n"
        assert st.call(lambda: len(store.queues["bulk"])) == n
        # commands the same client sent behind its PUSHB are answered after it, in order
        big.send(b'PUSHB [{"jid":"after-bulk-01","jobtype":"F","args":[],"queue":"bulk"}]\r\nINFO\r\n')
        assert big.reply() == b"$2\r\n{}\r\n"
        assert json.loads(big.reply().split(b"\r\n", 1)[1])["faktory"]["queues"]["bulk"] == n + 1


def test_a_big_pushb_rejections_and_a_vanished_client() -> None:
    n = 5_000
    jobs = [{"jid": f"rej-job-{i:06d}", "jobtype": "F" if i % 1000 else "", "args": [], "queue": "rj"} for i in range(n)]
    line = b"PUSHB " + json.dumps(jobs).encode() + b"\r\n"
    with ServerThread() as st:
        with Raw("127.0.0.1", st.port) as raw:
            raw.hello()
            reply = raw.cmd(line)
            rejected = json.loads(reply.split(b"\r\n", 1)[1])
            assert sorted(rejected) == [f"rej-job-{i:06d}" for i in range(0, n, 1000)]
            assert set(rejected.values()) == {"jobs must have a jobtype parameter"}
        with Raw("127.0.0.1", st.port) as gone:  # closes in the middle of its batch
            gone.hello()
            gone.send(_jobs_line(20_000, "gone"))
            wait_for(lambda: st.call(lambda: len(st.server.store.queues.get("gone", ()))) > 0, timeout=30)
        wait_for(lambda: st.call(lambda: st.server.connections) == 0)
        with Raw("127.0.0.1", st.port) as after:  # the server goes on serving
            after.hello()
            assert after.cmd(b"INFO\r\n").startswith(b"$")


def test_a_long_pipeline_is_worked_through_in_slices() -> None:
    n = 20_000
    with ServerThread() as st, Raw("127.0.0.1", st.port) as raw:
        raw.hello()
        start = st.call(lambda: st.server.command_count)
        raw.send(b"INFO\r\n" * n)
        # observed from inside the loop between two slices: some done, some not yet
        wait_for(lambda: start < st.call(lambda: st.server.command_count) < start + n, timeout=30)
        for _ in range(n):
            assert raw.reply().startswith(b"$")
        assert st.call(lambda: st.server.command_count) == start + n


def test_buffered_input_of_all_connections_is_bounded() -> None:
    mib = 1024 * 1024
    with ServerThread(max_line=mib, max_buffered=4 * mib) as st:
        raws = [Raw("127.0.0.1", st.port) for _ in range(6)]
        try:
            for raw in raws:
                raw.hello()
            small = raws[0]
            small.send(b"PUSH {")  # a small unfinished line: kept
            for i, raw in enumerate(raws[1:]):
                raw.send(b'PUSH {"jid":"' + b"x" * (900 * 1024 + i * 1024))  # ~0.9 MiB each, no newline
            # 5 x 0.9 MiB > 4 MiB: the largest buffer when the bound is crossed (one of the big
            # ones, by how much of each had arrived) goes, with its connection; the rest stay
            wait_for(lambda: st.call(lambda: len(st.server._conns)) == 5, timeout=10)
            gone = [raw for raw in raws if select.select([raw.sock], [], [], 0)[0]]
            assert len(gone) == 1 and gone[0] is not small
            assert gone[0].wait_closed() == b""
            assert st.call(lambda: st.server.buffered) <= 4 * mib
            small.send(b'"jid":"kept-job-0001","jobtype":"K","args":[]}\r\n')
            assert small.reply() == b"+OK\r\n"
            kept = next(raw for raw in raws[1:] if raw is not gone[0])
            kept.send(b'"}\r\n')  # its line completes (a bad one): answered, buffer freed
            assert kept.reply().startswith(b"-ERR jobs must have")
            wait_for(lambda: st.call(lambda: st.server.buffered) < 4 * mib - 800 * 1024)
        finally:
            for raw in raws:
                raw.close()
        wait_for(lambda: st.call(lambda: st.server.buffered) == 0)


def test_max_buffered_must_hold_one_line() -> None:
    with pytest.raises(ValueError, match="max_buffered"):
        ServerThread(max_line=1024, max_buffered=512).start()


def test_idle_connections_are_closed_after_idle_timeout() -> None:
    with ServerThread(idle_timeout=0.2, fetch_timeout=1.0) as st:
        idle, slow, busy, fetching = (Raw("127.0.0.1", st.port) for _ in range(4))
        try:
            for raw in (idle, slow, busy, fetching):
                raw.hello()
            fetching.send(b"FETCH nothing-here\r\n")  # blocked in FETCH: not idle
            closed: set[str] = set()
            deadline = time.monotonic() + 10
            while closed != {"idle", "slow"}:
                assert time.monotonic() < deadline, closed
                assert busy.cmd(b"INFO\r\n").startswith(b"$")  # a client sending commands stays
                if "slow" not in closed:
                    try:
                        slow.send(b"I")  # a byte at a time, never a whole command: idle too
                    except OSError:
                        closed.add("slow")
                for name, raw in (("idle", idle), ("slow", slow)):
                    if name not in closed and select.select([raw.sock], [], [], 0.02)[0]:
                        try:
                            if raw.sock.recv(1) == b"":
                                closed.add(name)
                        except ConnectionResetError:
                            closed.add(name)
            assert fetching.reply() == b"$-1\r\n"  # was kept open through its FETCH
        finally:
            for raw in (idle, slow, busy, fetching):
                raw.close()


def test_no_idle_timeout_by_default() -> None:
    with ServerThread() as st:
        assert st.server.idle_timeout is None
        assert st.call(lambda: st.server.close_idle(1e12)) == 0


def test_a_huge_malformed_line_gets_gos_error_text() -> None:
    with ServerThread() as st, Raw("127.0.0.1", st.port) as raw:
        raw.hello()
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        data = b'PUSH {"jid":"huge-bad-01","jobtype":"H","args":[' + b'"abcdefgh",' * 900_000 + b"1.]}\r\n"
        assert raw.cmd(data) == b"-ERR invalid JSON: invalid character ']' after decimal point in numeric literal\r\n"


def test_a_big_pushb_with_a_type_error_late_pushes_nothing() -> None:
    jobs = [{"jid": f"late-err-{i:06d}", "jobtype": "F", "args": [], "queue": "late"} for i in range(6_000)]
    jobs[5_500]["retry"] = "often"
    with ServerThread() as st, Raw("127.0.0.1", st.port) as raw:
        raw.hello()
        reply = raw.cmd(b"PUSHB " + json.dumps(jobs).encode() + b"\r\n")
        assert reply == (b"-ERR invalid JSON: json: cannot unmarshal string into Go struct field "
                         b"Job.retry of type int\r\n")
        assert st.call(lambda: st.server.store.queue_sizes().get("late", 0)) == 0
