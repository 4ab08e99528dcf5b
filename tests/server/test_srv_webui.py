"""The web UI over HTTP (no browser): pages, actions, CSRF, password, escaping, paging.

The browser-driven tests are in test_srv_webui_browser.py; the 10,000-job timing is a
benchmark (benchmarks/bench_webui.py).
"""
from __future__ import annotations

import json
import re
from typing import Iterator

import pytest
from srv_helpers import NEEDS_INTERNALS, REAL, Raw
from webui_kit import Http, fail_into, push

from faktory.server import ServerThread

pytestmark = [pytest.mark.internals, pytest.mark.skipif(REAL, reason=NEEDS_INTERNALS)]


@pytest.fixture
def st() -> Iterator[ServerThread]:
    with ServerThread(web="127.0.0.1:0", fetch_timeout=0.2) as st:
        yield st


@pytest.fixture
def http(st: ServerThread) -> Http:
    return Http(st.server.web_port)


def keys_of(page: str) -> list[str]:
    return re.findall(r'name="key" value="(\d+)"', page)


def key_for(page: str, jid: str) -> str:
    m = re.search(r'href="/\w+/(\d+)"><code>' + re.escape(jid) + "<", page)
    assert m, jid
    return m.group(1)


def test_every_page_renders(st: ServerThread, http: Http) -> None:
    def fill() -> None:
        store = st.server.store
        push(store, "queued-job-0001", queue="mail")
        push(store, "sched-job-0001", at="2999-01-01T00:00:00Z")
        fail_into(store, 2)
    st.call(fill)
    pages = {"/": "Dashboard", "/queues": "mail", "/queues/mail": "queued-job-0001", "/busy": "Workers",
             "/retries": "failed-job-000001", "/scheduled": "sched-job-0001", "/dead": "No jobs in dead",
             "/search?jid=queued-job-0001": "queue mail"}
    for path, text in pages.items():
        status, page = http.get(path)
        assert status == 200, path
        assert text in page, path
        assert page.startswith("<!doctype html>")
    assert http.get("/no/such/page")[0] == 404
    assert http.get("/retries/999999")[0] == 404


def test_pages_fetch_nothing_from_elsewhere(st: ServerThread, http: Http) -> None:
    status, headers, page = http.request("GET", "/")
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert not re.search(r'(src|href)="(https?:)?//', page)  # no external script, style, image


def test_dashboard_numbers_and_stats(st: ServerThread, http: Http) -> None:
    st.call(lambda: [push(st.server.store, f"dash-job-{i:04d}", queue="dash") for i in range(3)])
    status, page = http.get("/")
    assert re.search(r'data-stat="enqueued">3<', page)
    assert re.search(r'data-queue="dash">3<', page)
    status, _, body = http.request("GET", "/stats")
    stats = json.loads(body)
    assert (stats["enqueued"], stats["queues"], stats["processed"]) == (3, {"dash": 3}, 0)


def test_a_post_without_the_csrf_token_is_refused(st: ServerThread, http: Http) -> None:
    st.call(lambda: push(st.server.store, "csrf-job-0001", queue="csrf"))
    http.get("/queues")
    status, _, body = http.post("/queues", {"action": "pause", "queue": "csrf"}, token=False)
    assert status == 403 and "CSRF" in body
    other = Http(st.server.web_port)  # another browser: its own cookie, so the token does not fit
    other.get("/queues")
    other.token = http.token
    assert other.post("/queues", {"action": "pause", "queue": "csrf"})[0] == 403
    assert st.call(lambda: set(st.server.store.paused)) == set()
    status, headers, _ = http.post("/queues", {"action": "pause", "queue": "csrf"})
    assert status == 303 and headers["location"].startswith("/queues?done=")
    assert st.call(lambda: set(st.server.store.paused)) == {"csrf"}


def test_the_operator_api_needs_no_token_but_a_browser_post_does(st: ServerThread) -> None:
    with Raw("127.0.0.1", st.port) as raw:
        raw.hello(wid="api-worker-1")
        program = Http(st.server.web_port)
        # a program (no Origin, no cookie): the operator API of `faktory server quiet`
        status, _, body = program.request("POST", "/busy", b"wid=api-worker-1&signal=quiet",
                                          {"Content-Type": "application/x-www-form-urlencoded"})
        assert (status, body) == (200, "OK\n")
        # the same form sent by a browser from another site: refused
        browser = Http(st.server.web_port)
        status, _, _ = browser.post("/busy", {"wid": "api-worker-1", "signal": "terminate"}, token=False)
        assert status == 403
        assert st.call(st.server.workers)[0]["state"] == "quiet"


