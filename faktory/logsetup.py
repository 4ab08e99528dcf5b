"""Logging for the command-line entry points: ``--log-level`` and ``--log-format``.

Every ``faktory`` command takes ``--log-level debug|info|warning|error`` (default:
``$FAKTORY_LOG_LEVEL``, else ``info``) and ``--log-format text|json`` (default:
``$FAKTORY_LOG_FORMAT``, else ``text``).  ``json`` writes one JSON object per line
(``time``, ``level``, ``logger``, ``pid``, ``message``, and ``exc_info`` with the
formatted traceback when there is one), for log shippers.  The library itself only
uses ``logging`` and never configures it.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import IO, Any

__all__ = ["LEVELS", "FORMATS", "add_arguments", "configure", "JsonFormatter", "TEXT_FORMAT"]

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One compact JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


def _env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = (os.environ.get(name) or default).lower()
    return value if value in choices else default


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-level`` and ``--log-format`` to ``parser``."""
    parser.add_argument("--log-level", type=str.lower, choices=LEVELS,
                        default=_env_choice("FAKTORY_LOG_LEVEL", LEVELS, "info"),
                        help="log level (default: $FAKTORY_LOG_LEVEL, else %(default)s)")
    parser.add_argument("--log-format", type=str.lower, choices=FORMATS,
                        default=_env_choice("FAKTORY_LOG_FORMAT", FORMATS, "text"),
                        help="text lines or one JSON object per line "
                             "(default: $FAKTORY_LOG_FORMAT, else %(default)s)")


def configure(level: str = "info", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Send log records of ``level`` and above to ``stream`` (stderr) as ``fmt``.

    Replaces the handlers a previous ``configure`` installed, leaves other handlers
    alone (an application that configured logging itself keeps its own)."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_faktory", False):
            root.removeHandler(handler)
    numeric = getattr(logging, level.upper())
    if not root.handlers:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler._faktory = True  # type: ignore[attr-defined]
        handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
        root.addHandler(handler)
        root.setLevel(numeric)
    logging.getLogger("faktory").setLevel(numeric)
