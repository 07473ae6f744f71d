"""Pacing through the real client: shared holds, budgets, window, cap, off switch.

Most tests run small aiohttp servers of their own on 127.0.0.1; those that count what is
in flight hold requests in aioresponses callbacks, which settle in a known number of loop
turns. Time is a ``FakeClock`` (the rate-limited servers read it too), so no test waits
for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import math
import re
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import CallbackResult, aioresponses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fine_tune_ckpt import (
    APITimeoutError,
    AsyncAzureClient,
    AsyncCheckpointPager,
    AsyncClient,
    CheckpointPage,
    RateLimitError,
)
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, RateLimitPolicy

from .conftest import load_fixture

LAST_PAGE = {**load_fixture("page_spec_example.json"), "has_more": False}
RATE_LIMITED = load_fixture("error_rate_limit.json")
SERVER_ERROR = {"error": {"message": "overloaded", "type": "server_error"}}
MOCKED = "https://api.test/v1"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serve(handle: Handler) -> AsyncIterator[str]:
    """Run ``handle`` for the checkpoints endpoint on loopback; yield the base URL."""
    app = web.Application()
    app.router.add_get("/v1/fine_tuning/jobs/{job}/checkpoints", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


def _page() -> web.Response:
    return web.json_response(LAST_PAGE)


async def _first_page(pager: AsyncCheckpointPager) -> CheckpointPage:
    return await pager


def _client(base_url: str, clock: FakeClock, **options: Any) -> AsyncClient:
    return AsyncClient(api_key="sk-test", base_url=base_url, clock=clock, **options)


# -- a 429 holds back the whole client -----------------------------------------------------


async def test_a_429_holds_back_the_client_and_its_copies_but_not_another_client() -> None:
    """One 429 with retry-after-ms: the client and a copy wait it out; another client does not."""
    clock, other_clock = FakeClock(), FakeClock()
    seen: dict[str, float] = {}

    async def handle(request: web.Request) -> web.Response:
        job = request.match_info["job"]
        seen[job] = (other_clock if job == "ftjob-other" else clock).monotonic()
        if job == "ftjob-limited":
            return web.json_response(RATE_LIMITED, status=429, headers={"retry-after-ms": "2000"})
        return _page()

    async with (
        serve(handle) as base_url,
        _client(base_url, clock, max_retries=0) as client,
        _client(base_url, other_clock) as other,
    ):
        copy = client.with_options(timeout=5)
        with pytest.raises(RateLimitError):
            await client.checkpoints.list("ftjob-limited")
        await asyncio.gather(
            _first_page(client.checkpoints.list("ftjob-same")),
            _first_page(copy.checkpoints.list("ftjob-copy")),
            _first_page(other.checkpoints.list("ftjob-other")),
        )
    assert seen["ftjob-limited"] == 0.0
    assert seen["ftjob-same"] >= 2.0
    assert seen["ftjob-copy"] >= 2.0
    assert clock.sleeps == [2.0]  # one wait, by the first in line; the other followed it
    assert seen["ftjob-other"] == 0.0
    assert other_clock.sleeps == []


async def test_a_429_met_by_a_copy_holds_back_the_original() -> None:
    """The hold lives with the shared pool: a copy's 429 holds the original too."""
    clock = FakeClock()
    seen: dict[str, float] = {}

    async def handle(request: web.Request) -> web.Response:
        job = request.match_info["job"]
        seen[job] = clock.monotonic()
        if job == "ftjob-limited":
            return web.json_response(RATE_LIMITED, status=429, headers={"retry-after": "3"})
        return _page()

    async with serve(handle) as base_url, _client(base_url, clock) as client:
        copy = client.with_options(max_retries=0)
        with pytest.raises(RateLimitError):
            await copy.checkpoints.list("ftjob-limited")
        await client.checkpoints.list("ftjob-after")
    assert seen["ftjob-after"] == 3.0
    assert clock.sleeps == [3.0]


async def test_the_request_that_met_the_429_waits_once() -> None:
    """Its own retry waits the Retry-After; the hold then has passed, so no second wait."""
    clock = FakeClock()
    answers = iter([429, 200])

    async def handle(request: web.Request) -> web.Response:
        if next(answers) == 429:
            return web.json_response(RATE_LIMITED, status=429, headers={"retry-after-ms": "1500"})
        return _page()

    async with serve(handle) as base_url, _client(base_url, clock) as client:
        page = await client.checkpoints.list("ftjob-abc123")
    assert page.response is not None
    assert page.response.attempts == 2
    assert clock.sleeps == [1.5]


