"""Load: hundreds of walks at once over one client and one bounded pool."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import aiohttp

from fine_tune_ckpt import AsyncClient
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock

POOL_LIMIT = 20


async def test_five_hundred_pagers_at_once_over_one_client() -> None:
    """500 concurrent walks all complete exactly, never over the connector's limit."""
    async with FakeAPIServer() as fake:
        jobs = {f"ftjob-{n:03d}": fake.add_job(f"ftjob-{n:03d}", count=12) for n in range(50)}
        connector = aiohttp.TCPConnector(limit=POOL_LIMIT)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            AsyncClient(
                api_key=fake.api_key, base_url=fake.base_url, session=session, clock=FakeClock()
            ) as client,
        ):
            names = [f"ftjob-{n % 50:03d}" for n in range(500)]
            results = await asyncio.gather(
                *(client.checkpoints.list(name, limit=5).to_list() for name in names)
            )
        for name, items in zip(names, results, strict=True):
            assert items == jobs[name]
        assert len(fake.requests) == 500 * 3
        assert fake.peak_concurrent_requests <= POOL_LIMIT


async def test_memory_does_not_grow_with_completed_walks() -> None:
    """Traced memory after 300 more walks is what it was after the first 50."""
    async with FakeAPIServer() as fake:
        fake.add_job("ftjob-mem", count=30)
        async with AsyncClient(
            api_key=fake.api_key, base_url=fake.base_url, clock=FakeClock()
        ) as client:

            async def walks(count: int) -> None:
                for _ in range(count):
                    assert len(await client.checkpoints.list("ftjob-mem").to_list()) == 30

            await walks(50)  # warm up: pools, caches, lazily built converters
            fake.requests.clear()
            gc.collect()
            tracemalloc.start()
            try:
                await walks(50)
                fake.requests.clear()
                gc.collect()
                baseline, _ = tracemalloc.get_traced_memory()
                await walks(300)
                fake.requests.clear()
                gc.collect()
                after, _ = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    assert after - baseline < 256 * 1024, f"grew by {after - baseline} bytes"
