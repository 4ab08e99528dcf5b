"""Each integration's dependency is optional: without them the package imports and runs,
and using an integration whose extra is missing raises MissingExtraError (an ImportError)
naming the extra.  The packages are hidden by a None entry in sys.modules, in a child
process."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from faktory import FaktoryError, MissingExtraError

ROOT = Path(__file__).resolve().parent.parent
EXTRA_MODULES = ["django", "django_tasks", "prometheus_client", "opentelemetry", "asgiref"]


def run(code: str, hide=EXTRA_MODULES, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    prologue = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in hide)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", prologue + textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


def test_missing_extra_error_is_an_import_error_naming_the_extra():
    exc = MissingExtraError("the thing", "metrics", "prometheus_client")
    assert isinstance(exc, ImportError) and isinstance(exc, FaktoryError)
    assert str(exc) == ("the thing needs the optional package 'prometheus_client', which is not "
                        "installed: pip install 'faktory-turbo[metrics]'")
    assert (exc.extra, exc.name) == ("metrics", "prometheus_client")


def test_without_any_extra_the_package_imports_and_runs_a_job():
    proc = run("""
        import asyncio
        import faktory, faktory.client, faktory.worker, faktory.enterprise, faktory.contrib
        import faktory.contrib.metrics as metrics
        from faktory import Client, Job, Worker
        from faktory.server import ServerThread

        async def main(url):
            hook = type("Hook", (metrics.MetricsHook,), {"job": lambda self, m: seen.append(m.outcome)})()
            worker = Worker(url=url, queues=["q"], concurrency=1, middleware=[metrics.Metrics(hook)])
            done = asyncio.Event()
            worker.register("ping", lambda: done.set())
            async with Client(url) as client:
                await client.push(Job("ping", queue="q"))
            task = asyncio.ensure_future(worker.work(handle_signals=False))
            await asyncio.wait_for(done.wait(), 20)
            await worker.stop()
            await task
            return worker.processed

        seen = []
        with ServerThread() as st:
            processed = asyncio.run(main(st.url))
        loaded = sorted(m for m in ("django", "prometheus_client", "opentelemetry") if sys.modules.get(m))
        print(processed, seen, loaded)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "1 ['ok'] []"


@pytest.mark.parametrize("code, extra, module", [
    ("import faktory.contrib.tracing", "tracing", "opentelemetry.trace"),
    ("import faktory.contrib.django", "django", "django"),
    ("from faktory.contrib.metrics import PrometheusMetrics; PrometheusMetrics()", "metrics", "prometheus_client"),
    ("from faktory.contrib.metrics import serve_prometheus; serve_prometheus(0)", "metrics", "prometheus_client"),
])
def test_a_missing_extra_names_the_extra_to_install(code, extra, module):
    proc = run(f"""
        from faktory import MissingExtraError
        try:
            {code}
        except MissingExtraError as exc:
            assert isinstance(exc, ImportError)
            print(exc.extra, exc.name)
            print(exc)
    """)
    assert proc.returncode == 0, proc.stderr
    first, message = proc.stdout.splitlines()[:2]
    assert first == f"{extra} {module}"
    assert message.endswith(f"pip install 'faktory-turbo[{extra}]'")


def test_django_without_a_tasks_framework_names_the_extra():
    pytest.importorskip("django")
    proc = run("""
        import django
        try:
            import django.tasks.base
            print("django 6: built in")
        except ImportError:
            from faktory import MissingExtraError
            try:
                import faktory.contrib.django
            except MissingExtraError as exc:
                print(exc)
    """, hide=["django_tasks"])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    assert out == "django 6: built in" or (
        "django-tasks backport" in out and out.endswith("pip install 'faktory-turbo[django]'")), out


@pytest.mark.parametrize("flag, extra", [(["--metrics", "0"], "metrics"), (["--django"], "django")])
def test_worker_flags_without_their_extra_exit_2_naming_it(flag, extra):
    proc = run(f"""
        from faktory.cli import main
        sys.exit(main(["worker", "--url", "tcp://127.0.0.1:1", *{flag!r}]))
    """)
    assert proc.returncode == 2, proc.stderr
    assert f"pip install 'faktory-turbo[{extra}]'" in proc.stderr
