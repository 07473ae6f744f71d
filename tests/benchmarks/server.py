"""A cheap checkpoints server in its own process, so serving is not what is measured.

Job ``bench-<N>`` has N synthetic checkpoints. Pages are built once per (N, limit,
cursor) and served from memory; jobs over ``CACHE_UP_TO`` items are built on the fly so
the memory walk does not need gigabytes here. ``--latency-ms`` delays every answer.

    python -m tests.benchmarks.server --port 0 --latency-ms 5   # prints the port
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiohttp import web

CACHE_UP_TO = 100_000
_EPOCH = 1_767_225_600


def item(index: int, total: int) -> dict[str, object]:
    """The checkpoint at ``index`` (0 is the newest) of a job of ``total``."""
    step = total - index
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": f"ftckpt_{index:012d}",
        "created_at": _EPOCH + step * 60,
        "fine_tuned_model_checkpoint": f"ft:gpt-4o-mini:bench:sfx:abcd1234:ckpt-step-{step}",
        "fine_tuning_job_id": "ftjob-bench",
        "metrics": {
            "step": step,
            "train_loss": 1.0 / (step + 1),
            "train_mean_token_accuracy": 0.5 + step / (2 * total + 2),
            "valid_loss": 1.1 / (step + 1),
            "valid_mean_token_accuracy": 0.49 + step / (2 * total + 2),
            "full_valid_loss": 1.2 / (step + 1),
            "full_valid_mean_token_accuracy": 0.48 + step / (2 * total + 2),
        },
        "step_number": step,
    }


def page(total: int, start: int, limit: int) -> bytes:
    """One page of a job of ``total`` items, from index ``start``."""
    data = [item(i, total) for i in range(start, min(start + limit, total))]
    return json.dumps(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": start + len(data) < total,
        },
        separators=(",", ":"),
    ).encode()


class Server:
    """Serves pages, from a cache when the job is small enough."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.cache: dict[tuple[int, int, int], bytes] = {}

    async def handle(self, request: web.Request) -> web.Response:
        total = int(request.match_info["job"].removeprefix("bench-"))
        limit = int(request.query.get("limit", "10"))
        after = request.query.get("after")
        start = 0 if after is None else int(after.removeprefix("ftckpt_")) + 1
        if self.latency:
            await asyncio.sleep(self.latency)
        key = (total, start, limit)
        body = self.cache.get(key)
        if body is None:
            body = page(total, start, limit)
            if total <= CACHE_UP_TO:
                self.cache[key] = body
        return web.Response(body=body, content_type="application/json")


async def serve(port: int, latency_ms: float) -> None:
    """Serve until killed; print the bound port first."""
    server = Server(latency_ms / 1000)
    app = web.Application()
    app.router.add_get("/v1/fine_tuning/jobs/{job}/checkpoints", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


def main() -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.latency_ms))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
