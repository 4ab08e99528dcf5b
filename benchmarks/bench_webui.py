"""The web UI with 10,000 jobs in the dead set: a page, a filtered page, the last page.

Issue 13 asks each to render in under a second on this machine.  The server runs in a
:class:`~faktory.server.ServerThread` (its dead set filled directly through its store, not
timed); each round is one whole HTTP request from this process (connect, request, the full
page read).  The bound is the issue's absolute one, checked on the best round (a page that
renders all 10,000 rows instead of one page of 25 takes seconds, so the check is far from
noise); the figures are printed after the run.

Run: ``python -m pytest benchmarks/bench_webui.py --benchmark-only``.
"""
from __future__ import annotations

import http.client
from typing import Any, Iterator

import pytest

from faktory.server import ServerThread

JOBS = 10_000
LIMIT_S = 1.0
_FIGURES: dict[str, float] = {}
PAGES = {"page": "/dead", "filter": "/dead?q=boom+number+77", "last_page": "/dead?page=400",
         "job": None}


def _fill(server: Any) -> None:
    store = server.store
    for i in range(JOBS):
        jid = f"dead-bench-{i:06d}"
        store.push({"jid": jid, "jobtype": "Report" if i % 2 else "Mailer", "args": [i, "some payload"],
                    "queue": "fill", "retry": 1})
        store.fetch(("fill",), "")
        store.fail(jid, "RuntimeError", f"boom number {i}", ["worker.py:10", "job.py:3"])
    store.mutate({"cmd": "kill", "target": "retries"})
    assert len(store.dead) == JOBS


@pytest.fixture(scope="module")
def web() -> Iterator[ServerThread]:
    with ServerThread(web="127.0.0.1:0") as st:
        st.call(_fill, st.server)
        yield st


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode()
        assert resp.status == 200, (path, resp.status)
        return body
    finally:
        conn.close()


def benchmark_report() -> list[str]:
    if not _FIGURES:
        return []
    return [f"web UI, {JOBS:,} dead jobs: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in _FIGURES.items())
            + f" (best round; bound {LIMIT_S:.0f} s each)"]


@pytest.mark.parametrize("what", list(PAGES))
def test_dead_set_page(benchmark: Any, web: ServerThread, what: str) -> None:
    port = web.server.web_port
    path = PAGES[what]
    if path is None:  # one job's page: its key from the first page
        first = _get(port, "/dead")
        key = first.split('name="key" value="', 1)[1].split('"', 1)[0]
        path = f"/dead/{key}"
    benchmark.group = f"web UI, {JOBS:,} dead jobs"
    body = benchmark.pedantic(_get, args=(port, path), rounds=5, iterations=1)
    best = benchmark.stats.stats.min
    _FIGURES[what] = best
    assert best < LIMIT_S, f"{path} took {best:.2f} s with {JOBS:,} dead jobs"
    if what == "filter":
        assert "11 of 10,000 jobs" in body  # 77 and 770..779
    elif what != "job":
        assert body.count('name="key"') == 25
