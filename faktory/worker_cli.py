"""``faktory worker``: run a worker (or a supervised cluster of worker processes).

Job functions are registered by the modules named with ``-r`` (imported before the worker
starts; each uses ``faktory.register``)::

    faktory worker -r myapp.jobs -q critical,3 -q default,1 -c 20

Exit codes (also those of the supervisor, which returns the highest of its children's):

====  ==========================================================================
0     stopped gracefully: every running job finished (signal, or ``terminate``
      from the server)
1     an unexpected error ended the worker
2     bad command line, or a ``-r`` module failed to import
3     could not connect to the server at start (unreachable, refused, bad password)
4     stopped after the shutdown timeout: some jobs were cancelled and FAILed
130   stopped at once (a second SIGINT): running jobs were cancelled and FAILed
====  ==========================================================================
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Sequence

from faktory import logsetup
from faktory._spawn import faktory_argv
from faktory.url import mask_url, parse_url, url_from_env

__all__ = ["main", "build_parser", "parse_queues", "EXIT_OK", "EXIT_ERROR", "EXIT_USAGE",
           "EXIT_CONNECT", "EXIT_TIMEOUT", "EXIT_KILLED"]

log = logging.getLogger("faktory.worker_cli")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_TIMEOUT = 4
EXIT_KILLED = 130


class _UsageError(Exception):
    pass


def parse_queues(values: Sequence[str] | None) -> list[str] | dict[str, float]:
    """``-q`` values -> a strict list, or a ``{name: weight}`` dict when weights are given.

    ``name`` alone (strict order, as given) or ``name,weight`` (weighted random order);
    mixing the two forms, a repeated name or a weight that is not a number > 0 is an error
    (``ValueError``).  No ``-q`` at all means ``["default"]``.
    """
    if not values:
        return ["default"]
    names: list[str] = []
    weights: dict[str, float] = {}
    for value in values:
        name, sep, weight_text = value.partition(",")
        name = name.strip()
        if not name:
            raise ValueError(f"-q {value!r}: empty queue name")
        if name in names:
            raise ValueError(f"-q {value!r}: queue {name!r} given twice")
        names.append(name)
        if sep:
            try:
                weight = float(weight_text)
            except ValueError:
                raise ValueError(f"-q {value!r}: weight must be a number") from None
            if not weight > 0 or weight != weight or weight == float("inf"):
                raise ValueError(f"-q {value!r}: weight must be > 0")
            weights[name] = int(weight) if weight.is_integer() else weight
    if weights and len(weights) != len(names):
        raise ValueError("-q: give a weight to every queue or to none "
                         "(weighted and strict queues cannot be mixed)")
    return weights if weights else names


def build_parser() -> argparse.ArgumentParser:
    """The ``faktory worker`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="faktory worker",
        description="Fetch jobs from Faktory and run the functions registered for them.",
        epilog="Exit codes: 0 stopped gracefully, 1 unexpected error, 2 usage or -r import error, "
               "3 cannot connect at start, 4 jobs cancelled at the shutdown timeout, "
               "130 stopped at once (second SIGINT). Signals: TERM/INT stop gracefully, "
               "TSTP quiets, a second INT stops at once.",
    )
    parser.add_argument("-r", "--require", action="append", default=[], metavar="MODULE",
                        help="module (or path/to/file.py) to import: it registers the job "
                             "functions; repeatable")
    parser.add_argument("-q", "--queue", action="append", default=None, metavar="NAME[,WEIGHT]",
                        help="queue to fetch from; repeatable. Without weights: strict order "
                             "as given; with weights (all of them): weighted random order. "
                             "Default: default")
    parser.add_argument("-c", "--concurrency", type=int, default=20, metavar="N",
                        help="jobs run at once (default 20)")
    parser.add_argument("-t", "--timeout", type=float, default=8.0, metavar="SECONDS",
                        help="shutdown grace for running jobs (default 8)")
    parser.add_argument("-l", "--label", action="append", default=[], metavar="LABEL",
                        help="label shown by the server for this worker; repeatable")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging (one line per job): --log-level debug")
    logsetup.add_arguments(parser)
    parser.add_argument("--metrics", type=int, default=None, metavar="PORT",
                        help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics (needs the "
                             "'metrics' extra); with --processes N, worker i serves on PORT+i")
    parser.add_argument("--metrics-bind", default="127.0.0.1", metavar="ADDR",
                        help="address of the --metrics endpoint (default %(default)s)")
    parser.add_argument("--django", action="store_true",
                        help="set Django up (DJANGO_SETTINGS_MODULE or --settings) and run its "
                             "django.tasks tasks (faktory.contrib.django; needs the 'django' extra)")
    parser.add_argument("--settings", default=None, metavar="MODULE",
                        help="Django settings module for --django (default: $DJANGO_SETTINGS_MODULE)")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="run N worker processes under a supervisor (default 1)")
    parser.add_argument("--url", default=None,
                        help="server URL, tcp://[:password@]host:port or tcp+tls://... "
                             "(default: FAKTORY_URL / FAKTORY_PROVIDER, then tcp://localhost:7419)")
    parser.add_argument("--password", default=None, help="server password")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=None,
                        help="event loop (default uvloop when installed; FAKTORY_LOOP)")
    parser.add_argument("--wid", default=None, help="worker id (default: random)")
    parser.add_argument("--beat-interval", type=float, default=15.0, metavar="SECONDS",
                        help="heartbeat interval (default 15)")
    parser.add_argument("--fetchers", type=int, default=None, metavar="N",
                        help="concurrent FETCH loops (default min(concurrency, 4))")
    parser.add_argument("--burst", action="store_true",
                        help="process jobs until the queues are empty, then exit (0); "
                             "about 2 s after the last job (the server's FETCH wait)")
    parser.add_argument("--supervisor-fd", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def _redact(url: str | None) -> str:
    return mask_url(url) if url else "(from the environment)"


def _setup_logging(args: argparse.Namespace) -> None:
    logsetup.configure("debug" if args.verbose else args.log_level, args.log_format)


def _require(modules: Sequence[str]) -> None:
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the project's own modules import
    for name in modules:
        try:
            if name.endswith(".py") or os.sep in name:
                path = os.path.abspath(name)
                mod_name = os.path.splitext(os.path.basename(path))[0]
                spec = importlib.util.spec_from_file_location(mod_name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[mod_name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(name)
        except Exception as exc:
            raise _UsageError(f"-r {name}: import failed: {type(exc).__name__}: {exc}") from exc


def _setup_django(settings: str | None) -> None:
    from faktory.errors import MissingExtraError

    try:
        from faktory.contrib.django import setup
        setup(settings)
    except MissingExtraError as exc:
        raise _UsageError(f"--django: {exc}") from exc
    except Exception as exc:
        raise _UsageError(f"--django: Django setup failed: {type(exc).__name__}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``faktory worker`` with ``argv`` (without the subcommand); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    _setup_logging(args)
    try:
        queues = parse_queues(args.queue)
        if args.concurrency < 1:
            raise ValueError("-c must be >= 1")
        if args.timeout < 0:
            raise ValueError("-t must be >= 0")
        if args.processes < 1:
            raise ValueError("--processes must be >= 1")
        if args.fetchers is not None and args.fetchers < 1:
            raise ValueError("--fetchers must be >= 1")
        if not args.beat_interval > 0:
            raise ValueError("--beat-interval must be > 0")
        if args.metrics is not None and not 0 <= args.metrics <= 65535:
            raise ValueError(f"--metrics must be a port number (0-65535), got {args.metrics}")
        parse_url(args.url if args.url is not None else url_from_env())  # a bad URL is a usage error
    except (ValueError, TypeError) as exc:
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"faktory worker: error: {exc}\n")
        return EXIT_USAGE
    if args.processes > 1:
        return _supervise(args)
    try:
        if args.django:
            _setup_django(args.settings)
        _require(args.require)
    except _UsageError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    return _run_worker(args, queues)


def _run_worker(args: argparse.Namespace, queues: Any) -> int:
    from faktory import __version__, app, protocol
    from faktory.cli import loop_choice, run_loop
    from faktory.errors import FaktoryConnectionError, ServerError

    options: dict[str, Any] = {"queues": queues}
    if args.django:
        from faktory.contrib.django import worker_options
        options = worker_options(app.default.registry, queues if args.queue else None)
    worker = app.default.create_worker(
        wid=args.wid, concurrency=args.concurrency, timeout=args.timeout,
        labels=args.label, url=args.url, password=args.password,
        beat_interval=args.beat_interval, fetchers=args.fetchers, burst=args.burst, **options)
    export = None
    if args.metrics is not None:
        from faktory.errors import MissingExtraError
        from faktory.contrib.metrics import install
        try:
            export = install(worker, args.metrics, args.metrics_bind)
        except (MissingExtraError, OSError) as exc:
            log.error("--metrics: %s", exc)
            return EXIT_USAGE
        log.info("metrics on %s", export.server.url)
    loop_name = loop_choice(args.loop)
    jobtypes = ", ".join(sorted(worker.registry)) or "(none: every job will FAIL)"
    log.info("faktory worker %s starting: wid %s, pid %d, host %s", __version__, worker.wid,
             os.getpid(), worker.hostname)
    log.info("server %s; concurrency %d, timeout %g s, queues %s%s%s", _redact(args.url),
             worker.concurrency, worker.timeout,
             worker._next_fetch.describe(),  # type: ignore[attr-defined]
             f", labels {', '.join(worker.labels)}" if worker.labels else "",
             "; burst: exits when the queues are empty" if worker.burst else "")
    log.info("jobtypes: %s; middleware: %d; loop %s, codec %s", jobtypes, len(worker.middleware),
             loop_name, protocol.IMPLEMENTATION)

    async def run() -> None:
        if args.supervisor_fd is not None:
            _watch_supervisor(worker, args.supervisor_fd)
        poller = asyncio.ensure_future(export.poll()) if export is not None else None
        try:
            await worker.work()
        finally:
            if poller is not None:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)

    try:
        run_loop(run, loop=loop_name)
    except (FaktoryConnectionError, ServerError, OSError) as exc:
        if worker.state in ("new", "stopped") and worker.processed == worker.failed == 0:
            log.error("cannot connect to Faktory: %s", exc)
            return EXIT_CONNECT
        log.exception("worker failed")
        return EXIT_ERROR
    except KeyboardInterrupt:  # SIGINT before the handlers were installed
        return EXIT_KILLED
    except Exception:
        log.exception("worker failed")
        return EXIT_ERROR
    finally:
        if export is not None:
            export.close()
    if worker.killed:
        code = EXIT_KILLED
    elif worker.abandoned:
        code = EXIT_TIMEOUT
    else:
        code = EXIT_OK
    stuck = [t for t in threading.enumerate()
             if t.name.startswith("faktory-") and t.is_alive() and t is not threading.current_thread()]
    if stuck and worker.abandoned:
        # Job functions that ignored the cancellation are still running in threads; the
        # interpreter would wait for them at exit.  Their jobs were FAILed: leave now.
        log.warning("%d job threads still running at exit; exiting without waiting for them",
                    len(stuck))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _watch_supervisor(worker: Any, fd: int) -> None:
    """Stop gracefully when the supervisor's end of the pipe closes (it died)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            log.warning("the supervisor is gone: stopping")
            worker.stop()

    loop.add_reader(fd, readable)


# ---------------------------------------------------------------------------------------
# supervisor (--processes N)


def _child_argv(args: argparse.Namespace, index: int, fd: int) -> list[str]:
    argv = faktory_argv("worker")  # this process's faktory, not the current directory's
    for module in args.require:
        argv += ["-r", module]
    for queue in args.queue or ():
        argv += ["-q", queue]
    argv += ["-c", str(args.concurrency), "-t", repr(args.timeout),
             "--beat-interval", repr(args.beat_interval)]
    for label in args.label:
        argv += ["-l", label]
    if args.verbose:
        argv.append("-v")
    argv += ["--log-level", args.log_level, "--log-format", args.log_format]
    if args.metrics is not None:
        argv += ["--metrics", str(args.metrics + index if args.metrics else 0),
                 "--metrics-bind", args.metrics_bind]
    if args.django:
        argv.append("--django")
    if args.settings:
        argv += ["--settings", args.settings]
    if args.url:
        argv += ["--url", args.url]
    if args.password:
        argv += ["--password", args.password]
    if args.loop:
        argv += ["--loop", args.loop]
    if args.wid:
        argv += ["--wid", f"{args.wid}-{index}"]
    if args.fetchers:
        argv += ["--fetchers", str(args.fetchers)]
    if args.burst:
        argv.append("--burst")
    argv += ["--supervisor-fd", str(fd)]
    return argv


def _child_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class _Supervisor:
    """Runs N worker processes; restarts one that dies; forwards TERM/INT/TSTP."""

    #: Seconds after the timeout before children still alive are killed.
    kill_margin = 15.0

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.codes: dict[int, int] = {}
        self.stopping = False
        self.fatal: int | None = None
        self.sigint_count = 0
        self._stop_at: float | None = None
        self._read_fd, self._write_fd = os.pipe()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._starts: dict[int, list[float]] = {}
        self._restart_at: dict[int, float] = {}

    def spawn(self, index: int) -> None:
        argv = _child_argv(self.args, index, self._read_fd)
        # A session of their own: a terminal's ^C / ^Z reach only the supervisor, which
        # forwards them once (a child must not see a single ^C as two SIGINTs).
        proc = subprocess.Popen(argv, pass_fds=(self._read_fd,), start_new_session=True)
        self.procs[index] = proc
        self._starts.setdefault(index, []).append(time.monotonic())
        log.info("supervisor: worker %d started, pid %d", index, proc.pid)

    def forward(self, sig: int) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:  # pragma: no cover - just exited
                    pass

    def on_signal(self, sig: int, _frame: Any) -> None:
        # Runs in the main thread between bytecodes: only flags, forwarding and a wakeup.
        if sig == signal.SIGINT:
            self.sigint_count += 1
        if sig in (signal.SIGTERM, signal.SIGINT) and not self.stopping:
            self.stopping = True
            self._stop_at = time.monotonic()
        self.forward(sig)
        try:
            os.write(self._wake_w, b"x")
        except OSError:  # pragma: no cover
            pass

    def on_child(self, _sig: int, _frame: Any) -> None:
        try:
            os.write(self._wake_w, b"c")  # a child exited: reap it now
        except OSError:  # pragma: no cover
            pass

    def _restart_delay(self, index: int) -> float:
        now = time.monotonic()
        recent = [t for t in self._starts.get(index, []) if now - t < 60]
        self._starts[index] = recent
        return float(min(30.0, 0.5 * 2 ** max(0, len(recent) - 1)))

    def run(self) -> int:
        sigs = [signal.SIGTERM, signal.SIGINT] + ([signal.SIGTSTP] if hasattr(signal, "SIGTSTP") else [])
        previous = {sig: signal.signal(sig, self.on_signal) for sig in sigs}
        if hasattr(signal, "SIGCHLD"):
            previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, self.on_child)
        try:
            for index in range(self.args.processes):
                self.spawn(index)
            self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for fd in (self._read_fd, self._write_fd, self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:  # pragma: no cover
                    pass
        if self.fatal is not None:
            return self.fatal
        return max(self.codes.values(), default=EXIT_OK)

    def _loop(self) -> None:
        import select

        while self.procs or self._restart_at:
            now = time.monotonic()
            for index, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                del self.procs[index]
                code = _child_code(code)
                self.codes[index] = code
                if self.stopping:
                    log.info("supervisor: worker %d (pid %d) exited with %d", index, proc.pid, code)
                elif code == EXIT_USAGE:
                    log.error("supervisor: worker %d exited with %d (usage error): stopping all",
                              index, code)
                    self.fatal = EXIT_USAGE
                    self.stopping = True
                    self._stop_at = now
                    self.forward(signal.SIGTERM)
                elif code == EXIT_OK:
                    log.info("supervisor: worker %d (pid %d) stopped; not restarted", index, proc.pid)
                else:
                    delay = self._restart_delay(index)
                    log.warning("supervisor: worker %d (pid %d) died with %d; restarting in %.1f s",
                                index, proc.pid, code, delay)
                    self._restart_at[index] = now + delay
            for index, when in list(self._restart_at.items()):
                if self.stopping:
                    del self._restart_at[index]
                elif when <= now:
                    del self._restart_at[index]
                    self.spawn(index)
            if self.stopping and self._stop_at is not None and self.procs:
                if now - self._stop_at > self.args.timeout + self.kill_margin:
                    log.error("supervisor: workers still alive %.0f s after stop: killing them",
                              now - self._stop_at)
                    self.forward(signal.SIGKILL)
                    self._stop_at = None
            if not self.procs and not self._restart_at:
                break
            # Wake on a signal or a child's exit (the wakeup pipe), at a restart time, or
            # after at most a second (SIGCHLD may be missing on this platform).
            timeout = 1.0
            if self._restart_at:
                timeout = max(0.0, min(timeout, min(self._restart_at.values()) - now))
            try:
                ready, _, _ = select.select([self._wake_r], [], [], timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                ready = []
            if ready:
                try:
                    os.read(self._wake_r, 1024)
                except OSError:  # pragma: no cover
                    pass


def _supervise(args: argparse.Namespace) -> int:
    log.info("faktory worker supervisor: pid %d, %d worker processes", os.getpid(), args.processes)
    code = _Supervisor(args).run()
    log.info("faktory worker supervisor: exiting with %d", code)
    return code