def test_password_basic_auth(st: ServerThread) -> None:
    with ServerThread(web="127.0.0.1:0", password="s3cret pw") as locked:
        locked.call(lambda: push(locked.server.store, "secret-job-0001", queue="hidden-queue"))
        port = locked.server.web_port
        for who in (Http(port), Http(port, password="wrong")):
            for path in ("/", "/queues", "/stats", "/workers", "/info", "/search?jid=secret-job-0001"):
                status, headers, body = who.request("GET", path)
                assert status == 401, path
                assert headers["www-authenticate"].startswith("Basic")
                assert "hidden-queue" not in body and "secret-job" not in body
            assert who.request("POST", "/queues", b"action=remove&queue=*")[0] == 401
        assert locked.call(lambda: list(locked.server.store.queues)) == ["hidden-queue"]
        status, page = Http(port, password="s3cret pw").get("/queues")
        assert status == 200 and "hidden-queue" in page


def test_queue_actions(st: ServerThread, http: Http) -> None:
    store = st.server.store
    st.call(lambda: [push(store, f"q-job-{i:05d}", queue=q) for i, q in enumerate(["a", "a", "b"])])
    http.get("/queues")
    assert http.post("/queues", [("action", "pause"), ("queue", "a"), ("queue", "b")])[0] == 303
    assert st.call(lambda: sorted(store.paused)) == ["a", "b"]
    assert "paused" in http.get("/queues")[1]
    http.post("/queues", {"action": "resume", "queue": "*"})
    assert st.call(lambda: sorted(store.paused)) == []
    status, headers, _ = http.post("/queues", {"action": "clear", "queue": "a"})
    assert "2+jobs+deleted" in headers["location"]
    assert st.call(store.queue_sizes) == {"a": 0, "b": 1}
    http.post("/queues", {"action": "remove", "queue": "b"})
    assert st.call(store.queue_sizes) == {"a": 0}
    assert http.post("/queues", {"action": "explode", "queue": "a"})[0] == 400


def test_busy_page_shows_workers_and_running_jobs_and_signals_them(st: ServerThread, http: Http) -> None:
    with Raw("127.0.0.1", st.port) as raw:
        raw.hello(wid="busy-worker-1", hostname="box-7", pid=4242, labels=["blue"])
        raw.cmd(b'PUSH {"jid":"running-job-01","jobtype":"Crunch","args":[7],"queue":"busyq"}\r\n')
        assert raw.cmd(b"FETCH busyq\r\n").startswith(b"$")
        status, page = http.get("/busy")
        for text in ("busy-worker-1", "box-7", "4242", "blue", "running", "running-job-01", "Crunch"):
            assert text in page
        assert http.post("/busy", {"wid": "busy-worker-1", "signal": "quiet"})[0] == 303
        assert "quiet" in http.get("/busy")[1]
        http.post("/busy", {"wid": "all", "signal": "terminate"})
        assert raw.cmd(b'BEAT {"wid":"busy-worker-1"}\r\n') == b'$21\r\n{"state":"terminate"}\r\n'


def test_retry_delete_kill_one_a_selection_and_all(st: ServerThread, http: Http) -> None:
    store = st.server.store
    st.call(fail_into, store, 6)
    status, page = http.get("/retries")
    keys = keys_of(page)
    assert len(keys) == 6
    # one job's page: payload and failure, and its own buttons
    first = key_for(page, "failed-job-000000")
    keys.remove(first)
    keys.insert(0, first)
    status, detail = http.get(f"/retries/{first}")
    assert status == 200
    for text in ("failed-job-000000", "RuntimeError", "boom number 0", "worker.py:10", "&quot;jobtype&quot;"):
        assert text in detail
    assert http.post(f"/retries/{keys[0]}", {"action": "retry"})[0] == 303
    assert st.call(store.queue_sizes)["fill"] == 1
    http.post("/retries", [("action", "delete"), ("key", keys[1]), ("key", keys[2])])
    http.post("/retries", [("action", "kill"), ("key", keys[3])])
    assert st.call(lambda: (len(store.retries), len(store.dead))) == (2, 1)
    status, headers, _ = http.post("/retries", {"all": "kill"})
    assert "2+jobs+moved" in headers["location"]
    assert st.call(lambda: (len(store.retries), len(store.dead))) == (0, 3)
    status, page = http.get("/dead")
    assert 'value="kill"' not in page  # nothing to kill in the dead set
    assert http.post("/dead", {"all": "kill"})[0] == 400
    http.post("/dead", {"all": "retry"})
    assert st.call(lambda: (len(store.dead), store.queue_sizes()["fill"])) == (0, 4)


def test_filter_and_all_matching(st: ServerThread, http: Http) -> None:
    store = st.server.store
    st.call(fail_into, store, 30, "dead")
    status, page = http.get("/dead?q=boom+number+2")
    assert "11 of 30 jobs" in page  # 2, 20..29
    assert len(keys_of(page)) == 11
    http.post("/dead", {"all": "delete", "q": "boom number 2"})
    assert st.call(lambda: len(store.dead)) == 19


