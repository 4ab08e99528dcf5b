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
from faktory.worker_cli import build_parser, parse_queues


# -- parsing ----------------------------------------------------------------------------


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
    assert argv[:4] == [sys.executable, "-m", "faktory", "worker"]
    assert "--processes" not in argv
    joined = " ".join(argv[4:])
    for part in ("-r m", "-q a,2", "-q b,1", "-c 4", "-l x", "--url tcp://h:1", "--wid w-1",
                 "--supervisor-fd 9"):
        assert part in joined
