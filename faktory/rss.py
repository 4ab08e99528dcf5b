"""The resident memory of this process, for the worker's heartbeat (``rss_kb`` of BEAT)."""
from __future__ import annotations

import os
import resource

__all__ = ["rss_kb"]

_PAGE_KB = (os.sysconf("SC_PAGE_SIZE") // 1024) if hasattr(os, "sysconf") else 4


def rss_kb() -> int:
    """Resident set size of this process in KiB (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_KB
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if os.uname().sysname == "Darwin" else peak
