"""Bad input, case by case: the exact exception and message, raised before anything is sent,
and never the password, in the message, a log record or a repr.

Client cases run against a port where nothing listens: a call that tried to send would
try to connect (and fail differently, after a while); each case also checks that no
connection attempt was made.
"""
from __future__ import annotations

import asyncio
import logging
import re
import ssl
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any, Callable

import pytest

from faktory import Client, Job, Worker
from faktory.errors import ProtocolError
from faktory.server import free_port

SECRET = "pw-s3cret-42"
URL = f"tcp://:{SECRET}@127.0.0.1:{free_port()}"


def _client(**kw: Any) -> Client:
    return Client(URL, **kw)


CONSTRUCTORS: list[tuple[str, Callable[[], Any], type[BaseException], str]] = [
    ("url not a str", lambda: Client(123), TypeError, r"^a Faktory URL must be a str, not int$"),  # type: ignore[arg-type]
    ("url of another scheme", lambda: Client(f"http://:{SECRET}@h"), ValueError,
     r"^Faktory URL must start with tcp:// or tcp\+tls://, got 'http://:\*\*\*@h'$"),
    ("url with a bad port", lambda: Client(f"tcp://:{SECRET}@localhost:notaport"), ValueError,
     r"^invalid port in Faktory URL 'tcp://:\*\*\*@localhost:notaport'$"),
    ("port 0", lambda: _client(port=0), ValueError, r"^port must be an int from 1 to 65535, got 0$"),
    ("port a str", lambda: _client(port="7419"), ValueError, r"^port must be an int from 1 to 65535, got '7419'$"),
    ("port too big", lambda: _client(port=70000), ValueError, r"got 70000$"),
    ("password not a str", lambda: _client(password=123), TypeError, r"^password must be a str, not int$"),
    ("host empty", lambda: _client(host=""), TypeError, r"^host must be a non-empty str, not ''$"),
    ("pool_size 0", lambda: _client(pool_size=0), ValueError, r"^pool_size must be an int >= 1, got 0$"),
    ("pool_size a bool", lambda: _client(pool_size=True), ValueError, r"^pool_size must be an int >= 1, got True$"),
    ("pipeline_depth 0", lambda: _client(pipeline_depth=0), ValueError, r"^pipeline_depth must be an int >= 1, got 0$"),
    ("connect_timeout 0", lambda: _client(connect_timeout=0), ValueError,
     r"^connect_timeout must be a number of seconds > 0, got 0$"),
    ("connect_timeout negative", lambda: _client(connect_timeout=-1), ValueError, r"got -1$"),
    ("command_timeout negative", lambda: _client(command_timeout=-1), ValueError,
     r"^command_timeout must be a number of seconds > 0 or None, got -1$"),
    ("command_timeout NaN", lambda: _client(command_timeout=float("nan")), ValueError, r"got nan$"),
    ("command_timeout infinite", lambda: _client(command_timeout=float("inf")), ValueError, r"got inf$"),
    ("reconnect_timeout negative", lambda: _client(reconnect_timeout=-1), ValueError,
     r"^reconnect_timeout must be a number of seconds >= 0, got -1$"),
    ("first_connect_timeout a str", lambda: _client(first_connect_timeout="3"), ValueError,
     r"^first_connect_timeout must be a number of seconds >= 0, got '3'$"),
    ("tls a str", lambda: _client(tls="yes"), TypeError,
     r"^tls must be None, a bool or an ssl.SSLContext, not str: 'yes'$"),
    ("wid empty", lambda: _client(wid=""), ValueError, r"^wid must be a non-empty str, got ''$"),
    ("labels a str", lambda: _client(labels="blue"), TypeError,
     r"^labels must be an iterable of str, not the str 'blue'$"),
    ("a label not a str", lambda: _client(labels=[1]), TypeError, r"^each label must be a non-empty str, not 1$"),
    ("hostname not a str", lambda: _client(hostname=5), TypeError, r"^hostname must be a non-empty str, not 5$"),
    ("pid negative", lambda: _client(pid=-1), ValueError, r"^pid must be an int >= 0, got -1$"),
    ("max_command_bytes tiny", lambda: _client(max_command_bytes=10), ValueError,
     r"^max_command_bytes must be an int >= 64 or None, got 10$"),
    # Job fields
    ("job queue with a space", lambda: Job("X", queue="bad queue"), ValueError,
     r"^queue must match \[a-zA-Z0-9\._-\]\+, got 'bad queue'$"),
    ("job reserve_for too short", lambda: Job("X", reserve_for=10), ValueError,
     r"^reserve_for must be between 60 and 86400 seconds, got 10$"),
    ("job at naive", lambda: Job("X", at=datetime(2030, 1, 1)), ValueError, r"^at must be a timezone-aware datetime, got naive datetime.datetime\(2030, 1, 1, 0, 0\)$"),
    ("job jid too short", lambda: Job("X", jid="short"), ValueError, r"^jid must be at least 8 characters, got 'short'$"),
    ("job priority", lambda: Job("X", priority=5), TypeError, r"priority"),  # type: ignore[call-arg]
    ("job jobtype empty", lambda: Job(""), ValueError, r"^jobtype must not be empty, got ''$"),
    # Worker
    ("worker queue name", lambda: Worker(queues=["bad!"]), ValueError,
     r"^queues: each queue name must match \[a-zA-Z0-9\._-\]\+, got 'bad!'$"),
    ("worker queue weight name", lambda: Worker(queues={"bad queue": 1}), ValueError,
     r"^queues: each queue name must match .*, got 'bad queue'$"),
    ("worker queues a str", lambda: Worker(queues="default"), TypeError,
     r"^queues must be a sequence of names, not the string 'default'$"),
    ("worker no queues", lambda: Worker(queues=[]), ValueError, r"^queues: at least one queue is needed$"),
    ("worker queue weight 0", lambda: Worker(queues={"a": 0}), ValueError, r"^queue 'a': weight must be a number > 0, not 0$"),
    ("worker queue twice", lambda: Worker(queues=["a", "a"]), ValueError, r"^queues: duplicate names in \['a', 'a'\]$"),
    ("worker concurrency 0", lambda: Worker(concurrency=0), ValueError, r"^concurrency must be an int >= 1, not 0$"),
    ("worker concurrency float", lambda: Worker(concurrency=1.5), ValueError, r"not 1\.5$"),  # type: ignore[arg-type]
    ("worker timeout negative", lambda: Worker(timeout=-1), ValueError,
     r"^timeout must be a number of seconds >= 0, got -1$"),
    ("worker beat_interval 0", lambda: Worker(beat_interval=0), ValueError,
     r"^beat_interval must be a number of seconds > 0, got 0$"),
    ("worker fetchers 0", lambda: Worker(fetchers=0), ValueError, r"^fetchers must be an int >= 1, not 0$"),
    ("worker pool_size 0", lambda: Worker(pool_size=0), ValueError, r"^pool_size must be an int >= 1, not 0$"),
    ("worker command_timeout negative", lambda: Worker(command_timeout=-1), ValueError,
     r"^command_timeout must be a number of seconds > 0 or None, got -1$"),
    ("worker labels a str", lambda: Worker(labels="x"), TypeError, r"^labels must be an iterable of str"),
    ("worker wid empty", lambda: Worker(wid=""), ValueError, r"^wid must be a non-empty str, not ''$"),
    ("register a bad jobtype", lambda: Worker().register(5, print), TypeError,  # type: ignore[arg-type]
     r"^jobtype must be a non-empty str, not 5$"),
    ("register something not callable", lambda: Worker().register("x", 5), TypeError,  # type: ignore[arg-type]
     r"^job function for 'x' must be callable, not 5$"),
    ("use something not callable", lambda: Worker().use(5), TypeError,  # type: ignore[arg-type]
     r"^middleware must be an async callable mw\(ctx, next\), not 5$"),
]


