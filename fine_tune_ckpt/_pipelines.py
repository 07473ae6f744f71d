"""Helpers for asyncio pipelines: many jobs at once, the best checkpoint, resumable walks.

Everything here is built on the public pager; nothing reaches into the transport.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
)
from contextlib import aclosing
from typing import Literal, cast, overload

import attrs

from ._args import check_job_id, check_optional_positive_int, check_positive_int
from ._errors import FineTuneCkptError
from ._models import Checkpoint, FineTuningJob
from ._paging import AsyncCheckpointPager
from ._resource import AsyncCheckpointsResource
from ._selection import BestSoFar, Metric

__all__ = [
    "JobCheckpoint",
    "JobDone",
    "JobFailure",
    "JobSource",
    "best_checkpoint",
    "resume_walk",
    "walk_jobs",
    "walk_jobs_to_the_end",
]


@attrs.frozen
class JobCheckpoint:
    """A checkpoint from :func:`walk_jobs`, tagged with the job it belongs to."""

    #: The job the checkpoint was listed for.
    fine_tuning_job_id: str
    #: The checkpoint.
    checkpoint: Checkpoint


@attrs.frozen
class JobFailure:
    """A job whose walk failed, reported by :func:`walk_jobs` with ``on_error="report"``.

    ``error.resume_after`` tells where to continue that job.
    """

    #: The job whose walk failed.
    fine_tuning_job_id: str
    #: What went wrong; ``error.resume_after`` is the cursor to resume from.
    error: FineTuneCkptError


@attrs.frozen
class JobDone:
    """A job whose walk ended well, from :func:`walk_jobs_to_the_end`: nothing more will come.

    Not in the package's namespace: the command line's way to finish each job's output as
    soon as the job ends.
    """

    #: The job whose checkpoints were all yielded.
    fine_tuning_job_id: str


#: Where :func:`walk_jobs` takes its jobs from: ids or job records, from any iterable or
#: async iterable (``client.jobs.list()`` itself is one).
JobSource = Iterable[str | FineTuningJob] | AsyncIterable[str | FineTuningJob]


@attrs.frozen
class _WorkerDone:
    """A worker has no more jobs to take; ``crash`` if it died of an unexpected error."""

    crash: Exception | None


# The item type depends on on_error: "raise" never yields a JobFailure (it raises the
# error instead), so callers may use item.checkpoint without narrowing; "report" does.
@overload
def walk_jobs(
    checkpoints: AsyncCheckpointsResource,
    fine_tuning_job_ids: JobSource,
    *,
    concurrency: int = 8,
    buffer: int = 256,
    on_error: Literal["raise"] = "raise",
    limit: int | None = None,
    max_items: int | None = None,
) -> AsyncGenerator[JobCheckpoint, None]: ...


@overload
def walk_jobs(
    checkpoints: AsyncCheckpointsResource,
    fine_tuning_job_ids: JobSource,
    *,
    concurrency: int = 8,
    buffer: int = 256,
    on_error: Literal["report"],
    limit: int | None = None,
    max_items: int | None = None,
) -> AsyncGenerator[JobCheckpoint | JobFailure, None]: ...


# A mode only known at run time (a variable or a setting) still type-checks.
@overload
def walk_jobs(
    checkpoints: AsyncCheckpointsResource,
    fine_tuning_job_ids: JobSource,
    *,
    concurrency: int = 8,
    buffer: int = 256,
    on_error: Literal["raise", "report"],
    limit: int | None = None,
    max_items: int | None = None,
) -> AsyncGenerator[JobCheckpoint | JobFailure, None]: ...


def walk_jobs(
    checkpoints: AsyncCheckpointsResource,
    fine_tuning_job_ids: JobSource,
    *,
    concurrency: int = 8,
    buffer: int = 256,
    on_error: Literal["raise", "report"] = "raise",
    limit: int | None = None,
    max_items: int | None = None,
) -> AsyncGenerator[JobCheckpoint | JobFailure, None]:
    """Walk the checkpoints of many jobs at once over one client, as they arrive.

    ``async for item in walk_jobs(client.checkpoints, job_ids): ...`` yields a
    :class:`JobCheckpoint` per checkpoint. At most ``concurrency`` jobs are walked at the
    same time (sharing the client's connection pool); at most ``buffer`` checkpoints wait
    for the consumer, so a slow consumer slows the walks instead of growing memory. Each
    job's checkpoints keep their order; jobs interleave.

    The jobs may be ids or :class:`FineTuningJob` records, from any iterable or async
    iterable: ``walk_jobs(client.checkpoints, client.jobs.list())`` walks every job of
    the account. A list, tuple or set is checked whole before anything is sent; any other
    source is read only as workers free up (a million jobs keep memory flat), each id
    checked as it is taken, and an async iterator is closed when the walk ends.

    ``on_error="raise"``: the first failure stops every walk and is raised (a note names
    the job; its ``resume_after`` tells where that job stopped); the items are typed
    :class:`JobCheckpoint`.
    ``on_error="report"``: a failed job yields one :class:`JobFailure` and the others go
    on; the items are typed ``JobCheckpoint | JobFailure``.
    Leaving the loop early, or cancelling the consumer, cancels every walk. Arguments are
    checked here, before anything is sent.
    """
    source = _checked_source(fine_tuning_job_ids)
    if on_error not in ("raise", "report"):
        raise ValueError(f"on_error must be 'raise' or 'report', got {on_error!r}")
    walk = _walk_jobs(
        checkpoints,
        source,
        workers=check_positive_int("concurrency", concurrency),
        buffer=check_positive_int("buffer", buffer),
        raise_first_error=on_error == "raise",
        announce_ends=False,
        limit=check_optional_positive_int("limit", limit),
        max_items=check_optional_positive_int("max_items", max_items),
    )
    # Never a JobDone: announce_ends is off.
    return cast(AsyncGenerator[JobCheckpoint | JobFailure, None], walk)


def walk_jobs_to_the_end(
    checkpoints: AsyncCheckpointsResource,
    fine_tuning_job_ids: JobSource,
    *,
    concurrency: int = 8,
    buffer: int = 256,
    limit: int | None = None,
    max_items: int | None = None,
) -> AsyncGenerator[JobCheckpoint | JobFailure | JobDone, None]:
    """:func:`walk_jobs` with ``on_error="report"`` that also says when each job ends.

    Every job taken from the source ends with exactly one :class:`JobDone` or
    :class:`JobFailure`, after its last :class:`JobCheckpoint`, so a consumer can finish
    a job (print its best checkpoint, count it done) while keeping nothing of the jobs
    that ended. Not in the package's namespace: the command line's seam.
    """
    return _walk_jobs(
        checkpoints,
        _checked_source(fine_tuning_job_ids),
        workers=check_positive_int("concurrency", concurrency),
        buffer=check_positive_int("buffer", buffer),
        raise_first_error=False,
        announce_ends=True,
        limit=check_optional_positive_int("limit", limit),
        max_items=check_optional_positive_int("max_items", max_items),
    )


def _job_id(job: object) -> str:
    """The id of a job given as an id or a record, checked as ``fine_tuning_job_id``."""
    return check_job_id(job.id if isinstance(job, FineTuningJob) else job)


def _checked_source(source: object) -> list[str] | Iterable[object] | AsyncIterable[object]:
    """A collection checked whole now; any other iterable as it is, to be read lazily."""
    if isinstance(source, str | bytes):
        # A string is an iterable of one-letter "ids": surely one id meant as a list.
        raise TypeError(
            f"fine_tuning_job_ids must be an iterable of job ids, not a single "
            f"{type(source).__name__}; pass [{source!r}]"
        )
    if isinstance(source, Collection):
        return [_job_id(job) for job in source]
    if isinstance(source, Iterable | AsyncIterable):
        return source
    raise TypeError(
        "fine_tuning_job_ids must be an iterable or async iterable of job ids or "
        f"FineTuningJob records, not {type(source).__name__}"
    )


class _Jobs:
    """Hands the next job id to whichever worker asks, reading the source only then."""

    def __init__(self, source: Iterable[object] | AsyncIterable[object]) -> None:
        self._sync: Iterator[object] | None = None
        self._async: AsyncIterator[object] | None = None
        if isinstance(source, AsyncIterable):
            self._async = aiter(source)
        else:
            self._sync = iter(source)
        # One reader at a time: an async generator refuses a second concurrent anext().
        self._lock = asyncio.Lock()
        self._done = False

    async def take(self) -> str | None:
        """The next job's id, or ``None`` once the source is exhausted."""
        async with self._lock:
            if self._done:
                return None
            try:
                if self._async is not None:
                    job = await anext(self._async)
                else:
                    assert self._sync is not None  # noqa: S101 - one of the two is set
                    job = next(self._sync)
            except (StopIteration, StopAsyncIteration):
                self._done = True
                return None
            except BaseException:
                self._done = True  # a source that failed once is not read again
                raise
            return _job_id(job)

    async def aclose(self) -> None:
        """Close an async source the walk started reading (it may hold a pager open)."""
        close = getattr(self._async, "aclose", None)
        if close is not None:
            await close()


async def _walk_jobs(
    checkpoints: AsyncCheckpointsResource,
    source: list[str] | Iterable[object] | AsyncIterable[object],
    *,
    workers: int,
    buffer: int,
    raise_first_error: bool,
    announce_ends: bool,
    limit: int | None,
    max_items: int | None,
) -> AsyncGenerator[JobCheckpoint | JobFailure | JobDone, None]:
    results: asyncio.Queue[JobCheckpoint | JobFailure | JobDone | _WorkerDone] = asyncio.Queue(
        buffer
    )
    pending = _Jobs(source)
    if isinstance(source, list):
        workers = min(workers, len(source))

    async def work() -> None:
        crash: Exception | None = None
        try:
            # One shared source: each job is taken by one worker, when it is free.
            while (job_id := await pending.take()) is not None:
                pager = checkpoints.list(job_id, limit=limit, max_items=max_items)
                try:
                    async with aclosing(aiter(pager)) as walk:
                        async for checkpoint in walk:
                            await results.put(JobCheckpoint(job_id, checkpoint))
                except FineTuneCkptError as error:
                    error.add_note(f"while listing the checkpoints of job {job_id!r}")
                    await results.put(JobFailure(job_id, error))
                    if raise_first_error:
                        return
                else:
                    if announce_ends:
                        # After the job's last checkpoint: one worker, one queue, in order.
                        await results.put(JobDone(job_id))
        except Exception as error:  # a bug, or a closed client: the consumer must hear
            crash = error
        # Always say so, or the consumer would wait for this worker forever.
        await results.put(_WorkerDone(crash))

    tasks = [asyncio.create_task(work()) for _ in range(workers)]
    try:
        running = len(tasks)
        while running:
            result = await results.get()
            if isinstance(result, _WorkerDone):
                if result.crash is not None:
                    raise result.crash
                running -= 1
            elif isinstance(result, JobFailure) and raise_first_error:
                raise result.error
            else:
                yield result
    finally:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await pending.aclose()


async def best_checkpoint(
    checkpoints: AsyncIterable[Checkpoint], metric: Metric
) -> Checkpoint | None:
    """Return the checkpoint to deploy by ``metric``, or ``None`` if none reports it.

    Losses (``*_loss``): lowest wins; accuracies: highest wins. Checkpoints without the
    metric are skipped; on a tie, the later checkpoint (the higher step) wins. Pass a pager:
    ``await best_checkpoint(client.checkpoints.list(job_id), "full_valid_loss")``. Only
    the best so far is kept, so any number of checkpoints fits in memory.
    """
    ranking = BestSoFar(metric)  # refuses an unknown metric before anything is fetched
    async for checkpoint in checkpoints:
        ranking.offer(checkpoint)
    return ranking.best


def resume_walk(
    checkpoints: AsyncCheckpointsResource,
    fine_tuning_job_id: str,
    *,
    cursor: str | None,
    save_cursor: Callable[[str], Awaitable[None] | None],
    limit: int | None = None,
) -> AsyncGenerator[Checkpoint, None]:
    """Walk a job from a saved cursor, saving the cursor as the walk goes.

    ``save_cursor(cursor)`` (a function or a coroutine function) is called each time you
    ask for the checkpoint after the last one of a page, that is once you have finished
    with every checkpoint of that page. After a crash, pass the last saved cursor back as
    ``cursor`` and the walk continues after the last page you finished: nothing is
    skipped, and at most the unfinished page is seen again.
    """
    if not callable(save_cursor):
        raise TypeError(f"save_cursor must be callable, not {type(save_cursor).__name__}")
    pager = checkpoints.list(fine_tuning_job_id, after=cursor, limit=limit)
    return _resume_walk(pager, save_cursor)


async def _resume_walk(
    pager: AsyncCheckpointPager, save_cursor: Callable[[str], Awaitable[None] | None]
) -> AsyncGenerator[Checkpoint, None]:
    async with aclosing(pager.pages()) as pages:
        async for page in pages:
            for checkpoint in page.data:
                yield checkpoint
            if page.data:
                saved = save_cursor(page.data[-1].id)
                if inspect.isawaitable(saved):
                    await saved
