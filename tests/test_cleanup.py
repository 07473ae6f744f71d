"""Cancellation and cleanup: whatever stops a walk, nothing leaks and the pool recovers.

Warnings are errors and the shared leak check fails any test that leaves a task behind,
so an unclosed session, connector or response fails these tests by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from fine_tune_ckpt import AsyncClient
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault

JOB = "ftjob-abc123"


@pytest.fixture
async def one_connection(fake_api: FakeAPIServer) -> AsyncIterator[AsyncClient]:
    """A client over a lent session of a single connection: a leaked one blocks the next."""
    connector = aiohttp.TCPConnector(limit=1)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        AsyncClient(
            api_key=fake_api.api_key,
            base_url=fake_api.base_url,
            session=session,
            clock=FakeClock(),
        ) as client,
    ):
        yield client


async def _still_usable(client: AsyncClient) -> None:
    """The next request gets the pool's only connection within a second."""
    async with asyncio.timeout(5):
        assert len(await client.checkpoints.list(JOB).to_list()) == 25


async def test_break_out_of_async_for(one_connection: AsyncClient) -> None:
    """``break`` mid-walk leaves the connection in the pool and no task behind."""
    async for checkpoint in one_connection.checkpoints.list(JOB, limit=5):
        if checkpoint.step_number < 2300:
            break
    await _still_usable(one_connection)


async def test_exception_in_the_consumer(one_connection: AsyncClient) -> None:
    """An exception raised by the consumer's loop body propagates and leaks nothing."""
    with pytest.raises(ZeroDivisionError):
        async for _ in one_connection.checkpoints.list(JOB, limit=5):
            _ = 1 / 0
    await _still_usable(one_connection)


async def test_cancel_mid_request(one_connection: AsyncClient, fake_api: FakeAPIServer) -> None:
    """A task cancelled while its request is in flight frees the connection."""
    fake_api.inject(Fault(delay=10))
    task = asyncio.create_task(one_connection.checkpoints.list(JOB).to_list())
    await fake_api.wait_for_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _still_usable(one_connection)


async def test_cancel_mid_backoff(fake_api: FakeAPIServer) -> None:
    """A task cancelled while waiting to retry stops there: no further attempt."""
    sleeping = asyncio.Event()

    class SlowClock(FakeClock):
        async def sleep(self, seconds: float) -> None:
            sleeping.set()
            await asyncio.sleep(3600)

    fake_api.inject(Fault(status=503))
    async with AsyncClient(
        api_key=fake_api.api_key, base_url=fake_api.base_url, clock=SlowClock()
    ) as client:
        task = asyncio.create_task(client.checkpoints.list(JOB).to_list())
        await sleeping.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(fake_api.requests) == 1


async def test_asyncio_timeout_around_a_walk(
    one_connection: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """``asyncio.timeout`` around a walk raises TimeoutError and leaves the pool usable."""
    fake_api.inject(Fault(), Fault(delay=10))
    seen = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            async for checkpoint in one_connection.checkpoints.list(JOB):
                seen.append(checkpoint)
    assert len(seen) == 10
    await _still_usable(one_connection)


async def test_task_group_cancels_a_walk_cleanly(fake_api: FakeAPIServer) -> None:
    """A failing sibling in a TaskGroup cancels a walk in flight without leaks."""
    fake_api.inject(Fault(delay=10))
    async with AsyncClient(api_key=fake_api.api_key, base_url=fake_api.base_url) as client:

        async def fail_soon() -> None:
            await fake_api.wait_for_requests(1)
            raise RuntimeError("sibling failed")

        with pytest.raises(ExceptionGroup) as caught:
            async with asyncio.TaskGroup() as group:
                group.create_task(client.checkpoints.list(JOB).to_list())
                group.create_task(fail_soon())
        assert caught.group_contains(RuntimeError)


async def test_owned_session_closes_and_lent_one_stays(fake_api: FakeAPIServer) -> None:
    """``aclose`` closes the client's own session and never a lent one."""
    owned = AsyncClient(api_key=fake_api.api_key, base_url=fake_api.base_url)
    await owned.checkpoints.list(JOB)
    await owned.aclose()
    assert owned.closed
    async with aiohttp.ClientSession() as session:
        lent = AsyncClient(api_key=fake_api.api_key, base_url=fake_api.base_url, session=session)
        await lent.checkpoints.list(JOB)
        await lent.aclose()
        assert not session.closed
        async with session.get(f"{fake_api.base_url}/fine_tuning/jobs/{JOB}/checkpoints") as r:
            assert r.status == 401


async def test_walk_abandoned_without_break_is_collected_quietly(
    one_connection: AsyncClient,
) -> None:
    """An iterator dropped half-way (never closed by hand) holds no connection."""
    iterator = aiter(one_connection.checkpoints.list(JOB, limit=5))
    await anext(iterator)
    del iterator
    await _still_usable(one_connection)


async def test_break_cancels_a_read_ahead_in_flight(
    one_connection: AsyncClient, fake_api: FakeAPIServer
) -> None:
    """Breaking while the next page is already requested cancels that request."""
    fake_api.inject(Fault(), Fault(delay=10))
    async for _ in one_connection.checkpoints.list(JOB):
        await fake_api.wait_for_requests(2)  # the read-ahead of page 2 has arrived
        break
    await _still_usable(one_connection)
