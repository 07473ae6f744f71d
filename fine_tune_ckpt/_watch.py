"""Watching a running job: each new checkpoint once, oldest first, as it appears.

The rules are pure functions at the top (what is new on a page, how long to wait between
polls); :class:`CheckpointWatcher` does the I/O with them.

How a watch goes:

- Each poll reads the job first, then the checkpoints. Read in that order, a job seen in
  a final status means every checkpoint it will ever have is already listed, so the last
  poll misses none.
- The checkpoints are listed newest first, so a poll reads pages only until it has passed
  the newest checkpoint the last poll listed (the *anchor*), one page at a time, without
  reading ahead: usually one request. The first poll has no anchor unless ``since`` gave
  one, and reads them all.
- New is decided by id, not by place: every id a listing showed is remembered, so a
  server that lists a fresh checkpoint after the anchor (made in the same second, or out
  of order) loses nothing. Only past ``since`` does place decide, as what lies beyond it
  was never read: there a checkpoint is new only if it is not older than ``since``.
- What a poll found is yielded sorted by time, then step (oldest first); a checkpoint id is
  never yielded twice.
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
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence, Set
from contextlib import aclosing
from datetime import datetime
from typing import Final

from ._clock import Clock
from ._errors import FineTuneCkptError
from ._models import Checkpoint, FineTuningJob
from ._paging import AsyncCheckpointPager
from ._retry import retry_after_seconds

__all__ = ["CheckpointWatcher", "find_anchor", "new_checkpoints", "poll_delay"]

#: Polls are spaced by the interval times a factor drawn from 1 +- this.
POLL_JITTER: Final = 0.1

#: ``since``: the newest checkpoint already seen, by id or as the record itself.
Since = str | Checkpoint | None


def _order(checkpoint: Checkpoint) -> tuple[datetime, int]:
    """Where a checkpoint falls in time: created first, then lower step, is older."""
    return checkpoint.created_at, checkpoint.step_number


def find_anchor(
    page: Sequence[Checkpoint], anchor: Since, *, found: Checkpoint | None = None
) -> tuple[Checkpoint | None, bool]:
    """Look for a poll's anchor on a newest-first page; say whether the poll may stop.

    The anchor is the newest checkpoint the last poll listed (or ``since``): the poll reads
    pages until it has passed it. Returns the anchor's record once listed (``found`` if an
    earlier page had it) and whether reading may stop after this page: the anchor is
    listed and this page ends with a checkpoint strictly older than it (a checkpoint made
    in the same second could follow on the next page). A record the API no longer lists
    counts as passed at the first checkpoint strictly older than it: the API keeps only a
    job's most recent checkpoints. An id is only ever found as itself.
    """
    if anchor is None or not page:
        return found, False
    if found is None:
        for checkpoint in page:
            if checkpoint.id == (anchor if isinstance(anchor, str) else anchor.id):
                found = checkpoint
                break
            if isinstance(anchor, Checkpoint) and _order(checkpoint) < _order(anchor):
                found = anchor  # gone from the listing: this is where it would be
                break
    if found is None:
        return None, False
    return found, page[-1].created_at < found.created_at


def new_checkpoints(
    listed: Sequence[Checkpoint],
    anchor: Checkpoint | None,
    *,
    known: Set[str],
    complete: bool,
) -> list[Checkpoint]:
    """The checkpoints of a poll's listing to yield, oldest first.

    ``listed`` is what the poll read, newest first, ``known`` the ids any listing showed
    before (and ``since``). A checkpoint not known is new if it is listed before the
    anchor; listed after it, it is new when the watch has seen the whole listing since its
    start (``complete``: a server that lists a fresh checkpoint out of order, or one made
    in the anchor's second, loses nothing), or else if it is not older than the anchor
    (checkpoints past ``since`` were never read, and are older). They come out sorted by
    time, then step, whatever order the server listed them in.
    """
    fresh: list[Checkpoint] = []
    taken: set[str] = set()  # a server may list one twice, even within one poll
    passed = False
    for checkpoint in listed:
        if anchor is not None and not passed:
            passed = checkpoint.id == anchor.id or _order(checkpoint) < _order(anchor)
        if checkpoint.id in known or checkpoint.id in taken:
            continue
        if not passed or complete or anchor is None or _order(checkpoint) >= _order(anchor):
            fresh.append(checkpoint)
            taken.add(checkpoint.id)
    fresh.reverse()  # the listing's own order breaks ties of time and step
    fresh.sort(key=_order)
    return fresh


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
        self._since: str | None = since.id if isinstance(since, Checkpoint) else since
        # Where the next poll stops reading: the newest checkpoint the last one listed.
        self._anchor: Since = since
        # Every id a listing showed (or since): never yielded again.
        self._known: set[str] = set() if self._since is None else {self._since}
        # Whether the listings read cover the job from its first checkpoint (no since).
        self._complete = since is None
        self._pending: deque[Checkpoint] = deque()
        # The headers of the last poll's answers (they may ask for a longer wait); None
        # before the first poll, which waits for nothing.
        self._waits: list[Mapping[str, str]] | None = None
        self._ended = False  # a poll found the job over: nothing more will come
        self._clock = clock
        self._draw = draw

    def __repr__(self) -> str:
        """Show what is watched, and from where."""
        return (
            f"CheckpointWatcher(fine_tuning_job_id={self.fine_tuning_job_id!r}, "
            f"poll_interval={self.poll_interval!r}, since={self.since!r})"
        )

    @property
    def since(self) -> str | None:
        """The id to pass as ``since=`` to go on from here: the newest checkpoint yielded."""
        return self._since

    def __aiter__(self) -> AsyncGenerator[Checkpoint, None]:
        """Yield each checkpoint once, oldest first, until the job ends.

        Each iteration goes on after the newest checkpoint any iteration yielded: after a
        ``break``, iterating again misses nothing and repeats nothing.
        """
        return self._watch()

    async def _watch(self) -> AsyncGenerator[Checkpoint, None]:
        while True:
            # Found by a poll, not yet yielded: a consumer that broke out gets them next.
            while self._pending:
                checkpoint = self._pending.popleft()
                self.last_checkpoint = checkpoint
                self._since = checkpoint.id
                yield checkpoint
            if self._ended:
                return
            if self._waits is not None:
                await self._clock.sleep(
                    poll_delay(
                        self.poll_interval, self._waits, now=self._clock.time(), draw=self._draw
                    )
                )
            await self._poll()

    async def _poll(self) -> None:
        """Read the job, then the checkpoints down to the anchor; queue the new ones."""
        anchor = self._anchor
        try:
            self.job = job = await self._retrieve()
            pager = self._list(anchor is None)  # everything: read ahead; else page by page
            listed: list[Checkpoint] = []
            found: Checkpoint | None = None
            async with aclosing(pager.pages()) as pages:
                async for page in pages:
                    listed += page.data
                    found, done = find_anchor(page.data, anchor, found=found)
                    if done:
                        break
        except FineTuneCkptError as exc:
            exc.resume_after = self.since
            raise
        if isinstance(anchor, str) and found is None:
            error = FineTuneCkptError(
                f"since={anchor!r} is not a checkpoint of job {self.fine_tuning_job_id!r}, "
                "so there is no telling which are newer; pass the Checkpoint record "
                "instead of its id to go on after one the API no longer lists"
            )
            error.resume_after = anchor  # going on from it is still the only right start
            raise error
        fresh = new_checkpoints(listed, found, known=self._known, complete=self._complete)
        self._pending.extend(fresh)
        self._known.update(checkpoint.id for checkpoint in listed)
        if listed:
            self._anchor = listed[0]
        self._ended = job.is_finished
        answers = (job.response, pager.last_response)
        self._waits = [answer.headers for answer in answers if answer is not None]
