"""A fault put into the benchmarks' server child processes on purpose, for the tests of the
gates (``tests/test_benchmark_gates.py``); never on ``sys.path`` otherwise.

``bench_server.py`` puts this folder first on the server child's ``PYTHONPATH`` when
``FAKTORY_BENCH_INJECT=no-push-fast-path``: Python then imports this module at start-up,
before the server exists, and it replaces the codecs' ``scan_push`` (the server's single
PUSH fast path) with one that never matches, so every PUSH takes the general path (a full
JSON parse and job decoding).  Nothing else changes: the replies and the stored jobs are
the same, only the server's CPU per PUSH grows.
"""
from __future__ import annotations

import os

if os.environ.get("FAKTORY_BENCH_INJECT") == "no-push-fast-path":
    from faktory import protocol

    def _no_fast_path(line: bytes, start: int, ts: bytes) -> None:
        return None

    for _codec in protocol.CODECS.values():
        _codec.scan_push = _no_fast_path  # type: ignore[attr-defined]
    protocol.codec.scan_push = _no_fast_path  # type: ignore[attr-defined]
