"""Which codec is active, and the switches that choose it.

``FAKTORY_REQUIRE_COMPILED=1`` (set by CI) turns "the compiled codec did not build" from a
silent fallback into a failure.
"""
from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys

import pytest

import faktory
from faktory import _resp_py, protocol

ROOT = str(pathlib.Path(faktory.__file__).resolve().parent.parent)


def run_python(code: str, **env_overrides: str) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("FAKTORY_NO_EXTENSIONS", "FAKTORY_REQUIRE_COMPILED")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_overrides)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def compiled_importable() -> bool:
    try:
        importlib.import_module("faktory._resp")
    except ImportError:
        return False
    return True


@pytest.mark.skipif(os.environ.get("FAKTORY_REQUIRE_COMPILED") != "1",
                    reason="FAKTORY_REQUIRE_COMPILED=1 not set (CI sets it)")
def test_compiled_codec_was_built_when_required():
    try:
        module = importlib.import_module("faktory._resp")
    except ImportError as exc:
        pytest.fail(f"compiled codec required but not importable: {exc}; "
                    f"protocol says: {protocol.COMPILED_IMPORT_ERROR}")
    assert module.IMPLEMENTATION == "cython"
    if not protocol.extensions_disabled():
        assert protocol.IMPLEMENTATION == "cython"
        assert protocol.codec is module


def test_active_codec_is_listed_and_consistent():
    assert protocol.codec is protocol.CODECS[protocol.IMPLEMENTATION]
    assert protocol.CODECS["python"] is _resp_py
    assert protocol.NEED_DATA is _resp_py.NEED_DATA
    assert next(iter(protocol.CODECS)) == protocol.IMPLEMENTATION


def test_compiled_codec_preferred_when_available():
    if protocol.extensions_disabled():
        assert protocol.IMPLEMENTATION == "python"
    elif compiled_importable():
        assert protocol.IMPLEMENTATION == "cython"
        assert list(protocol.CODECS) == ["cython", "python"]
    else:
        assert protocol.IMPLEMENTATION == "python"
        assert protocol.COMPILED_IMPORT_ERROR


def test_no_extensions_env_forces_pure_python_in_a_fresh_process():
    out = run_python("import sys, faktory.protocol as p; "
                     "print(p.IMPLEMENTATION, sorted(p.CODECS), 'faktory._resp' in sys.modules, "
                     "p.COMPILED_IMPORT_ERROR)",
                     FAKTORY_NO_EXTENSIONS="1")
    assert out == "python ['python'] False disabled by FAKTORY_NO_EXTENSIONS"


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_no_extensions_env_falsy_values_do_not_disable(value):
    if not compiled_importable():
        pytest.skip("compiled codec not built")
    out = run_python("import faktory.protocol as p; print(p.IMPLEMENTATION)",
                     FAKTORY_NO_EXTENSIONS=value)
    assert out == "cython"
