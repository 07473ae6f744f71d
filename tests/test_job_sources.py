"""``walk_jobs`` sources: any iterable or async iterable of ids or job records, read lazily."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from fine_tune_ckpt import (
    AsyncCheckpointsResource,
    AsyncClient,
    Checkpoint,
    FineTuningJob,
    walk_jobs,
)
from fine_tune_ckpt.testing import FakeAPIServer


@pytest.fixture
async def jobs(fake_api: FakeAPIServer) -> dict[str, list[Checkpoint]]:
    """Six jobs of 4 checkpoints each on the fake."""
    return {f"ftjob-src-{n}": fake_api.add_job(f"ftjob-src-{n}", count=4) for n in range(6)}


def job_record(job_id: str) -> FineTuningJob:
    """A job record as ``client.jobs`` would give one."""
    return FineTuningJob(
        id=job_id,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        model="gpt-4o-mini-2024-07-18",
        status="succeeded",
        organization_id="org-1",
        training_file="file-1",
    )


async def test_a_generator_is_read_only_as_workers_free_up(
    client: AsyncClient, jobs: dict[str, list[Checkpoint]]
) -> None:
    """Two workers take two ids to start with, not the whole source."""
    taken: list[str] = []

    def source() -> Iterator[str]:
        for job_id in jobs:
            taken.append(job_id)
            yield job_id

    walk = walk_jobs(client.checkpoints, source(), concurrency=2, buffer=1)
    first = await anext(walk)
    assert first.fine_tuning_job_id in taken
    assert len(taken) <= 3  # two workers, one of them maybe on to its next job
    rest = [item async for item in walk]
    assert len(rest) + 1 == 6 * 4
    assert taken == list(jobs)


async def test_an_async_source_of_records_and_ids_mixed(
    client: AsyncClient, jobs: dict[str, list[Checkpoint]]
) -> None:
    """Records and ids from an async generator: every checkpoint of every job, tagged."""

    async def source() -> AsyncIterator[str | FineTuningJob]:
        for index, job_id in enumerate(jobs):
            yield job_record(job_id) if index % 2 else job_id

    got: dict[str, list[Checkpoint]] = {job: [] for job in jobs}
    async for item in walk_jobs(client.checkpoints, source(), concurrency=3):
        got[item.fine_tuning_job_id].append(item.checkpoint)
    assert got == jobs


async def test_records_in_a_list_are_checked_whole_first(client: AsyncClient) -> None:
    """A list is checked before anything is sent: a bad id among records raises at once."""
    with pytest.raises(ValueError, match="fine_tuning_job_id"):
        walk_jobs(client.checkpoints, [job_record("ftjob-ok"), " "])


@pytest.mark.parametrize("single", ["ftjob-one", b"ftjob-one"])
def test_a_single_string_is_refused(client: AsyncClient, single: Any) -> None:
    """One id passed bare would be walked letter by letter: refused, with the fix named."""
    with pytest.raises(TypeError, match=r"pass \["):
        walk_jobs(client.checkpoints, single)


def test_a_non_iterable_is_refused(client: AsyncClient) -> None:
    """Anything neither iterable nor async iterable is a TypeError naming the argument."""
    with pytest.raises(TypeError, match="fine_tuning_job_ids"):
        walk_jobs(client.checkpoints, cast(Any, 42))


async def test_a_bad_id_from_a_lazy_source_stops_the_walk(
    client: AsyncClient, jobs: dict[str, list[Checkpoint]]
) -> None:
    """A lazy source's bad id raises from the loop when it is taken, naming the argument."""

    def source() -> Iterator[object]:
        yield "ftjob-src-0"
        yield 17

    with pytest.raises(TypeError, match="fine_tuning_job_id"):
        async for _ in walk_jobs(client.checkpoints, cast(Any, source()), concurrency=1):
            pass


async def test_a_source_that_fails_is_raised_not_hung(
    client: AsyncClient, jobs: dict[str, list[Checkpoint]]
) -> None:
    """The source's own error reaches the consumer, and the walks stop."""

    async def source() -> AsyncIterator[str]:
        yield "ftjob-src-0"
        raise RuntimeError("the job database went away")

    with pytest.raises(RuntimeError, match="went away"):
        async for _ in walk_jobs(client.checkpoints, source(), concurrency=2):
            pass


async def test_breaking_out_closes_an_async_source(
    client: AsyncClient, jobs: dict[str, list[Checkpoint]]
) -> None:
    """Leaving the loop early closes the async source the walk was reading."""
    closed = False

    async def source() -> AsyncIterator[str]:
        nonlocal closed
        try:
            for job_id in jobs:
                yield job_id
        finally:
            closed = True

    walk = walk_jobs(client.checkpoints, source(), concurrency=2)
    await anext(walk)
    await walk.aclose()
    assert closed


class _NoCheckpoints:
    """A stand-in for ``client.checkpoints`` whose every job has no checkpoints."""

    def list(self, job_id: str, **_: object) -> _NoCheckpoints:
        return self

    def __aiter__(self) -> _NoCheckpoints:
        return self

    async def __anext__(self) -> Checkpoint:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Nothing to close."""


async def _peak_walking(count: int) -> int:
    resource = cast(AsyncCheckpointsResource, _NoCheckpoints())
    tracemalloc.start()
    try:
        ids = (f"ftjob-{n:08}" for n in range(count))
        async for _ in walk_jobs(resource, ids, concurrency=8):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_memory_stays_flat_however_many_jobs() -> None:
    """Ten times the jobs from a generator, the same peak: the source is never gathered."""
    small = await _peak_walking(2_000)
    large = await _peak_walking(20_000)
    assert large < small + 64 * 1024, (small, large)
