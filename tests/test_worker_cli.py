"""``faktory worker``: argument parsing in-process; running workers as subprocesses
(single process, and the ``--processes 2`` supervisor) against the embedded server."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from faktory import worker_cli
from faktory._spawn import faktory_argv
from faktory.worker_cli import build_parser, parse_queues


# -- parsing ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_logging():
    """main() configures logging as a CLI does; give the process its settings back."""
    import logging

    logger = logging.getLogger("faktory")
    level = logger.level
    yield
    logger.setLevel(level)


def test_parse_queues_strict_weighted_and_default():
    assert parse_queues(None) == ["default"]
    assert parse_queues(["critical", "default"]) == ["critical", "default"]
    assert parse_queues(["a,3", "b,1"]) == {"a": 3, "b": 1}
    assert parse_queues(["a,0.5", "b,2"]) == {"a": 0.5, "b": 2}


@pytest.mark.parametrize("values", [["a,1", "b"], ["a", "b,2"], ["a,0", "b,1"], ["a,x"],
                                    ["a,-1"], ["a", "a"], [",3"], ["a,nan"]])
def test_parse_queues_rejects(values):
    with pytest.raises(ValueError):
        parse_queues(values)


def test_parser_options():
    args = build_parser().parse_args(
        ["-r", "m1", "-r", "m2", "-q", "a,2", "-q", "b,1", "-c", "5", "-t", "3.5", "-l", "x",
         "-l", "y", "-v", "--processes", "2", "--url", "tcp://h:1", "--password", "p",
         "--loop", "asyncio"])
    assert args.require == ["m1", "m2"]
    assert args.queue == ["a,2", "b,1"]
    assert (args.concurrency, args.timeout, args.label, args.verbose, args.processes) == (
        5, 3.5, ["x", "y"], True, 2)
    assert (args.url, args.password, args.loop) == ("tcp://h:1", "p", "asyncio")


@pytest.mark.parametrize("argv", [["-q", "a,1", "-q", "b"], ["-c", "0"], ["--processes", "0"],
                                  ["-t", "-1"], ["--bogus"], ["-c", "x"]])
def test_usage_errors_exit_2(argv, capsys):
    assert worker_cli.main(argv) == worker_cli.EXIT_USAGE
    assert "error" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert worker_cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--processes" in out and "Exit codes" in out


def test_failed_require_exits_2():
    assert worker_cli.main(["-r", "no_such_module_for_faktory_tests"]) == worker_cli.EXIT_USAGE


def test_redact_hides_the_password():
    assert worker_cli._redact("tcp://:secret@host:7419") == "tcp://:***@host:7419"
    assert worker_cli._redact("tcp://host:7419") == "tcp://host:7419"


def test_child_argv_carries_the_options_but_not_processes():
    args = build_parser().parse_args(["-r", "m", "-q", "a,2", "-q", "b,1", "-c", "4", "-l", "x",
                                      "--processes", "3", "--url", "tcp://h:1", "--wid", "w"])
    argv = worker_cli._child_argv(args, 1, 9)
    assert argv[:5] == [*faktory_argv(), "worker"]
    assert "--processes" not in argv
    joined = " ".join(argv[5:])
    for part in ("-r m", "-q a,2", "-q b,1", "-c 4", "-l x", "--url tcp://h:1", "--wid w-1",
                 "--supervisor-fd 9"):
        assert part in joined


# -- subprocess workers against the embedded server ------------------------------------------

import asyncio  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import faktory  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(faktory.__file__)))

JOBS_MODULE = textwrap.dedent('''
    import asyncio, os
    import faktory

    def say(text):  # one write(2) per line: lines from threads and processes never mix
        os.write(1, f"{text} pid={os.getpid()}\\n".encode())

    @faktory.register
    def record(tag):
        say(f"RAN {tag}")

    @faktory.register
    async def hang(tag):
        say(f"HANG {tag}")
        await asyncio.Event().wait()
''')


class Proc:
    """A subprocess whose merged stdout/stderr lines are read by a thread into a queue,
    so that a test can wait for a line (never sleep)."""

    def __init__(self, argv, env=None):
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      env=env, text=True, bufsize=1)
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.seen: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> re.Match:
        """The first (not yet consumed) line matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.seen))
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"process ended before {pattern!r}; output:\n" + "\n".join(self.seen))
            self.seen.append(line)
            match = regex.search(line)
            if match:
                return match

    def signal(self, sig):
        self.popen.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        code = self.popen.wait(timeout)
        self._thread.join(5)
        while True:  # keep the rest of the output for failure messages
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return code

    def stop(self):
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)


@pytest.fixture
def server():
    if os.environ.get("FAKTORY_TEST_URL"):
        pytest.skip("needs the embedded server (its operator API)")
    from faktory.server import ServerThread

    with ServerThread(port=0, fetch_timeout=0.25) as st:
        yield st


@pytest.fixture
def jobs_module(tmp_path):
    path = tmp_path / "cli_jobs.py"
    path.write_text(JOBS_MODULE)
    return str(path)


