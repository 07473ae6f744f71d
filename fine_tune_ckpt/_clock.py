"""Time as the retry loop sees it, behind one small interface so tests can fake it."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """What the retry loop needs of time: a monotonic reading, a wall clock and a sleep."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, for deadlines."""
        ...

    def time(self) -> float:
        """The Unix time now, to read ``Retry-After`` given as an HTTP date."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` before the next attempt."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    def time(self) -> float:
        """Return ``time.time()``."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Await ``asyncio.sleep(seconds)``."""
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        """Name the clock."""
        return "SystemClock()"
