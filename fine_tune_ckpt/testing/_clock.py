"""A clock whose sleeps return at once, for tests of retries and deadlines."""

from __future__ import annotations

import asyncio

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`fine_tune_ckpt.Clock` that moves only when slept on or advanced.

    ``AsyncClient(clock=FakeClock())`` retries without waiting; ``sleeps`` records each
    wait the client asked for, so a test can assert on backoff and ``Retry-After``.
    """

    def __init__(self, *, start: float = 0.0, wall_start: float = 1_700_000_000.0) -> None:
        """Start the monotonic reading at ``start`` and the Unix time at ``wall_start``."""
        self._now = start
        self._wall_offset = wall_start - start
        #: Every ``sleep`` asked of this clock, in seconds, in order.
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """The fake monotonic reading."""
        return self._now

    def time(self) -> float:
        """The fake Unix time, moving with the monotonic reading."""
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move time forward without sleeping, e.g. to pretend a request was slow."""
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds}")
        self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait, move time forward, and yield to the loop once."""
        self.sleeps.append(seconds)
        self.advance(seconds)
        # One real loop turn keeps cancellation points where a real sleep has them.
        await asyncio.sleep(0)
