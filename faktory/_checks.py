"""Checks of constructor arguments shared by ``Client`` and ``Worker``: each error names
the argument and shows the value (never a password), raised before anything is sent."""
from __future__ import annotations

import math
from typing import Any

__all__ = ["check_seconds", "check_str"]


def check_str(value: Any, field: str) -> None:
    """``value`` is ``None`` or a non-empty str."""
    if value is not None and (not isinstance(value, str) or not value):
        raise TypeError(f"{field} must be a non-empty str, not {value!r}")


def check_seconds(value: Any, field: str, *, zero: bool = True, none: bool = False) -> None:
    """``value`` is a finite number of seconds, ``>= 0`` (``> 0`` without ``zero``), or
    ``None`` when ``none``."""
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not (value >= 0 if zero else value > 0):
        need = ">= 0" if zero else "> 0"
        raise ValueError(f"{field} must be a number of seconds {need}{' or None' if none else ''}, got {value!r}")
