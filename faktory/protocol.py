"""Chooses the codec: the compiled ``faktory._resp`` when built, else ``faktory._resp_py``.

``FAKTORY_NO_EXTENSIONS=1`` (any value but empty, ``0``, ``false``, ``no``) forces the
pure-Python codec: the compiled module is then not even imported, as with aiohttp's and
msgpack's switches.  ``IMPLEMENTATION`` says which one is active (``"cython"`` or
``"python"``); ``CODECS`` holds every codec usable here, by implementation name, so tests
and benchmarks can run both in one process (``Connection.open(..., codec=CODECS["python"])``).
``COMPILED_IMPORT_ERROR`` keeps the reason the compiled codec is missing, if it is.
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import warnings
from types import ModuleType
from typing import Iterator

from faktory import _resp_py
from faktory._const import NEED_DATA

__all__ = ["CODECS", "COMPILED_IMPORT_ERROR", "IMPLEMENTATION", "NEED_DATA", "codec",
           "extensions_disabled", "selected"]

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


@contextlib.contextmanager
def selected(name: str) -> Iterator[ModuleType]:
    """For tests and benchmarks that compare the codecs in one process: inside the block,
    ``codec`` (what new ``Connection``, ``Client`` and ``Worker`` objects take, and keep)
    is the codec named ``name`` (``"cython"`` or ``"python"``).  ``IMPLEMENTATION`` still
    names the codec chosen at import.  Not thread-safe; not for production code."""
    global codec
    chosen = CODECS[name]
    before, codec = codec, chosen
    try:
        yield chosen
    finally:
        codec = before


def deprecated_codec_argument(value: ModuleType | str, owner: str) -> ModuleType:
    """The codec a deprecated ``codec=`` argument names (with a ``DeprecationWarning``)."""
    warnings.warn(f"{owner}(codec=...) is deprecated and goes in the next release: select the codec "
                  "with FAKTORY_NO_EXTENSIONS, or in tests with faktory.protocol.selected(name)",
                  DeprecationWarning, stacklevel=3)
    return CODECS[value] if isinstance(value, str) else value
