"""Pins the pipeline helpers' types for ``mypy --strict`` only; it is never run.

Each ``assert_type`` fails ``mypy`` if a type widens or narrows; each
``type: ignore[...]`` marks a misuse that must stay an error (strict mypy reports an
ignore that is no longer needed).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Literal, assert_type

from yarl import URL

from fine_tune_ckpt import (
    AsyncCheckpointPager,
    AsyncCheckpointsResource,
    AsyncClient,
    Checkpoint,
    FineTuneCkptError,
    JobCheckpoint,
    JobFailure,
    Metric,
    best_checkpoint,
    resume_walk,
    walk_jobs,
)


async def walk_jobs_raise(client: AsyncClient) -> None:
    """The default mode raises failures, so every item is a JobCheckpoint."""
    resource = client.checkpoints
    assert_type(resource, AsyncCheckpointsResource)
    async for item in walk_jobs(resource, ["ftjob-1", "ftjob-2"]):
        assert_type(item, JobCheckpoint)
        assert_type(item.checkpoint, Checkpoint)
        assert_type(item.checkpoint.step_number, int)
        assert_type(item.fine_tuning_job_id, str)
    assert_type(walk_jobs(resource, ["ftjob-1"]), AsyncGenerator[JobCheckpoint, None])
    everything = walk_jobs(
        resource,
        ("ftjob-1", "ftjob-2"),
        concurrency=2,
        buffer=16,
        on_error="raise",
        limit=10,
        max_items=50,
    )
    assert_type(everything, AsyncGenerator[JobCheckpoint, None])
    await everything.aclose()


async def walk_jobs_report(client: AsyncClient) -> None:
    """``on_error="report"`` yields failures too, and narrowing tells them apart."""
    walk = walk_jobs(client.checkpoints, iter(["ftjob-1"]), on_error="report", limit=5)
    assert_type(walk, AsyncGenerator[JobCheckpoint | JobFailure, None])
    async for item in walk:
        assert_type(item, JobCheckpoint | JobFailure)
        if isinstance(item, JobFailure):
            assert_type(item.error, FineTuneCkptError)
            assert_type(item.error.resume_after, str | None)
            assert_type(item.fine_tuning_job_id, str)
        else:
            assert_type(item.checkpoint, Checkpoint)


async def walk_jobs_mode_known_at_run_time(
    client: AsyncClient, mode: Literal["raise", "report"], setting: str
) -> None:
    """A mode held in a variable gets the union; an unchecked string is refused."""
    walk = walk_jobs(client.checkpoints, ["ftjob-1"], on_error=mode)
    assert_type(walk, AsyncGenerator[JobCheckpoint | JobFailure, None])
    walk_jobs(client.checkpoints, ["ftjob-1"], on_error=setting)  # type: ignore[call-overload]
    walk_jobs(client.checkpoints, ["ftjob-1"], on_error="ignore")  # type: ignore[call-overload]
    walk_jobs(client.checkpoints, "ftjob-1", concurrency="8")  # type: ignore[call-overload]


async def best(client: AsyncClient, metric: Metric) -> None:
    """``best_checkpoint`` takes any async iterable of checkpoints and a known metric."""
    pager = client.checkpoints.list("ftjob-1", limit=100)
    assert_type(pager, AsyncCheckpointPager)
    assert_type(await best_checkpoint(pager, "full_valid_loss"), Checkpoint | None)
    assert_type(await best_checkpoint(pager, metric), Checkpoint | None)
    walked = resume_walk(client.checkpoints, "ftjob-1", cursor=None, save_cursor=print)
    assert_type(await best_checkpoint(walked, "valid_mean_token_accuracy"), Checkpoint | None)
    await best_checkpoint(pager, "full_valid_los")  # type: ignore[arg-type]
    await best_checkpoint([], "full_valid_loss")  # type: ignore[arg-type]


async def resumable(client: AsyncClient, saved: str | None) -> None:
    """``resume_walk`` yields checkpoints; ``save_cursor`` may be sync or async."""

    def save(cursor: str) -> None:
        print(cursor)

    async def save_to_database(cursor: str) -> None:
        print(cursor)

    def wants_an_int(cursor: int) -> None:
        print(cursor)

    walk = resume_walk(client.checkpoints, "ftjob-1", cursor=saved, save_cursor=save, limit=10)
    assert_type(walk, AsyncGenerator[Checkpoint, None])
    async for checkpoint in walk:
        assert_type(checkpoint, Checkpoint)
    walk = resume_walk(client.checkpoints, "ftjob-1", cursor=None, save_cursor=save_to_database)
    assert_type(walk, AsyncGenerator[Checkpoint, None])
    resume_walk(client.checkpoints, "ftjob-1", cursor=None, save_cursor=wants_an_int)  # type: ignore[arg-type]
    resume_walk(client.checkpoints, "ftjob-1", save_cursor=save)  # type: ignore[call-arg]


def client_settings(client: AsyncClient) -> None:
    """The client's settings read back with the types they were checked into."""
    assert_type(client.base_url, URL)
    assert_type(client.organization, str | None)
    assert_type(client.project, str | None)
    assert_type(client.timeout, float | None)
    assert_type(client.deadline, float | None)
    assert_type(client.max_retries, int)
    assert_type(client.closed, bool)
