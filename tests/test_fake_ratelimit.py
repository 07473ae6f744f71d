"""The fake's rate-limited mode over loopback: the 429s, the headers, the counters, latency."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from fine_tune_ckpt import AsyncClient, RateLimit, RateLimitError, SystemClock
from fine_tune_ckpt._metadata import rate_limit_from_headers
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault, RateLimitPolicy

from .test_fake_azure import AZURE_ERROR_SCHEMA
from .test_fake_server import ERROR_SCHEMA, PAGE_SCHEMA

JOB = "ftjob-abc123"
# 200 requests a second, 5 at once: a token every 5 ms.
POLICY = RateLimitPolicy(requests_per_second=200, burst=5)
CHECKPOINTS = f"/fine_tuning/jobs/{JOB}/checkpoints"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A bare aiohttp session, to see exactly what the fake sends."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def limited(fake_clock: FakeClock) -> AsyncIterator[FakeAPIServer]:
    """A fake on the fake clock taking 200 requests a second, 5 at once."""
    async with FakeAPIServer(clock=fake_clock, rate_limit=POLICY) as fake:
        fake.add_job(JOB, count=25)
        yield fake


async def _get(
    http: aiohttp.ClientSession,
    fake: FakeAPIServer,
    path: str = CHECKPOINTS,
    *,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> tuple[int, CIMultiDictProxy[str], Any]:
    if headers is None:
        headers = (
            {"api-key": fake.api_key}
            if fake.flavor == "azure"
            else {"Authorization": f"Bearer {fake.api_key}"}
        )
    async with http.request(method, fake.base_url + path, headers=headers) as answer:
        return answer.status, answer.headers, await answer.json()


def _rate_limit(remaining: int, reset: float) -> RateLimit:
    return RateLimit(
        limit_requests=POLICY.burst,
        remaining_requests=remaining,
        reset_requests=reset,
        limit_tokens=None,
        remaining_tokens=None,
        reset_tokens=None,
    )


async def test_a_burst_is_answered_then_429_says_when_to_come_back(
    limited: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """``burst`` requests at one instant get pages; the next gets the API's 429, with waits."""
    for remaining in range(4, -1, -1):
        status, headers, body = await _get(http, limited)
        assert status == 200
        PAGE_SCHEMA.validate(body)
        assert rate_limit_from_headers(headers) == _rate_limit(remaining, (5 - remaining) / 200)
    status, headers, body = await _get(http, limited)
    assert status == 429
    ERROR_SCHEMA.validate(body)
    error = body["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "requests",
        "rate_limit_exceeded",
        None,
    )
    assert error["message"].startswith("Rate limit reached for requests")
    assert "Please try again in 5ms." in error["message"]
    assert headers["retry-after-ms"] == "5"
    assert headers["retry-after"] == "1"
    assert rate_limit_from_headers(headers) == _rate_limit(0, 0.025)
    assert "x-request-id" in headers
    assert (limited.request_count, limited.rate_limited_count) == (6, 1)


