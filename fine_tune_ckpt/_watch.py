"""Watching a running job: each new checkpoint once, oldest first, as it appears.

The rules are pure functions at the top (what is new on a page, how long to wait between
polls); :class:`CheckpointWatcher` does the I/O with them.

How a watch goes:

- Each poll reads the job first, then the checkpoints. Read in that order, a job seen in
  a final status means every checkpoint it will ever have is already listed, so the last
  poll misses none.
- The checkpoints are listed newest first, so a poll reads pages only until it reaches
  the newest checkpoint already yielded (the *boundary*), one page at a time, without
  reading ahead: usually one request. The first poll has no boundary unless ``since`` gave
  one, and reads them all.
- What a poll found is yielded oldest first; a checkpoint id is never yielded twice.
- The watch ends after the poll that saw the job succeeded, failed or cancelled.
- Between polls it sleeps ``poll_interval`` give or take 10% (so that many watchers
  started together drift apart), or longer when the last answers asked for it with
  ``retry-after-ms``/``Retry-After``; all on the client's clock.
- An error after the request's retries is raised with ``resume_after`` set to the id to
  pass as ``since=``: the newest checkpoint yielded (or the ``since`` the watch started
  from), so a new watch goes on with no gap and no duplicate.
"""

from __future__ import annotations

import math
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Final

from ._clock import Clock
from ._errors import FineTuneCkptError
from ._metadata import ResponseInfo
from ._models import Checkpoint, FineTuningJob
from ._paging import AsyncCheckpointPager
from ._retry import retry_after_seconds

__all__ = ["CheckpointWatcher", "newer_checkpoints", "poll_delay"]

#: Polls are spaced by the interval times a factor drawn from 1 +- this.
POLL_JITTER: Final = 0.1

#: ``since``: the newest checkpoint already seen, by id or as the record itself.
Since = str | Checkpoint | None


def newer_checkpoints(
    page: Sequence[Checkpoint], boundary: Since
) -> tuple[list[Checkpoint], Checkpoint | None]:
    """Split a newest-first page at ``boundary``: the checkpoints before it, and where it ended.

    Returns the checkpoints newer than ``boundary`` (in the page's order) and the
    checkpoint the page stopped at, or ``None`` when the boundary is not on this page (the
    next page may hold it). A boundary given by id stops only at that id. A record stops
    at its own id too, or at the first checkpoint older than it (created earlier, or at
    the same second with a lower step): the API keeps only a job's most recent
    checkpoints, and one seen before may be gone.
    """
    if boundary is None:
        return list(page), None
    if isinstance(boundary, str):
        for index, checkpoint in enumerate(page):
            if checkpoint.id == boundary:
                return list(page[:index]), checkpoint
        return list(page), None
    edge = (boundary.created_at, boundary.step_number)
    for index, checkpoint in enumerate(page):
        if checkpoint.id == boundary.id or (checkpoint.created_at, checkpoint.step_number) < edge:
            return list(page[:index]), checkpoint
    return list(page), None


def poll_delay(
    poll_interval: float,
    responses: Sequence[Mapping[str, str]],
    *,
    now: float,
    draw: Callable[[], float],
) -> float:
    """Seconds to wait before the next poll.

    ``poll_interval`` times a factor in [0.9, 1.1] (``draw()`` gives a number in [0, 1)),
    or what the answers' ``retry-after-ms``/``Retry-After`` ask if that is longer. As for
    retries, a wait over 60 s is not obeyed (the official SDK's rule): a server asking
    for an hour would stall the watch.
    """
    delay = poll_interval * (1 - POLL_JITTER + 2 * POLL_JITTER * draw())
    for headers in responses:
        asked = retry_after_seconds(headers, now=now)
        if asked is not None:
            delay = max(delay, asked)
    return delay


