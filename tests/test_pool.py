"""The connection pool: waiting for a connection never eats the attempt's own timeout."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from fine_tune_ckpt import APITimeoutError, AsyncCheckpointPager, AsyncClient, CheckpointPage

from .conftest import load_fixture

PAGE = load_fixture("page_spec_example.json")


class SlowServer:
    """Answers every request with one page after ``delay`` seconds; counts concurrency."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = 0
        self.most_in_flight = 0
        self.arrived = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.arrived += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return web.Response(body=json.dumps(PAGE).encode(), content_type="application/json")


@pytest.fixture
async def slow_server() -> AsyncIterator[tuple[SlowServer, str]]:
    """A loopback server taking 0.2 s an answer, and its base URL."""
    server = SlowServer(delay=0.2)
    app = web.Application()
    app.router.add_get("/v1/fine_tuning/jobs/{job}/checkpoints", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield server, f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def test_queued_calls_do_not_time_out_for_having_queued(
    slow_server: tuple[SlowServer, str],
) -> None:
    """30 calls over 10 connections, each 0.2 s with a 0.3 s timeout: all succeed."""
    server, base_url = slow_server
    async with AsyncClient(
        api_key="sk-x", base_url=base_url, max_connections=10, timeout=0.3, max_retries=0
    ) as client:
        pages = await asyncio.gather(
            *(_first_page(client.checkpoints.list(f"ftjob-{n}")) for n in range(30))
        )
    assert len(pages) == 30
    assert server.arrived == 30
    assert server.most_in_flight <= 10


async def test_waiting_for_a_connection_counts_toward_the_deadline(
    slow_server: tuple[SlowServer, str],
) -> None:
    """A call queued past its deadline fails without reaching the server.

    Four 0.2 s calls over one connection cannot all finish within a 0.5 s deadline.
    """
    server, base_url = slow_server
    async with AsyncClient(
        api_key="sk-x", base_url=base_url, max_connections=1, deadline=0.5, max_retries=0
    ) as client:
        calls = [client.checkpoints.list(f"ftjob-{n}") for n in range(4)]
        results = await asyncio.gather(
            *(_first_page(call) for call in calls), return_exceptions=True
        )
    assert not isinstance(results[0], BaseException)
    assert isinstance(results[3], APITimeoutError)
    assert server.arrived < 4


async def _first_page(pager: AsyncCheckpointPager) -> CheckpointPage:
    return await pager


async def test_the_own_pool_has_max_connections() -> None:
    """The client's own connector allows exactly ``max_connections`` connections."""
    async with AsyncClient(api_key="sk-x", max_connections=3) as client:
        session, slots = await client._transport.pool.session_for_this_loop()
        assert session.connector is not None
        assert session.connector.limit == 3
        assert slots is not None


async def test_a_lent_pool_is_respected(slow_server: tuple[SlowServer, str]) -> None:
    """With a lent session, queueing for its pool does not eat the attempt's timeout either."""
    server, base_url = slow_server
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=5)) as session,
        AsyncClient(
            api_key="sk-x", base_url=base_url, session=session, timeout=0.3, max_retries=0
        ) as client,
    ):
        await asyncio.gather(
            *(_first_page(client.checkpoints.list(f"ftjob-{n}")) for n in range(15))
        )
    assert server.most_in_flight <= 5
    assert server.arrived == 15


async def test_slots_serve_waiters_in_order_and_survive_cancellation() -> None:
    """Waiters are served in order; a cancelled one never loses or keeps a slot.

    A waiter cancelled before its turn gives up its place; one cancelled just after being
    served passes the slot on.
    """
    from fine_tune_ckpt._transport import _Slots

    slots = _Slots(1)
    assert slots.take()
    assert not slots.take()
    served: list[str] = []

    async def wait(name: str) -> None:
        await slots.wait()
        served.append(name)

    first = asyncio.ensure_future(wait("first"))
    cancelled = asyncio.ensure_future(wait("cancelled"))
    last = asyncio.ensure_future(wait("last"))
    await asyncio.sleep(0)
    cancelled.cancel()
    slots.give_back()  # to "first"
    await asyncio.sleep(0)
    slots.give_back()  # "cancelled" is gone: to "last"
    await asyncio.gather(first, last, cancelled, return_exceptions=True)
    assert served == ["first", "last"]

    late = asyncio.ensure_future(slots.wait())
    await asyncio.sleep(0)
    slots.give_back()  # handed over...
    late.cancel()  # ...and cancelled before it could run: the slot must not be lost
    await asyncio.gather(late, return_exceptions=True)
    slots.give_back()
    assert slots.take()
    assert slots.take()
    assert not slots.take()
