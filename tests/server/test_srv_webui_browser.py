"""The web UI driven in a real headless Chromium (Playwright for Python, Debian's chromium).

One browser per module; each test gets a fresh context (cookies) on its own server.  Every
test run writes a screenshot of each page to ``$FAKTORY_SCREENSHOTS`` (default
``tests/artifacts/webui/``, not committed); with ``FAKTORY_UPDATE_DOCS=1`` the dashboard's
is also written to ``docs/webui-dashboard.png`` (the one the README shows).

Skipped, saying why, where Playwright or Chromium is not installed (``.ci/run`` installs
both; it sets ``FAKTORY_REQUIRE_BROWSER=1`` so that in CI a missing browser fails instead).
Chromium is found at ``$FAKTORY_CHROMIUM``, else ``/usr/bin/chromium``, else on ``PATH``.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
from typing import Any, Iterator

import pytest
from srv_helpers import NEEDS_INTERNALS, REAL, Raw
from webui_kit import fail_into, push

from faktory.server import ServerThread

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHOTS = os.environ.get("FAKTORY_SCREENSHOTS") or os.path.join(ROOT, "tests", "artifacts", "webui")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-quic", "--disable-dev-shm-usage"]
WAIT_MS = 10_000  # upper bound of every wait for the page to show something


def _chromium() -> str | None:
    for candidate in (os.environ.get("FAKTORY_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def _why_not() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[ui]')"
    if _chromium() is None:
        return "Chromium is not installed (apt-get install chromium; or set FAKTORY_CHROMIUM)"
    return None


_MISSING = _why_not()
if _MISSING and os.environ.get("FAKTORY_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"browser tests required but cannot run: {_MISSING}")

pytestmark = [pytest.mark.internals, pytest.mark.browser, pytest.mark.skipif(REAL, reason=NEEDS_INTERNALS),
              pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module (Playwright gives it a fresh temporary profile)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def st() -> Iterator[ServerThread]:
    with ServerThread(web="127.0.0.1:0", fetch_timeout=0.3) as st:
        st.server._web_app.pages.poll_ms = 250  # the dashboard polls faster than its 2 s
        yield st


@pytest.fixture
def page(browser: Any, st: ServerThread) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 720},
                                  base_url=f"http://127.0.0.1:{st.server.web_port}")
    context.set_default_timeout(WAIT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield pg
    finally:
        context.close()
    assert errors == [], errors  # no script error, no request refused by the CSP


def shot(pg: Any, name: str) -> str:
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, f"{name}.png")
    pg.screenshot(path=path, full_page=True)
    return path


def stat(pg: Any, name: str) -> str:
    return pg.locator(f".card [data-stat={name}]").inner_text()


def wait_stat(pg: Any, name: str, value: str) -> None:
    pg.wait_for_function(
        "([n, v]) => document.querySelector('.card [data-stat=' + n + ']').textContent === v",
        arg=[name, value], timeout=WAIT_MS)


def process_one(st: ServerThread, queue: str) -> dict:
    """FETCH one job of ``queue`` and ACK it, as a worker would."""
    import json

    with Raw("127.0.0.1", st.port) as raw:
        raw.hello(wid="browser-test-worker")
        reply = raw.cmd(f"FETCH {queue}\r\n".encode())
        assert reply.startswith(b"$") and reply != b"$-1\r\n", reply
        job = json.loads(reply.split(b"\r\n", 1)[1][:-2])
        assert raw.cmd(b'ACK {"jid":"' + job["jid"].encode() + b'"}\r\n') == b"+OK\r\n"
        return job


def test_dashboard_numbers_and_chart_follow_the_server(page: Any, st: ServerThread) -> None:
    page.goto("/")
    assert stat(page, "enqueued") == "0"
    st.call(lambda: [push(st.server.store, f"dash-job-{i:04d}", queue="dash") for i in range(5)])
    wait_stat(page, "enqueued", "5")
    assert page.locator("[data-queue=dash]").inner_text() == "5"
    for _ in range(3):
        process_one(st, "dash")
    wait_stat(page, "processed", "3")
    wait_stat(page, "enqueued", "2")
    # the chart has drawn rates from at least two samples
    page.wait_for_function("() => document.getElementById('chart').dataset.samples >= 2")
    points = page.locator("#line-processed").get_attribute("points")
    assert points and len(points.split()) >= 2


def test_retry_a_failed_job_from_the_retries_page(page: Any, st: ServerThread) -> None:
    (jid,) = st.call(lambda: fail_into(st.server.store, 1, prefix="browser-retry"))
    page.goto("/retries")
    page.click(f"text={jid}")
    assert page.locator("h2", has_text="Failure").count() == 1
    assert "boom number 0" in page.content()
    page.click("button:has-text('Retry now')")
    page.wait_for_url(re.compile(r"/retries\?done="))
    assert "1 job queued again" in page.locator(".note").inner_text()
    assert "No jobs in retries" in page.content()
    job = process_one(st, "fill")
    assert job["jid"] == jid and job["failure"]["errtype"] == "RuntimeError"
    page.goto("/")
    assert stat(page, "processed") == "2"  # the failed run and the retried one
    page.goto(f"/search?jid={jid}")
    assert "No job" in page.content()  # processed: no longer anywhere


def test_kill_one_job(page: Any, st: ServerThread) -> None:
    jids = st.call(lambda: fail_into(st.server.store, 3, prefix="browser-kill"))
    page.goto("/retries")
    page.check(f"input[aria-label='select {jids[1]}']")
    page.click("form[action='/retries'] .actions button[name=action][value=kill]")
    page.wait_for_url(re.compile(r"/retries\?done="))
    assert "1 job moved to the dead set" in page.locator(".note").inner_text()
    page.click("header nav >> text=Dead")
    assert jids[1] in page.content() and jids[0] not in page.content()
    assert st.call(lambda: [r.jid for r in st.server.store.dead.members.values()]) == [jids[1]]


def test_pause_a_queue(page: Any, st: ServerThread) -> None:
    st.call(lambda: (push(st.server.store, "pause-job-0001", queue="mail"),
                     push(st.server.store, "pause-job-0002", queue="other")))
    page.goto("/queues")
    page.locator("tr", has_text="mail").locator("button[value=pause]").click()
    page.wait_for_url(re.compile(r"/queues\?done="))
    assert page.locator("tr", has_text="mail").locator(".tag").inner_text() == "paused"
    assert page.locator("tr", has_text="other").locator(".tag").inner_text() == "active"
    with Raw("127.0.0.1", st.port) as raw:
        raw.hello()
        assert raw.cmd(b"FETCH mail\r\n") == b"$-1\r\n"  # paused: nothing comes out
    page.locator("tr", has_text="mail").locator("button[value=resume]").click()
    page.wait_for_url(re.compile(r"/queues\?done="))
    assert process_one(st, "mail")["jid"] == "pause-job-0001"


def test_quiet_a_worker_from_the_busy_page(page: Any, st: ServerThread) -> None:
    with Raw("127.0.0.1", st.port) as raw:
        raw.hello(wid="browser-busy-1", hostname="host-a", pid=777, labels=["py"])
        page.goto("/busy")
        page.locator("tr", has_text="browser-busy-1").locator("button[value=quiet]").click()
        page.wait_for_url(re.compile(r"/busy\?done="))
        assert page.locator("tr", has_text="browser-busy-1").locator(".tag.quiet").count() == 1
        assert raw.cmd(b'BEAT {"wid":"browser-busy-1"}\r\n') == b'$17\r\n{"state":"quiet"}\r\n'


def test_the_ui_works_with_javascript_off(browser: Any, st: ServerThread) -> None:
    st.call(lambda: fail_into(st.server.store, 2, prefix="nojs"))
    context = browser.new_context(java_script_enabled=False,
                                  base_url=f"http://127.0.0.1:{st.server.web_port}")
    try:
        pg = context.new_page()
        pg.goto("/")
        assert "needs JavaScript" in pg.locator("#chart").inner_text()
        pg.goto("/retries")
        pg.click("button[name=all][value=delete]")
        pg.wait_for_url(re.compile(r"/retries\?done="))
        assert "2 jobs deleted" in pg.locator(".note").inner_text()
    finally:
        context.close()
    assert st.call(lambda: len(st.server.store.retries)) == 0


def test_a_password_protected_ui(browser: Any) -> None:
    with ServerThread(web="127.0.0.1:0", password="browser-pw") as locked:
        locked.call(lambda: push(locked.server.store, "locked-job-0001", queue="secretq"))
        base = f"http://127.0.0.1:{locked.server.web_port}"
        context = browser.new_context()
        try:
            # Chromium answers a 401 by asking for a password, which a headless page cannot
            # show (the navigation fails); the context's requests show what the server sent
            wrong = "Basic " + base64.b64encode(b"any:wrong").decode()
            for headers in ({}, {"Authorization": wrong}):
                for path in ("/queues", "/stats"):
                    resp = context.request.get(base + path, headers=headers)
                    assert resp.status == 401 and "secretq" not in resp.text()
                    assert resp.headers["www-authenticate"].startswith("Basic")
        finally:
            context.close()
        context = browser.new_context(http_credentials={"username": "any", "password": "browser-pw"})
        try:
            pg = context.new_page()
            assert pg.goto(base + "/queues").status == 200
            assert "secretq" in pg.content()
        finally:
            context.close()


def test_screenshots_of_every_page(page: Any, st: ServerThread) -> None:
    """Not a check of looks: writes what each page shows with some data in it."""
    store = st.server.store

    def fill() -> None:
        for i in range(12):
            push(store, f"shot-mail-{i:04d}", jobtype="SendWelcomeEmail", args=[1000 + i, "en"], queue="mail")
        for i in range(7):
            push(store, f"shot-img-{i:05d}", jobtype="ResizeImage", args=[f"photo-{i}.jpg", 640], queue="images")
        for i in range(4):
            push(store, f"shot-later-{i:04d}", jobtype="SendDigest", args=[i], queue="mail",
                 at=f"2999-01-0{i + 1}T08:00:00Z")
        fail_into(store, 5, "dead", prefix="shot-dead", jobtype="SyncInventory")
        fail_into(store, 9, prefix="shot-retry", jobtype="ChargeCard")
        store.pause("images")
    st.call(fill)
    with Raw("127.0.0.1", st.port) as w1, Raw("127.0.0.1", st.port) as w2:
        w1.hello(wid="4f9c2a61d0e3", hostname="worker-a.internal", pid=31337, labels=["python", "mail"])
        w2.hello(wid="8b1e77c05a2f", hostname="worker-b.internal", pid=4242, labels=["python"])
        assert w1.cmd(b"FETCH mail\r\n").startswith(b"$")
        assert w2.cmd(b"FETCH mail\r\n").startswith(b"$")
        st.call(st.server.quiet_worker, "8b1e77c05a2f")
        page.goto("/")
        for i in range(4):  # some traffic, so the chart has lines
            push_and_process = [process_one(st, "mail") for _ in range(2)]
            assert len(push_and_process) == 2
            page.wait_for_function("(n) => document.getElementById('chart').dataset.samples >= n", arg=i + 2)
        path = shot(page, "dashboard")
        if os.environ.get("FAKTORY_UPDATE_DOCS") == "1":
            shutil.copyfile(path, os.path.join(ROOT, "docs", "webui-dashboard.png"))
        for name, url in (("queues", "/queues"), ("queue", "/queues/mail"), ("busy", "/busy"),
                          ("retries", "/retries"), ("scheduled", "/scheduled"), ("dead", "/dead"),
                          ("dead-filtered", "/dead?q=boom+number+3"), ("search", "/search?jid=shot-mail-0011")):
            page.goto(url)
            shot(page, name)
        page.goto("/retries")
        page.locator("td a code").first.click()
        shot(page, "retry-job")
    assert sorted(os.listdir(SHOTS)) >= ["busy.png", "dashboard.png"]
