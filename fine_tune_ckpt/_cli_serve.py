"""``fine-tune-ckpt serve-fake``: the fake API, for other programs, until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import IO

from ._cli_common import EXIT_OK, EXIT_USAGE, printable

__all__ = ["RUNNING_JOB_CHECKPOINTS", "RUNNING_JOB_ID", "serve_command"]

#: The job serve-fake runs in real time, beside the finished ones.
RUNNING_JOB_ID = "ftjob-running"
#: How many checkpoints that job makes before it succeeds.
RUNNING_JOB_CHECKPOINTS = 10


def _reason(error: Exception) -> str:
    """Why an address could not be used, without asyncio's restating of the address."""
    if isinstance(error, OSError):
        if error.errno is not None and error.errno > 0:  # getaddrinfo's codes are negative
            return os.strerror(error.errno)
        if error.strerror:
            return error.strerror
    return str(error)


async def serve_command(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Run ``serve-fake`` until SIGINT or SIGTERM; return the exit code."""
    from .testing import FakeAPIServer, JobTimeline, RateLimitPolicy
    from .testing._server import url_host

    if args.burst is not None and args.rate_limit is None:
        print("fine-tune-ckpt: error: --burst needs --rate-limit", file=err)
        return EXIT_USAGE
    rate_limit = None
    if args.rate_limit is not None:
        rate_limit = RateLimitPolicy(args.rate_limit, burst=args.burst)
    try:
        fake = FakeAPIServer(
            api_key=args.api_key,
            host=args.host,
            port=args.port,
            seed=args.seed,
            fault_rate=args.fault_rate,
            rate_limit=rate_limit,
            latency=args.latency or 0.0,
        )
    except ValueError as exc:
        print(f"fine-tune-ckpt: error: {printable(str(exc))}", file=err)
        return EXIT_USAGE
    finished = [f"ftjob-fake{number:03d}" for number in range(1, args.jobs + 1)]
    for job_id in finished:
        fake.add_job(job_id, count=args.checkpoints)
    try:
        await fake.start()
    except (OSError, ValueError) as exc:
        # A busy port, an address not on this machine, a host that does not resolve (or
        # cannot be encoded): the user's to fix, so one line, not a traceback.
        line = f"cannot listen on {url_host(fake.host)}:{args.port}: {_reason(exc)}"
        print(f"fine-tune-ckpt: error: {printable(line)}", file=err)
        return EXIT_USAGE
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if sys.platform != "win32":  # Windows' loops take no signal handlers: Ctrl-C still stops
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    # Added once listening, so its clock starts when it can first be asked.
    timeline = JobTimeline(checkpoint_every=args.checkpoint_every)
    fake.add_running_job(RUNNING_JOB_ID, count=RUNNING_JOB_CHECKPOINTS, timeline=timeline)
    try:
        print(f"Fake fine-tuning API listening on {fake.base_url}", file=out)
        print(f"API key: {fake.api_key}", file=out)
        print(f"Jobs: {', '.join(finished)}", file=out)
        print(
            f"Running job: {RUNNING_JOB_ID} (validating files {timeline.validating_files:g} s, "
            f"queued {timeline.queued:g} s, then a checkpoint every "
            f"{timeline.checkpoint_every:g} s; succeeds after "
            f"{timeline.duration(RUNNING_JOB_CHECKPOINTS):g} s)",
            file=out,
        )
        if rate_limit is not None:
            print(
                f"Rate limit: {rate_limit.requests_per_second:g} requests per second, "
                f"bursts of {rate_limit.burst}",
                file=out,
            )
        if fake.latency:
            print(f"Latency: {fake.latency:g} s per answer", file=out)
        print(
            f"Try: OPENAI_BASE_URL={fake.base_url} OPENAI_API_KEY={fake.api_key} "
            f"fine-tune-ckpt list {finished[0]}",
            file=out,
        )
        out.flush()
        await stop.wait()
    finally:
        await fake.stop()
    return EXIT_OK