# -- a rate-limited server -----------------------------------------------------------------


class TokenBucket:
    """A rate-limited API: ``capacity`` requests at once, refilled at ``rate`` per second.

    It reads the client's fake clock, so pacing waits refill it. Answers carry
    ``x-ratelimit-*-requests`` as OpenAI's do (the reset is the time until the bucket is
    full again); a refusal is a 429 with ``retry-after-ms`` until the next token.
    """

    def __init__(self, clock: FakeClock, *, capacity: int, rate: float) -> None:
        self.clock = clock
        self.capacity = capacity
        self.rate = rate
        self.tokens = float(capacity)
        self.updated = clock.monotonic()
        self.answered = 0
        self.refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        now = self.clock.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        refused = self.tokens < 1
        if not refused:
            self.tokens -= 1
        until_full = (self.capacity - self.tokens) / self.rate
        headers = {
            "x-ratelimit-limit-requests": str(self.capacity),
            "x-ratelimit-remaining-requests": str(math.floor(self.tokens)),
            "x-ratelimit-reset-requests": f"{math.ceil(until_full * 1000)}ms",
        }
        if refused:
            self.refused += 1
            wait_ms = math.ceil((1 - self.tokens) / self.rate * 1000)
            headers["retry-after-ms"] = str(wait_ms)
            return web.json_response(RATE_LIMITED, status=429, headers=headers)
        self.answered += 1
        return web.json_response(LAST_PAGE, headers=headers)


async def _burst(bucket: TokenBucket, clock: FakeClock, *, requests: int, **options: Any) -> int:
    """Send ``requests`` first pages at once; return how many succeeded."""
    async with (
        serve(bucket.handle) as base_url,
        _client(base_url, clock, max_retries=30, **options) as client,
    ):
        results = await asyncio.gather(
            *(_first_page(client.checkpoints.list(f"ftjob-{n}")) for n in range(requests)),
            return_exceptions=True,
        )
    return sum(isinstance(result, CheckpointPage) for result in results)


async def test_a_burst_against_a_rate_limit_meets_few_429s_with_pacing() -> None:
    """200 concurrent requests against 20 a second: pacing spreads them instead of hammering.

    With pacing the budget in the answers' headers spreads the starts and hardly a 429
    comes back; without it, each request waits out its own 429 alone and the rest keep
    hitting the limit.
    """
    paced_clock, unpaced_clock = FakeClock(), FakeClock()
    paced = TokenBucket(paced_clock, capacity=20, rate=20.0)
    unpaced = TokenBucket(unpaced_clock, capacity=20, rate=20.0)
    assert await _burst(paced, paced_clock, requests=200) == 200
    assert await _burst(unpaced, unpaced_clock, requests=200, pacing=False) == 200
    assert paced.answered == unpaced.answered == 200
    assert paced.refused <= 5
    assert unpaced.refused >= 20 * paced.refused + 100
    # And little time is wasted: 200 requests at 20 a second, less the bucket, take ~9 s.
    # On a fake clock a little more: while a request is on the wire, the request at the
    # head of the line sleeps, and each fake sleep moves time at once. (Real time: see the
    # sweep benchmark, 2,000 jobs at 200 a second in 1.01x the floor.)
    assert paced_clock.monotonic() < 15.0


async def test_after_a_reset_no_more_than_the_limit_start_at_once() -> None:
    """Requests that waited out a reset do not all start together (from an outside attack).

    The budget after a reset is the limit the API announced, not "anything goes": with a
    burst of 1 and a 429 for each request past it, requests queued behind the reset meet
    none, however many wait.
    """
    clock = FakeClock()
    async with FakeAPIServer(clock=clock, rate_limit=RateLimitPolicy(2, burst=1)) as fake:
        fake.add_job("ftjob-1", count=1)
        async with AsyncClient(
            api_key=fake.api_key, base_url=fake.base_url, clock=clock, max_retries=10
        ) as client:
            await client.checkpoints.list("ftjob-1").to_list()  # the budget is known now
            before = fake.rate_limited_count
            await asyncio.gather(*(client.checkpoints.list("ftjob-1").to_list() for _ in range(8)))
            assert fake.rate_limited_count == before


