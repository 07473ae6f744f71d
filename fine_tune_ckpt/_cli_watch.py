"""``fine-tune-ckpt watch JOB_ID``: a running job's checkpoints as they appear."""

from __future__ import annotations

import argparse
import asyncio
from contextlib import aclosing
from typing import IO, cast

from ._cli_common import (
    EXIT_API_ERROR,
    EXIT_OK,
    best_reason,
    choose_format,
    error_line,
    make_client,
    no_best,
    printable,
    retry_log,
    usage_error,
)
from ._clock import Clock
from ._errors import FineTuneCkptError
from ._models import FineTuningJob
from ._output import CHECKPOINTS, Writer
from ._selection import BestSoFar
from ._watch import CheckpointWatcher

__all__ = ["WATCH_INTERVAL", "follow", "watch_command"]

#: Seconds between the polls of ``watch`` unless ``--interval`` says otherwise: the
#: library's default.
WATCH_INTERVAL = 30.0


async def watch_command(
    args: argparse.Namespace, out: IO[str], err: IO[str], *, clock: Clock | None = None
) -> int:
    """Run ``watch``: follow the job to its end; return the exit code."""
    try:
        client = make_client(args, clock)
        watcher = client.checkpoints.watch(
            args.job_id, poll_interval=args.interval, since=args.since
        )
    except (FineTuneCkptError, ValueError, TypeError) as exc:
        return usage_error(exc, err)
    with retry_log(err, enabled=args.verbose):
        async with client:
            return await follow(watcher, choose_format(args, out), args.best, out, err)


async def follow(
    watcher: CheckpointWatcher,
    output_format: str,
    metric: str | None,
    out: IO[str],
    err: IO[str],
) -> int:
    """Write each checkpoint as the watch yields it; then the best one, and how the job ended.

    Returns 0 if the job succeeded (and, with ``metric``, a checkpoint reports it), else 1.
    """
    writer = Writer(output_format, out, CHECKPOINTS)
    ranking = BestSoFar(metric) if metric else None
    try:
        async with aclosing(aiter(watcher)) as checkpoints:
            async for checkpoint in checkpoints:
                writer.write(checkpoint)
                out.flush()  # a pipe sees each checkpoint when it appears, not at the end
                if ranking is not None:
                    ranking.offer(checkpoint)
    except FineTuneCkptError as exc:
        writer.close()  # what was printed stays valid JSON; the exit code says it is partial
        print(error_line(exc, resume_option="--since"), file=err)
        return EXIT_API_ERROR
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels us, then main returns 130
        writer.close()
        line = "fine-tune-ckpt: interrupted"
        if watcher.since is not None:
            line += f"; resume with --since {watcher.since}"
        print(printable(line), file=err)
        raise
    writer.close()
    code = EXIT_OK
    if ranking is not None:
        if ranking.best is None:
            print(no_best(ranking), file=err)
            code = EXIT_API_ERROR
        else:
            reason = f"{best_reason(ranking, ranking.best)}: deploy "
            reason += ranking.best.fine_tuned_model_checkpoint
            print(printable(reason), file=out if output_format == "table" else err)
    # Set by the poll that saw the job end, which is what ended the watch.
    job = cast(FineTuningJob, watcher.job)
    print(_job_line(job), file=err)
    return code if job.status == "succeeded" else EXIT_API_ERROR


def _job_line(job: FineTuningJob) -> str:
    """How a job ended, on one line: its fine-tuned model, or its error."""
    line = f"fine-tune-ckpt: job {job.id} {job.status}"
    if job.fine_tuned_model:
        line += f": {job.fine_tuned_model}"
    if job.error is not None:
        line += f": {job.error.code}: {job.error.message}"
        if job.error.param:
            line += f" (param {job.error.param})"
    # The status and error come from the server.
    return printable(line)