async def test_advancing_the_clock_refills_the_bucket(
    limited: FakeAPIServer, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """Waiting ``retry-after-ms`` on the fake's clock gives one request; a full wait, a burst."""
    statuses = [(await _get(http, limited))[0] for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    fake_clock.advance(0.005)
    statuses = [(await _get(http, limited))[0] for _ in range(2)]
    assert statuses == [200, 429]
    fake_clock.advance(0.004)  # 4/5 of a token: still nothing
    status, headers, _ = await _get(http, limited)
    assert (status, headers["retry-after-ms"]) == (429, "1")
    fake_clock.advance(60)  # full again, and no fuller
    statuses = [(await _get(http, limited))[0] for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    assert limited.rate_limited_count == 4
    assert limited.request_count == len(limited.requests) == 15


@pytest.mark.parametrize(
    ("path", "headers", "method", "status"),
    [
        (CHECKPOINTS, None, "GET", 200),
        (f"/fine_tuning/jobs/{JOB}", None, "GET", 200),
        ("/fine_tuning/jobs", None, "GET", 200),
        ("/fine_tuning/jobs/ftjob-nope/checkpoints", None, "GET", 404),
        (CHECKPOINTS + "?limit=0", None, "GET", 400),
        (CHECKPOINTS, {"Authorization": "Bearer sk-wrong"}, "GET", 401),
        (CHECKPOINTS, {}, "GET", 401),
        ("/nowhere", None, "POST", 404),
    ],
)
async def test_every_answer_reports_the_limit(
    limited: FakeAPIServer,
    http: aiohttp.ClientSession,
    path: str,
    headers: dict[str, str] | None,
    method: str,
    status: int,
) -> None:
    """Pages, jobs and every error carry ``x-ratelimit-*``, each request taking a token."""
    got, answer_headers, body = await _get(http, limited, path, headers=headers, method=method)
    assert got == status
    if status != 200:
        ERROR_SCHEMA.validate(body)
    assert rate_limit_from_headers(answer_headers) == _rate_limit(4, 0.005)


async def test_injected_faults_carry_the_headers_and_wait_for_an_admitted_request(
    limited: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """A fault answers with the limit's headers too; a refused request does not use it up."""
    limited.inject(Fault(status=503))
    status, headers, _ = await _get(http, limited)
    assert status == 503
    assert rate_limit_from_headers(headers).remaining_requests == 4
    for _ in range(4):
        await _get(http, limited)
    limited.inject(Fault(status=500))
    assert (await _get(http, limited))[0] == 429  # refused before the fault is looked at
    assert limited.pending_faults == 1


async def test_the_client_waits_out_the_limit_on_the_shared_clock(
    limited: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """A walk of 25 one-item pages through a limit of 5 at once completes, in no real time."""
    async with AsyncClient(
        api_key=limited.api_key, base_url=limited.base_url, clock=fake_clock
    ) as client:
        pager = client.checkpoints.list(JOB, limit=1)
        items = await pager.to_list()
        assert len(items) == 25
    # Every page took one admitted request, and each refusal was sent again. (How many
    # 429s there were is the client's business: retrying, or pacing by the headers.)
    assert limited.request_count == 25 + limited.rate_limited_count
    # The bucket gave 20 tokens past the burst: 0.1 s passed on the clock, no real time.
    waited = (25 - POLICY.burst) / POLICY.requests_per_second
    assert fake_clock.monotonic() >= waited - 1e-9


async def test_the_official_sdk_sees_a_rate_limit_error(limited: FakeAPIServer) -> None:
    """``openai.AsyncOpenAI(max_retries=0)`` raises ``RateLimitError`` with the API's fields."""
    openai = pytest.importorskip("openai")
    sdk = openai.AsyncOpenAI(base_url=limited.base_url, api_key=limited.api_key, max_retries=0)
    try:
        for _ in range(POLICY.burst):
            await sdk.fine_tuning.jobs.checkpoints.list(JOB)
        with pytest.raises(openai.RateLimitError) as caught:
            await sdk.fine_tuning.jobs.retrieve(JOB)
    finally:
        await sdk.close()
    error = caught.value
    assert (error.status_code, error.code, error.type) == (429, "rate_limit_exceeded", "requests")
    assert error.response.headers["retry-after-ms"] == "5"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"


async def test_our_client_with_no_retries_raises_rate_limit_error(
    limited: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """With ``max_retries=0`` the refusal is a ``RateLimitError`` carrying the headers."""
    async with aiohttp.ClientSession() as http:  # another program empties the bucket
        for _ in range(POLICY.burst):
            assert (await _get(http, limited))[0] == 200
    async with AsyncClient(
        api_key=limited.api_key, base_url=limited.base_url, clock=fake_clock, max_retries=0
    ) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.checkpoints.list(JOB)
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.rate_limit == _rate_limit(0, 0.025)


async def test_azure_refusals_are_azure_shaped(
    fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """On the Azure flavour a refusal is Azure's 429, with the same headers."""
    policy = RateLimitPolicy(requests_per_second=0.5, burst=1)
    async with FakeAPIServer(flavor="azure", clock=fake_clock, rate_limit=policy) as azure:
        azure.add_job(JOB, count=3)
        assert (await _get(http, azure, "/v1" + CHECKPOINTS))[0] == 200
        status, headers, body = await _get(http, azure, "/v1/fine_tuning/jobs")
    assert status == 429
    AZURE_ERROR_SCHEMA.validate(body)
    assert (body["error"]["code"], body["error"]["inner_error"]["code"]) == (
        "429",
        "RateLimitExceeded",
    )
    assert body["error"]["message"].endswith("Please retry after 2 seconds.")
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("2000", "2")
    assert headers["x-ratelimit-reset-requests"] == "2s"
    assert "apim-request-id" in headers


async def test_without_a_rate_limit_no_header_is_sent(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """The default fake takes any rate and says nothing about limits."""
    fake_api.add_job(JOB, count=1)
    for _ in range(20):
        status, headers, _ = await _get(http, fake_api)
        assert status == 200
        assert not any(name.lower().startswith("x-ratelimit") for name in headers)
    assert fake_api.rate_limit is None
    assert (fake_api.request_count, fake_api.rate_limited_count) == (20, 0)


async def test_latency_on_a_fake_clock_is_never_waited(
    fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """An hour of latency on a FakeClock answers at once, and moves no clock."""
    async with FakeAPIServer(clock=fake_clock, latency=3600.0, rate_limit=POLICY) as fake:
        fake.add_job(JOB, count=1)
        async with asyncio.timeout(10):  # a bound for a broken fake, never reached
            assert (await _get(http, fake))[0] == 200
    assert fake.latency == 3600.0
    assert fake_clock.monotonic() == 0.0
    assert fake_clock.sleeps == []


@pytest.mark.parametrize("clock", [None, SystemClock()], ids=["default", "SystemClock"])
async def test_real_time_limit_and_latency(
    http: aiohttp.ClientSession, clock: SystemClock | None
) -> None:
    """On real time, latency delays every answer and the bucket refills as time passes."""
    latency = 0.02
    # A token every 100 ms: wide enough that a busy machine still sends the three requests
    # within one token, and the fourth before a second one.
    policy = RateLimitPolicy(requests_per_second=10, burst=2)
    async with FakeAPIServer(clock=clock, latency=latency, rate_limit=policy) as fake:
        fake.add_job(JOB, count=1)
        started = time.monotonic()
        answers = await asyncio.gather(*(_get(http, fake) for _ in range(3)))
        first = time.monotonic() - started
        assert sorted(status for status, _, _ in answers) == [200, 200, 429]
        refused = next(headers for status, headers, _ in answers if status == 429)
        wait = int(refused["retry-after-ms"]) / 1000
        assert 0 < wait <= 0.1
        await asyncio.sleep(wait)
        status, headers, _ = await _get(http, fake)
        total = time.monotonic() - started
    assert status == 200
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert fake.peak_concurrent_requests == 3  # all three were in their latency together
    # The upper bounds only catch a fake that waits far too long; the test takes ~0.1 s.
    assert latency <= first < 1
    assert 2 * latency + wait <= total < 1


@pytest.mark.parametrize(
    ("latency", "error"),
    [(-0.1, ValueError), (math.nan, ValueError), (math.inf, ValueError), (True, TypeError)],
)
def test_latency_must_be_a_finite_number_of_seconds(latency: float, error: type[Exception]) -> None:
    """A negative, infinite or NaN latency is refused when the fake is made."""
    with pytest.raises(error, match="latency"):
        FakeAPIServer(latency=latency)


def test_rate_limit_must_be_a_policy() -> None:
    """``rate_limit=200`` is a mistake the fake names, not a silent no-limit."""
    with pytest.raises(TypeError, match="RateLimitPolicy"):
        FakeAPIServer(rate_limit=200)  # type: ignore[arg-type]
    assert FakeAPIServer(rate_limit=POLICY).rate_limit == POLICY