async def test_a_low_budget_spreads_starts_over_the_reset() -> None:
    """A fixed window of 20 requests per 10 s: starts spread, no 429, the rest after the reset."""
    clock = FakeClock()
    window_start = 0.0
    used = 0
    starts: list[float] = []
    refused = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal window_start, used, refused
        now = clock.monotonic()
        if now >= window_start + 10.0:
            window_start, used = window_start + 10.0 * ((now - window_start) // 10.0), 0
        reset = window_start + 10.0 - now
        headers = {
            "x-ratelimit-limit-requests": "20",
            "x-ratelimit-remaining-requests": str(max(0, 20 - used - 1)),
            "x-ratelimit-reset-requests": f"{math.ceil(reset * 1000)}ms",
        }
        if used >= 20:
            refused += 1
            headers["retry-after"] = str(math.ceil(reset))
            return web.json_response(RATE_LIMITED, status=429, headers=headers)
        used += 1
        starts.append(now)
        return web.json_response(LAST_PAGE, headers=headers)

    async with serve(handle) as base_url, _client(base_url, clock) as client:
        for n in range(30):  # one after another, as a walk would
            await client.checkpoints.list(f"ftjob-{n}")
    assert refused == 0
    assert len(starts) == 30
    first_window = [start for start in starts if start < 10.0]
    assert len(first_window) == 20
    # The last few of the window were spread out rather than sent at once.
    assert first_window[-1] - first_window[-4] > 2.0


# -- the concurrency window ----------------------------------------------------------------


class Parking:
    """Holds each request until the test answers it with a status: counts what is in flight.

    An aioresponses callback: requests reach it within a few loop turns, with no socket,
    so :meth:`settle` knows for certain when no more are coming.
    """

    def __init__(self, mock: aioresponses) -> None:
        self.parked: list[asyncio.Future[int]] = []
        mock.get(re.compile(rf"^{re.escape(MOCKED)}/.*$"), callback=self.callback, repeat=True)

    async def callback(self, url: object, **kwargs: Any) -> CallbackResult:
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.parked.append(answer)
        status = await answer
        return CallbackResult(status=status, payload=LAST_PAGE if status == 200 else SERVER_ERROR)

    async def settle(self) -> int:
        """Let every request that can start reach the server; return how many are parked."""
        count, quiet = -1, 0
        while quiet < 50:  # a request needs a handful of turns; 50 quiet ones mean no more
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self.parked) == count else 0
            count = len(self.parked)
        return count

    def answer(self, status: int) -> int:
        """Answer every parked request with ``status``; return how many there were."""
        parked, self.parked = self.parked, []
        for answer in parked:
            answer.set_result(status)
        return len(parked)


async def test_concurrency_backs_off_on_5xx_and_recovers_when_they_stop(
    mock_http: aioresponses,
) -> None:
    """10 at first; 503s halve what was in flight (once per round); answers grow it again."""
    server = Parking(mock_http)
    async with _client(MOCKED, FakeClock()) as client:
        calls = asyncio.gather(
            *(_first_page(client.checkpoints.list(f"ftjob-{n}", max_retries=0)) for n in range(60)),
            return_exceptions=True,
        )
        waves = [await server.settle()]
        server.answer(503)  # ten 503s from one round: one cut, 10 -> 5
        waves.append(await server.settle())
        for _ in range(3):
            server.answer(200)  # a full round answered while others queue: +1
            waves.append(await server.settle())
        server.answer(503)
        waves.append(await server.settle())
        while server.answer(200):
            await server.settle()
        results = await calls
    assert waves == [10, 5, 6, 7, 8, 4]
    assert sum(isinstance(result, CheckpointPage) for result in results) == 60 - 10 - 8


async def test_the_window_grows_fast_while_nothing_fails(mock_http: aioresponses) -> None:
    """Slow start: a round of good answers doubles it, up to max_connections."""
    server = Parking(mock_http)
    async with _client(MOCKED, FakeClock(), max_connections=50) as client:
        calls = asyncio.gather(
            *(_first_page(client.checkpoints.list(f"ftjob-{n}")) for n in range(200))
        )
        waves = [await server.settle()]
        for _ in range(3):
            server.answer(200)
            waves.append(await server.settle())
        while server.answer(200):
            await server.settle()
        await calls
    assert waves == [10, 20, 40, 50]


