"""One walk by one client, in a fresh process; prints a JSON line of what it measured.

    python -m tests.benchmarks.walk ours|floor|"floor + records"|openai BASE_URL JOB LIMIT [WORK_US]

Every walker counts items and sums ``step_number`` so none can skip work. ``WORK_US``
makes the consumer spend that many microseconds of CPU on each item, as real code would.
Imports happen before the clock starts: import time is measured on its own.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import resource
import sys
import time

WORK_SECONDS = 0.0


def consume(step_number: int) -> int:
    """What a consumer does with an item: here, burn ``WORK_SECONDS`` of CPU."""
    if WORK_SECONDS:
        until = time.perf_counter() + WORK_SECONDS
        while time.perf_counter() < until:
            pass
    return step_number


async def walk_ours(base_url: str, job: str, limit: int) -> tuple[int, int]:
    """Walk with fine_tune_ckpt, iterating Checkpoint records."""
    from fine_tune_ckpt import AsyncClient

    count = checksum = 0
    async with AsyncClient(api_key="sk-bench", base_url=base_url) as client:
        async for checkpoint in client.checkpoints.list(job, limit=limit):
            count += 1
            checksum += consume(checkpoint.step_number)
    return count, checksum


async def walk_floor(base_url: str, job: str, limit: int) -> tuple[int, int]:
    """The floor: a bare aiohttp loop with orjson and nothing else."""
    import aiohttp
    import orjson

    count = checksum = 0
    url = f"{base_url}/fine_tuning/jobs/{job}/checkpoints"
    headers = {"Authorization": "Bearer sk-bench"}
    after = None
    async with aiohttp.ClientSession() as session:
        while True:
            params: dict[str, str | int] = {"limit": limit}
            if after is not None:
                params["after"] = after
            async with session.get(url, params=params, headers=headers) as answer:
                page = orjson.loads(await answer.read())
            for item in page["data"]:
                count += 1
                checksum += consume(item["step_number"])
            if not page["has_more"] or not page["data"]:
                break
            after = page["data"][-1]["id"]
    return count, checksum


async def walk_floor_records(base_url: str, job: str, limit: int) -> tuple[int, int]:
    """The floor, with each page made into our validated records by ``parse_page``.

    No pager, no transport of ours: what the records alone cost on top of the floor, so
    the least CPU time any client yielding these records over aiohttp could take.
    """
    import aiohttp

    from fine_tune_ckpt._wire import parse_page

    count = checksum = 0
    url = f"{base_url}/fine_tuning/jobs/{job}/checkpoints"
    headers = {"Authorization": "Bearer sk-bench"}
    after = None
    async with aiohttp.ClientSession() as session:
        while True:
            params: dict[str, str | int] = {"limit": limit}
            if after is not None:
                params["after"] = after
            async with session.get(url, params=params, headers=headers) as answer:
                page = parse_page(await answer.read())
            for checkpoint in page.data:
                count += 1
                checksum += consume(checkpoint.step_number)
            if not page.has_more or not page.data:
                break
            after = page.data[-1].id
    return count, checksum


async def walk_openai(base_url: str, job: str, limit: int) -> tuple[int, int]:
    """The official SDK's async auto-paging iterator."""
    from openai import AsyncOpenAI

    count = checksum = 0
    async with AsyncOpenAI(api_key="sk-bench", base_url=base_url, max_retries=0) as client:
        async for checkpoint in client.fine_tuning.jobs.checkpoints.list(job, limit=limit):
            count += 1
            checksum += consume(checkpoint.step_number)
    return count, checksum


WALKERS = {
    "ours": walk_ours,
    "ours, otel api": walk_ours,
    "floor": walk_floor,
    "floor + records": walk_floor_records,
    "openai": walk_openai,
}
IMPORTS = {
    "ours": ["fine_tune_ckpt"],
    "ours, otel api": ["fine_tune_ckpt", "opentelemetry.trace", "opentelemetry.metrics"],
    "floor": ["aiohttp", "orjson"],
    "floor + records": ["aiohttp", "orjson", "fine_tune_ckpt._wire"],
    "openai": ["openai"],
}


def main() -> None:
    """Run one walk and print seconds, CPU seconds, count, checksum and peak RSS."""
    global WORK_SECONDS
    client, base_url, job, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    WORK_SECONDS = float(sys.argv[5]) / 1e6 if len(sys.argv) > 5 else 0.0
    walker = WALKERS[client]
    if client in ("ours", "floor + records"):
        # The default install: OpenTelemetry's API absent, as if not installed. The
        # "ours, otel api" walker has it importable, with no SDK configured.
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
    for module in IMPORTS[client]:
        importlib.import_module(module)
    started, started_cpu = time.perf_counter(), time.process_time()
    count, checksum = asyncio.run(walker(base_url, job, limit))
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu,
                "count": count,
                "checksum": checksum,
                "peak_kib": peak_kib,
            }
        )
    )


if __name__ == "__main__":
    main()
