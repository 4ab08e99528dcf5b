"""Chooses the codec: the compiled ``faktory._resp`` when built, else ``faktory._resp_py``.

``FAKTORY_NO_EXTENSIONS=1`` forces the pure-Python codec.  ``IMPLEMENTATION`` says
which one is active (``"cython"`` or ``"python"``); ``CODECS`` holds every codec that
imports here, by name, so tests and benchmarks can run both in one process.
"""
from __future__ import annotations

import os
from types import ModuleType

from faktory import _resp_py

__all__ = ["CODECS", "codec", "IMPLEMENTATION", "NEED_DATA"]

CODECS: dict[str, ModuleType] = {"python": _resp_py}
try:
    from faktory import _resp as _compiled
except ImportError:  # not built: no compiler, FAKTORY_NO_EXTENSIONS at build time, ...
    _compiled = None
else:
    CODECS["cython"] = _compiled

if _compiled is not None and not os.environ.get("FAKTORY_NO_EXTENSIONS"):
    codec: ModuleType = _compiled
else:
    codec = _resp_py

IMPLEMENTATION: str = codec.IMPLEMENTATION
NEED_DATA = _resp_py.NEED_DATA