@pytest.mark.parametrize("case,make,exc_type,message", CONSTRUCTORS, ids=[c[0] for c in CONSTRUCTORS])
def test_bad_constructor_argument(case, make, exc_type, message, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(exc_type) as info:
        make()
    assert re.search(message, str(info.value)), str(info.value)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert not any(SECRET in r.getMessage() for r in caplog.records)


ENV_CASES = [
    ("FAKTORY_PROVIDER holds the URL itself", {"FAKTORY_PROVIDER": f"tcp://:{SECRET}@h"}, ValueError,
     r"^FAKTORY_PROVIDER must name the environment variable .*: 'tcp://:\*\*\*@h'$"),
    ("FAKTORY_URL with a bad port", {"FAKTORY_URL": f"tcp://:{SECRET}@h:bad"}, ValueError,
     r"^invalid port in Faktory URL 'tcp://:\*\*\*@h:bad'$"),
    ("the variable FAKTORY_PROVIDER names, bad", {"FAKTORY_PROVIDER": "MY_URL", "MY_URL": f"tcp+tls://:{SECRET}@h:x"},
     ValueError, r"^invalid port in Faktory URL 'tcp\+tls://:\*\*\*@h:x'$"),
]


@pytest.mark.parametrize("case,env,exc_type,message", ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_bad_url_from_the_environment(case, env, exc_type, message, monkeypatch):
    for name in ("FAKTORY_PROVIDER", "FAKTORY_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(exc_type, match=message) as info:
        Client()
    assert SECRET not in str(info.value)


def _unencodable() -> Job:
    return Job("X", {1, 2})


CALLS: list[tuple[str, Callable[[Client], Any], type[BaseException], str]] = [
    ("push an unencodable argument", lambda c: c.push(_unencodable()), TypeError,
     r"^args is not JSON-serialisable \(Object of type set is not JSON serializable\): \[\{1, 2\}\]$"),
    ("push a str", lambda c: c.push("job"), TypeError, r"^a job must be a Job or a dict, not str: 'job'$"),
    ("push a dict without jobtype", lambda c: c.push({"args": []}), (TypeError, ValueError), r"jobtype"),
    ("push a job over the command limit", lambda c: c.push(Job("Big", "x" * 2000)), ValueError,
     r"^job [0-9a-f]+ \(Big\) is 2,\d{3} bytes encoded, over the 1,024-byte command limit"),
    ("fetch no queue", lambda c: c.fetch(), ValueError, r"^fetch needs at least one queue name$"),
    ("fetch a bad queue", lambda c: c.fetch("ok", "bad!"), ValueError, r"^queue must match .*, got 'bad!'$"),
    ("ack a non-str jid", lambda c: c.ack(5), TypeError, r"^jid must be str, not int: 5$"),
    ("fail a non-str jid", lambda c: c.fail(5), TypeError, r"^jid must be a str, not int: 5$"),
    ("beat with no wid", lambda c: c.beat(), ValueError, r"^beat\(\) needs a worker id"),
    ("queue_pause of nothing", lambda c: c.queue_pause(), ValueError, r'^give at least one queue name \(or "\*"\)$'),
    ("queue_latency wildcard", lambda c: c.queue_latency("*"), ValueError, r'does not support the wildcard "\*"'),
    ("queue_remove a bad name", lambda c: c.queue_remove("bad name"), ValueError, r"got 'bad name'$"),
    ("push_bulk chunk_size 0", lambda c: c.push_bulk([], chunk_size=0), ValueError,
     r"^chunk_size must be an int >= 1, got 0$"),
    ("push_bulk concurrency 0", lambda c: c.push_bulk([], concurrency=0), ValueError,
     r"^concurrency must be an int >= 1, got 0$"),
    ("raw command with a space", lambda c: c.send("FETCH", "a b"), ValueError, r"contains a space"),
    ("mutation glob with a space", lambda c: c.dead.matching("a b").kill(), ValueError, r"space"),
    ("clear of a filtered mutation", lambda c: c.retries.of_type("X").clear(), ValueError, r"clear"),
]


@pytest.mark.parametrize("case,call,exc_type,message", CALLS, ids=[c[0] for c in CALLS])
async def test_bad_call_raises_before_anything_is_sent(case, call, exc_type, message):
    client = Client(URL, max_command_bytes=1024, first_connect_timeout=30)
    with pytest.raises(exc_type) as info:
        await asyncio.wait_for(call(client), 5)  # would wait 30 s for a connection if it tried
    assert re.search(message, str(info.value)), str(info.value)
    assert client._connect_attempts == 0 and client._size == 0  # nothing was sent
    assert SECRET not in str(info.value) and SECRET not in repr(client)
    await client.close()


async def test_beat_with_a_bad_state_and_rss():
    client = Client(URL, wid="w-00000001")
    with pytest.raises(ValueError, match=r"^current_state must be 'quiet' or 'terminate', got 'dancing'$"):
        await client.beat("dancing")
    with pytest.raises(TypeError, match=r"^rss_kb must be an int >= 0, got -1$"):
        await client.beat(rss_kb=-1)
    assert client._connect_attempts == 0
    await client.close()


def test_reprs_show_no_password():
    client = Client(URL, wid="w-00000001")
    assert SECRET not in repr(client) and SECRET not in client.url and "***" not in client.url
    assert repr(client).startswith("<Client tcp://127.0.0.1:")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "faktory", *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})


CLI_CASES = [
    ("worker url bad port", ("worker", "--url", f"tcp://:{SECRET}@localhost:notaport", "-r", "os"), 2,
     r"invalid port in Faktory URL 'tcp://:\*\*\*@localhost:notaport'"),
    ("worker url bad scheme", ("worker", "--url", f"redis://:{SECRET}@localhost", "-r", "os"), 2,
     r"must start with tcp://"),
    ("worker concurrency 0", ("worker", "-c", "0", "-r", "os"), 2, r"-c must be >= 1"),
    ("worker weight 0", ("worker", "-q", "a,0", "-r", "os"), 2, r"weight must be > 0"),
    ("worker import fails", ("worker", "-r", "no_such_module_anywhere"), 2, r"-r no_such_module_anywhere: import failed"),
    ("bench url bad port", ("bench", "--url", f"tcp://:{SECRET}@localhost:notaport"), 2, r"invalid port"),
    ("bench phases", ("bench", "--phases", "nope"), 2, r"unknown phase 'nope'"),
    ("unknown command", ("frobnicate",), 2, r"unknown command 'frobnicate'"),
    ("server bind port out of range", ("server", "--bind", "127.0.0.1:99999"), 2,
     r"bad --bind '127.0.0.1:99999' .*port 99999 is outside 0..65535"),
    ("server bind port not a number", ("server", "--bind", "127.0.0.1:x"), 2, r"bad --bind '127.0.0.1:x'"),
    ("server web port not a number", ("server", "--web", "localhost:x"), 2, r"bad --web 'localhost:x'"),
    ("server web port out of range", ("server", "--web", "99999"), 2, r"port 99999 is outside 0..65535"),
    ("server tls files missing", ("server", "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"),
     2, r"--tls-cert '/nonexistent.pem': no such file"),
    ("server tls cert not a certificate", ("server", "--tls-cert", "/etc/hostname", "--tls-key", "/etc/hostname"),
     2, r"cannot use --tls-cert/--tls-key"),
    ("server tls cert without key", ("server", "--tls-cert", "/etc/hostname"), 2, r"go together"),
    ("server scan intervals", ("server", "--scan-intervals", "nonsense"), 2, r"--scan-intervals"),
    ("server storage in no directory", ("server", "--storage", "/proc/nope/x.db"), 1,
     r"directory '/proc/nope' does not exist"),
    ("operator quiet without wid", ("server", "quiet"), 2, r"required: wid"),
]


@pytest.mark.parametrize("case,args,code,message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_bad_command_line_is_a_usage_error_without_a_traceback(case, args, code, message):
    proc = cli(*args)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert re.search(message, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr and SECRET not in proc.stdout + proc.stderr


async def test_a_tls_client_against_a_plain_server_fails_at_once_naming_tls(faktory_server):
    client = Client(faktory_server.url.replace("tcp://", "tcp+tls://"), reconnect_timeout=30,
                    first_connect_timeout=30)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionError, match=r"TLS handshake .* failed .*use tcp:// rather than tcp\+tls://"):
        await client.info()
    assert loop.time() - started < 3  # not the 30 s of retrying
    await client.close()


async def test_a_closed_port_at_first_connect_fails_after_the_short_window():
    client = Client(f"tcp://127.0.0.1:{free_port()}", first_connect_timeout=0.5, reconnect_timeout=30)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectionError, match=r"never reached: waited up to first_connect_timeout=0\.5s"):
        await client.info()
    assert loop.time() - started < 2.5
    await client.close()


def test_protocol_error_is_no_connection_error_for_callers_to_retry():
    assert not issubclass(ProtocolError, ConnectionError)
    assert ssl  # (TLS cases above need the ssl module)
    assert timedelta
