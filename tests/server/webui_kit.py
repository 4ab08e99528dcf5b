"""Helpers of the web UI tests: a small cookie-keeping HTTP session and store fillers."""
from __future__ import annotations

import base64
import http.client
import re
from typing import Any
from urllib.parse import urlencode

_TOKEN = re.compile(r'name="csrf" value="([0-9a-f]+)"')


class Http:
    """One browser-like HTTP session (keeps the CSRF cookie) against ``127.0.0.1:port``."""

    def __init__(self, port: int, password: str | None = None) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.auth = ("Basic " + base64.b64encode(f"user:{password}".encode()).decode()) if password else None
        self.token = ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            h = {"Connection": "close", **(headers or {})}
            if self.cookies:
                h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            if self.auth:
                h.setdefault("Authorization", self.auth)
            if body is not None:
                h.setdefault("Content-Type", "application/x-www-form-urlencoded")
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            text = resp.read().decode("utf-8")
            got = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        cookie = got.get("set-cookie")
        if cookie:
            name, _, rest = cookie.partition("=")
            self.cookies[name] = rest.split(";")[0]
        m = _TOKEN.search(text)
        if m:
            self.token = m.group(1)
        return resp.status, got, text

    def get(self, path: str) -> tuple[int, str]:
        status, _, text = self.request("GET", path)
        return status, text

    def post(self, path: str, fields: list[tuple[str, str]] | dict[str, str], *, token: bool = True,
             origin: bool = True) -> tuple[int, dict[str, str], str]:
        """A form POST as a browser sends it (Origin header; the page's token unless
        ``token=False``)."""
        items = list(fields.items()) if isinstance(fields, dict) else list(fields)
        if token:
            items.append(("csrf", self.token))
        headers = {"Origin": f"http://127.0.0.1:{self.port}"} if origin else {}
        return self.request("POST", path, urlencode(items).encode(), headers)


def push(store: Any, jid: str, *, jobtype: str = "Mailer", args: Any = None, queue: str = "default",
         retry: int = 25, at: str = "") -> None:
    job = {"jid": jid, "jobtype": jobtype, "args": [1, "two"] if args is None else args,
           "queue": queue, "retry": retry}
    if at:
        job["at"] = at
    assert store.push(job) is None


def fail_into(store: Any, count: int, where: str = "retries", *, prefix: str = "failed-job",
              jobtype: str = "Report") -> list[str]:
    """``count`` jobs pushed, fetched and FAILed into the retries set (then, for
    ``where="dead"``, every job of the retries set is killed).  Returns their jids."""
    jids = []
    for i in range(count):
        jid = f"{prefix}-{i:06d}"
        push(store, jid, jobtype=jobtype, args=[i, "payload"], queue="fill", retry=3)
        assert store.fetch(("fill",), "") is not None
        assert store.fail(jid, "RuntimeError", f"boom number {i}", ["worker.py:10", "job.py:3"]) is None
        jids.append(jid)
    if where == "dead":
        assert store.mutate({"cmd": "kill", "target": "retries"}) is None
    return jids
