"""Requests, retries, timeouts and transport failures, with aiohttp intercepted."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from fine_tune_ckpt import (
    APIConnectionError,
    APITimeoutError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
    __version__,
)
from fine_tune_ckpt.testing import FakeClock

from .conftest import load_fixture

BASE = "https://api.test/v1"
URL = f"{BASE}/fine_tuning/jobs/ftjob-abc123/checkpoints"
ANY_URL = re.compile(r"^https://api\.test/v1/.*$")
PAGE = load_fixture("page_spec_example.json")
LAST_PAGE = {**PAGE, "has_more": False}


def _client(clock: FakeClock, **options: Any) -> AsyncClient:
    return AsyncClient(api_key="sk-secret-key", base_url=BASE, clock=clock, **options)


def _sent(mock: aioresponses) -> list[tuple[str, Any]]:
    return [(str(url), call.kwargs) for (_, url), calls in mock.requests.items() for call in calls]


async def test_request_shape(mock_http: aioresponses, fake_clock: FakeClock) -> None:
    """The request carries the bearer key, org, project, Accept and a User-Agent."""
    mock_http.get(URL, payload=LAST_PAGE)
    async with _client(fake_clock, organization="org-1", project="proj-1") as client:
        await client.checkpoints.list("ftjob-abc123")
    ((url, kwargs),) = _sent(mock_http)
    assert url == URL
    headers = kwargs["headers"]
    assert headers["Authorization"] == "Bearer sk-secret-key"
    assert headers["OpenAI-Organization"] == "org-1"
    assert headers["OpenAI-Project"] == "proj-1"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"].startswith(f"fine-tune-ckpt/{__version__} ")


async def test_no_org_or_project_headers_unless_set(
    mock_http: aioresponses, fake_clock: FakeClock
) -> None:
    """Organization and project headers are sent only when configured."""
    mock_http.get(URL, payload=LAST_PAGE)
    async with _client(fake_clock) as client:
        await client.checkpoints.list("ftjob-abc123")
    ((_, kwargs),) = _sent(mock_http)
    assert "OpenAI-Organization" not in kwargs["headers"]
    assert "OpenAI-Project" not in kwargs["headers"]


async def test_after_and_limit_go_in_the_query(
    mock_http: aioresponses, fake_clock: FakeClock
) -> None:
    """``after`` and ``limit`` are sent as given; neither is sent when not given."""
    mock_http.get(f"{URL}?after=ftckpt_x&limit=100", payload=LAST_PAGE)
    async with _client(fake_clock) as client:
        await client.checkpoints.list("ftjob-abc123", after="ftckpt_x", limit=100)
    ((url, _),) = _sent(mock_http)
    assert url == f"{URL}?after=ftckpt_x&limit=100"


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, BadRequestError), (401, AuthenticationError), (404, NotFoundError)],
)
async def test_client_errors_are_raised_after_one_attempt(
    mock_http: aioresponses, fake_clock: FakeClock, status: int, cls: type[Exception]
) -> None:
    """A 4xx other than 408/409/429 is final: one attempt, no sleep."""
    mock_http.get(URL, status=status, payload={"error": {"message": "no"}}, repeat=True)
    async with _client(fake_clock) as client:
        with pytest.raises(cls):
            await client.checkpoints.list("ftjob-abc123")
    assert len(_sent(mock_http)) == 1
    assert fake_clock.sleeps == []


async def test_retries_until_success(mock_http: aioresponses, fake_clock: FakeClock) -> None:
    """A 500 then a 429 then a page: three attempts, waits from backoff and Retry-After."""
    mock_http.get(URL, status=500)
    mock_http.get(URL, status=429, headers={"retry-after-ms": "1200"})
    mock_http.get(URL, payload=LAST_PAGE)
    async with _client(fake_clock) as client:
        page = await client.checkpoints.list("ftjob-abc123")
    assert len(page.data) == 2
    assert len(_sent(mock_http)) == 3
    assert 0.375 <= fake_clock.sleeps[0] <= 0.5
    assert fake_clock.sleeps[1] == 1.2


async def test_gives_up_after_max_retries(mock_http: aioresponses, fake_clock: FakeClock) -> None:
    """With ``max_retries=2`` a lasting 503 is tried three times, then raised."""
    mock_http.get(URL, status=503, headers={"x-request-id": "req_9"}, repeat=True)
    async with _client(fake_clock) as client:
        with pytest.raises(InternalServerError) as caught:
            await client.checkpoints.list("ftjob-abc123")
    assert caught.value.request_id == "req_9"
    assert len(_sent(mock_http)) == 3
    assert len(fake_clock.sleeps) == 2


@pytest.mark.parametrize("max_retries", [0, 1, 5])
async def test_max_retries_is_settable(
    mock_http: aioresponses, fake_clock: FakeClock, max_retries: int
) -> None:
    """Attempts are exactly ``1 + max_retries``."""
    mock_http.get(URL, status=502, repeat=True)
    async with _client(fake_clock, max_retries=max_retries) as client:
        with pytest.raises(InternalServerError):
            await client.checkpoints.list("ftjob-abc123")
    assert len(_sent(mock_http)) == 1 + max_retries


async def test_x_should_retry_false_stops_retries(
    mock_http: aioresponses, fake_clock: FakeClock
) -> None:
    """``x-should-retry: false`` on a 503 makes it final."""
    mock_http.get(URL, status=503, headers={"x-should-retry": "false"}, repeat=True)
    async with _client(fake_clock) as client:
        with pytest.raises(InternalServerError):
            await client.checkpoints.list("ftjob-abc123")
    assert len(_sent(mock_http)) == 1


async def test_x_should_retry_true_retries_a_400(
    mock_http: aioresponses, fake_clock: FakeClock
) -> None:
    """``x-should-retry: true`` on a 400 retries it."""
    mock_http.get(URL, status=400, headers={"x-should-retry": "true"})
    mock_http.get(URL, payload=LAST_PAGE)
    async with _client(fake_clock) as client:
        await client.checkpoints.list("ftjob-abc123")
    assert len(_sent(mock_http)) == 2


async def test_connection_errors_are_retried_then_raised_as_our_own(
    mock_http: aioresponses, fake_clock: FakeClock
) -> None:
    """Connection errors from aiohttp are retried and surface as APIConnectionError."""
    mock_http.get(URL, exception=aiohttp.ServerDisconnectedError(), repeat=True)
    async with _client(fake_clock) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.checkpoints.list("ftjob-abc123")
    assert not isinstance(caught.value, APITimeoutError)
    assert isinstance(caught.value.__cause__, aiohttp.ClientError)
    assert len(_sent(mock_http)) == 3


async def test_connection_error_then_success(
    mock_http: aioresponses, fake_clock: FakeClock
) -> None:
    """A reset connection followed by a good answer succeeds."""
    mock_http.get(URL, exception=aiohttp.ClientConnectionError("reset"))
    mock_http.get(URL, payload=LAST_PAGE)
    async with _client(fake_clock) as client:
        page = await client.checkpoints.list("ftjob-abc123")
    assert page.has_more is False


async def test_timeouts_raise_api_timeout_error(
    mock_http: aioresponses, fake_clock: FakeClock
) -> None:
    """A timeout inside aiohttp is retried and surfaces as APITimeoutError."""
    mock_http.get(URL, exception=aiohttp.ServerTimeoutError("slow"), repeat=True)
    async with _client(fake_clock) as client:
        with pytest.raises(APITimeoutError):
            await client.checkpoints.list("ftjob-abc123")
    assert len(_sent(mock_http)) == 3


async def test_deadline_stops_retries_that_would_overrun_it(
    mock_http: aioresponses, fake_clock: FakeClock
) -> None:
    """A wait that would pass the overall deadline is not taken: the error is raised now."""
    mock_http.get(URL, status=429, headers={"retry-after": "5"}, repeat=True)
    async with _client(fake_clock, deadline=8.0, max_retries=10) as client:
        with pytest.raises(RateLimitError):
            await client.checkpoints.list("ftjob-abc123")
    assert fake_clock.sleeps == [5.0]
    assert len(_sent(mock_http)) == 2


async def test_retries_are_logged_without_the_key(
    mock_http: aioresponses, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each retry logs attempt, status, wait and request id, and never the API key."""
    mock_http.get(URL, status=429, headers={"retry-after": "3", "x-request-id": "req_7"})
    mock_http.get(URL, payload=LAST_PAGE)
    caplog.set_level(logging.DEBUG, logger="fine_tune_ckpt")
    async with _client(fake_clock) as client:
        await client.checkpoints.list("ftjob-abc123")
    (record,) = [r for r in caplog.records if r.name == "fine_tune_ckpt"]
    assert record.levelno == logging.INFO
    assert record.attempt == 1  # type: ignore[attr-defined]
    assert record.status_code == 429  # type: ignore[attr-defined]
    assert record.wait == 3.0  # type: ignore[attr-defined]
    assert record.request_id == "req_7"  # type: ignore[attr-defined]
    assert "req_7" in record.getMessage()
    assert "sk-secret-key" not in caplog.text


async def test_cancellation_during_backoff_is_not_swallowed(
    mock_http: aioresponses,
) -> None:
    """Cancelling a request while it waits to retry cancels it; nothing retries after."""
    mock_http.get(URL, status=503, repeat=True)
    waiting = asyncio.Event()

    class BlockingClock(FakeClock):
        async def sleep(self, seconds: float) -> None:
            waiting.set()
            await asyncio.Event().wait()

    async with _client(BlockingClock()) as client:
        task = asyncio.create_task(client.checkpoints.list("ftjob-abc123").to_list())
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(_sent(mock_http)) == 1


async def test_closed_client_refuses_requests(
    mock_http: aioresponses, fake_clock: FakeClock
) -> None:
    """A request on a closed client fails clearly instead of opening a new session."""
    client = _client(fake_clock)
    await client.aclose()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.checkpoints.list("ftjob-abc123")
    assert _sent(mock_http) == []
