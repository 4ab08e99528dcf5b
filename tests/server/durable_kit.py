"""Helpers for the durability tests (test_srv_durable.py) and the server benchmark.

* :class:`ServerProcess`: ``python -m faktory server --bind 127.0.0.1:PORT [--storage F]``
  in a subprocess; ready when its output says it listens on PORT; stopped or SIGKILLed by
  its own pid only.
* :class:`Wire`: a blocking raw-socket Faktory connection that decodes replies
  (``+OK`` -> ``"OK"``, bulk -> ``bytes``, ``$-1`` -> ``None``, ``-ERR x`` -> ``WireError``).
* :func:`snapshot_files`: copy an SQLite database with its WAL, i.e. exactly what a
  SIGKILL at that instant would leave on disk.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    """A port nobody listens on right now (bound and released by us)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """The embedded server in a child process (``python -m faktory server``).

    ``start()`` returns once the child has printed a line naming its port (the server logs
    where it listens before it accepts) or raises with the child's output.  ``sigkill()``
    kills it with SIGKILL, by pid, and reaps it.  Use as a context manager so the child is
    always killed.
    """

    def __init__(self, storage: str | None = None, *, port: int | None = None,
                 extra: tuple[str, ...] = (), loop: str | None = None,
                 start_timeout: float = 20.0) -> None:
        self.storage = storage
        self.port = port or free_port()
        self.extra = extra
        self.loop = loop
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.output: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "faktory", "server", "--bind", f"127.0.0.1:{self.port}"]
        if self.storage is not None:
            argv += ["--storage", self.storage]
        return argv + list(self.extra)

    def start(self) -> "ServerProcess":
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env["PYTHONUNBUFFERED"] = "1"
        if self.loop:
            env["FAKTORY_LOOP"] = self.loop
        self._ready.clear()
        self.output = []
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, cwd=ROOT)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        if not self._ready.wait(self.start_timeout) or self.proc.poll() is not None:
            self.kill()
            raise RuntimeError(f"server did not start: {self.argv()}\n" + "".join(self.output))
        return self

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        marker = f":{self.port}"
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            self.output.append(line)
            if marker in line:
                self._ready.set()
        self._ready.set()  # EOF: the child is gone; start() sees poll() is not None

    def sigkill(self) -> None:
        """SIGKILL the child (its pid only) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self._reap()

    kill = sigkill

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM (a clean stop), wait for the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.sigkill()

    def _reap(self) -> None:
        if self.proc is not None:
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.sigkill()


class WireError(Exception):
    """An ``-ERR ...`` reply."""


class Wire:
    """A blocking, raw-socket Faktory connection (HELLO done in the constructor)."""

    def __init__(self, port: int, *, wid: str | None = None, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        hi = self.file.readline()
        assert hi.startswith(b"+HI "), hi
        hello: dict[str, Any] = {"v": 2}
        if wid:
            hello.update(wid=wid, hostname="test", pid=os.getpid(), labels=[])
        assert self.cmd("HELLO", hello) == "OK"

    def close(self) -> None:
        try:
            self.sock.sendall(b"END\r\n")
        except OSError:
            pass
        self.file.close()
        self.sock.close()

    def __enter__(self) -> "Wire":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @staticmethod
    def pack(verb: str, *args: Any) -> bytes:
        parts = [verb]
        for arg in args:
            parts.append(arg if isinstance(arg, str)
                         else json.dumps(arg, separators=(",", ":")))
        return (" ".join(parts) + "\r\n").encode()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> Any:
        line = self.file.readline()
        if not line:
            raise EOFError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise WireError(rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            body = self.file.read(n + 2)
            return body[:-2]
        raise AssertionError(f"unexpected reply {line!r}")

    def cmd(self, verb: str, *args: Any) -> Any:
        self.send(self.pack(verb, *args))
        return self.reply()

    # conveniences
    def push(self, job: dict) -> None:
        assert self.cmd("PUSH", job) == "OK"

    def fetch(self, *queues: str) -> dict | None:
        body = self.cmd("FETCH", *queues)
        return None if body is None else json.loads(body)

    def info(self) -> dict:
        return json.loads(self.cmd("INFO"))

    def mutate(self, cmd: str, target: str, **filter_: Any) -> None:
        op: dict[str, Any] = {"cmd": cmd, "target": target}
        if filter_:
            op["filter"] = filter_
        assert self.cmd("MUTATE", op) == "OK"


def job(jid: str, queue: str = "default", *, jobtype: str = "Durable", retry: int = 25,
        **extra: Any) -> dict:
    """A job payload (retry always explicit: see protocol.md's server quirk)."""
    payload = {"jid": jid, "jobtype": jobtype, "args": [jid], "queue": queue, "retry": retry}
    payload.update(extra)
    return payload


def rfc3339(epoch: float) -> str:
    """``at`` for a job: RFC 3339 in UTC with a zone."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + "Z"


def snapshot_files(db_path: str, dest: str) -> str:
    """Copy ``db_path`` and its ``-wal`` (not ``-shm``, which SQLite rebuilds) to ``dest``.

    Called from the server's loop thread between two event-loop callbacks, the copy is
    what a SIGKILL at that instant would leave behind."""
    shutil.copyfile(db_path, dest)
    if os.path.exists(db_path + "-wal"):
        shutil.copyfile(db_path + "-wal", dest + "-wal")
    return dest
