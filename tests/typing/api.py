"""Exercises the public API for ``mypy --strict`` only; it is never run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, assert_type

import aiohttp

from fine_tune_ckpt import (
    NOT_GIVEN,
    TERMINAL_STATUSES,
    APIError,
    APIStatusError,
    AsyncAzureClient,
    AsyncCheckpointPager,
    AsyncClient,
    AsyncJobPager,
    Checkpoint,
    CheckpointMetrics,
    CheckpointPage,
    CheckpointWatcher,
    FineTuningJob,
    FineTuningJobError,
    FineTuningJobPage,
    JobCheckpoint,
    JobFailure,
    JobStatus,
    RateLimit,
    ResponseInfo,
    to_wire,
    walk_jobs,
)
from fine_tune_ckpt.testing import (
    FakeAPIServer,
    FakeClock,
    Fault,
    JobState,
    JobTimeline,
    RateLimitPolicy,
)


async def usage(session: aiohttp.ClientSession) -> None:
    """Each public call, with the types users get back."""
    async with AsyncClient(api_key="sk", session=session, clock=FakeClock()) as client:
        pager = client.checkpoints.list("ftjob-1", after=None, limit=10, max_items=5)
        assert_type(pager, AsyncCheckpointPager)
        page = await pager
        assert_type(page, CheckpointPage)
        assert_type(page.next_after, str | None)
        async for checkpoint in pager:
            assert_type(checkpoint, Checkpoint)
            assert_type(checkpoint.created_at, datetime)
            assert_type(checkpoint.metrics, CheckpointMetrics)
            assert_type(checkpoint.metrics.full_valid_loss, float | None)
            assert_type(checkpoint.extra, Mapping[str, Any])
            assert_type(page.extra, Mapping[str, Any])
            assert_type(checkpoint.metrics.extra, Mapping[str, Any])
        async for each_page in pager.pages():
            assert_type(each_page, CheckpointPage)
        assert_type(await pager.to_list(), list[Checkpoint])
        assert_type(to_wire(page), dict[str, Any])
    try:
        pass
    except APIError as error:
        assert_type(error.resume_after, str | None)
        assert_type(error.request_id, str | None)
    async with FakeAPIServer(api_key="sk") as fake:
        fake.inject(Fault(status=429, retry_after=1))
        assert_type(fake.base_url, str)


async def newer_usage() -> None:
    """Backends, per-call control and response metadata, with the types users get back."""

    async def token() -> str:
        return "entra"

    azure = AsyncAzureClient(
        azure_endpoint="https://r.example", api_version="v1", azure_ad_token_provider=token
    )
    assert_type(await azure.__aenter__(), AsyncAzureClient)
    assert_type(azure.with_options(timeout=5), AsyncAzureClient)
    client = AsyncClient(
        api_key=lambda: "sk",
        default_headers={"x-gateway": "1"},
        default_query={"region": "eu"},
        proxy="http://proxy:3128",
    )
    copy = client.with_options(max_retries=0, default_headers={"x-more": "1"})
    assert_type(copy, AsyncClient)
    pager = copy.checkpoints.list(
        "ftjob-1", timeout=None, deadline=NOT_GIVEN, extra_headers={"x-trace": "t"}
    )
    page = await pager
    assert_type(page.response, ResponseInfo | None)
    assert_type(pager.last_response, ResponseInfo | None)
    if page.response is not None:
        assert_type(page.response.rate_limit, RateLimit)
        assert_type(page.response.rate_limit.reset_requests, float | None)
        assert_type(page.response.attempts, int)
    try:
        pass
    except APIStatusError as error:
        assert_type(error.rate_limit, RateLimit)


async def job_usage(client: AsyncClient) -> None:
    """Job reads and watching, with the types users get back."""
    job = await client.jobs.retrieve("ftjob-1", timeout=5)
    assert_type(job, FineTuningJob)
    assert_type(job.status, JobStatus)
    assert_type(job.error, FineTuningJobError | None)
    assert_type(job.fine_tuned_model, str | None)
    assert_type(job.finished_at, datetime | None)
    assert_type(job.hyperparameters, Mapping[str, Any])
    assert_type(job.is_finished, bool)
    jobs = client.jobs.list(limit=5, max_items=10)
    assert_type(jobs, AsyncJobPager)
    assert_type(await jobs, FineTuningJobPage)
    async for each in jobs:
        assert_type(each, FineTuningJob)
    async for page in jobs.pages():
        assert_type(page.data, tuple[FineTuningJob, ...])
    assert_type(await jobs.to_list(), list[FineTuningJob])
    watcher = client.checkpoints.watch("ftjob-1", poll_interval=10, since=None)
    assert_type(watcher, CheckpointWatcher)
    async for checkpoint in watcher:
        assert_type(checkpoint, Checkpoint)
        again = client.checkpoints.watch("ftjob-1", since=checkpoint)
        assert_type(again.since, str | None)
    assert_type(watcher.job, FineTuningJob | None)
    assert_type(watcher.last_checkpoint, Checkpoint | None)
    assert_type(to_wire(job), dict[str, Any])
    assert "running" not in TERMINAL_STATUSES
    async for item in walk_jobs(client.checkpoints, client.jobs.list()):
        assert_type(item, JobCheckpoint)
    ids = (each.id async for each in client.jobs.list())
    async for found in walk_jobs(client.checkpoints, ids, on_error="report"):
        assert_type(found, JobCheckpoint | JobFailure)


async def fake_jobs_usage() -> None:
    """The fake's running jobs: a clock, a timeline and the states it computes."""
    clock = FakeClock()
    async with FakeAPIServer(clock=clock) as fake:
        timeline = JobTimeline(checkpoint_every=1.5, outcome="failed", error_param=None)
        made = fake.add_running_job("ftjob-1", count=3, timeline=timeline)
        assert_type(made, list[Checkpoint])
        assert_type(fake.add_running_job("ftjob-2", made), list[Checkpoint])
        state = timeline.at(clock.monotonic(), checkpoints=len(made))
        assert_type(state, JobState)
        assert_type(state.checkpoints, int)
        assert_type(state.finished_after, float | None)
        assert_type(timeline.duration(3), float)
    JobTimeline(outcome="running")  # type: ignore[arg-type]


async def fake_rate_limit_usage() -> None:
    """The fake's rate-limited mode: a policy, a latency, the counters."""
    policy = RateLimitPolicy(requests_per_second=200, burst=50)
    assert_type(policy.burst, int)
    assert_type(RateLimitPolicy(0.5).requests_per_second, float)
    async with FakeAPIServer(clock=FakeClock(), rate_limit=policy, latency=0.02) as fake:
        assert_type(fake.rate_limit, RateLimitPolicy | None)
        assert_type(fake.latency, float)
        assert_type(fake.rate_limited_count, int)
        assert_type(fake.request_count, int)
    FakeAPIServer(rate_limit=200)  # type: ignore[arg-type]


async def pacing_usage() -> None:
    """Pacing switches and caps, on both clients and on copies."""
    client = AsyncClient(api_key="sk", max_requests_per_second=5, pacing=True)
    assert_type(client.with_options(max_requests_per_second=0.5), AsyncClient)
    assert_type(client.with_options(max_requests_per_second=None), AsyncClient)
    azure = AsyncAzureClient(
        azure_endpoint="https://r.example",
        api_version="v1",
        api_key="k",
        pacing=False,
        max_requests_per_second=None,
    )
    assert_type(azure.with_options(max_requests_per_second=2), AsyncAzureClient)
