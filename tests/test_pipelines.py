"""Pipeline helpers: many jobs at once, the best checkpoint, and resumable walks."""

from __future__ import annotations

import asyncio
import inspect
import typing
from datetime import UTC, datetime

import pytest

from fine_tune_ckpt import (
    AsyncClient,
    Checkpoint,
    CheckpointMetrics,
    JobCheckpoint,
    JobFailure,
    NotFoundError,
    best_checkpoint,
    resume_walk,
    walk_jobs,
)
from fine_tune_ckpt._pipelines import JobDone, walk_jobs_to_the_end
from fine_tune_ckpt._selection import pick_best
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault


@pytest.fixture
async def jobs(fake_api: FakeAPIServer) -> dict[str, list[Checkpoint]]:
    """Five jobs of 23 checkpoints each on the fake."""
    return {f"ftjob-{n}": fake_api.add_job(f"ftjob-{n}", count=23) for n in range(5)}


async def test_walk_jobs_yields_every_checkpoint_tagged_and_in_order(
    client: AsyncClient, jobs: dict[str, list[Checkpoint]]
) -> None:
    """Every checkpoint of every job comes once, tagged, each job in its own order."""
    got: dict[str, list[Checkpoint]] = {job: [] for job in jobs}
    async for item in walk_jobs(client.checkpoints, jobs, concurrency=3, limit=5):
        assert isinstance(item, JobCheckpoint)
        got[item.fine_tuning_job_id].append(item.checkpoint)
    assert got == jobs


async def test_walk_jobs_respects_concurrency(
    client: AsyncClient, fake_api: FakeAPIServer, jobs: dict[str, list[Checkpoint]]
) -> None:
    """No more than ``concurrency`` walks (each with its read-ahead) are in flight."""
    fake_api.inject(*[Fault(delay=0.01)] * 40)
    items = [item async for item in walk_jobs(client.checkpoints, jobs, concurrency=2)]
    assert len(items) == 5 * 23
    assert fake_api.peak_concurrent_requests <= 2


