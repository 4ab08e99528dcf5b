"""The embedded server's HTTP side: the web UI and the operator endpoints.

Off by default; ``FaktoryServer(web="127.0.0.1:7420")`` or ``faktory server --web ADDR``
turns it on (a bare ``:PORT`` or ``HOST`` binds the loopback interface / port 7420).

The web UI (pages in :mod:`faktory.server.webui`): ``/`` dashboard, ``/queues`` (and one
queue's jobs at ``/queues/NAME``), ``/busy``, ``/retries``, ``/scheduled``, ``/dead`` (and one
job at ``/retries/KEY`` ...), ``/search?jid=JID``.  Server-rendered HTML that works without
JavaScript; the dashboard's live numbers and chart poll ``GET /stats`` (JSON).

Every change is a ``POST`` carrying the CSRF token of the page it came from: the token is
an HMAC, under a secret of this server process, of a random value kept in the browser's
``faktory_csrf`` cookie (``SameSite=Strict``, ``HttpOnly``).  A POST without it, or with a
token that does not match its cookie, gets 403 and changes nothing.

Operator endpoints, for scripts and ``faktory server workers|quiet|terminate``:

* ``GET /workers``: JSON list of registered workers (``FaktoryServer.workers()``);
* ``GET /info``: the INFO JSON;
* ``POST /busy`` with the form ``wid=<wid>&signal=quiet|terminate`` (``wid=all``: every
  worker): 200, 404 for an unknown wid, 400 for a bad signal.  Such a POST needs no CSRF
  token when it comes from a program, not a browser: no ``Origin``, ``Cookie`` or
  ``Sec-Fetch-*`` header (every browser sends ``Origin`` with a POST, so a forged
  cross-site form cannot pass for one).

When the server has a password, every request needs it by HTTP basic authentication (any
user name, the server's password), as on the real Faktory's UI: without it, 401 and no data.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:  # pragma: no cover
    from faktory.server.server import FaktoryServer

__all__ = ["start_web", "parse_bind", "Request", "Response"]

log = logging.getLogger("faktory.server.web")

_REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 500: "Internal Server Error"}
MAX_BODY = 256 * 1024
CSRF_COOKIE = "faktory_csrf"
CSRF_FIELD = "csrf"


def parse_bind(value: str | tuple[str, int], default_port: int) -> tuple[str, int]:
    """``"host:port"``, ``":port"``, ``"port"``, ``"host"`` or ``(host, port)`` ->
    ``(host, port)``; a missing host is the loopback interface."""
    if isinstance(value, tuple):
        return value[0], int(value[1])
    if value.isdigit():  # a bare port
        return "127.0.0.1", int(value)
    host, sep, port = value.rpartition(":")
    if not sep:
        return value or "127.0.0.1", default_port
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port) if port else default_port


class Request:
    """One parsed HTTP request."""

    __slots__ = ("method", "path", "query", "form", "headers", "cookies")

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        url = urlsplit(target)
        self.method = method
        self.path = url.path.rstrip("/") or "/"
        self.query: dict[str, list[str]] = parse_qs(url.query)
        self.headers = headers
        ctype = headers.get("content-type", "")
        self.form: dict[str, list[str]] = (
            parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            if body and (not ctype or ctype.startswith("application/x-www-form-urlencoded")) else {})
        self.cookies: dict[str, str] = {}
        for part in headers.get("cookie", "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep:
                self.cookies[name] = value

    def arg(self, name: str, default: str = "") -> str:
        """The first value of ``name`` in the form, else in the query string."""
        values = self.form.get(name) or self.query.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        """Every value of ``name`` in the form (checkboxes)."""
        return list(self.form.get(name, ()))

    @property
    def from_browser(self) -> bool:
        """True when a browser sent this (it always sends one of these with a POST)."""
        h = self.headers
        return "origin" in h or "cookie" in h or any(k.startswith("sec-fetch-") for k in h)


class Response:
    """Status, body, content type and extra headers."""

    __slots__ = ("status", "body", "ctype", "headers")

    def __init__(self, status: int, body: bytes | str, ctype: str = "text/plain; charset=utf-8",
                 headers: list[tuple[str, str]] | None = None) -> None:
        self.status = status
        self.body = body.encode("utf-8") if isinstance(body, str) else body
        self.ctype = ctype
        self.headers = headers or []

    @classmethod
    def redirect(cls, location: str) -> "Response":
        return cls(303, b"", headers=[("Location", location)])


class Web:
    """The HTTP application of one server (routing, authentication, CSRF)."""

    def __init__(self, server: "FaktoryServer") -> None:
        from faktory.server.webui import Pages

        self.server = server
        self._secret = secrets.token_bytes(32)
        self.pages = Pages(server, self)
        self.writers: set[asyncio.StreamWriter] = set()

    def close_connections(self) -> None:
        """Close every open HTTP connection (idle keep-alive ones included)."""
        for writer in list(self.writers):
            writer.close()

    # -- CSRF -----------------------------------------------------------------------------

    def csrf_token(self, cookie: str) -> str:
        """The token forms carry for the browser holding ``cookie``."""
        return hmac.new(self._secret, cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, req: Request) -> bool:
        cookie = req.cookies.get(CSRF_COOKIE, "")
        given = req.arg(CSRF_FIELD)
        return bool(cookie and given) and hmac.compare_digest(given.encode(), self.csrf_token(cookie).encode())

    # -- authentication --------------------------------------------------------------------

    def authorized(self, req: Request) -> bool:
        password = self.server.password
        if not password:
            return True
        scheme, _, value = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        _, _, given = decoded.partition(":")
        return hmac.compare_digest(given.encode(), password.encode())

    # -- dispatch --------------------------------------------------------------------------

    def handle(self, req: Request) -> Response:
        if not self.authorized(req):
            return Response(401, "authentication required\n",
                            headers=[("WWW-Authenticate", 'Basic realm="Faktory", charset="UTF-8"')])
        path = req.path
        if path in ("/workers", "/info", "/stats"):
            if req.method not in ("GET", "HEAD"):
                return Response(405, "use GET\n", headers=[("Allow", "GET")])
            if path == "/workers":
                body = json.dumps(self.server.workers()).encode()
            elif path == "/info":
                body = self.server.info_bytes()
            else:
                body = json.dumps(self.pages.stats()).encode()
            return Response(200, body, "application/json")
        if req.method == "POST":
            if path == "/busy" and CSRF_FIELD not in req.form and not req.from_browser:
                return self._api_busy(req)
            if not self.csrf_ok(req):
                log.warning("web: refused a POST to %s without a valid CSRF token", path)
                return Response(403, "CSRF token missing or wrong: reload the page and try again\n")
            return self.pages.post(req)
        if req.method not in ("GET", "HEAD"):
            return Response(405, "use GET or POST\n", headers=[("Allow", "GET, POST")])
        return self.pages.get(req)

    def _api_busy(self, req: Request) -> Response:
        server = self.server
        wid = req.arg("wid")
        signal = req.arg("signal")
        if signal not in ("quiet", "terminate"):
            return Response(400, "signal must be quiet or terminate\n")
        action = server.quiet_worker if signal == "quiet" else server.terminate_worker
        wids = [w["wid"] for w in server.workers()] if wid == "all" else [wid]
        try:
            for one in wids:
                action(one)
        except KeyError:
            return Response(404, f"unknown worker {wid}\n")
        log.info("web: %s %s", signal, wid)
        return Response(200, "OK\n")


async def start_web(server: "FaktoryServer", bind: str | tuple[str, int]) -> asyncio.base_events.Server:
    """Start the web UI and operator endpoints of ``server`` on ``bind``; returns the
    asyncio server."""
    host, port = parse_bind(bind, 7420)
    app = Web(server)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        app.writers.add(writer)
        try:
            while True:
                try:
                    req = await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except _TooLarge:
                    resp, req = Response(413, "too large\n"), None
                except (asyncio.LimitOverrunError, ValueError, asyncio.TimeoutError):
                    resp, req = Response(400, "bad request\n"), None
                else:
                    if req is None:
                        return
                    try:
                        resp = app.handle(req)
                    except Exception:
                        log.exception("web: internal error on %s %s", req.method, req.path)
                        resp = Response(500, "internal error\n")
                keep = req is not None and req.headers.get("connection", "").lower() != "close" \
                    and resp.status < 400
                writer.write(_encode(resp, keep, head_only=req is not None and req.method == "HEAD"))
                await writer.drain()
                if not keep:
                    return
        except ConnectionError:  # pragma: no cover
            pass
        finally:
            app.writers.discard(writer)
            writer.close()

    srv = await asyncio.start_server(handle, host, port, reuse_address=True)
    server._web_app = app
    return srv


class _TooLarge(Exception):
    pass


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None  # the client closed an idle keep-alive connection
        raise
    except asyncio.TimeoutError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    if length > MAX_BODY:
        raise _TooLarge()
    body = await asyncio.wait_for(reader.readexactly(length), 30) if length else b""
    return Request(method, target, headers, body)


def _encode(resp: Response, keep: bool, head_only: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Error')}",
             f"Content-Type: {resp.ctype}", f"Content-Length: {len(resp.body)}",
             "Connection: keep-alive" if keep else "Connection: close",
             "Cache-Control: no-store", "X-Content-Type-Options: nosniff"]
    lines.extend(f"{name}: {value}" for name, value in resp.headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else resp.body)
