"""Where a walk's CPU goes, part by part, on the pages of a real walk.

    python -m tests.benchmarks.breakdown BASE_URL [JOB] [LIMIT]

Fetches every page of the job once, then times each part on its own over all of them,
best of several runs of ``time.process_time``, in microseconds per item. The parts add up
to about the whole, not exactly: each runs warm and alone, without the others' effects on
the caches. ``--part NAME --repeat N`` runs one part N times and prints nothing, for
``valgrind --tool=callgrind`` (N=2 minus N=1 is one run's instructions).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from fine_tune_ckpt import AsyncClient, Checkpoint, CheckpointMetrics, CheckpointPage
from fine_tune_ckpt._paging import AsyncCursorPager
from fine_tune_ckpt._wire import RawPage, _fast_page

from .walk import walk_floor, walk_ours

RUNS = 7


async def _bodies(base_url: str, job: str, limit: int) -> list[bytes]:
    """Every page's raw body, in walk order."""
    bodies = []
    url = f"{base_url}/fine_tuning/jobs/{job}/checkpoints"
    after = None
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-bench"}) as session:
        while True:
            params: dict[str, str | int] = {"limit": limit}
            if after is not None:
                params["after"] = after
            async with session.get(url, params=params) as answer:
                body = await answer.read()
            bodies.append(body)
            page = orjson.loads(body)
            if not page["has_more"]:
                return bodies
            after = page["data"][-1]["id"]


class Parts:
    """Each part of a walk as a function of no arguments, over the same pages."""

    def __init__(self, base_url: str, job: str, limit: int, bodies: list[bytes]) -> None:
        self.base_url, self.job, self.limit = base_url, job, limit
        self.bodies = bodies
        self.decoded = [orjson.loads(body) for body in bodies]
        self.pages = [_fast_page(page) for page in self.decoded]
        self.items = [item for page in self.decoded for item in page["data"]]
        self.records = [record for page in self.pages for record in page.data]
        self.metrics = [tuple(item["metrics"].values()) for item in self.items]
        self.timestamps = [item["created_at"] for item in self.items]
        self.cursors: list[str | None] = [None]
        self.cursors += [page["data"][-1]["id"] for page in self.decoded[:-1]]

    def walk(self) -> object:
        """A whole walk by this library, as the benchmark's walker does it."""
        return asyncio.run(walk_ours(self.base_url, self.job, self.limit))

    def floor_walk(self) -> object:
        """A whole walk by the floor, as the benchmark's walker does it."""
        return asyncio.run(walk_floor(self.base_url, self.job, self.limit))

    def decode(self) -> object:
        """orjson.loads of every body: the floor pays this too."""
        loads = orjson.loads
        for body in self.bodies:
            loads(body)
        return None

    def fast_page(self) -> object:
        """Decoded pages to records: checks, records, datetimes, unknown fields."""
        for page in self.decoded:
            _fast_page(page)
        return None

    def metrics_init(self) -> object:
        """CheckpointMetrics(*seven) for every item."""
        for metrics in self.metrics:
            CheckpointMetrics(*metrics)
        return None

    def checkpoint_init(self) -> object:
        """Checkpoint(...) for every item, from values already checked and converted."""
        for r in self.records:
            Checkpoint(
                r.id,
                r.created_at,
                r.fine_tuned_model_checkpoint,
                r.fine_tuning_job_id,
                r.metrics,
                r.step_number,
            )
        return None

    def created_at(self) -> object:
        """datetime.fromtimestamp(created_at, UTC) for every item."""
        fromtimestamp = datetime.fromtimestamp
        for seconds in self.timestamps:
            fromtimestamp(seconds, UTC)
        return None

    def pager(self) -> object:
        """The pager's loops, over records already made: cursors, checks, read-ahead, yields."""
        pages = iter(self.pages)
        raws: dict[str | None, RawPage] = dict(
            zip(self.cursors, map(RawPage, self.bodies), strict=True)
        )

        async def fetch_page(after: str | None) -> RawPage:
            return raws[after]

        def structure(raw: RawPage) -> CheckpointPage:
            return next(pages)

        async def walk() -> int:
            count = 0
            pager = AsyncCursorPager[Checkpoint, CheckpointPage](
                fetch_page, structure, operation="bench"
            )
            async for _ in pager:
                count += 1
            return count

        return asyncio.run(walk())

    def bare_loop(self) -> object:
        """What the floor's item loop costs over the same records: the pager's baseline."""

        async def walk() -> int:
            count = 0
            for page in self.pages:
                await asyncio.sleep(0)
                for _ in page.data:
                    count += 1
            return count

        return asyncio.run(walk())

    def transport(self) -> object:
        """Every page fetched through the client, nothing decoded: the per-page cost."""

        async def walk() -> None:
            async with AsyncClient(api_key="sk-bench", base_url=self.base_url) as client:
                pager = client.checkpoints.list(self.job, limit=self.limit)
                for cursor in self.cursors:
                    await pager._fetch_page(cursor)

        asyncio.run(walk())
        return None

    def floor_transport(self) -> object:
        """Every page fetched by the floor's bare aiohttp loop, nothing decoded."""
        url = f"{self.base_url}/fine_tuning/jobs/{self.job}/checkpoints"

        async def walk() -> None:
            headers = {"Authorization": "Bearer sk-bench"}
            async with aiohttp.ClientSession() as session:
                for cursor in self.cursors:
                    params: dict[str, str | int] = {"limit": self.limit}
                    if cursor is not None:
                        params["after"] = cursor
                    async with session.get(url, params=params, headers=headers) as answer:
                        await answer.read()

        asyncio.run(walk())
        return None


PARTS = [
    "walk",
    "floor_walk",
    "decode",
    "fast_page",
    "metrics_init",
    "checkpoint_init",
    "created_at",
    "pager",
    "bare_loop",
    "transport",
    "floor_transport",
]


def best(function: Callable[[], Any]) -> float:
    """The least CPU time of ``RUNS`` runs."""
    times = []
    for _ in range(RUNS):
        started = time.process_time()
        function()
        times.append(time.process_time() - started)
    return min(times)


def main() -> None:
    """Fetch the pages, then time each part (or run one, for callgrind)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("base_url")
    parser.add_argument("job", nargs="?", default="bench-100000")
    parser.add_argument("limit", nargs="?", type=int, default=100)
    parser.add_argument("--part", choices=PARTS)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    bodies = asyncio.run(_bodies(args.base_url, args.job, args.limit))
    parts = Parts(args.base_url, args.job, args.limit, bodies)
    items = len(parts.items)
    if args.part:
        for _ in range(args.repeat):
            getattr(parts, args.part)()
        return
    for name in PARTS:
        seconds = best(getattr(parts, name))
        print(f"{name:16} {seconds * 1e6 / items:6.2f} us/item  {seconds:.3f} s", flush=True)


if __name__ == "__main__":
    main()
