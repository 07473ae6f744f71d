"""Helpers for asyncio pipelines: many jobs at once, the best checkpoint, resumable walks.

Everything here is built on the public pager; nothing reaches into the transport.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
)
from contextlib import aclosing
from typing import Literal, overload

import attrs

from ._args import check_job_id, check_optional_positive_int, check_positive_int
from ._errors import FineTuneCkptError
from ._models import Checkpoint
from ._paging import AsyncCheckpointPager
from ._resource import AsyncCheckpointsResource
from ._selection import BestSoFar, Metric

__all__ = [
    "JobCheckpoint",
    "JobFailure",
    "best_checkpoint",
    "resume_walk",
    "walk_jobs",
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
class _WorkerDone:
    """A worker has no more jobs to take; ``crash`` if it died of an unexpected error."""

    crash: Exception | None


# The item type depends on on_error: "raise" never yields a JobFailure (it raises the
# error instead), so callers may use item.checkpoint without narrowing; "report" does.
@overload
def walk_jobs(
    checkpoints: AsyncCheckpointsResource,
    fine_tuning_job_ids: Iterable[str],
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
    fine_tuning_job_ids: Iterable[str],
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
    fine_tuning_job_ids: Iterable[str],
    *,
    concurrency: int = 8,
    buffer: int = 256,
    on_error: Literal["raise", "report"],
    limit: int | None = None,
    max_items: int | None = None,
) -> AsyncGenerator[JobCheckpoint | JobFailure, None]: ...


def walk_jobs(
    checkpoints: AsyncCheckpointsResource,
    fine_tuning_job_ids: Iterable[str],
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

    ``on_error="raise"``: the first failure stops every walk and is raised (a note names
    the job; its ``resume_after`` tells where that job stopped); the items are typed
    :class:`JobCheckpoint`.
    ``on_error="report"``: a failed job yields one :class:`JobFailure` and the others go
    on; the items are typed ``JobCheckpoint | JobFailure``.
    Leaving the loop early, or cancelling the consumer, cancels every walk. Arguments are
    checked here, before anything is sent.
    """
    job_ids = [check_job_id(job_id) for job_id in fine_tuning_job_ids]
    if on_error not in ("raise", "report"):
        raise ValueError(f"on_error must be 'raise' or 'report', got {on_error!r}")
    return _walk_jobs(
        checkpoints,
        job_ids,
        workers=check_positive_int("concurrency", concurrency),
        buffer=check_positive_int("buffer", buffer),
        raise_first_error=on_error == "raise",
        limit=check_optional_positive_int("limit", limit),
        max_items=check_optional_positive_int("max_items", max_items),
    )


async def _walk_jobs(
    checkpoints: AsyncCheckpointsResource,
    job_ids: list[str],
    *,
    workers: int,
    buffer: int,
    raise_first_error: bool,
    limit: int | None,
    max_items: int | None,
) -> AsyncGenerator[JobCheckpoint | JobFailure, None]:
    results: asyncio.Queue[JobCheckpoint | JobFailure | _WorkerDone] = asyncio.Queue(buffer)
    pending = iter(job_ids)

    async def work() -> None:
        crash: Exception | None = None
        try:
            for job_id in pending:  # one shared iterator: each job is taken by one worker
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
        except Exception as error:  # a bug, or a closed client: the consumer must hear
            crash = error
        # Always say so, or the consumer would wait for this worker forever.
        await results.put(_WorkerDone(crash))

    tasks = [asyncio.create_task(work()) for _ in range(min(workers, len(job_ids)))]
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


async def best_checkpoint(
    checkpoints: AsyncIterable[Checkpoint], metric: Metric
) -> Checkpoint | None:
    """Return the checkpoint to deploy by ``metric``, or ``None`` if none reports it.

    Losses (``*_loss``): lowest wins; accuracies: highest wins. Checkpoints without the
    metric are skipped; on a tie, the first listed (the newest) wins. Pass a pager:
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
