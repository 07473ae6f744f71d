"""Faults: every checkpoint once and in order, or an error that says where to resume.

Retry accounting is exact, too.
"""

from __future__ import annotations

import pytest

from fine_tune_ckpt import (
    APIError,
    APIStatusError,
    AsyncClient,
    BadRequestError,
    Checkpoint,
    InternalServerError,
    RateLimitError,
)
from fine_tune_ckpt.testing import RANDOM_FAULTS, FakeAPIServer, FakeClock, Fault

JOB = "ftjob-abc123"
SEEDS = range(300)
#: Every fault a walk must survive or report, slow answers past the timeout included.
FAULT_MIX = (*RANDOM_FAULTS, Fault(delay=0.05))


async def _walk_with_faults(seed: int, expected: list[Checkpoint]) -> tuple[list[str], int]:
    """Walk under faults; on an error, resume from its cursor with the faults gone."""
    async with FakeAPIServer(
        api_key="sk-faults", fault_rate=0.35, fault_seed=seed, random_faults=FAULT_MIX
    ) as fake:
        fake.add_job(JOB, expected)
        async with AsyncClient(
            api_key="sk-faults",
            base_url=fake.base_url,
            clock=FakeClock(),
            timeout=0.02,
            max_retries=1,
        ) as client:
            seen: list[str] = []
            resumed = 0
            try:
                async for checkpoint in client.checkpoints.list(JOB, limit=4):
                    seen.append(checkpoint.id)
            except APIError as error:
                resumed = 1
                fake.fault_rate = 0.0
                # A patient client for the resume: on a busy machine a 20 ms timeout
                # could fail a healthy answer, and that is not what is tested here.
                async with AsyncClient(api_key="sk-faults", base_url=fake.base_url) as patient:
                    resume = patient.checkpoints.list(JOB, limit=4, after=error.resume_after)
                    seen += [checkpoint.id async for checkpoint in resume]
    return seen, resumed


@pytest.fixture(scope="module")
def job() -> list[Checkpoint]:
    """Eighteen checkpoints: five pages of four."""
    from fine_tune_ckpt.testing import synthetic_checkpoints

    return synthetic_checkpoints(JOB, 18, seed=42)


async def test_hundreds_of_seeded_fault_walks_never_lose_or_repeat(
    job: list[Checkpoint],
) -> None:
    """For 300 seeds, each walk (resumed once if it failed) is exactly the job, in order."""
    expected = [checkpoint.id for checkpoint in job]
    resumed = 0
    for seed in SEEDS:
        seen, was_resumed = await _walk_with_faults(seed, job)
        assert seen == expected, f"seed {seed}"
        resumed += was_resumed
    # The mix is harsh enough that the resume path is exercised (on a quick machine the
    # clean path is too; a slow one may time out every walk, which must still hold).
    assert resumed > 0


@pytest.mark.parametrize("max_retries", [0, 1, 2, 4])
@pytest.mark.parametrize(("status", "cls"), [(429, RateLimitError), (503, InternalServerError)])
async def test_attempts_equal_one_plus_retries(
    max_retries: int, status: int, cls: type[APIStatusError]
) -> None:
    """A lasting retryable status is tried exactly ``1 + max_retries`` times."""
    async with FakeAPIServer(fault_rate=1.0, random_faults=[Fault(status=status)]) as fake:
        fake.add_job(JOB, count=3)
        async with AsyncClient(
            api_key=fake.api_key, base_url=fake.base_url, clock=FakeClock(), max_retries=max_retries
        ) as client:
            with pytest.raises(cls):
                await client.checkpoints.list(JOB)
        assert len(fake.requests) == 1 + max_retries


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_non_retryable_statuses_are_tried_once(status: int) -> None:
    """A final status is tried once, even with retries to spare."""
    async with FakeAPIServer(fault_rate=1.0, random_faults=[Fault(status=status)]) as fake:
        fake.add_job(JOB, count=3)
        async with AsyncClient(
            api_key=fake.api_key, base_url=fake.base_url, clock=FakeClock(), max_retries=5
        ) as client:
            with pytest.raises(APIStatusError) as caught:
                await client.checkpoints.list(JOB)
        assert caught.value.status_code == status
        assert len(fake.requests) == 1


async def test_x_should_retry_false_is_tried_once(fake_api: FakeAPIServer) -> None:
    """``x-should-retry: false`` on a 500 stops at one attempt."""
    fake_api.inject(Fault(status=500, should_retry=False))
    async with AsyncClient(
        api_key=fake_api.api_key, base_url=fake_api.base_url, clock=FakeClock(), max_retries=5
    ) as client:
        with pytest.raises(InternalServerError):
            await client.checkpoints.list(JOB)
    assert len(fake_api.requests) == 1


async def test_x_should_retry_true_retries_a_400(fake_api: FakeAPIServer) -> None:
    """``x-should-retry: true`` makes a 400 retried."""
    fake_api.inject(Fault(status=400, should_retry=True))
    async with AsyncClient(
        api_key=fake_api.api_key, base_url=fake_api.base_url, clock=FakeClock()
    ) as client:
        await client.checkpoints.list(JOB)
    assert len(fake_api.requests) == 2


async def test_deadline_caps_retry_after_waits(fake_api: FakeAPIServer) -> None:
    """Waits the deadline cannot afford are not taken; the last error is raised at once."""
    fake_api.inject(*[Fault(status=429, retry_after=20)] * 5)
    clock = FakeClock()
    async with AsyncClient(
        api_key=fake_api.api_key,
        base_url=fake_api.base_url,
        clock=clock,
        max_retries=5,
        deadline=45,
    ) as client:
        with pytest.raises(RateLimitError):
            await client.checkpoints.list(JOB)
    assert clock.sleeps == [20.0, 20.0]
    assert len(fake_api.requests) == 3


async def test_a_bad_request_mid_walk_carries_the_cursor(fake_api: FakeAPIServer) -> None:
    """A final error on page 2 reports page 1's last id as the place to resume."""
    expected = fake_api.add_job(JOB, count=25)
    fake_api.inject(Fault(), Fault(status=400))
    with pytest.raises(BadRequestError) as caught:
        async with AsyncClient(
            api_key=fake_api.api_key, base_url=fake_api.base_url, clock=FakeClock()
        ) as client:
            await client.checkpoints.list(JOB).to_list()
    assert caught.value.resume_after == expected[9].id
