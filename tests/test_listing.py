"""End-to-end listings over loopback against the built-in fake API."""

from __future__ import annotations

import pytest

from fine_tune_ckpt import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PaginationError,
    RateLimitError,
    to_wire,
)
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault

JOB = "ftjob-abc123"


async def test_walks_every_checkpoint_newest_first(
    client: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """25 checkpoints at the default page size come back in three pages, newest first."""
    expected = fake_api.add_job(JOB, count=25)
    items = await client.checkpoints.list(JOB).to_list()
    assert items == expected
    assert [r.query for r in fake_api.requests] == [
        {},
        {"after": expected[9].id},
        {"after": expected[19].id},
    ]


async def test_twenty_thousand_items_in_two_hundred_pages(
    client: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """A 20,000-item, 200-page listing yields every record once, in order."""
    expected = fake_api.add_job("ftjob-big", count=20_000)
    ids = [c.id async for c in client.checkpoints.list("ftjob-big", limit=100)]
    assert ids == [c.id for c in expected]
    assert len(set(ids)) == 20_000
    assert len(fake_api.requests) == 200


async def test_records_round_trip_to_the_wire_json_served(
    client: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """``to_wire`` of a fetched page equals the page the fake served."""
    page = await client.checkpoints.list(JOB, limit=3)
    wire = to_wire(page)
    assert wire["object"] == "list"
    assert wire["has_more"] is True
    assert [item["id"] for item in wire["data"]] == [c.id for c in page.data]
    assert wire["data"][0]["created_at"] == int(page.data[0].created_at.timestamp())


@pytest.mark.parametrize(
    "job_id",
    ["a/b", "../x", "..", "job?x=1", "job#frag", "100%", "ftjob-é", "a b", "a/../../admin"],
)
async def test_job_id_is_one_percent_encoded_path_segment(
    client: AsyncClient, fake_api: FakeAPIServer, job_id: str
) -> None:
    """Whatever it holds, the job id reaches the server as exactly one path segment."""
    if job_id == "..":
        with pytest.raises(ValueError, match="fine_tuning_job_id"):
            client.checkpoints.list(job_id)
        return
    fake_api.add_job(job_id, count=3)
    items = await client.checkpoints.list(job_id).to_list()
    assert len(items) == 3
    (request,) = fake_api.requests
    assert request.fine_tuning_job_id == job_id
    segments = request.raw_path.split("/")
    assert segments[:4] == ["", "v1", "fine_tuning", "jobs"]
    assert segments[5:] == ["checkpoints"]
    assert ".." not in segments


@pytest.mark.parametrize(
    ("arguments", "error", "names"),
    [
        ({"fine_tuning_job_id": ""}, ValueError, "fine_tuning_job_id"),
        ({"fine_tuning_job_id": "   "}, ValueError, "fine_tuning_job_id"),
        ({"fine_tuning_job_id": None}, TypeError, "fine_tuning_job_id"),
        ({"fine_tuning_job_id": 123}, TypeError, "fine_tuning_job_id"),
        ({"fine_tuning_job_id": "."}, ValueError, "fine_tuning_job_id"),
        ({"limit": 0}, ValueError, "limit"),
        ({"limit": -1}, ValueError, "limit"),
        ({"limit": True}, TypeError, "limit"),
        ({"limit": "10"}, TypeError, "limit"),
        ({"limit": 2.5}, TypeError, "limit"),
        ({"max_items": 0}, ValueError, "max_items"),
        ({"max_items": -3}, ValueError, "max_items"),
        ({"max_items": False}, TypeError, "max_items"),
        ({"after": ""}, ValueError, "after"),
        ({"after": 5}, TypeError, "after"),
        # A lone surrogate has no UTF-8: yarl would send after= empty, quote() would raise.
        ({"after": "ftckpt_\udc00"}, ValueError, "after.*surrogate"),
        ({"fine_tuning_job_id": "ftjob-\ud800"}, ValueError, "fine_tuning_job_id.*surrogate"),
    ],
)
async def test_bad_arguments_raise_before_any_request(
    client: AsyncClient,
    fake_api: FakeAPIServer,
    arguments: dict[str, object],
    error: type[Exception],
    names: str,
) -> None:
    """Each bad argument raises at ``list()``, naming it, and nothing is sent."""
    arguments.setdefault("fine_tuning_job_id", JOB)
    with pytest.raises(error, match=names):
        client.checkpoints.list(**arguments)  # type: ignore[arg-type]
    assert fake_api.requests == []


async def test_wrong_key_is_an_authentication_error(fake_api: FakeAPIServer) -> None:
    """The fake refuses a wrong key with 401, surfaced as AuthenticationError."""
    async with AsyncClient(api_key="sk-wrong", base_url=fake_api.base_url) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.checkpoints.list(JOB)
    assert caught.value.code == "invalid_api_key"
    assert caught.value.request_id == fake_api.requests[0].request_id
    assert "sk-wrong" not in str(caught.value)


async def test_unknown_job_is_not_found(client: AsyncClient, fake_api: FakeAPIServer) -> None:
    """An unknown job is a 404 NotFoundError after one attempt."""
    with pytest.raises(NotFoundError) as caught:
        await client.checkpoints.list("ftjob-nope").to_list()
    assert caught.value.param == "fine_tuning_job_id"
    assert caught.value.resume_after is None
    assert len(fake_api.requests) == 1


async def test_unknown_after_is_a_bad_request(client: AsyncClient) -> None:
    """A cursor the server does not know is a 400 BadRequestError naming ``after``."""
    with pytest.raises(BadRequestError) as caught:
        await client.checkpoints.list(JOB, after="ftckpt_missing")
    assert caught.value.param == "after"


async def test_retry_after_is_obeyed_and_the_walk_completes(
    client: AsyncClient, fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """A 429 with Retry-After mid-walk is waited out; every item comes once."""
    expected = fake_api.add_job(JOB, count=25)
    await client.checkpoints.list(JOB)  # the first page
    fake_api.inject(Fault(status=429, retry_after=2))
    items = await client.checkpoints.list(JOB).to_list()
    assert items == expected
    assert fake_clock.sleeps == [2.0]


async def test_dropped_connection_is_retried(client: AsyncClient, fake_api: FakeAPIServer) -> None:
    """A connection dropped without an answer is retried transparently."""
    fake_api.inject(Fault(drop_connection=True))
    assert len(await client.checkpoints.list(JOB).to_list()) == 25
    assert len(fake_api.requests) == 4


async def test_truncated_body_is_retried(client: AsyncClient, fake_api: FakeAPIServer) -> None:
    """A body cut short is a connection error, retried."""
    fake_api.inject(Fault(truncate_body=True))
    assert len(await client.checkpoints.list(JOB).to_list()) == 25


async def test_lasting_drops_raise_with_the_resume_cursor(
    client: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """When retries are spent on page 2, the error says where to resume; resuming completes."""
    expected = fake_api.add_job(JOB, count=25)
    # aiohttp itself re-sends an idempotent request once when the connection drops
    # (RFC 9112 section 9.3.1), so each of our 3 attempts meets 2 drops.
    fake_api.inject(Fault(), *[Fault(drop_connection=True)] * 6)
    seen = []
    with pytest.raises(APIConnectionError) as caught:
        async for checkpoint in client.checkpoints.list(JOB):
            seen.append(checkpoint)
    assert caught.value.resume_after == expected[9].id
    assert fake_api.pending_faults == 0
    seen += await client.checkpoints.list(JOB, after=caught.value.resume_after).to_list()
    assert seen == expected


async def test_non_json_200_is_a_validation_error(
    client: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """An HTML page with status 200 is not retried and says what came back."""
    fake_api.inject(Fault(non_json_body=True))
    with pytest.raises(APIResponseValidationError, match="not JSON") as caught:
        await client.checkpoints.list(JOB)
    assert caught.value.request_id == fake_api.requests[0].request_id
    assert len(fake_api.requests) == 1


async def test_repeated_cursor_raises_pagination_error(
    client: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """A server that repeats a cursor makes the walk stop with PaginationError."""
    expected = fake_api.add_job(JOB, count=25)
    fake_api.inject(Fault(), Fault(repeat_cursor=True))
    seen = []
    with pytest.raises(PaginationError) as caught:
        async for checkpoint in client.checkpoints.list(JOB):
            seen.append(checkpoint)
    assert seen == expected[:10]
    assert caught.value.resume_after == expected[9].id


async def test_slow_answer_times_out(fake_api: FakeAPIServer) -> None:
    """An answer slower than ``timeout`` raises APITimeoutError once retries are spent."""
    fake_api.inject(*[Fault(delay=0.3)] * 2)
    async with AsyncClient(
        api_key=fake_api.api_key,
        base_url=fake_api.base_url,
        timeout=0.05,
        max_retries=1,
        clock=FakeClock(),
    ) as client:
        with pytest.raises(APITimeoutError):
            await client.checkpoints.list(JOB)
    assert len(fake_api.requests) == 2


async def test_rate_limit_after_retries_is_raised(
    client: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """Three 429s in a row surface as RateLimitError."""
    fake_api.inject(*[Fault(status=429)] * 3)
    with pytest.raises(RateLimitError):
        await client.checkpoints.list(JOB)
    assert len(fake_api.requests) == 3


async def test_secrets_stay_out_of_the_fake_request_log(
    client: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """The fake records requests without the Authorization header."""
    await client.checkpoints.list(JOB)
    (request,) = fake_api.requests
    assert request.authorized
    assert "Authorization" not in request.headers
    assert fake_api.api_key not in repr(request)


async def test_cancelling_a_request_in_flight_is_not_retried(
    client: AsyncClient, fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """A task cancelled while its request is in flight ends at once: no retry, no leak."""
    import asyncio

    fake_api.inject(Fault(delay=5.0))
    task = asyncio.create_task(client.checkpoints.list(JOB).to_list())
    await fake_api.wait_for_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(fake_api.requests) == 1
    assert fake_clock.sleeps == []
    # The client stays usable after the cancellation.
    assert len(await client.checkpoints.list(JOB).to_list()) == 25


async def test_deadline_bounds_a_slow_request_with_retries(fake_api: FakeAPIServer) -> None:
    """With a deadline shorter than timeout x attempts, the request gives up at the deadline."""
    import time

    fake_api.inject(*[Fault(delay=1.0)] * 3)
    async with AsyncClient(
        api_key=fake_api.api_key,
        base_url=fake_api.base_url,
        timeout=10.0,
        deadline=0.2,
        max_retries=2,
    ) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError):
            await client.checkpoints.list(JOB)
        assert time.monotonic() - started < 0.9
    assert len(fake_api.requests) == 1
