"""``fine-tune-ckpt list`` over many jobs: ``JOB JOB ...``, ``--jobs-from FILE``, ``--all-jobs``.

The jobs are walked at once (``--concurrency``) over one client, and each checkpoint is
written as it arrives, tagged with its job: a JOB column in a table, the
``fine_tuning_job_id`` that CSV and JSON already carry. With ``--best``, each job's best
checkpoint is written when that job ends. A failed job is one line on stderr naming where
to resume it; the other jobs go on, and the exit code says 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import IO

from ._cli_common import (
    EXIT_API_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    choose_format,
    error_line,
    make_client,
    printable,
    retry_log,
    usage_error,
)
from ._cli_jobfile import JobsFileError, open_jobs_file, read_job_ids
from ._client import AsyncClient
from ._clock import Clock
from ._errors import FineTuneCkptError
from ._models import Checkpoint
from ._output import CHECKPOINTS_BY_JOB, Writer
from ._pipelines import JobCheckpoint, JobDone, JobFailure, JobSource, walk_jobs_to_the_end
from ._selection import BestSoFar, better_is

__all__ = ["CONCURRENCY", "PROGRESS_EVERY", "list_many"]

#: Jobs walked at once unless ``--concurrency`` says otherwise: ``walk_jobs``' default.
CONCURRENCY = 8
#: Between job ends, the progress line is redrawn every this many checkpoints: often
#: enough to see it move, rarely enough not to flood a slow terminal.
PROGRESS_EVERY = 100


async def list_many(
    args: argparse.Namespace,
    out: IO[str],
    err: IO[str],
    *,
    clock: Clock | None = None,
    stdin: IO[bytes] | None = None,
) -> int:
    """List the checkpoints of the jobs ``args`` names; 1 if any job failed.

    ``stdin`` is what ``--jobs-from -`` reads (default: the process's standard input).
    """
    with contextlib.ExitStack() as resources:
        try:
            client = make_client(args, clock)
            jobs = _jobs(args, client, stdin, resources)
            walk = walk_jobs_to_the_end(
                client.checkpoints,
                jobs,
                concurrency=args.concurrency,
                limit=args.limit,
                max_items=args.max_items,
            )
        except OSError as exc:  # the --jobs-from file cannot be opened
            line = f"cannot read --jobs-from {args.jobs_from}: {exc.strerror or exc}"
            print(f"fine-tune-ckpt: error: {printable(line)}", file=err)
            return EXIT_USAGE
        except (FineTuneCkptError, ValueError, TypeError) as exc:
            return usage_error(exc, err)
        report = _Report(choose_format(args, out), args.best, out, err)
        with retry_log(err, enabled=args.verbose):
            async with client:
                return await _run_walk(walk, report)


def _jobs(
    args: argparse.Namespace,
    client: AsyncClient,
    stdin: IO[bytes] | None,
    resources: contextlib.ExitStack,
) -> JobSource:
    """Where the jobs come from, read lazily (an open file joins ``resources``)."""
    if args.all_jobs:
        return client.jobs.list()
    if args.jobs_from is not None:
        stream = resources.enter_context(
            open_jobs_file(args.jobs_from, sys.stdin.buffer if stdin is None else stdin)
        )
        name = "stdin" if args.jobs_from == "-" else f"--jobs-from {args.jobs_from}"
        return read_job_ids(stream, name)
    return list(args.job_ids)  # checked whole by walk_jobs before anything is sent


async def _run_walk(
    walk: AsyncGenerator[JobCheckpoint | JobFailure | JobDone, None], report: _Report
) -> int:
    try:
        async with aclosing(walk) as items:
            async for item in items:
                if isinstance(item, JobCheckpoint):
                    report.checkpoint(item)
                elif isinstance(item, JobDone):
                    report.done(item.fine_tuning_job_id)
                else:
                    report.failed(item)
    except JobsFileError as exc:
        report.stop(f"fine-tune-ckpt: error: {printable(str(exc))}")
        return EXIT_USAGE
    except FineTuneCkptError as exc:
        # A job's own failure is reported above and the walk goes on: what stops it is
        # the source, the account's job listing, which no option resumes.
        report.stop(error_line(exc, resume_option=None, about="listing the jobs"))
        return EXIT_API_ERROR
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels us, then main returns 130
        report.interrupted()
        raise
    report.finish()
    return EXIT_API_ERROR if report.failures else EXIT_OK


class _Report:
    """What the walk has shown so far: the output, the progress line, each job under way."""

    def __init__(self, output_format: str, metric: str | None, out: IO[str], err: IO[str]) -> None:
        self._writer = Writer(output_format, out, CHECKPOINTS_BY_JOB)
        self._format = output_format
        self._metric = metric
        self._out = out
        self._err = err
        self._show_progress = err.isatty()
        # Rows and the progress line on one screen: each row goes above the progress line,
        # which would otherwise run into it.
        self._rows_on_screen = self._show_progress and out.isatty()
        self._progress_shown = False
        self.jobs_done = 0
        self.failures = 0
        self._checkpoints = 0
        self._best_written = 0
        # Only jobs under way (at most --concurrency, plus those waiting in the walk's
        # buffer): with --best, each one's best so far; else its last checkpoint written,
        # the --after that resumes it if the command is stopped.
        self._rankings: dict[str, BestSoFar] = {}
        self._last_written: dict[str, str] = {}

    def checkpoint(self, item: JobCheckpoint) -> None:
        """Write a checkpoint, or rank it among its job's with ``--best``."""
        job_id, checkpoint = item.fine_tuning_job_id, item.checkpoint
        self._checkpoints += 1
        if self._metric is None:
            self._write(checkpoint)
            self._last_written[job_id] = checkpoint.id
        else:
            ranking = self._rankings.get(job_id)
            if ranking is None:
                ranking = self._rankings[job_id] = BestSoFar(self._metric)
            ranking.offer(checkpoint)
        if self._checkpoints % PROGRESS_EVERY == 0:
            self._progress()

    def done(self, job_id: str) -> None:
        """A job ended well: with ``--best``, write its best checkpoint or say it has none."""
        self.jobs_done += 1
        self._last_written.pop(job_id, None)
        if self._metric is not None:
            ranking = self._rankings.pop(job_id, None) or BestSoFar(self._metric)
            if ranking.best is None:
                self.failures += 1
                self._say(
                    f"fine-tune-ckpt: job {job_id}: none of {ranking.seen} checkpoints "
                    f"reports {self._metric}"
                )
            else:
                self._write(ranking.best)
                self._best_written += 1
        self._end_of_job()

    def failed(self, failure: JobFailure) -> None:
        """A job failed after its retries: one line naming it and the ``--after`` to resume."""
        job_id = failure.fine_tuning_job_id
        self.jobs_done += 1
        self.failures += 1
        self._rankings.pop(job_id, None)
        self._last_written.pop(job_id, None)
        self._say(error_line(failure.error, resume_option="--after", about=f"job {job_id}"))
        self._end_of_job()

    def finish(self) -> None:
        """Close the output; with ``--best``, say what the lines are."""
        self._clear_progress()
        self._writer.close()
        if self._metric is not None and self._best_written:
            line = (
                f"Best by {self._metric} ({better_is(self._metric)} wins): one checkpoint "
                f"for each of {self._best_written} jobs"
            )
            # After a table for people; on stderr otherwise, so stdout stays checkpoints.
            print(line, file=self._out if self._format == "table" else self._err)

    def stop(self, line: str) -> None:
        """The walk cannot go on: close the output (JSON stays valid), then say why."""
        self._clear_progress()
        self._writer.close()
        print(line, file=self._err)
        self._unfinished()

    def interrupted(self) -> None:
        """Stopped from outside: close the output, and name where each job under way stopped."""
        self.stop(f"fine-tune-ckpt: interrupted after {self.jobs_done} jobs")

    def _unfinished(self) -> None:
        # Jobs cut off with some of their checkpoints written: where to pick each one up.
        for job_id, after in self._last_written.items():
            line = f"fine-tune-ckpt: job {job_id} unfinished; resume with --after {after}"
            print(printable(line), file=self._err)

    def _write(self, checkpoint: Checkpoint) -> None:
        if not self._rows_on_screen:
            self._writer.write(checkpoint)
            return
        self._clear_progress()
        self._writer.write(checkpoint)
        self._out.flush()
        self._progress()

    def _end_of_job(self) -> None:
        # A pipe sees each job's output when the job ends, not when the command does.
        self._out.flush()
        self._progress()

    def _say(self, line: str) -> None:
        self._clear_progress()
        print(printable(line), file=self._err)

    def _progress(self) -> None:
        if not self._show_progress:
            return
        failed = f" ({self.failures} failed)" if self.failures else ""
        self._err.write(f"\r{self.jobs_done} jobs done{failed}, {self._checkpoints} checkpoints")
        self._err.flush()
        self._progress_shown = True

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self._err.write("\r\033[K")
            self._err.flush()
            self._progress_shown = False
