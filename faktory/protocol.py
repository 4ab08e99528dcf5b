"""Chooses the codec: the compiled ``faktory._resp`` when built, else ``faktory._resp_py``.

``FAKTORY_NO_EXTENSIONS=1`` (any value but empty, ``0``, ``false``, ``no``) forces the
pure-Python codec: the compiled module is then not even imported, as with aiohttp's and
msgpack's switches.  ``IMPLEMENTATION`` says which one is active (``"cython"`` or
``"python"``); ``CODECS`` holds every codec usable here, by implementation name, so tests
and benchmarks can run both in one process (``Connection.open(..., codec=CODECS["python"])``).
``COMPILED_IMPORT_ERROR`` keeps the reason the compiled codec is missing, if it is.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from types import ModuleType

from faktory import _resp_py
from faktory._const import NEED_DATA

__all__ = ["CODECS", "COMPILED_IMPORT_ERROR", "IMPLEMENTATION", "NEED_DATA", "codec",
           "extensions_disabled"]

log = logging.getLogger(__name__)


def extensions_disabled() -> bool:
    """True when ``FAKTORY_NO_EXTENSIONS`` asks for pure Python (same rule as setup.py)."""
    return os.environ.get("FAKTORY_NO_EXTENSIONS", "").strip().lower() not in ("", "0", "false", "no")


CODECS: dict[str, ModuleType] = {}
COMPILED_IMPORT_ERROR: str | None = None

if extensions_disabled():
    COMPILED_IMPORT_ERROR = "disabled by FAKTORY_NO_EXTENSIONS"
else:
    try:
        from faktory import _resp as _compiled
    except ImportError as exc:  # not built: no compiler, no Cython, built for another Python...
        if importlib.util.find_spec("faktory._resp") is None:
            COMPILED_IMPORT_ERROR = "not built (no faktory._resp extension module)"
        else:
            COMPILED_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"
        log.debug("compiled codec unavailable (%s); using pure Python", COMPILED_IMPORT_ERROR)
    else:
        CODECS[_compiled.IMPLEMENTATION] = _compiled
CODECS[_resp_py.IMPLEMENTATION] = _resp_py

#: The active codec: the first of ``CODECS`` (compiled when available).
codec: ModuleType = next(iter(CODECS.values()))
IMPLEMENTATION: str = codec.IMPLEMENTATION