def check_poll_interval(value: object) -> float:
    """Return ``value`` as seconds if it is a finite positive number, else raise naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"poll_interval must be a number of seconds, not {type(value).__name__}")
    seconds = float(value) if isinstance(value, float) else _int_seconds(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"poll_interval must be a positive number of seconds, got {value!r}")
    return seconds


def _int_seconds(value: int) -> float:
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"poll_interval is too large: {value!r}") from None


def check_since(value: object) -> Since:
    """Return ``value`` if it can be a ``since`` (a checkpoint id or record), else raise."""
    if value is None or isinstance(value, Checkpoint):
        return value
    if not isinstance(value, str):
        raise TypeError(
            f"since must be a checkpoint id or a Checkpoint, not {type(value).__name__}"
        )
    if not value.strip():
        raise ValueError("since must not be empty or blank")
    return value


class CheckpointWatcher:
    """The checkpoints of a running job, each once, oldest first, as they appear.

    ``client.checkpoints.watch(job_id)`` returns one; ``async for checkpoint in watcher``
    yields the checkpoints that exist, then each new one as a poll finds it, and ends once
    the job has succeeded, failed or been cancelled. :attr:`job` is the job as last read.
    Iterating again (after ``break``) goes on after the last checkpoint yielded.
    """

    def __init__(
        self,
        *,
        fine_tuning_job_id: str,
        list_checkpoints: Callable[[bool], AsyncCheckpointPager],
        retrieve_job: Callable[[], Awaitable[FineTuningJob]],
        poll_interval: float,
        since: Since,
        clock: Clock,
        draw: Callable[[], float] = random.random,
    ) -> None:
        """Poll with ``retrieve_job()`` and ``list_checkpoints(read_ahead)``.

        ``draw`` gives the jitter of each wait, a number in [0, 1).
        """
        #: The job whose checkpoints are watched.
        self.fine_tuning_job_id = fine_tuning_job_id
        #: Seconds between polls (give or take 10%).
        self.poll_interval = poll_interval
        #: The job as the last poll read it: its status, ``fine_tuned_model``, ``error``.
        #: ``None`` before the first poll.
        self.job: FineTuningJob | None = None
        #: The newest checkpoint yielded so far, ``None`` before the first.
        self.last_checkpoint: Checkpoint | None = None
        self._list = list_checkpoints
        self._retrieve = retrieve_job
        self._boundary: Since = since
        self._clock = clock
        self._draw = draw
        self._yielded: set[str] = set()

    def __repr__(self) -> str:
        """Show what is watched, and from where."""
        return (
            f"CheckpointWatcher(fine_tuning_job_id={self.fine_tuning_job_id!r}, "
            f"poll_interval={self.poll_interval!r}, since={self.since!r})"
        )

    @property
    def since(self) -> str | None:
        """The id to pass as ``since=`` to go on from here: the newest checkpoint yielded."""
        boundary = self._boundary
        return boundary.id if isinstance(boundary, Checkpoint) else boundary

    def __aiter__(self) -> AsyncGenerator[Checkpoint, None]:
        """Yield each checkpoint once, oldest first, until the job ends.

        Each iteration goes on after the newest checkpoint any iteration yielded: after a
        ``break``, iterating again misses nothing and repeats nothing.
        """
        return self._watch()

    async def _watch(self) -> AsyncGenerator[Checkpoint, None]:
        while True:
            job, fresh, last_page = await self._poll()
            self.job = job
            for checkpoint in fresh:
                if checkpoint.id in self._yielded:
                    continue  # a server listing one twice still yields it once
                self._yielded.add(checkpoint.id)
                self.last_checkpoint = checkpoint
                self._boundary = checkpoint
                yield checkpoint
            if job.is_finished:
                return
            answers = [job.response, last_page]
            await self._clock.sleep(
                poll_delay(
                    self.poll_interval,
                    [answer.headers for answer in answers if answer is not None],
                    now=self._clock.time(),
                    draw=self._draw,
                )
            )

    async def _poll(self) -> tuple[FineTuningJob, list[Checkpoint], ResponseInfo | None]:
        """Read the job, then the checkpoints newer than the boundary, oldest first."""
        try:
            job = await self._retrieve()
            boundary = self._boundary
            pager = self._list(boundary is None)  # everything: read ahead; else one page
            fresh: list[Checkpoint] = []
            reached: Checkpoint | None = None
            async with aclosing(pager.pages()) as pages:
                async for page in pages:
                    newer, reached = newer_checkpoints(page.data, boundary)
                    fresh += newer
                    if reached is not None:
                        break
        except FineTuneCkptError as exc:
            exc.resume_after = self.since
            raise
        if isinstance(boundary, str):
            if reached is None:
                raise FineTuneCkptError(
                    f"since={boundary!r} is not a checkpoint of job "
                    f"{self.fine_tuning_job_id!r}, so there is no telling which are newer; "
                    "pass the Checkpoint record instead of its id to go on after one the "
                    "API no longer lists"
                )
            self._boundary = reached  # a record from now on: its time and step order too
        fresh.reverse()
        return job, fresh, pager.last_response
