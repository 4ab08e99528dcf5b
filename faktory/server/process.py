"""The embedded server in a child process (``python -m faktory server``), for tests,
benchmarks and ``faktory bench``.

A child process gives the server its own interpreter (its own GIL and core), and lets a
test crash it for real (SIGKILL)::

    with ServerProcess(storage="/tmp/f.db") as srv:   # listening when this returns
        ...                                           # srv.url, srv.port, srv.pid
        srv.kill()                                    # SIGKILL, by pid, and reaped

The child runs the same ``faktory`` package as this process.  Its stdout and stderr are
drained by a thread (the pipe never fills); the last lines are kept in ``output`` and put
in the error raised when the server exits during start-up.
"""
from __future__ import annotations

import collections
import logging
import os
import signal
import socket
import subprocess
import threading
import time

from faktory._spawn import faktory_argv
from faktory.errors import ServerStartError
from typing import Any, Mapping, Sequence
from urllib.parse import quote

__all__ = ["ServerProcess", "ServerStartError", "free_port"]

log = logging.getLogger("faktory.server")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now on ``host`` (bound and released by us)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``faktory server --bind HOST:PORT`` in a child process, on this process's ``faktory``
    package (not whatever ``faktory`` the current directory holds: ``faktory._spawn``).

    ``storage``: durable on this SQLite file (default: in memory); ``loop``: ``"uvloop"``
    or ``"asyncio"`` (default: the CLI's choice); ``password``: required by the server
    (and put in ``url``); ``args``: more ``faktory server`` options; ``env``: variables
    added to the inherited environment; ``port``: default a free one.

    ``start()`` (or ``with``) returns once the server accepts connections and greets with
    ``+HI``, within ``start_timeout`` seconds, or raises :class:`ServerStartError` with the
    child's output.  ``stop()`` (also on leaving the ``with`` block) sends SIGTERM and waits,
    SIGKILLs after ``stop_timeout``; ``kill()`` sends SIGKILL at once.  Both act on the
    child's pid only and reap it.
    """

    def __init__(self, storage: str | os.PathLike[str] | None = None, *, loop: str | None = None,
                 password: str | None = None, args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None, host: str = "127.0.0.1",
                 port: int | None = None, cwd: str | os.PathLike[str] | None = None,
                 start_timeout: float = 20.0, stop_timeout: float = 10.0,
                 keep_lines: int = 200) -> None:
        self.storage = None if storage is None else os.fspath(storage)
        self.loop = loop
        self.password = password
        self.args = tuple(args)
        self.env = dict(env or {})
        self.host = host
        self.port = port or free_port(host)
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------------ properties

    @property
    def tls(self) -> bool:
        """Whether the server was given a TLS certificate (``--tls-cert`` in ``args``)."""
        return any(a == "--tls-cert" or a.startswith("--tls-cert=") for a in self.args)

    @property
    def url(self) -> str:
        """``tcp://[:password@]host:port`` (``tcp+tls://`` with TLS)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"{'tcp+tls' if self.tls else 'tcp'}://{auth}{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The child's process id (once started)."""
        if self.proc is None:
            raise RuntimeError("the server process is not started")
        return self.proc.pid

    @property
    def output(self) -> str:
        """The last lines the child printed (stdout and stderr together)."""
        return "".join(self._lines)

    def argv(self) -> list[str]:
        """The child's command line."""
        argv = faktory_argv("server", "--bind", f"{self.host}:{self.port}")
        if self.storage is not None:
            argv += ["--storage", self.storage]
        if self.loop is not None:
            argv += ["--loop", self.loop]
        return argv + list(self.args)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "ServerProcess":
        """Start the child; return once it accepts connections (see the class docstring).

        A stopped or killed server may be started again (same port, same storage)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("already running")
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["FAKTORY_PASSWORD"] = self.password or ""  # not inherited: url must be right
        env.update(self.env)
        self._lines.clear()
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, cwd=self.cwd)
        self._reader = threading.Thread(target=self._drain, args=(self.proc,),
                                        name=f"faktory-server-{self.proc.pid}-output", daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        log.debug("server process %d listening on %s", self.proc.pid, self.url)
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                self._join_reader()
                raise ServerStartError(
                    f"faktory server exited with status {self.proc.returncode} during start-up "
                    f"({' '.join(self.argv()[1:])})", self.proc.returncode, self.output)
            if self._accepts():
                return
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"faktory server did not accept connections on {self.host}:{self.port} "
                    f"within {self.start_timeout:g} s", None, self.output)
            time.sleep(0.05)  # polling a child process, not a test's timing

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                if self.tls:  # the server waits for a TLS ClientHello: accepting is enough
                    return True
                sock.settimeout(2.0)
                return sock.recv(3) == b"+HI"
        except OSError:
            return False

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            self._lines.append(raw.decode("utf-8", "replace"))

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM (a clean stop), wait up to ``timeout`` (default ``stop_timeout``), then
        SIGKILL; reap the child and return its exit status (``None`` if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                log.warning("server process %d ignored SIGTERM; killing it", self.proc.pid)
        return self.kill()

    def kill(self) -> int | None:
        """SIGKILL the child (its pid only; a crash, for durability tests), reap it and
        return its exit status (``None`` if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._join_reader()
        return self.proc.returncode

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "not started" if self.proc is None else (
            f"pid {self.proc.pid}" if self.proc.poll() is None
            else f"exited {self.proc.returncode}")
        return f"<ServerProcess {self.url} {state}>"