@pytest.fixture
def spawn():
    procs = []
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FAKTORY_URL", None)

    def start(*args):
        proc = Proc([sys.executable, "-m", "faktory", "worker", *args], env=env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.stop()


def push(url, *jobs, **options):
    """Push ``(jobtype, arg)`` jobs from this (synchronous) test; return their jids."""
    from faktory.client import Client

    async def run():
        async with Client(url) as client:
            return [await client.job(jobtype, arg, **options).push() for jobtype, arg in jobs]

    return asyncio.run(run())


def test_cli_runs_jobs_logs_and_exits_0_on_sigterm(server, jobs_module, spawn):
    proc = spawn("-r", jobs_module, "--url", server.url, "-c", "2", "-v", "-l", "blue",
                 "--beat-interval", "0.2", "--loop", "asyncio")
    proc.wait_for(r"faktory worker \S+ starting: wid \w+")
    proc.wait_for(r"jobtypes: hang, record")
    proc.wait_for(r"worker \w+ running")
    [jid] = push(server.url, ("record", "one"))
    proc.wait_for(r"RAN one")
    proc.wait_for(rf"job {jid} record \(default\) ok in")  # the debug line per job
    workers = server.call(server.server.workers)
    assert any("blue" in w["labels"] for w in workers)
    proc.signal(signal.SIGTERM)
    assert proc.wait() == worker_cli.EXIT_OK


def test_cli_sigtstp_quiets_and_sigint_stops(server, jobs_module, spawn):
    proc = spawn("-r", jobs_module, "--url", server.url, "--beat-interval", "0.2")
    proc.wait_for(r"worker \w+ running")
    proc.signal(signal.SIGTSTP)
    proc.wait_for(r"quiet")
    proc.signal(signal.SIGINT)
    assert proc.wait() == worker_cli.EXIT_OK


def test_cli_shutdown_timeout_exits_4_and_second_sigint_130(server, jobs_module, spawn):
    slow = spawn("-r", jobs_module, "--url", server.url, "-t", "0.3", "-q", "one")
    fast = spawn("-r", jobs_module, "--url", server.url, "-t", "60", "-q", "two")
    slow.wait_for(r"worker \w+ running")
    fast.wait_for(r"worker \w+ running")
    push(server.url, ("hang", "a"), queue="one")
    push(server.url, ("hang", "b"), queue="two")
    slow.wait_for(r"HANG a")
    fast.wait_for(r"HANG b")
    slow.signal(signal.SIGTERM)
    fast.signal(signal.SIGINT)
    fast.wait_for(r"SIGINT again stops at once")
    fast.signal(signal.SIGINT)
    assert slow.wait() == worker_cli.EXIT_TIMEOUT
    assert fast.wait() == worker_cli.EXIT_KILLED


def test_cli_cannot_connect_exits_3(jobs_module, spawn):
    from faktory.server import ServerThread

    with ServerThread(port=0, password="right") as st:
        proc = spawn("-r", jobs_module, "--url", st.url, "--password", "wrong")
        assert proc.wait() == worker_cli.EXIT_CONNECT
    assert any("cannot connect" in line for line in proc.seen)


def test_cli_processes_2_supervises_restarts_and_forwards_signals(server, jobs_module, spawn):
    sup = spawn("-r", jobs_module, "--url", server.url, "--processes", "2", "-c", "2",
                "--beat-interval", "0.2")
    pids = {}
    for _ in range(2):
        match = sup.wait_for(r"supervisor: worker (\d) started, pid (\d+)")
        pids[int(match.group(1))] = int(match.group(2))
    wids = {sup.wait_for(r"worker (\w+) running").group(1) for _ in range(2)}
    assert len(wids) == 2  # each process has its own wid
    registered = {w["wid"]: w["pid"] for w in server.call(server.server.workers)}
    assert {registered[wid] for wid in wids} == set(pids.values())

    # both children take jobs
    push(server.url, *[("record", f"x{i}") for i in range(6)])
    ran_in = {int(sup.wait_for(r"RAN x\d pid=(\d+)").group(1)) for _ in range(6)}
    assert ran_in <= set(pids.values())

    # a child that dies is restarted
    os.kill(pids[0], signal.SIGKILL)
    sup.wait_for(r"supervisor: worker 0 \(pid \d+\) died with 137; restarting")
    new_pid = int(sup.wait_for(r"supervisor: worker 0 started, pid (\d+)").group(1))
    assert new_pid != pids[0]
    sup.wait_for(r"worker \w+ running")
    pids[0] = new_pid

    # TSTP is forwarded: both children go quiet; TERM stops everything
    sup.signal(signal.SIGTSTP)
    sup.wait_for(r"SIGTSTP: quiet")
    sup.wait_for(r"SIGTSTP: quiet")
    sup.signal(signal.SIGTERM)
    assert sup.wait() == worker_cli.EXIT_OK
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
