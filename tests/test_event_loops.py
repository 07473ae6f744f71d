"""The client's own session follows the running loop; lent sessions are checked clearly.

A client made at module level meets a new event loop in every ``asyncio.run()`` and in
every pytest-asyncio test. These tests run whole loops of their own, so they are plain
functions talking to a fake API served from a thread with its own loop.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import warnings
from collections.abc import Iterator

import aiohttp
import pytest

from fine_tune_ckpt import AsyncClient, FineTuneCkptError
from fine_tune_ckpt.testing import FakeAPIServer

JOB = "ftjob-loops"


@pytest.fixture(scope="module")
def threaded_fake() -> Iterator[FakeAPIServer]:
    """A fake API served by a loop in another thread, so tests may run loops of their own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = FakeAPIServer()
    asyncio.run_coroutine_threadsafe(fake.__aenter__(), loop).result(10)
    fake.add_job(JOB, count=25)
    try:
        yield fake
    finally:
        asyncio.run_coroutine_threadsafe(fake.__aexit__(None, None, None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _client(fake: FakeAPIServer, **options: object) -> AsyncClient:
    return AsyncClient(api_key=fake.api_key, base_url=fake.base_url, **options)  # type: ignore[arg-type]


async def _count(client: AsyncClient) -> int:
    return len(await client.checkpoints.list(JOB, limit=10).to_list())


def test_a_module_level_client_works_in_every_asyncio_run(threaded_fake: FakeAPIServer) -> None:
    """One client, three asyncio.run() calls: each lists everything, with no warning."""
    client = _client(threaded_fake)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            assert asyncio.run(_count(client)) == 25
        gc.collect()
    asyncio.run(client.aclose())


def test_each_runner_gets_a_session_of_its_own(threaded_fake: FakeAPIServer) -> None:
    """Sessions are per loop: a new runner never sees the previous loop's session."""
    client = _client(threaded_fake)

    async def session_id() -> int:
        await _count(client)
        session = client._transport._session
        assert session is not None
        return id(session)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with asyncio.Runner() as runner:
            first = runner.run(session_id())
            assert runner.run(session_id()) == first  # same loop, same session
        with asyncio.Runner() as runner:
            runner.run(_count(client))
            assert client._transport._session is not None
            assert not client._transport._session.closed
        gc.collect()
    asyncio.run(client.aclose())


def test_the_end_of_its_loop_closes_the_session_nobody_closed(
    threaded_fake: FakeAPIServer,
) -> None:
    """A client never closed lets go of its session when asyncio.run() ends."""
    client = _client(threaded_fake)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(_count(client))
        session = client._transport._session
        assert session is not None
        assert session.closed
        del client, session
        gc.collect()


def test_a_client_dropped_inside_its_loop_closes_its_session(
    threaded_fake: FakeAPIServer,
) -> None:
    """A client garbage-collected while its loop runs leaves no unclosed session behind."""

    async def main() -> None:
        client = _client(threaded_fake)
        await _count(client)
        del client
        gc.collect()
        await asyncio.sleep(0.05)  # the loop closes the session in a task of its own

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(main())
        gc.collect()


def test_a_loop_closed_without_shutdown_does_not_break_the_next_one(
    threaded_fake: FakeAPIServer,
) -> None:
    """After a loop closed the hard way, the next loop still lists with a new session."""
    client = _client(threaded_fake)
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(_count(client)) == 25
    loop.close()  # no shutdown_asyncgens: the session could not be closed there
    with warnings.catch_warnings():
        # Its sockets belong to a dead loop: only the garbage collector can close them.
        warnings.simplefilter("ignore", ResourceWarning)
        assert asyncio.run(_count(client)) == 25
        asyncio.run(client.aclose())
        gc.collect()


def test_aclose_in_a_later_loop_is_quiet(threaded_fake: FakeAPIServer) -> None:
    """Closing a client after its session's loop has ended raises and warns nothing."""
    client = _client(threaded_fake)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        asyncio.run(_count(client))
        asyncio.run(client.aclose())
        assert client.closed
        gc.collect()


def test_a_lent_session_from_another_loop_is_a_clear_error(
    threaded_fake: FakeAPIServer,
) -> None:
    """A lent session created in another, still open loop is refused by name."""
    other = asyncio.new_event_loop()

    async def make() -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    session = other.run_until_complete(make())
    before = len(threaded_fake.requests)
    try:
        client = _client(threaded_fake, session=session)
        with pytest.raises(FineTuneCkptError, match="another event loop"):
            asyncio.run(_count(client))
        assert len(threaded_fake.requests) == before
    finally:
        other.run_until_complete(session.close())
        other.close()


async def test_a_lent_session_closed_later_is_a_clear_error(fake_api: FakeAPIServer) -> None:
    """A lent session closed by its owner gives a FineTuneCkptError, not aiohttp's error."""
    session = aiohttp.ClientSession()
    client = AsyncClient(api_key=fake_api.api_key, base_url=fake_api.base_url, session=session)
    await session.close()
    with pytest.raises(FineTuneCkptError, match="is closed"):
        await client.checkpoints.list("ftjob-abc123")
    assert fake_api.requests == []


async def test_lent_sessions_that_cannot_work_are_refused_at_construction() -> None:
    """Closed, auth= or auto_decompress=False sessions are a ValueError naming the problem."""
    closed = aiohttp.ClientSession()
    await closed.close()
    with pytest.raises(ValueError, match="closed"):
        AsyncClient(api_key="sk-x", session=closed)
    with pytest.warns(DeprecationWarning, match="auth"):  # deprecated in 3.14, still honoured
        with_auth = aiohttp.ClientSession(auth=aiohttp.BasicAuth("user", "password"))
    async with with_auth:
        with pytest.raises(ValueError, match="auth="):
            AsyncClient(api_key="sk-x", session=with_auth)
    async with aiohttp.ClientSession(auto_decompress=False) as raw:
        with pytest.raises(ValueError, match="auto_decompress"):
            AsyncClient(api_key="sk-x", session=raw)