# -- the max_requests_per_second cap -------------------------------------------------------


def _recording_session(clock: FakeClock, starts: list[tuple[str, float]]) -> aiohttp.ClientSession:
    """A session that notes the fake time at which each request really starts."""

    async def on_start(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        starts.append((params.url.path.split("/")[-2], clock.monotonic()))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    return aiohttp.ClientSession(trace_configs=[trace])


def _assert_capped(starts: list[float], rate: float) -> None:
    """No two starts closer than 1/rate; floor(rate) later starts a full second later."""
    starts = sorted(starts)
    per_second = max(1, math.floor(rate))
    for earlier, later in itertools.pairwise(starts):
        assert later >= earlier + 1.0 / rate
    for earlier, later in zip(starts, starts[per_second:], strict=False):
        assert later >= earlier + 1.0
    if rate == int(rate):
        for start in starts:
            assert sum(start <= other < start + 1.0 for other in starts) <= rate


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rate=st.one_of(
        st.integers(min_value=1, max_value=12),
        st.floats(min_value=0.2, max_value=12, allow_nan=False, allow_infinity=False),
    ),
    batches=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=2, allow_nan=False, allow_infinity=False),
            st.integers(min_value=1, max_value=8),
        ),
        min_size=1,
        max_size=5,
    ),
    refusals=st.sets(st.integers(min_value=0, max_value=40), max_size=5),
)
async def test_max_requests_per_second_holds_for_any_arrivals(
    rate: float, batches: list[tuple[float, int]], refusals: set[int]
) -> None:
    """Whatever arrives when, and with 429s mixed in, starts keep to the cap.

    Start times are read from the fake clock as aiohttp starts each request, retries
    included.
    """
    clock = FakeClock()
    starts: list[tuple[str, float]] = []
    arrivals = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal arrivals
        arrivals += 1
        if arrivals - 1 in refusals:
            return web.json_response(RATE_LIMITED, status=429, headers={"retry-after-ms": "300"})
        return _page()

    async with (
        serve(handle) as base_url,
        _recording_session(clock, starts) as session,
        _client(
            base_url, clock, session=session, max_requests_per_second=rate, max_retries=10
        ) as client,
    ):
        calls = []
        for gap, count in batches:
            clock.advance(gap)
            calls += [
                asyncio.ensure_future(_first_page(client.checkpoints.list(f"ftjob-{n}")))
                for n in range(count)
            ]
            await asyncio.sleep(0)
        await asyncio.gather(*calls)
    assert len(starts) == sum(count for _, count in batches) + len(
        [n for n in refusals if n < len(starts)]
    )
    _assert_capped([start for _, start in starts], rate)


async def test_a_copy_with_a_cap_of_its_own_still_counts_toward_the_original() -> None:
    """The copy keeps to its own cap, and the two together to the original's."""
    clock = FakeClock()
    starts: list[tuple[str, float]] = []

    async def handle(request: web.Request) -> web.Response:
        return _page()

    async with (
        serve(handle) as base_url,
        _recording_session(clock, starts) as session,
        _client(base_url, clock, session=session, max_requests_per_second=5) as client,
    ):
        slow = client.with_options(max_requests_per_second=1)
        await asyncio.gather(
            *(_first_page(client.checkpoints.list(f"ftjob-fast{n}")) for n in range(10)),
            *(_first_page(slow.checkpoints.list(f"ftjob-slow{n}")) for n in range(4)),
        )
    _assert_capped([start for _, start in starts], 5)
    _assert_capped([start for job, start in starts if "slow" in job], 1)
    assert len(starts) == 14


async def test_a_cap_applies_with_pacing_off_too() -> None:
    """``pacing=False`` turns off what the API teaches, not the caller's own cap."""
    clock = FakeClock()
    starts: list[tuple[str, float]] = []

    async def handle(request: web.Request) -> web.Response:
        return _page()

    async with (
        serve(handle) as base_url,
        _recording_session(clock, starts) as session,
        _client(
            base_url, clock, session=session, max_requests_per_second=2, pacing=False
        ) as client,
    ):
        await asyncio.gather(
            *(_first_page(client.checkpoints.list(f"ftjob-{n}")) for n in range(5))
        )
    assert [start for _, start in starts] == [0.0, 0.5, 1.0, 1.5, 2.0]