async def test_a_slow_consumer_slows_the_producers(
    client: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """With a small buffer, producers wait for the consumer instead of fetching ahead."""
    for n in range(3):
        fake_api.add_job(f"ftjob-big-{n}", count=200)
    walk = walk_jobs(
        client.checkpoints,
        [f"ftjob-big-{n}" for n in range(3)],
        concurrency=3,
        buffer=5,
        limit=10,
    )
    first = await anext(walk)
    assert isinstance(first, JobCheckpoint)
    await asyncio.sleep(0.2)
    # Each worker holds at most its page and one read-ahead: far from the 60 pages.
    assert len(fake_api.requests) <= 3 * 2 + 3
    await walk.aclose()


async def test_first_error_stops_everything_and_names_the_job(
    client: AsyncClient, jobs: dict[str, list[Checkpoint]]
) -> None:
    """With on_error='raise' a missing job raises, naming it, and the other walks stop."""
    names = [*jobs, "ftjob-missing"]
    with pytest.raises(NotFoundError) as caught:
        async for _ in walk_jobs(client.checkpoints, names, concurrency=6):
            pass
    assert any("ftjob-missing" in note for note in caught.value.__notes__)


async def test_report_mode_goes_on_after_a_failure(
    client: AsyncClient, jobs: dict[str, list[Checkpoint]]
) -> None:
    """With on_error='report' a failed job is reported once and the others complete."""
    names = ["ftjob-missing", *jobs]
    failures: list[JobFailure] = []
    counts: dict[str, int] = {}
    async for item in walk_jobs(client.checkpoints, names, concurrency=2, on_error="report"):
        if isinstance(item, JobFailure):
            failures.append(item)
        else:
            counts[item.fine_tuning_job_id] = counts.get(item.fine_tuning_job_id, 0) + 1
    assert [(f.fine_tuning_job_id, type(f.error)) for f in failures] == [
        ("ftjob-missing", NotFoundError)
    ]
    assert failures[0].error.resume_after is None
    assert counts == dict.fromkeys(jobs, 23)


async def test_walk_jobs_to_the_end_closes_each_job_with_one_end(
    client: AsyncClient, fake_api: FakeAPIServer, jobs: dict[str, list[Checkpoint]]
) -> None:
    """The command line's walk: each job's checkpoints, then exactly one JobDone or JobFailure."""
    fake_api.add_job("ftjob-empty", [])
    names = ["ftjob-missing", *jobs, "ftjob-empty"]
    ended: dict[str, JobDone | JobFailure] = {}
    counts: dict[str, int] = {}
    async for item in walk_jobs_to_the_end(client.checkpoints, names, concurrency=3, limit=5):
        assert item.fine_tuning_job_id not in ended  # nothing of a job after its end
        if isinstance(item, JobCheckpoint):
            counts[item.fine_tuning_job_id] = counts.get(item.fine_tuning_job_id, 0) + 1
        else:
            ended[item.fine_tuning_job_id] = item
    assert sorted(ended) == sorted(names)
    assert isinstance(ended.pop("ftjob-missing"), JobFailure)
    assert all(isinstance(end, JobDone) for end in ended.values())
    assert counts == dict.fromkeys(jobs, 23)


async def test_walk_jobs_never_yields_a_job_end(
    client: AsyncClient, jobs: dict[str, list[Checkpoint]]
) -> None:
    """The public walk, in either mode, yields checkpoints and failures only."""
    names = [*jobs, "ftjob-missing"]
    reported = [item async for item in walk_jobs(client.checkpoints, names, on_error="report")]
    assert {type(item) for item in reported} == {JobCheckpoint, JobFailure}


async def test_breaking_out_cancels_every_walk(
    client: AsyncClient, jobs: dict[str, list[Checkpoint]]
) -> None:
    """Leaving the loop early cancels the producers; the leak check sees no task left."""
    async for _ in walk_jobs(client.checkpoints, jobs, concurrency=5, buffer=1):
        break
    assert len(await client.checkpoints.list("ftjob-0").to_list()) == 23


async def test_cancelling_the_consumer_under_timeout_cancels_the_producers(
    client: AsyncClient, fake_api: FakeAPIServer, jobs: dict[str, list[Checkpoint]]
) -> None:
    """``asyncio.timeout`` around the consumer cancels the walks and leaks nothing."""
    fake_api.inject(*[Fault(delay=5)] * 5)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            async for _ in walk_jobs(client.checkpoints, jobs):
                pass


async def test_works_inside_a_task_group(
    client: AsyncClient, jobs: dict[str, list[Checkpoint]]
) -> None:
    """Several pipelines can run as tasks of one TaskGroup."""

    async def count(names: list[str]) -> int:
        return len([item async for item in walk_jobs(client.checkpoints, names)])

    async with asyncio.TaskGroup() as group:
        first = group.create_task(count(["ftjob-0", "ftjob-1"]))
        second = group.create_task(count(["ftjob-2", "ftjob-3", "ftjob-4"]))
    assert (first.result(), second.result()) == (46, 69)


async def test_no_jobs_yields_nothing(client: AsyncClient) -> None:
    """An empty list of jobs is an empty walk."""
    assert [item async for item in walk_jobs(client.checkpoints, [])] == []


@pytest.mark.parametrize(
    ("options", "error", "names"),
    [
        ({"concurrency": 0}, ValueError, "concurrency"),
        ({"concurrency": True}, TypeError, "concurrency"),
        ({"buffer": -1}, ValueError, "buffer"),
        ({"on_error": "ignore"}, ValueError, "on_error"),
        ({"limit": 0}, ValueError, "limit"),
        ({"max_items": "5"}, TypeError, "max_items"),
        ({"fine_tuning_job_ids": ["ok", ""]}, ValueError, "fine_tuning_job_id"),
    ],
)
async def test_walk_jobs_checks_arguments_at_the_call(
    client: AsyncClient,
    fake_api: FakeAPIServer,
    options: dict[str, object],
    error: type[Exception],
    names: str,
) -> None:
    """Bad arguments raise when walk_jobs is called, before anything is sent."""
    options.setdefault("fine_tuning_job_ids", ["ftjob-abc123"])
    with pytest.raises(error, match=names):
        walk_jobs(client.checkpoints, **options)  # type: ignore[call-overload]
    assert fake_api.requests == []


def test_walk_jobs_overloads_match_the_implementation() -> None:
    """Each typed overload of walk_jobs has the implementation's parameters and defaults."""
    implementation = inspect.signature(walk_jobs).parameters
    overloads = typing.get_overloads(walk_jobs)
    assert len(overloads) == 3
    for overload in overloads:
        parameters = inspect.signature(overload).parameters
        assert list(parameters) == list(implementation)
        for name, parameter in parameters.items():
            assert parameter.kind == implementation[name].kind
            if parameter.default is not inspect.Parameter.empty:
                assert parameter.default == implementation[name].default, name


def _checkpoint(n: int, **metrics: float) -> Checkpoint:
    return Checkpoint(
        id=f"ftckpt_{n}",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        fine_tuned_model_checkpoint=f"ft:m:o:s:x:ckpt-step-{n}",
        fine_tuning_job_id="ftjob-best",
        metrics=CheckpointMetrics(**metrics),
        step_number=n,
    )


@pytest.fixture
async def ranked(fake_api: FakeAPIServer) -> list[Checkpoint]:
    """Checkpoints with gaps in their metrics, served as job ftjob-best."""
    checkpoints = [
        _checkpoint(5, full_valid_loss=0.40),
        _checkpoint(4),
        _checkpoint(3, full_valid_loss=0.30, full_valid_mean_token_accuracy=0.8),
        _checkpoint(2, full_valid_loss=0.30, full_valid_mean_token_accuracy=0.9),
        _checkpoint(1, full_valid_loss=0.90, full_valid_mean_token_accuracy=0.5),
    ]
    return fake_api.add_job("ftjob-best", checkpoints)


async def test_best_checkpoint_by_loss_and_by_accuracy(
    client: AsyncClient, ranked: list[Checkpoint]
) -> None:
    """Lowest loss wins (the newest on a tie); highest accuracy wins; gaps are skipped."""
    pager = client.checkpoints.list("ftjob-best", limit=2)
    best_loss = await best_checkpoint(pager, "full_valid_loss")
    best_accuracy = await best_checkpoint(pager, "full_valid_mean_token_accuracy")
    assert best_loss is not None
    assert best_loss.step_number == 3
    assert best_accuracy is not None
    assert best_accuracy.step_number == 2


def test_a_tie_goes_to_the_later_checkpoint_in_any_order(ranked: list[Checkpoint]) -> None:
    """On a tie the higher step wins, whether offered newest first (a listing) or oldest first."""
    for order in (ranked, ranked[::-1]):
        best = pick_best(order, "full_valid_loss")
        assert best is not None
        assert best.step_number == 3


async def test_best_checkpoint_when_none_reports_the_metric(
    client: AsyncClient, ranked: list[Checkpoint]
) -> None:
    """No checkpoint with the metric is a clear answer: None."""
    assert await best_checkpoint(client.checkpoints.list("ftjob-best"), "valid_loss") is None


async def test_best_checkpoint_refuses_an_unknown_metric_before_fetching(
    client: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """An unknown metric raises ValueError naming the choices, and nothing is sent."""
    with pytest.raises(ValueError, match="full_valid_loss"):
        await best_checkpoint(client.checkpoints.list("ftjob-abc123"), "accuracy")  # type: ignore[arg-type]
    assert fake_api.requests == []


async def test_resume_walk_saves_after_each_finished_page_and_resumes(
    client: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """A walk that dies mid-page resumes from the last saved cursor: no gap, no loss."""
    expected = fake_api.add_job("ftjob-long", count=23)
    saved: list[str] = []
    processed: list[Checkpoint] = []

    async def save(cursor: str) -> None:
        saved.append(cursor)

    walk = resume_walk(client.checkpoints, "ftjob-long", cursor=None, save_cursor=save, limit=5)
    async for checkpoint in walk:
        processed.append(checkpoint)
        if len(processed) == 12:  # the process dies in the middle of page 3
            break
    assert saved == [expected[4].id, expected[9].id]
    resumed = [
        checkpoint
        async for checkpoint in resume_walk(
            client.checkpoints,
            "ftjob-long",
            cursor=saved[-1],
            save_cursor=saved.append,
            limit=5,
        )
    ]
    assert resumed == expected[10:]
    assert saved[-1] == expected[-1].id


def test_resume_walk_checks_arguments(client: AsyncClient) -> None:
    """A save_cursor that is not callable, or a bad job id, is refused at the call."""
    with pytest.raises(TypeError, match="save_cursor"):
        resume_walk(client.checkpoints, "ftjob-1", cursor=None, save_cursor="file.txt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fine_tuning_job_id"):
        resume_walk(client.checkpoints, " ", cursor=None, save_cursor=print)


async def test_walk_jobs_over_a_fake_clock_client_needs_no_real_waits(
    fake_api: FakeAPIServer, jobs: dict[str, list[Checkpoint]]
) -> None:
    """Retries inside a pipeline use the client's clock: a 429 costs no real time."""
    clock = FakeClock()
    fake_api.inject(Fault(status=429, retry_after=30))
    async with AsyncClient(
        api_key=fake_api.api_key, base_url=fake_api.base_url, clock=clock
    ) as client:
        items = [item async for item in walk_jobs(client.checkpoints, jobs)]
    assert len(items) == 5 * 23
    assert clock.sleeps == [30.0]


async def test_an_unexpected_error_in_a_walk_is_raised_not_hung(
    fake_api: FakeAPIServer, jobs: dict[str, list[Checkpoint]]
) -> None:
    """A closed client in the workers reaches the consumer instead of a hang.

    It is a library error (with ``resume_after``), so "report" reports it for each job
    and "raise" raises it.
    """
    client = AsyncClient(api_key=fake_api.api_key, base_url=fake_api.base_url)
    await client.aclose()
    async with asyncio.timeout(5):
        reported = [item async for item in walk_jobs(client.checkpoints, jobs, on_error="report")]
    assert {item.fine_tuning_job_id for item in reported} == set(jobs)
    assert all(isinstance(item, JobFailure) for item in reported)
    with pytest.raises(RuntimeError, match="closed"):
        async with asyncio.timeout(5):
            async for _ in walk_jobs(client.checkpoints, jobs):
                pass
