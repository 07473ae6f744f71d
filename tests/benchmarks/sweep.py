"""A sweep over many jobs within the API's rate limit: ours, the official SDK, the floor.

    python -m tests.benchmarks.sweep [--rounds N] [--skip-openai]

2,000 jobs of 3 checkpoints each (one page per job) on the built-in fake, limited to 200
requests per second with a burst of 50 and 20 ms of latency per answer. What bounds the
sweep is the limit, not the CPU: the physical floor is requests / rate = 10 s.

- ``ours``: ``walk_jobs(client.checkpoints, job_ids, on_error="report")`` with every
  default (8 workers, the client's pacing on).
- ``openai``: what users write today: ``asyncio.gather`` over every job, a semaphore of 50,
  each job listed with the official SDK's auto-paging iterator, its default retries.

Reported per client: wall time (median), ratio to the floor, 429s the fake answered (as a
share of all requests), jobs failed. Each walk runs in a fresh process against a fresh
fake in another process (its bucket full at the start).

The module is also both processes: ``sweep.py serve`` is the fake, ``sweep.py walk
CLIENT BASE_URL KEY`` one sweep; they print JSON lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import statistics
import subprocess
import sys
import time

JOBS = 2_000
CHECKPOINTS_PER_JOB = 3
RATE = 200.0
BURST = 50
LATENCY = 0.020
SEMAPHORE = 50
#: Each job is one page (3 checkpoints, under the API's default page size of 10).
REQUESTS = JOBS
FLOOR_SECONDS = REQUESTS / RATE
TARGET_RATIO = 1.1
TARGET_429_SHARE = 0.01


def job_ids() -> list[str]:
    """The jobs the fake serves and every sweep walks."""
    return [f"ftjob-sweep-{n:05}" for n in range(JOBS)]


async def serve() -> None:
    """Run the rate-limited fake until SIGTERM; then print its counters."""
    from fine_tune_ckpt.testing import FakeAPIServer, RateLimitPolicy

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with FakeAPIServer(
        rate_limit=RateLimitPolicy(RATE, burst=BURST), latency=LATENCY
    ) as fake:
        for job_id in job_ids():
            fake.add_job(job_id, count=CHECKPOINTS_PER_JOB)
        print(json.dumps({"base_url": fake.base_url, "api_key": fake.api_key}), flush=True)
        await stop.wait()
        counters = {"requests": fake.request_count, "rate_limited": fake.rate_limited_count}
        print(json.dumps(counters), flush=True)


async def sweep_ours(base_url: str, api_key: str) -> tuple[int, int]:
    """Every job through ``walk_jobs`` with its defaults; (checkpoints, jobs failed)."""
    from fine_tune_ckpt import AsyncClient, JobFailure, walk_jobs

    items = failed = 0
    async with AsyncClient(api_key=api_key, base_url=base_url) as client:
        async for item in walk_jobs(client.checkpoints, job_ids(), on_error="report"):
            if isinstance(item, JobFailure):
                failed += 1
            else:
                items += 1
    return items, failed


async def sweep_openai(base_url: str, api_key: str) -> tuple[int, int]:
    """``asyncio.gather`` under a semaphore of 50 over the official SDK; (checkpoints, failed)."""
    from openai import AsyncOpenAI, OpenAIError

    semaphore = asyncio.Semaphore(SEMAPHORE)
    async with AsyncOpenAI(api_key=api_key, base_url=base_url) as client:

        async def one(job_id: str) -> int | None:
            async with semaphore:
                try:
                    return len(
                        [cp async for cp in client.fine_tuning.jobs.checkpoints.list(job_id)]
                    )
                except OpenAIError:
                    return None

        counts = await asyncio.gather(*(one(job_id) for job_id in job_ids()))
    return sum(count for count in counts if count is not None), counts.count(None)


SWEEPS = {"ours": sweep_ours, "openai": sweep_openai}


def walk_main(client: str, base_url: str, api_key: str) -> None:
    """One sweep in this process; print seconds, CPU seconds, items, failures."""
    started, cpu = time.perf_counter(), time.process_time()
    items, failed = asyncio.run(SWEEPS[client](base_url, api_key))
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "cpu": time.process_time() - cpu,
                "items": items,
                "failed": failed,
                "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )


def one_sweep(client: str) -> dict[str, float]:
    """A fresh fake, one sweep by ``client`` against it, and the fake's counters."""
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.sweep", "serve"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fake.stdout is not None
        address = json.loads(fake.stdout.readline())
        time.sleep(1.0)  # the bucket is full at start; let the fake settle on its loop
        output = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.benchmarks.sweep",
                "walk",
                client,
                address["base_url"],
                address["api_key"],
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        result: dict[str, float] = json.loads(output)
        fake.send_signal(signal.SIGTERM)
        result.update(json.loads(fake.stdout.readline()))
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    done = result["items"] + result["failed"] * CHECKPOINTS_PER_JOB
    assert done == JOBS * CHECKPOINTS_PER_JOB, (client, result)
    return result


def report(rounds: int, clients: tuple[str, ...]) -> str:
    """Run the sweep ``rounds`` times per client (taking turns); the Markdown table."""
    results: dict[str, list[dict[str, float]]] = {client: [] for client in clients}
    for _ in range(rounds):
        for client in clients:
            results[client].append(one_sweep(client))
            print(client, results[client][-1], file=sys.stderr)
    lines = [
        f"Sweep: {JOBS:,} jobs x {CHECKPOINTS_PER_JOB} checkpoints, the fake limited to "
        f"{RATE:.0f} requests/s (burst {BURST}), {LATENCY * 1000:.0f} ms latency; floor = "
        f"{REQUESTS:,} requests / {RATE:.0f} per s = {FLOOR_SECONDS:.1f} s; "
        f"{rounds} round(s), medians.",
        "",
        "| sweep | median s | ratio to floor | 429s | share of requests | jobs failed "
        "| client CPU s | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
        f"| floor (requests / rate) | {FLOOR_SECONDS:.2f} | 1.00x | 0 | 0.0% | 0 | | |",
    ]
    names = {"ours": "ours: `walk_jobs`, defaults", "openai": "openai: gather, semaphore 50"}
    for client in clients:
        runs = results[client]
        seconds = statistics.median(run["seconds"] for run in runs)
        limited = statistics.median(run["rate_limited"] for run in runs)
        requests = statistics.median(run["requests"] for run in runs)
        failed = max(run["failed"] for run in runs)
        cpu = statistics.median(run["cpu"] for run in runs)
        target = (
            f"<= {TARGET_RATIO}x, <= {TARGET_429_SHARE:.0%} 429s, no job failed"
            if client == "ours"
            else ""
        )
        lines.append(
            f"| {names[client]} | {seconds:.2f} | {seconds / FLOOR_SECONDS:.2f}x "
            f"| {limited:,.0f} | {limited / requests:.1%} | {failed:,.0f} | {cpu:.2f} | {target} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Dispatch: the harness (default), or one of its two processes."""
    if sys.argv[1:2] == ["serve"]:
        asyncio.run(serve())
        return
    if sys.argv[1:2] == ["walk"]:
        walk_main(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-openai", action="store_true")
    args = parser.parse_args()
    clients = ("ours",) if args.skip_openai else ("ours", "openai")
    print(report(args.rounds, clients))


if __name__ == "__main__":
    main()
