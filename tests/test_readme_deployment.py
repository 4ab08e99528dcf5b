"""The README's deployment notes work as written: its openssl commands make a CA and a
server certificate, a TLS server with a password uses them, and clients that trust the CA
(in code, or with SSL_CERT_FILE) connect while one that does not is refused."""
from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from faktory import Client, Job
from faktory.errors import HandshakeError
from faktory.server import ServerThread

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command is not installed")


def deployment_block(marker: str) -> str:
    section = README[README.index("## Deployment"):]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return next(block for block in blocks if marker in block)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", deployment_block("openssl req -x509")],
                          cwd=directory, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "server.pem: OK" in proc.stdout  # the openssl verify line
    return directory


@pytest.fixture
def tls_server(pki):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki / "server.pem", pki / "server.key")
    with ServerThread(port=0, ssl=context, password="s3cret") as server:
        yield server


def test_readme_names_the_files_faktory_loads_and_the_url():
    text = deployment_block("private.key.pem")
    assert "/etc/faktory/private.key.pem" in text and "/etc/faktory/public.cert.pem" in text
    assert 'FAKTORY_URL="tcp+tls://:s3cret@faktory.internal:7419"' in deployment_block("SSL_CERT_FILE")


async def test_client_trusting_the_ca_in_code_connects_with_the_password(tls_server, pki):
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    for host in ("localhost", "127.0.0.1"):  # both are in the certificate's names
        async with Client(f"tcp+tls://:s3cret@{host}:{tls_server.port}", tls=context) as client:
            await client.push(Job("deployed"))
            assert (await client.info())["faktory"]["queues"]["default"] >= 1


async def test_client_that_does_not_trust_the_ca_is_refused(tls_server):
    client = Client(f"tcp+tls://:s3cret@localhost:{tls_server.port}", reconnect_timeout=1)
    with pytest.raises(HandshakeError, match="certificate"):
        await client.connect()
    await client.close()


def test_ssl_cert_file_makes_the_plain_url_work(tls_server, pki):
    code = ("import asyncio\nfrom faktory import Client, Job\n"
            "async def main():\n    async with Client() as c:\n        print(await c.push(Job('x')))\n"
            "asyncio.run(main())\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), SSL_CERT_FILE=str(pki / "ca.pem"),
               FAKTORY_URL=f"tcp+tls://:s3cret@localhost:{tls_server.port}")
    env.pop("FAKTORY_PROVIDER", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip()) >= 8  # the jid


@pytest.mark.parametrize("command", [["worker"], ["server"], ["bench"], ["server", "workers"]], ids=" ".join)
def test_configuration_table_lists_every_command_line_option(command):
    proc = subprocess.run([sys.executable, "-m", "faktory", *command, "--help"], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert proc.returncode == 0, proc.stderr
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])\b", proc.stdout)) - {"-h", "--help"}
    table = README[README.index("## Configuration"):README.index("## Deployment")]
    missing = sorted(flag for flag in flags if f"`{flag}" not in table and f" {flag}" not in table
                     and f"{flag}`" not in table)
    assert not missing, f"faktory {' '.join(command)}: not in the README's configuration table: {missing}"
