"""``fine-tune-ckpt jobs``: the account's fine-tuning jobs, newest first."""

from __future__ import annotations

import argparse
from contextlib import aclosing
from typing import IO

from ._cli_common import (
    EXIT_API_ERROR,
    EXIT_OK,
    choose_format,
    error_line,
    make_client,
    retry_log,
    usage_error,
)
from ._clock import Clock
from ._errors import APIError, FineTuneCkptError
from ._output import JOBS, Writer

__all__ = ["jobs_command"]


async def jobs_command(
    args: argparse.Namespace, out: IO[str], err: IO[str], *, clock: Clock | None = None
) -> int:
    """Run ``jobs``: print the account's jobs; return the exit code."""
    try:
        client = make_client(args, clock)
        pager = client.jobs.list(after=args.after, limit=args.limit, max_items=args.max_items)
    except (FineTuneCkptError, ValueError, TypeError) as exc:
        return usage_error(exc, err)
    writer = Writer(choose_format(args, out), out, JOBS)
    with retry_log(err, enabled=args.verbose):
        async with client, aclosing(aiter(pager)) as jobs:
            try:
                async for job in jobs:
                    writer.write(job)
            except APIError as exc:
                print(error_line(exc, resume_option="--after"), file=err)
                return EXIT_API_ERROR
    writer.close()
    return EXIT_OK
