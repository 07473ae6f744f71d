"""Response metadata: every page knows its answer; errors know their rate limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from fine_tune_ckpt import (
    AsyncCheckpointPager,
    AsyncClient,
    RateLimit,
    RateLimitError,
    ResponseInfo,
    to_wire,
)
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault

from .conftest import load_fixture

JOB = "ftjob-abc123"
RATE_HEADERS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-remaining-requests": "9998",
    "x-ratelimit-reset-requests": "6m0s",
    "x-ratelimit-limit-tokens": "200000",
    "x-ratelimit-remaining-tokens": "abc",  # unreadable: None, never an error
    "x-ratelimit-reset-tokens": "1h2m3.5s",
    "openai-processing-ms": "87",
    "x-request-id": "req_meta",
}


@pytest.fixture
async def metered() -> AsyncIterator[str]:
    """A loopback API answering one page with rate-limit headers, or a 429 for job 'limited'."""

    async def page(request: web.Request) -> web.Response:
        if request.match_info["job"] == "limited":
            body = {"error": {"message": "slow down", "type": "requests", "code": None}}
            return web.json_response(body, status=429, headers=RATE_HEADERS)
        payload = load_fixture("page_spec_example.json")
        return web.Response(
            body=json.dumps(payload), content_type="application/json", headers=RATE_HEADERS
        )

    app = web.Application()
    app.router.add_get("/v1/fine_tuning/jobs/{job}/checkpoints", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


async def test_a_page_carries_its_answers_metadata(metered: str) -> None:
    """Status, request id, read-only headers, rate limits and processing time are on the page."""
    async with AsyncClient(api_key="sk-x", base_url=metered) as client:
        page = await client.checkpoints.list(JOB)
    info = page.response
    assert isinstance(info, ResponseInfo)
    assert (info.status_code, info.request_id, info.processing_ms) == (200, "req_meta", 87)
    assert info.rate_limit == RateLimit(
        limit_requests=10000,
        remaining_requests=9998,
        reset_requests=360.0,
        limit_tokens=200000,
        remaining_tokens=None,
        reset_tokens=3723.5,
    )
    assert info.headers["X-RATELIMIT-LIMIT-REQUESTS"] == "10000"
    with pytest.raises(TypeError):
        info.headers["x-new"] = "1"  # type: ignore[index]
    assert (info.attempts, info.elapsed >= 0) == (1, True)


async def test_attempts_and_elapsed_count_retries_and_waits(fake_api: FakeAPIServer) -> None:
    """After two 503s the page says three attempts, and the elapsed time holds the waits."""
    clock = FakeClock()
    fake_api.inject(Fault(status=503, retry_after=2), Fault(status=503, retry_after=3))
    async with AsyncClient(
        api_key=fake_api.api_key, base_url=fake_api.base_url, clock=clock
    ) as client:
        page = await client.checkpoints.list(JOB)
    assert page.response is not None
    assert page.response.attempts == 3
    assert page.response.elapsed >= 5.0
    assert page.response.rate_limit == RateLimit(None, None, None, None, None, None)


async def test_metadata_takes_no_part_in_equality_or_to_wire(fake_api: FakeAPIServer) -> None:
    """The same page fetched twice is equal, hashes alike, and re-serves without metadata."""
    async with AsyncClient(api_key=fake_api.api_key, base_url=fake_api.base_url) as client:
        first = await client.checkpoints.list(JOB)
        second = await client.checkpoints.list(JOB)
    assert first.response != second.response  # other request ids
    assert first == second
    assert hash(first) == hash(second)
    assert "response" not in to_wire(first)


async def test_the_pager_tracks_the_newest_answer_while_iterating(fake_api: FakeAPIServer) -> None:
    """pager.last_response follows the pages as the items are iterated."""
    async with AsyncClient(api_key=fake_api.api_key, base_url=fake_api.base_url) as client:
        pager = client.checkpoints.list(JOB, limit=10)
        assert _last(pager) is None
        seen: list[str | None] = []
        async for _ in pager:
            seen.append(_request_id(_last(pager)))
    request_ids = [request.request_id for request in fake_api.requests]
    assert set(seen) <= set(request_ids)
    assert seen[0] == request_ids[0]
    assert _request_id(_last(pager)) == request_ids[-1]


def _last(pager: AsyncCheckpointPager) -> ResponseInfo | None:
    return pager.last_response


def _request_id(info: ResponseInfo | None) -> str | None:
    assert info is not None
    return info.request_id


async def test_status_errors_carry_headers_and_rate_limits(metered: str) -> None:
    """A 429 says how long until the limits reset, as the page would."""
    async with AsyncClient(api_key="sk-x", base_url=metered, max_retries=0) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.checkpoints.list("limited")
    error = caught.value
    assert error.headers["x-request-id"] == "req_meta"
    assert error.rate_limit.reset_requests == 360.0
    assert error.rate_limit.remaining_tokens is None


async def test_azure_answers_name_the_request_by_apim_request_id() -> None:
    """On Azure the page's request id is apim-request-id."""
    from fine_tune_ckpt import AsyncAzureClient

    async with FakeAPIServer(flavor="azure") as azure:
        azure.add_job(JOB, count=3)
        async with AsyncAzureClient(
            azure_endpoint=azure.azure_endpoint, api_version="2024-10-21", api_key=azure.api_key
        ) as client:
            page = await client.checkpoints.list(JOB)
    assert page.response is not None
    assert page.response.request_id == azure.requests[0].request_id


async def test_fetched_pages_pickle_and_copy_with_their_metadata(metered: str) -> None:
    """A fetched page survives pickle and deepcopy, its metadata included."""
    import copy
    import pickle

    async with AsyncClient(api_key="sk-x", base_url=metered) as client:
        page = await client.checkpoints.list(JOB)
    for clone in (pickle.loads(pickle.dumps(page)), copy.deepcopy(page)):  # noqa: S301
        assert clone == page
        assert clone.response == page.response
        assert clone.response is not None
        assert clone.response.headers["x-request-id"] == "req_meta"
