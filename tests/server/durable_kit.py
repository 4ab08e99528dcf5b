"""Helpers for the durability tests (test_srv_durable.py).

(The server in a child process, SIGKILLed by its pid, is :class:`faktory.server.ServerProcess`.)

* :class:`Wire`: a blocking raw-socket Faktory connection that decodes replies
  (``+OK`` -> ``"OK"``, bulk -> ``bytes``, ``$-1`` -> ``None``, ``-ERR x`` -> ``WireError``).
* :func:`snapshot_files`: copy an SQLite database with its WAL, i.e. exactly what a
  SIGKILL at that instant would leave on disk.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
from typing import Any


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