# -- the deadline and cancellation ---------------------------------------------------------


async def test_a_hold_past_the_deadline_fails_at_once_without_sending(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Held for 5 s with a 1 s deadline: APITimeoutError now, nothing sent, no retry."""
    clock = FakeClock()
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.match_info["job"])
        return web.json_response(RATE_LIMITED, status=429, headers={"retry-after": "5"})

    caplog.set_level(logging.INFO, logger="fine_tune_ckpt")
    async with serve(handle) as base_url, _client(base_url, clock) as client:
        with pytest.raises(RateLimitError):
            await client.checkpoints.list("ftjob-limited", max_retries=0)
        with pytest.raises(APITimeoutError, match=r"Deadline of 1\.0 s"):
            await client.checkpoints.list("ftjob-held", deadline=1)
    assert seen == ["ftjob-limited"]
    assert clock.sleeps == []
    assert "Retrying" not in caplog.text


async def test_waiting_for_pacing_counts_toward_the_deadline() -> None:
    """2 s held, then a 429 asking 1.5 s more: past a 3 s deadline, so that wait is not taken."""
    clock = FakeClock()

    async def handle(request: web.Request) -> web.Response:
        wait = "2" if request.match_info["job"] == "ftjob-first" else "1.5"
        return web.json_response(RATE_LIMITED, status=429, headers={"retry-after": wait})

    async with serve(handle) as base_url, _client(base_url, clock) as client:
        with pytest.raises(RateLimitError):
            await client.checkpoints.list("ftjob-first", max_retries=0)
        with pytest.raises(RateLimitError):
            await client.checkpoints.list("ftjob-second", deadline=3)
    assert clock.sleeps == [2.0]  # held; the 1.5 s retry wait would pass the deadline


class GatedClock(FakeClock):
    """A fake clock whose sleeps last until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.sleeping = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeping += 1
        try:
            await self.gate.wait()
        finally:
            self.sleeping -= 1
        await super().sleep(seconds)


async def test_cancelling_held_requests_leaves_nothing_behind() -> None:
    """Requests cancelled while held keep no slot and no place in line; the next go through."""
    clock = GatedClock()
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        job = request.match_info["job"]
        seen.append(job)
        if job == "ftjob-limited":
            return web.json_response(RATE_LIMITED, status=429, headers={"retry-after": "5"})
        return _page()

    async with serve(handle) as base_url, _client(base_url, clock, max_connections=3) as client:
        with pytest.raises(RateLimitError):
            await client.checkpoints.list("ftjob-limited", max_retries=0)
        held = [
            asyncio.ensure_future(_first_page(client.checkpoints.list(f"ftjob-held{n}")))
            for n in range(5)
        ]
        for _ in range(10):
            await asyncio.sleep(0)
        assert clock.sleeping == 1  # the first in line waits on the clock, the rest queue
        held[0].cancel()  # the one sleeping: its place passes to the next
        held[3].cancel()  # one queueing
        for _ in range(10):
            await asyncio.sleep(0)
        assert clock.sleeping == 1
        for task in held:
            task.cancel()
        await asyncio.gather(*held, return_exceptions=True)
        assert clock.sleeping == 0
        assert seen == ["ftjob-limited"]
        clock.gate.set()
        # All three connections are free again, and nobody is left in line.
        pages = await asyncio.gather(
            *(_first_page(client.checkpoints.list(f"ftjob-after{n}")) for n in range(3))
        )
        slots = client._transport.pool.own.slots if client._transport.pool.own else None
        assert slots is not None
        assert slots.in_flight == 0
    assert len(pages) == 3
    assert sorted(seen[1:]) == ["ftjob-after0", "ftjob-after1", "ftjob-after2"]


async def test_cancelling_a_request_waiting_for_a_connection_while_paced(
    mock_http: aioresponses,
) -> None:
    """A capped request cancelled while it waits for a connection passes the connection on."""
    server = Parking(mock_http)
    async with _client(
        MOCKED, FakeClock(), max_connections=1, max_requests_per_second=1000
    ) as client:
        first = asyncio.ensure_future(_first_page(client.checkpoints.list("ftjob-1")))
        assert await server.settle() == 1
        second = asyncio.ensure_future(_first_page(client.checkpoints.list("ftjob-2")))
        third = asyncio.ensure_future(_first_page(client.checkpoints.list("ftjob-3")))
        for _ in range(10):
            await asyncio.sleep(0)
        second.cancel()  # first in line for the one connection
        await asyncio.gather(second, return_exceptions=True)
        server.answer(200)
        assert await server.settle() == 1  # the third got its turn and the connection
        server.answer(200)
        await asyncio.gather(first, third)


# -- event loops ---------------------------------------------------------------------------


def _limited_or_page(url: object, **kwargs: Any) -> CallbackResult:
    if "ftjob-limited" in str(url):
        return CallbackResult(status=429, payload=RATE_LIMITED, headers={"retry-after": "2"})
    return CallbackResult(status=200, payload=LAST_PAGE)


def test_a_hold_outlives_the_event_loop_that_learnt_it(mock_http: aioresponses) -> None:
    """A 429 met in one asyncio.run() still holds the client back in the next."""
    mock_http.get(re.compile(rf"^{re.escape(MOCKED)}/.*$"), callback=_limited_or_page, repeat=True)
    clock = FakeClock()
    client = _client(MOCKED, clock, max_retries=0)

    async def limited() -> None:
        with pytest.raises(RateLimitError):
            await client.checkpoints.list("ftjob-limited")

    asyncio.run(limited())
    asyncio.run(_first_page(client.checkpoints.list("ftjob-next")))
    asyncio.run(client.aclose())
    assert clock.sleeps == [2.0]


class StrandingClock(FakeClock):
    """A fake clock whose sleeps never end while ``stranding`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.stranding = True
        self.sleeping = 0

    async def sleep(self, seconds: float) -> None:
        if self.stranding:
            self.sleeping += 1
            await asyncio.get_running_loop().create_future()
        await super().sleep(seconds)


def test_a_line_left_by_a_loop_closed_the_hard_way_is_cleared(mock_http: aioresponses) -> None:
    """Requests stranded in line by a loop closed without shutdown never block the next loop."""
    mock_http.get(re.compile(rf"^{re.escape(MOCKED)}/.*$"), callback=_limited_or_page, repeat=True)
    clock = StrandingClock()
    client = _client(MOCKED, clock, max_retries=0)

    stranded: list[asyncio.Future[CheckpointPage]] = []

    async def strand() -> None:
        with pytest.raises(RateLimitError):
            await client.checkpoints.list("ftjob-limited")
        for n in range(3):  # one sleeps at the gate, two queue behind it
            page = _first_page(client.checkpoints.list(f"ftjob-stranded{n}"))
            stranded.append(asyncio.ensure_future(page))
        for _ in range(20):
            await asyncio.sleep(0)
        assert clock.sleeping == 1

    loop = asyncio.new_event_loop()
    loop.run_until_complete(strand())
    loop.close()  # no shutdown: the stranded requests never run their cleanup
    clock.stranding = False
    with warnings.catch_warnings():
        # The dead loop's session and tasks: only the garbage collector can let them go.
        warnings.simplefilter("ignore", ResourceWarning)
        asyncio.run(_first_page(client.checkpoints.list("ftjob-next")))
        pace = client._transport.pool.pace
        assert pace is not None
        assert pace.waiting == 0
        stranded.clear()
        gc.collect()  # their cleanup runs now, against a line that no longer holds them
        assert pace.waiting == 0
        asyncio.run(client.aclose())


# -- the off switch ------------------------------------------------------------------------


async def test_pacing_off_holds_nothing_back() -> None:
    """``pacing=False``: a 429 holds back only the request that met it, as before pacing."""
    clock = FakeClock()
    seen: dict[str, float] = {}

    async def handle(request: web.Request) -> web.Response:
        job = request.match_info["job"]
        seen[job] = clock.monotonic()
        headers = {
            "x-ratelimit-limit-requests": "100",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "30s",
        }
        if job == "ftjob-limited":
            headers["retry-after-ms"] = "2000"
            return web.json_response(RATE_LIMITED, status=429, headers=headers)
        return web.json_response(LAST_PAGE, headers=headers)

    async with serve(handle) as base_url, _client(base_url, clock, pacing=False) as client:
        assert client._transport.pool.pace is None
        with pytest.raises(RateLimitError):
            await client.checkpoints.list("ftjob-limited", max_retries=0)
        await client.checkpoints.list("ftjob-next")
        await client.checkpoints.list("ftjob-after-an-empty-budget")
    assert seen == {"ftjob-limited": 0.0, "ftjob-next": 0.0, "ftjob-after-an-empty-budget": 0.0}
    assert clock.sleeps == []


async def test_pacing_off_sends_everything_at_once(mock_http: aioresponses) -> None:
    """``pacing=False``: no starting window, every request up to max_connections at once."""
    server = Parking(mock_http)
    async with _client(MOCKED, FakeClock(), pacing=False, max_connections=40) as client:
        calls = asyncio.gather(
            *(_first_page(client.checkpoints.list(f"ftjob-{n}")) for n in range(50))
        )
        assert await server.settle() == 40
        server.answer(503)  # no backing off either: the next 10 and the 40 retries
        assert await server.settle() == 40
        while server.answer(200):
            await server.settle()
        await calls


async def test_pacing_on_with_a_lent_session_without_a_pool_limit(mock_http: aioresponses) -> None:
    """A lent connector with no limit still gets the window (10 at first)."""
    server = Parking(mock_http)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        _client(MOCKED, FakeClock(), session=session) as client,
    ):
        calls = asyncio.gather(
            *(_first_page(client.checkpoints.list(f"ftjob-{n}")) for n in range(15))
        )
        assert await server.settle() == 10
        while server.answer(200):
            await server.settle()
        await calls


# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("client_class", [AsyncClient, AsyncAzureClient])
@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"max_requests_per_second": True}, TypeError, "max_requests_per_second must be a number"),
        ({"max_requests_per_second": "5"}, TypeError, "max_requests_per_second must be a number"),
        ({"max_requests_per_second": 0}, ValueError, "max_requests_per_second must be a finite"),
        ({"max_requests_per_second": -1.5}, ValueError, "max_requests_per_second must be"),
        ({"max_requests_per_second": math.inf}, ValueError, "max_requests_per_second must be"),
        ({"max_requests_per_second": math.nan}, ValueError, "max_requests_per_second must be"),
        ({"max_requests_per_second": 5e-324}, ValueError, "max_requests_per_second must be"),
        ({"max_requests_per_second": 10**400}, ValueError, "a huge number"),
        ({"pacing": 1}, TypeError, "pacing must be True or False, not int"),
        ({"pacing": None}, TypeError, "pacing must be True or False, not NoneType"),
    ],
)
def test_bad_pacing_arguments_are_refused(
    client_class: type[AsyncClient], options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each bad value raises naming the argument, before anything is sent."""
    extra: dict[str, Any] = {}
    if client_class is AsyncAzureClient:
        extra = {"azure_endpoint": "https://r.example", "api_version": "v1"}
    with pytest.raises(error, match=message):
        client_class(api_key="sk-x", **extra, **options)


def test_with_options_checks_its_cap() -> None:
    """A copy's cap is checked like the client's."""
    client = AsyncClient(api_key="sk-x", max_requests_per_second=10)
    with pytest.raises(ValueError, match="max_requests_per_second"):
        client.with_options(max_requests_per_second=0)
    with pytest.raises(TypeError, match="max_requests_per_second"):
        client.with_options(max_requests_per_second=False)


def test_good_pacing_arguments_are_accepted() -> None:
    """Whole and fractional caps, and both switch values."""
    for rate in (1, 2.5, 0.5, 10**6, 1e19, 2**63, 1e100):  # finite: a cap, however high
        client = AsyncClient(api_key="sk-x", max_requests_per_second=rate)
        client.with_options(max_requests_per_second=1e300)
    AsyncClient(api_key="sk-x", pacing=False)
    AsyncAzureClient(
        api_key="sk-x",
        azure_endpoint="https://r.example",
        api_version="v1",
        pacing=False,
        max_requests_per_second=3,
    )
