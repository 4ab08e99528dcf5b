"""Logging and the command line: `faktory --version`, --log-level/--log-format on every
command, a failed job logged once at WARNING with its traceback, a debug line per job."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import faktory
from faktory import Client, Job, logsetup
from faktory.cli import main as cli_main
from faktory.testing import flush_url
from faktory.worker import Worker

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [["server"], ["worker"], ["bench"], ["server", "workers"], ["server", "quiet", "WID"]]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    env.pop("FAKTORY_LOG_LEVEL", None)
    env.pop("FAKTORY_LOG_FORMAT", None)
    return env


def test_version(capsys):
    assert cli_main(["--version"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"faktory-turbo {faktory.__version__} (codec ")
    proc = subprocess.run([sys.executable, "-m", "faktory", "--version"], capture_output=True, text=True,
                          env=_env(), timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith(f"faktory-turbo {faktory.__version__}")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_takes_log_level_and_log_format(command):
    proc = subprocess.run([sys.executable, "-m", "faktory", *command, "--help"], capture_output=True,
                          text=True, env=_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--log-level {debug,info,warning,error}" in proc.stdout
    assert "--log-format {text,json}" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "faktory", *command, "--log-format", "xml"],
                         capture_output=True, text=True, env=_env(), timeout=60)
    assert bad.returncode == 2 and "invalid choice: 'xml'" in bad.stderr


def test_json_formatter_writes_one_object_per_line_with_the_traceback():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logsetup.JsonFormatter())
    logger = logging.getLogger("faktory.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("plain %s", "message")
        try:
            raise ValueError("bad")
        except ValueError:
            logger.exception("with a traceback")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "warning" and first["message"] == "plain message"
    assert first["logger"] == "faktory.test-json" and first["pid"] == os.getpid()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", first["time"])
    assert second["level"] == "error" and second["exc_info"].startswith("Traceback")
    assert "ValueError: bad" in second["exc_info"]


def test_log_level_and_format_default_from_the_environment(monkeypatch):
    import argparse
    monkeypatch.setenv("FAKTORY_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("FAKTORY_LOG_FORMAT", "json")
    parser = argparse.ArgumentParser()
    logsetup.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.log_level, args.log_format) == ("warning", "json")
    assert parser.parse_args(["--log-level", "DEBUG"]).log_level == "debug"


def test_server_logs_json_lines():
    proc = subprocess.Popen([sys.executable, "-m", "faktory", "server", "--bind", "127.0.0.1:0",
                             "--log-format", "json", "--loop", "asyncio"],
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:
        killer = threading.Timer(60, proc.kill)
        killer.start()
        line = proc.stderr.readline()
        killer.cancel()
        record = json.loads(line)
        assert record["level"] == "info" and record["logger"] == "faktory.server"
        url = re.search(r"listening on (tcp://127\.0\.0\.1:\d+)", record["message"]).group(1)
        flush_url(url)  # answered: the loop runs, so the signal handlers are in place
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert all(json.loads(line)["pid"] == proc.pid for line in rest.splitlines())


async def test_failed_job_logged_once_at_warning_with_traceback_and_a_debug_line_per_job(faktory_url, caplog):
    caplog.set_level(logging.DEBUG, logger="faktory")
    done = asyncio.Event()
    worker = Worker(url=faktory_url, queues=["logs"], concurrency=1)
    seen = 0

    def finished():
        nonlocal seen
        seen += 1
        if seen == 2:
            done.set()

    @worker.register("explode")
    async def explode(n):
        finished()
        raise ValueError(f"bad input {n}")

    @worker.register("fine")
    async def fine():
        finished()

    async with Client(faktory_url) as client:
        bad = await client.push(Job("explode", 4, queue="logs", retry=0))
        good = await client.push(Job("fine", queue="logs"))
    task = asyncio.ensure_future(worker.work(handle_signals=False))
    try:
        await asyncio.wait_for(done.wait(), 20)
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 20)
    records = [r for r in caplog.records if r.name == "faktory.worker"]
    warnings = [r for r in records if r.levelno == logging.WARNING and bad in r.getMessage()]
    assert len(warnings) == 1
    (warning,) = warnings
    assert warning.getMessage() == f"job {bad} (explode) failed: ValueError: bad input 4"
    assert warning.exc_info and warning.exc_info[1].args == ("bad input 4",)
    text = logging.Formatter().formatException(warning.exc_info)
    assert "in explode" in text and 'raise ValueError(f"bad input {n}")' in text
    debug = [r.getMessage() for r in records if r.levelno == logging.DEBUG and r.getMessage().startswith("job ")]
    assert any(re.fullmatch(rf"job {good} fine \(logs\) ok in \d+\.\d ms", m) for m in debug), debug
    assert any(re.fullmatch(rf"job {bad} explode \(logs\) failed: ValueError\('bad input 4'\) in \d+\.\d ms", m)
               for m in debug), debug
    assert not [r for r in records if r.levelno == logging.WARNING and good in r.getMessage()]


def test_worker_cli_json_log_has_the_failure_with_its_traceback(faktory_url, tmp_path):
    (tmp_path / "jobs.py").write_text("import faktory\n\n@faktory.register\ndef bad():\n"
                                      "    raise KeyError('nope')\n")

    async def push():
        async with Client(faktory_url) as client:
            return await client.push(Job("bad", retry=0))
    jid = asyncio.run(push())
    proc = subprocess.Popen(
        [sys.executable, "-m", "faktory", "worker", "-r", str(tmp_path / "jobs.py"), "--url", faktory_url,
         "--log-format", "json", "--log-level", "warning", "--loop", "asyncio", "-c", "1"],
        stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    killer = threading.Timer(60, proc.kill)
    killer.start()
    try:
        record = json.loads(proc.stderr.readline())  # warning level: the failure is the first line
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert record["level"] == "warning" and record["message"] == f"job {jid} (bad) failed: KeyError: 'nope'"
    assert record["exc_info"].startswith("Traceback") and "raise KeyError('nope')" in record["exc_info"]
    assert proc.returncode == 0
    assert rest == ""  # nothing else at warning level (no INFO lines)
