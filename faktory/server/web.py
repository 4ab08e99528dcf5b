"""A tiny HTTP endpoint for operators, mirroring what the real server's web UI offers.

* ``GET /workers``: JSON list of registered workers (``FaktoryServer.workers()``).
* ``POST /busy`` with the form ``wid=<wid>&signal=quiet|terminate`` (as the real web UI's
  Busy page posts it; ``wid=all`` signals every worker): 200, or 404 for an unknown wid,
  400 for a bad signal.
* ``GET /info``: the INFO JSON.

Off by default; enabled with ``FaktoryServer(web="127.0.0.1:7420")`` or ``--web``.
It is an operator tool for a trusted network: no authentication, bind it to localhost.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:  # pragma: no cover
    from faktory.server.server import FaktoryServer

__all__ = ["start_web", "parse_bind"]

log = logging.getLogger("faktory.server.web")

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large"}


def parse_bind(value: str | tuple[str, int], default_port: int) -> tuple[str, int]:
    """``"host:port"``, ``":port"``, ``"host"`` or ``(host, port)`` -> ``(host, port)``."""
    if isinstance(value, tuple):
        return value[0], int(value[1])
    host, sep, port = value.rpartition(":")
    if not sep:
        return value or "127.0.0.1", default_port
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port) if port else default_port


async def start_web(server: "FaktoryServer", bind: str | tuple[str, int]) -> asyncio.base_events.Server:
    """Start the endpoint for ``server`` on ``bind``; returns the asyncio server."""
    host, port = parse_bind(bind, 7420)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body, ctype = await _serve(server, reader)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                ConnectionError):
            status, body, ctype = 400, b"bad request\n", "text/plain"
        head = (f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        try:
            writer.write(head + body)
            await writer.drain()
        except ConnectionError:  # pragma: no cover
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, reuse_address=True)


async def _serve(server: "FaktoryServer", reader: asyncio.StreamReader) -> tuple[int, bytes, str]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    if length > 65536:
        return 413, b"too large\n", "text/plain"
    body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
    url = urlsplit(target)
    path = url.path.rstrip("/") or "/"
    if path == "/workers":
        if method != "GET":
            return 405, b"use GET\n", "text/plain"
        return 200, json.dumps(server.workers()).encode(), "application/json"
    if path == "/info":
        if method != "GET":
            return 405, b"use GET\n", "text/plain"
        return 200, server.info_bytes(), "application/json"
    if path == "/busy":
        if method != "POST":
            return 405, b"use POST\n", "text/plain"
        form: dict[str, Any] = parse_qs(body.decode("utf-8", "replace"))
        form.update(parse_qs(url.query))
        wid = (form.get("wid") or [""])[0]
        signal = (form.get("signal") or [""])[0]
        if signal not in ("quiet", "terminate"):
            return 400, b"signal must be quiet or terminate\n", "text/plain"
        action = server.quiet_worker if signal == "quiet" else server.terminate_worker
        wids = [w["wid"] for w in server.workers()] if wid == "all" else [wid]
        try:
            for one in wids:
                action(one)
        except KeyError:
            return 404, f"unknown worker {wid}\n".encode(), "text/plain"
        log.info("web: %s %s", signal, wid)
        return 200, b"OK\n", "text/plain"
    return 404, b"not found\n", "text/plain"
