"""Time for the embedded server: real, or moved by hand in tests."""
from __future__ import annotations

import time

__all__ = ["Clock", "ManualClock"]


class Clock:
    """Real time: :meth:`now` is ``time.time()`` (epoch seconds, float)."""

    def now(self) -> float:
        """Current epoch time in seconds."""
        return time.time()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ManualClock(Clock):
    """A clock that only moves when told to (lifecycle tests move time instead of sleeping).

    Starts at ``start`` (default: the real time at construction).
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else float(start)

    def now(self) -> float:
        """The clock's current epoch time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (must not be negative)."""
        if seconds < 0:
            raise ValueError("a ManualClock only moves forward")
        self._now += seconds

    def set(self, t: float) -> None:
        """Set the clock to epoch time ``t``."""
        self._now = float(t)

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"
