"""``faktory server``: run the embedded server, or reach a running one as an operator.

    faktory server [--bind 127.0.0.1:7419] [--password PW] [--storage PATH]
                   [--tls-cert CERT --tls-key KEY] [--max-connections N]
                   [--web 127.0.0.1:7420] [--loop uvloop|asyncio]
    faktory server workers   [--web URL] [--json]
    faktory server quiet WID [--web URL]
    faktory server terminate WID [--web URL]

``--web`` serves the web UI (dashboard, queues, busy, retries, scheduled, dead; see
:mod:`faktory.server.web`) and the operator endpoints; a bare ``:PORT`` binds the loopback
interface.  The operator subcommands talk to those endpoints, like the real server's web
UI: ``GET /workers`` and ``POST /busy`` (with ``--password``/``$FAKTORY_PASSWORD`` as HTTP
basic authentication when the server has a password).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import logging
import os
import signal
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Sequence

from faktory import logsetup

__all__ = ["main"]

log = logging.getLogger("faktory.server")

OPERATOR_COMMANDS = ("workers", "quiet", "terminate")
DEFAULT_WEB = "127.0.0.1:7420"


def _server_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="faktory server",
        description="Run the embedded Faktory-protocol server. Operator commands: "
                    "'faktory server workers|quiet WID|terminate WID' (see --help of each).")
    p.add_argument("--bind", default="127.0.0.1:7419", metavar="HOST:PORT",
                   help="address to listen on (default %(default)s; port 0: a free port)")
    p.add_argument("--password", default=None,
                   help="require this password (default: $FAKTORY_PASSWORD, else none)")
    p.add_argument("--storage", default=None, metavar="PATH",
                   help="durable storage in this SQLite file (default: in memory)")
    p.add_argument("--tls-cert", default=None, metavar="CERT", help="PEM certificate (enables TLS)")
    p.add_argument("--tls-key", default=None, metavar="KEY", help="PEM private key for --tls-cert")
    p.add_argument("--max-connections", type=int, default=2000, metavar="N",
                   help="connections accepted at once (default %(default)s)")
    p.add_argument("--web", default=None, metavar="HOST:PORT",
                   help="serve the web UI and the operator endpoints here (off by default; "
                        "':7420' is the loopback interface)")
    p.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS",
                   help="close a connection that sends no whole command for this long after its "
                        "HELLO (default: never, as the real Faktory; one waiting in FETCH is not idle)")
    p.add_argument("--scan-intervals", default="fast", metavar="SPEC",
                   help="periods of the periodic tasks: 'fast' (default: every task each second), "
                        "'faktory' (the real server's: scheduled/retries 5 s, dead 60 s, "
                        "reservations/workers 15 s), SECONDS, or NAME=SECONDS,... with NAME in "
                        "scheduled, retries, dead, reservations, workers, worker_ttl")
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default=None,
                   help="event loop (default: uvloop when installed; $FAKTORY_LOOP)")
    logsetup.add_arguments(p)
    return p


def _operator_parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"faktory server {command}")
    if command != "workers":
        p.add_argument("wid", help="the worker id (or 'all')")
    else:
        p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.add_argument("--web", default=os.environ.get("FAKTORY_WEB_URL", DEFAULT_WEB), metavar="URL",
                   help="the server's web endpoint (default %(default)s; $FAKTORY_WEB_URL)")
    p.add_argument("--password", default=None,
                   help="the server's password, when it has one (default: $FAKTORY_PASSWORD)")
    logsetup.add_arguments(p)
    return p


def _split_bind(bind: str) -> tuple[str, int]:
    host, sep, port = bind.rpartition(":")
    if not sep:
        return bind, 7419
    number = int(port)  # ValueError: not a number
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is outside 0..65535")
    return host.strip("[]") or "127.0.0.1", number


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``faktory server``; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in OPERATOR_COMMANDS:
        operator_opts = _operator_parser(args[0]).parse_args(args[1:])
        logsetup.configure(operator_opts.log_level, operator_opts.log_format)
        return _operator(args[0], operator_opts)
    opts = _server_parser().parse_args(args)
    logsetup.configure(opts.log_level, opts.log_format)
    if opts.storage is not None and importlib.util.find_spec("faktory.server.sqlite") is None:
        sys.stderr.write("faktory server: --storage needs durable storage (faktory/server/sqlite.py), "
                         "which this installation does not have; run without --storage for an "
                         "in-memory server\n")
        return 2
    if bool(opts.tls_cert) != bool(opts.tls_key):
        sys.stderr.write("faktory server: --tls-cert and --tls-key go together\n")
        return 2
    from faktory.server.server import ScanIntervals
    try:
        opts.intervals = ScanIntervals.parse(opts.scan_intervals)
    except ValueError as exc:
        sys.stderr.write(f"faktory server: --scan-intervals: {exc}\n")
        return 2
    try:
        host, port = _split_bind(opts.bind)
    except ValueError as exc:
        sys.stderr.write(f"faktory server: bad --bind {opts.bind!r} (expected HOST:PORT, the port 0..65535: {exc})\n")
        return 2
    if opts.web is not None:
        from faktory.server.web import parse_bind

        try:
            _, web_port = parse_bind(opts.web, 7420)
            if not 0 <= web_port <= 65535:
                raise ValueError(f"port {web_port} is outside 0..65535")
        except ValueError as exc:
            sys.stderr.write(f"faktory server: bad --web {opts.web!r} (expected HOST:PORT or PORT: {exc})\n")
            return 2
    for name in ("tls_cert", "tls_key"):
        path = getattr(opts, name)
        if path is not None and not os.path.isfile(path):
            sys.stderr.write(f"faktory server: --{name.replace('_', '-')} {path!r}: no such file\n")
            return 2
    if opts.tls_cert:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(opts.tls_cert, opts.tls_key)
        except (ssl.SSLError, OSError) as exc:
            sys.stderr.write(f"faktory server: cannot use --tls-cert/--tls-key: {exc}\n")
            return 2
    from faktory.cli import run_loop

    try:
        return int(run_loop(lambda: _serve(opts, host, port), loop=opts.loop) or 0)
    except KeyboardInterrupt:  # pragma: no cover - signal handlers normally catch it
        return 0


async def _serve(opts: argparse.Namespace, host: str, port: int) -> int:

    ctx = None
    if opts.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(opts.tls_cert, opts.tls_key)
    password = opts.password if opts.password is not None else os.environ.get("FAKTORY_PASSWORD")
    # The handlers go in before the server starts and says "listening": a SIGTERM sent
    # the moment that line appears (a supervisor, a test) is then a clean stop, never the
    # default action that kills the process without committing its storage.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
    try:
        return await _run_until_stopped(opts, host, port, ctx, password, stop)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass


async def _run_until_stopped(opts: argparse.Namespace, host: str, port: int, ctx: ssl.SSLContext | None,
                             password: str | None, stop: asyncio.Event) -> int:
    from faktory.server import FaktoryServer

    try:
        server = FaktoryServer(host, port, password=password or None, storage=opts.storage,
                               ssl=ctx, max_connections=opts.max_connections, web=opts.web,
                               intervals=opts.intervals, idle_timeout=opts.idle_timeout)
        await server.start()
    except (OSError, RuntimeError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    scheme = "tcp+tls" if ctx else "tcp"
    where = f"storage {opts.storage}" if opts.storage else "in memory"
    web = ""
    if opts.web:
        web_host = opts.web.rpartition(":")[0].strip("[]") or "127.0.0.1"
        web = f", web UI on http://{web_host}:{server.web_port}/"
    log.info("faktory server %s listening on %s://%s:%d (pid %d, %s%s%s)", _version(), scheme,
             host, server.port, os.getpid(), where, ", password required" if password else "",
             web)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await server.stop()
    return 0


def _version() -> str:
    from faktory.server.server import VERSION
    return VERSION


def _web_url(value: str, path: str) -> str:
    if "://" not in value:
        value = "http://" + value
    return value.rstrip("/") + path


def _operator(command: str, opts: argparse.Namespace) -> int:
    password = opts.password if opts.password is not None else os.environ.get("FAKTORY_PASSWORD")
    headers = {}
    if password:
        headers["Authorization"] = "Basic " + base64.b64encode(f"faktory:{password}".encode()).decode()
    try:
        if command == "workers":
            req = urllib.request.Request(_web_url(opts.web, "/workers"), headers=headers)
            with urllib.request.urlopen(req, timeout=10) as resp:
                workers = json.loads(resp.read())
            if opts.json:
                sys.stdout.write(json.dumps(workers, indent=2) + "\n")
                return 0
            now = time.time()
            rows = [("WID", "STATE", "HOSTNAME", "PID", "CONNS", "LAST BEAT", "LABELS")]
            for w in workers:
                rows.append((w["wid"], w["state"], w["hostname"], str(w["pid"]),
                             str(w["connections"]), f"{max(0.0, now - w['last_beat']):.0f}s ago",
                             ",".join(w["labels"])))
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                sys.stdout.write("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() + "\n")
            return 0
        data = urllib.parse.urlencode({"wid": opts.wid, "signal": command}).encode()
        req = urllib.request.Request(_web_url(opts.web, "/busy"), data=data, method="POST", headers=headers)
        with urllib.request.urlopen(req, timeout=10):
            pass
        sys.stdout.write(f"{command}: {opts.wid}\n")
        return 0
    except urllib.error.HTTPError as exc:
        sys.stderr.write(f"faktory server {command}: {exc.code} {exc.read().decode().strip()}\n")
        return 1
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"faktory server {command}: cannot reach {opts.web}: {exc}\n")
        return 1
