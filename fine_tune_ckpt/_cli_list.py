"""``fine-tune-ckpt list``: a job's checkpoints, or the one to deploy; or many jobs'.

The jobs are named one way only: ``JOB`` arguments, ``--jobs-from FILE`` or
``--all-jobs``. Exactly one ``JOB`` is listed here, as it always was; anything else goes
to :mod:`._cli_list_many`, whose output names each checkpoint's job.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import IO

from ._cli_common import (
    EXIT_API_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    best_reason,
    choose_format,
    error_line,
    make_client,
    no_best,
    retry_log,
    usage_error,
)
from ._cli_list_many import list_many
from ._clock import Clock
from ._errors import APIError, FineTuneCkptError
from ._models import Checkpoint
from ._output import CHECKPOINTS, Writer
from ._paging import AsyncCheckpointPager
from ._selection import BestSoFar

__all__ = ["list_command", "naming_problem"]


async def list_command(
    args: argparse.Namespace,
    out: IO[str],
    err: IO[str],
    *,
    clock: Clock | None = None,
    stdin: IO[bytes] | None = None,
) -> int:
    """Run ``list``: print the checkpoints (or the best ones); return the exit code.

    ``stdin`` is what ``--jobs-from -`` reads (default: the process's standard input).
    """
    problem = naming_problem(args)
    if problem is not None:
        print(f"fine-tune-ckpt: error: {problem}", file=err)
        return EXIT_USAGE
    if args.jobs_from is None and not args.all_jobs and len(args.job_ids) == 1:
        return await _list_one(args, args.job_ids[0], out, err, clock=clock)
    return await list_many(args, out, err, clock=clock, stdin=stdin)


def naming_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with how ``args`` names the jobs, in a sentence; ``None`` if nothing."""
    ways = [
        way
        for way, used in (
            ("JOB arguments", bool(args.job_ids)),
            ("--jobs-from", args.jobs_from is not None),
            ("--all-jobs", args.all_jobs),
        )
        if used
    ]
    if not ways:
        return "name the jobs: JOB ..., --jobs-from FILE or --all-jobs"
    if len(ways) > 1:
        # Which first, and is a job named twice listed twice? One way at a time, no puzzle.
        return f"{' and '.join(ways)} do not go together: name the jobs one way"
    if args.after is not None and len(args.job_ids) != 1:
        return "--after resumes one job: use it with exactly one JOB"
    return None


async def _list_one(
    args: argparse.Namespace, job_id: str, out: IO[str], err: IO[str], *, clock: Clock | None
) -> int:
    try:
        client = make_client(args, clock)
        pager = client.checkpoints.list(
            job_id, after=args.after, limit=args.limit, max_items=args.max_items
        )
    except (FineTuneCkptError, ValueError, TypeError) as exc:
        return usage_error(exc, err)
    output_format = choose_format(args, out)
    with retry_log(err, enabled=args.verbose):
        async with client:
            items = _walk(pager, err, show_progress=err.isatty())
            try:
                if args.best:
                    return await _print_best(items, args.best, output_format, out, err)
                writer = Writer(output_format, out, CHECKPOINTS)
                async for checkpoint in items:
                    writer.write(checkpoint)
                writer.close()
            except APIError as exc:
                print(error_line(exc, resume_option="--after"), file=err)
                return EXIT_API_ERROR
            finally:
                await items.aclose()
    return EXIT_OK


async def _walk(
    pager: AsyncCheckpointPager, err: IO[str], *, show_progress: bool
) -> AsyncGenerator[Checkpoint, None]:
    """Yield the pager's checkpoints, showing pages and items so far on a terminal."""
    pages = items = 0
    remaining = pager.max_items
    async with aclosing(pager.pages()) as walk:
        async for page in walk:
            data = page.data if remaining is None else page.data[:remaining]
            pages += 1
            items += len(data)
            if remaining is not None:
                remaining -= len(data)
            if show_progress:
                err.write(f"\r{pages} pages, {items} checkpoints")
                err.flush()
            for checkpoint in data:
                yield checkpoint
    if show_progress:
        err.write("\r\033[K")  # clear the progress line
        err.flush()


async def _print_best(
    items: AsyncIterator[Checkpoint], metric: str, output_format: str, out: IO[str], err: IO[str]
) -> int:
    ranking = BestSoFar(metric)
    async for checkpoint in items:
        ranking.offer(checkpoint)
    best = ranking.best
    if best is None:
        print(no_best(ranking), file=err)
        return EXIT_API_ERROR
    writer = Writer(output_format, out, CHECKPOINTS)
    writer.write(best)
    writer.close()
    print(best_reason(ranking, best), file=out if output_format == "table" else err)
    return EXIT_OK