def test_paging(st: ServerThread, http: Http) -> None:
    st.call(fail_into, st.server.store, 60, "dead")
    _, first = http.get("/dead")
    _, third = http.get("/dead?page=3")
    assert len(keys_of(first)) == 25 and len(keys_of(third)) == 10
    assert "Page 3 of 3" in third
    assert not set(keys_of(first)) & set(keys_of(third))
    assert len(keys_of(http.get("/dead?count=100")[1])) == 60
    assert len(keys_of(http.get("/dead?page=99")[1])) == 10  # past the end: the last page


def test_search_by_jid(st: ServerThread, http: Http) -> None:
    store = st.server.store
    st.call(lambda: (push(store, "find-me-00001", queue="lookq"), fail_into(store, 1, prefix="find-dead")))
    assert "queue lookq" in http.get("/search?jid=find-me-00001")[1]
    assert "retries" in http.get("/search?jid=find-dead-000000")[1]
    assert "No job" in http.get("/search?jid=nobody-at-all")[1]


def test_job_data_is_escaped(st: ServerThread, http: Http) -> None:
    st.call(lambda: push(st.server.store, "xss-job-00001", jobtype="<script>alert(1)</script>",
                         args=["<img src=x onerror=alert(2)>"], queue="xss"))
    status, page = http.get("/queues/xss")
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_works_without_javascript(st: ServerThread, http: Http) -> None:
    # every action is a plain form that posts and redirects to a page saying what happened
    st.call(fail_into, st.server.store, 1)
    _, page = http.get("/retries")
    assert re.search(r'<form method="post" action="/retries">', page)
    status, headers, _ = http.post("/retries", {"all": "delete"})
    assert status == 303
    status, page = http.get(headers["location"])
    assert "1 job deleted" in page


def test_cli_operator_commands_with_a_password(capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from faktory.server import cli as server_cli

    monkeypatch.delenv("FAKTORY_PASSWORD", raising=False)
    with ServerThread(web="127.0.0.1:0", password="op-pass") as locked, Raw("127.0.0.1", locked.port) as raw:
        raw.hello("op-pass", wid="locked-worker-1")
        web = f"127.0.0.1:{locked.server.web_port}"
        assert server_cli.main(["quiet", "locked-worker-1", "--web", web]) == 1
        assert "401" in capsys.readouterr().err
        assert server_cli.main(["quiet", "locked-worker-1", "--web", web, "--password", "op-pass"]) == 0
        assert locked.call(locked.server.workers)[0]["state"] == "quiet"


@pytest.mark.parametrize("bind, expected", [
    (":7420", ("127.0.0.1", 7420)), ("7421", ("127.0.0.1", 7421)), ("0.0.0.0:80", ("0.0.0.0", 80)),
    ("[::1]:7420", ("::1", 7420)), ("localhost", ("localhost", 7420)), ("", ("127.0.0.1", 7420)),
])
def test_web_bind_defaults_to_loopback(bind: str, expected: tuple[str, int]) -> None:
    from faktory.server.web import parse_bind

    assert parse_bind(bind, 7420) == expected


def test_actions_on_a_durable_server_survive_a_restart(tmp_path) -> None:
    path = str(tmp_path / "ui.db")
    with ServerThread(web="127.0.0.1:0", storage=path) as durable:
        durable.call(fail_into, durable.server.store, 3)
        ui = Http(durable.server.web_port)
        _, page = ui.get("/retries")
        keep = key_for(page, "failed-job-000000")
        assert ui.post("/retries", [("action", "kill"), ("key", keep)])[0] == 303
        assert ui.post("/retries", {"all": "delete"})[0] == 303
    with ServerThread(web="127.0.0.1:0", storage=path) as again:
        assert again.call(lambda: (len(again.server.store.retries), [r.jid for r in again.server.store.dead.members.values()])) \
            == (0, ["failed-job-000000"])


def test_a_huge_jobs_pages_show_the_start_of_its_args(st: ServerThread, http: Http) -> None:
    # a 4 MB job in the retries set and in a queue: the pages show its start, without
    # decoding it (the server would stall for the decoding of a page's every huge row)
    store = st.server.store
    big = [[0.25] * 800_000, "<tail>"]
    st.call(lambda: push(store, "huge-shown-1", jobtype="Big", args=big, queue="hugeq", retry=3))
    st.call(lambda: push(store, "huge-shown-2", jobtype="Big", args=big, queue="hugeq2", retry=3))
    assert st.call(lambda: store.fetch(("hugeq",), "") is not None)
    assert st.call(lambda: store.fail("huge-shown-1", "RuntimeError", "too big", ["w.py:1"])) is None
    for path in ("/retries", "/queues/hugeq2"):
        status, page = http.get(path)
        assert status == 200
        assert "[[0.25, 0.25" not in page  # (not a decoded list: the stored bytes' start)
        assert "[[0.25,0.25,0.25" in page and "&lt;tail&gt;" not in page, path
    rid = st.call(lambda: next(iter(store.retries.ordered())).rid)
    status, page = http.get(f"/retries/{rid}")
    assert status == 200 and "too big" in page and "[[0.25,0.25" in page
