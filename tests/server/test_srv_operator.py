"""Operator controls, limits, TLS, the CLI and the pytest fixtures (embedded server only)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from importlib.metadata import entry_points

import pytest
from srv_helpers import NEEDS_INTERNALS, REAL, Raw, wait_for

from faktory.server import ServerThread
from faktory.server import cli as server_cli

pytestmark = [pytest.mark.internals, pytest.mark.skipif(REAL, reason=NEEDS_INTERNALS)]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def web_server():
    with ServerThread(web="127.0.0.1:0", fetch_timeout=0.2) as st:
        yield st


def test_workers_lists_registered_workers(web_server: ServerThread) -> None:
    st = web_server
    a = Raw("127.0.0.1", st.port)
    b = Raw("127.0.0.1", st.port)
    with a, b:
        a.hello(wid="op-worker-1", hostname="h1", pid=42, labels=["x", "y"])
        b.hello(wid="op-worker-1")
        (w,) = st.call(st.server.workers)
        assert (w["wid"], w["hostname"], w["pid"], w["labels"], w["state"], w["connections"]) == \
            ("op-worker-1", "h1", 42, ["x", "y"], "running", 2)
        st.call(st.server.terminate_worker, "op-worker-1")
        assert st.call(st.server.workers)[0]["state"] == "terminate"
        st.call(st.server.quiet_worker, "op-worker-1")  # never backwards
        assert a.cmd(b'BEAT {"wid":"op-worker-1"}\r\n') == b'$21\r\n{"state":"terminate"}\r\n'
        with pytest.raises(KeyError):
            st.call(st.server.quiet_worker, "nobody")


def test_only_the_first_connection_of_a_wid_is_gated(web_server: ServerThread) -> None:
    st = web_server
    first = Raw("127.0.0.1", st.port)
    later = Raw("127.0.0.1", st.port)
    with first, later:
        first.hello(wid="gate-worker")
        later.hello(wid="gate-worker")
        st.call(st.server.quiet_worker, "gate-worker")
        first.cmd(b'PUSH {"jid":"gate-jid-001","jobtype":"G","args":[],"queue":"g","retry":25}\r\n')
        assert first.cmd(b"FETCH g\r\n") == b"$-1\r\n"
        assert b"gate-jid-001" in later.cmd(b"FETCH g\r\n")  # as on the real server


def http(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_web_endpoint(web_server: ServerThread) -> None:
    st = web_server
    base = f"http://127.0.0.1:{st.server.web_port}"
    with Raw("127.0.0.1", st.port) as raw:
        raw.hello(wid="web-worker-1", hostname="wh", pid=7)
        status, body = http(base + "/workers")
        assert status == 200 and json.loads(body)[0]["wid"] == "web-worker-1"
        assert http(base + "/busy", b"wid=web-worker-1&signal=quiet")[0] == 200
        assert raw.cmd(b'BEAT {"wid":"web-worker-1"}\r\n') == b'$17\r\n{"state":"quiet"}\r\n'
        assert http(base + "/busy", b"wid=all&signal=terminate")[0] == 200
        assert raw.cmd(b'BEAT {"wid":"web-worker-1"}\r\n') == b'$21\r\n{"state":"terminate"}\r\n'
        assert http(base + "/busy", b"wid=web-worker-1&signal=explode")[0] == 400
        assert http(base + "/busy", b"wid=nobody&signal=quiet")[0] == 404
        assert http(base + "/nothing")[0] == 404
        status, body = http(base + "/info")
        assert status == 200 and json.loads(body)["server"]["faktory_version"] == "1.10.0"


def test_cli_operator_subcommands(web_server: ServerThread, capsys: pytest.CaptureFixture) -> None:
    st = web_server
    web = f"127.0.0.1:{st.server.web_port}"
    with Raw("127.0.0.1", st.port) as raw:
        raw.hello(wid="cli-worker-1", hostname="ch", pid=9, labels=["l1"])
        assert server_cli.main(["workers", "--web", web]) == 0
        out = capsys.readouterr().out
        assert "cli-worker-1" in out and "running" in out and "l1" in out
        assert server_cli.main(["quiet", "cli-worker-1", "--web", web]) == 0
        assert raw.cmd(b'BEAT {"wid":"cli-worker-1"}\r\n') == b'$17\r\n{"state":"quiet"}\r\n'
        assert server_cli.main(["terminate", "cli-worker-1", "--web", "http://" + web]) == 0
        assert raw.cmd(b'BEAT {"wid":"cli-worker-1"}\r\n') == b'$21\r\n{"state":"terminate"}\r\n'
        assert capsys.readouterr().out == "quiet: cli-worker-1\nterminate: cli-worker-1\n"
        assert server_cli.main(["workers", "--json", "--web", web]) == 0
        assert json.loads(capsys.readouterr().out)[0]["state"] == "terminate"
        assert server_cli.main(["quiet", "nobody", "--web", web]) == 1
        assert "404" in capsys.readouterr().err


def test_cli_operator_unreachable(capsys: pytest.CaptureFixture) -> None:
    with ServerThread() as st:  # a port where no web endpoint listens (the Faktory port closes)
        port = st.port
    assert server_cli.main(["workers", "--web", f"127.0.0.1:{port}"]) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_drop_connections(web_server: ServerThread) -> None:
    st = web_server
    a, b = Raw("127.0.0.1", st.port), Raw("127.0.0.1", st.port)
    with a, b:
        a.hello()
        b.hello(wid="drop-worker")
        assert st.call(st.server.drop_connections) == 2
        assert a.wait_closed() == b"" and b.wait_closed() == b""
        wait_for(lambda: st.call(st.server.workers) == [])


def test_max_connections() -> None:
    with ServerThread(max_connections=2) as st:
        conns = [Raw("127.0.0.1", st.port) for _ in range(3)]
        try:
            assert conns[0].hello() == b"+OK\r\n"
            assert conns[1].hello() == b"+OK\r\n"
            assert conns[2].hello() == b"+OK\r\n"
            assert conns[2].wait_closed() == b"-ERR too many connections: 3\r\n"
            conns[1].close()
            wait_for(lambda: st.call(lambda: st.server.connections) == 1)
            with Raw("127.0.0.1", st.port) as again:
                again.hello()
                assert again.cmd(b"FLUSH\r\n") == b"+OK\r\n"
        finally:
            for c in conns:
                c.close()


def test_max_line_closes_the_connection() -> None:
    with ServerThread(max_line=1024) as st:
        with Raw("127.0.0.1", st.port) as ok:
            ok.hello()
            assert ok.cmd(b"PUSH " + b" " * 900 + b"{}\r\n") == b"-ERR jobs must have a reasonable jid parameter\r\n"
        with Raw("127.0.0.1", st.port) as big:
            big.hello()
            big.send(b"PUSH " + b" " * 3000)  # no newline yet: already too long
            assert big.wait_closed() == b""
        with Raw("127.0.0.1", st.port) as big:
            big.hello()
            big.send(b"PUSH " + b" " * 3000 + b"{}\r\n")
            assert big.wait_closed() == b""


def test_stop_closes_client_connections() -> None:
    st = ServerThread().start()
    raw = Raw("127.0.0.1", st.port)
    try:
        raw.hello()
        raw.send(b"FETCH nothing\r\n")  # even a blocked FETCH
        st.stop()
        assert raw.wait_closed() == b""
    finally:
        raw.close()
        st.stop()


@pytest.fixture
def cert(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(crt), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return str(crt), str(key)


def test_tls(cert) -> None:
    crt, key = cert
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    with ServerThread(ssl=ctx) as st:
        assert st.url.startswith("tcp+tls://127.0.0.1:")
        client = ssl.create_default_context(cafile=crt)
        raw = Raw("127.0.0.1", st.port)
        raw.sock = client.wrap_socket(raw.sock, server_hostname="127.0.0.1")
        with raw:
            assert raw.hello() == b"+OK\r\n"
            assert raw.cmd(b"FLUSH\r\n") == b"+OK\r\n"


def test_password_in_url() -> None:
    with ServerThread(password="p@ss word") as st:
        assert st.url == f"tcp://:p%40ss%20word@127.0.0.1:{st.port}"


# --------------------------------------------------------------------------- CLI server process

def _spawn(*args: str, env: dict | None = None) -> subprocess.Popen:
    full_env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "faktory", "server", *args], cwd=ROOT,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _listening_port(proc: subprocess.Popen) -> tuple[int, str]:
    seen = []
    for raw in proc.stdout:  # the server logs where it listens before it accepts
        line = raw.decode()
        seen.append(line)
        if "listening on tcp://127.0.0.1:" in line:
            return int(line.split("listening on tcp://127.0.0.1:")[1].split()[0]), line
    raise AssertionError("server exited without listening: " + "".join(seen))


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_cli_serves_and_stops_on_sigterm(loop: str) -> None:
    proc = _spawn("--bind", "127.0.0.1:0", "--loop", loop, env={"FAKTORY_PASSWORD": "envpw"})
    try:
        port, line = _listening_port(proc)
        assert "password required" in line and "in memory" in line
        with Raw("127.0.0.1", port) as raw:
            assert raw.hello("envpw") == b"+OK\r\n"
            assert raw.cmd(b'PUSH {"jid":"cli-jid-0001","jobtype":"C","args":[],"retry":25}\r\n') == b"+OK\r\n"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            assert raw.wait_closed() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_cli_sigterm_the_moment_it_says_listening_is_a_clean_stop(loop: str, tmp_path) -> None:
    # A supervisor (or a test) may signal as soon as the line appears: the handlers are in
    # before it is printed, so the process stops cleanly (exit 0, storage committed)
    # instead of dying of the signal's default action (exit -15).
    db = str(tmp_path / "early.db")
    for attempt in range(5):  # each attempt signals at once, without a command in between
        proc = _spawn("--bind", "127.0.0.1:0", "--loop", loop, "--storage", db)
        try:
            _listening_port(proc)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0, f"attempt {attempt}: exit {proc.returncode}"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def test_cli_rejects_bad_arguments() -> None:
    proc = _spawn("--tls-cert", "only-cert.pem")
    out = proc.communicate(timeout=20)[0].decode()
    assert proc.returncode == 2 and "--tls-key" in out


# --------------------------------------------------------------------------- pytest plugin

PLUGIN_TEST = textwrap.dedent('''
    import socket

    def hello(url):
        host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
        s = socket.create_connection((host.split("@")[-1], int(port)))
        f = s.makefile("rb")
        f.readline()
        s.sendall(b'HELLO {"v":2}\\r\\n')
        assert f.readline() == b"+OK\\r\\n"
        return s, f

    def test_server(faktory_server):
        assert faktory_server.url.startswith("tcp://127.0.0.1:")
        hello(faktory_server.url)

    def test_url(faktory_url):
        s, f = hello(faktory_url)
        s.sendall(b"INFO\\r\\n")
        f.readline()
        assert b'"total_enqueued":0' in f.readline()
        s.sendall(b'PUSH {"jid":"plugin-0001","jobtype":"P","args":[],"retry":25}\\r\\n')
        assert f.readline() == b"+OK\\r\\n"
''')


def _run_pytest(tmp_path, env: dict) -> subprocess.CompletedProcess:
    (tmp_path / "test_plugin_use.py").write_text(PLUGIN_TEST)
    registered = any(ep.name == "faktory" for ep in entry_points(group="pytest11"))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", str(tmp_path)]
    if not registered:
        args[3:3] = ["-p", "faktory.testing"]
    full_env = dict(os.environ, PYTHONPATH=ROOT, **env)
    full_env.pop("FAKTORY_TEST_URL", None) if "FAKTORY_TEST_URL" not in env else None
    return subprocess.run(args, cwd=tmp_path, env=full_env, capture_output=True, timeout=120)


def test_pytest_plugin_fixtures(tmp_path) -> None:
    result = _run_pytest(tmp_path, {})
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"2 passed" in result.stdout


def test_pytest_plugin_against_a_given_url(tmp_path) -> None:
    with ServerThread() as st:
        with Raw("127.0.0.1", st.port) as raw:  # leftovers the fixture must FLUSH
            raw.hello()
            raw.cmd(b'PUSH {"jid":"leftover-01","jobtype":"P","args":[],"retry":25}\r\n')
        result = _run_pytest(tmp_path, {"FAKTORY_TEST_URL": st.url})
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert "1 passed, 1 skipped" in out and "FAKTORY_TEST_URL is set" in out
