"""The ``fine-tune-ckpt`` command: list or watch checkpoints, list jobs, demo, serve the fake.

Exit codes: 0 success, 1 API or network error (one line, no traceback) or a watched job
that failed or was cancelled, 2 usage error, 130 interrupted (Ctrl-C). This module parses
the command line and hands it to the module of the command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import IO

from ._cli_common import EXIT_INTERRUPTED, EXIT_OK
from ._cli_demo import demo_command
from ._cli_jobs import jobs_command
from ._cli_list import list_command
from ._cli_list_many import CONCURRENCY
from ._cli_serve import RUNNING_JOB_CHECKPOINTS, RUNNING_JOB_ID, serve_command
from ._cli_watch import WATCH_INTERVAL, watch_command
from ._clock import Clock
from ._output import FORMATS
from ._selection import METRICS
from ._version import __version__

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command with ``argv`` (default: ``sys.argv[1:]``) and return its exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return asyncio.run(_run(args, sys.stdout, sys.stderr))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as other Unix tools do.
        with contextlib.suppress(OSError):
            sys.stdout = open(  # noqa: SIM115 - replaces stdout until exit
                os.devnull, "w", encoding="utf-8"
            )
        return EXIT_OK


async def _run(
    args: argparse.Namespace,
    out: IO[str],
    err: IO[str],
    *,
    clock: Clock | None = None,
    stdin: IO[bytes] | None = None,
) -> int:
    """Run the parsed command; the clients it makes wait on ``clock`` (tests: a fake one).

    ``stdin`` is what ``list --jobs-from -`` reads (default: the process's standard input).
    """
    if args.command == "list":
        return await list_command(args, out, err, clock=clock, stdin=stdin)
    if args.command == "watch":
        return await watch_command(args, out, err, clock=clock)
    if args.command == "jobs":
        return await jobs_command(args, out, err, clock=clock)
    if args.command == "demo":
        return await demo_command(out, err)
    return await serve_command(args, out, err)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fine-tune-ckpt",
        description="List or watch the checkpoints of fine-tuning jobs.",
        epilog="Configuration comes from OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_ORG_ID and "
        "OPENAI_PROJECT_ID, as in the official SDK. Try `fine-tune-ckpt demo` first.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser(
        "list",
        help="list the checkpoints of one job or many",
        description="List a job's checkpoints, newest first, across every page. Name "
        "several jobs (JOB arguments, --jobs-from or --all-jobs, one way only) to walk "
        "them at once: each line then names its job, failed jobs are reported on stderr "
        "with the --after that resumes them, and the exit code is 1 if any failed.",
    )
    listing.add_argument("job_ids", nargs="*", metavar="JOB", help="fine-tuning job ids")
    many = listing.add_argument_group("many jobs")
    many.add_argument(
        "--jobs-from",
        metavar="FILE",
        help="read job ids from FILE (- for stdin), one per line, as they are needed; "
        "blank lines and lines starting with # are skipped",
    )
    many.add_argument("--all-jobs", action="store_true", help="every job of the account")
    many.add_argument(
        "--concurrency",
        type=_positive_int,
        default=CONCURRENCY,
        metavar="N",
        help="jobs walked at once (default: %(default)s)",
    )
    _add_paging_options(listing, "checkpoint", per_job=True)
    _add_format_option(listing)
    _add_best_option(listing, "print only the checkpoint to deploy by METRIC, one per job")
    _add_client_options(listing)

    watch = commands.add_parser(
        "watch",
        help="print a running job's checkpoints as they appear",
        description="Print a job's checkpoints oldest first, then each new one as it "
        "appears, until the job ends. Exit 0 when it succeeded, 1 when it failed or was "
        "cancelled (its status and error on stderr) or on an API error (naming the "
        "--since to resume with), 130 on Ctrl-C.",
    )
    watch.add_argument("job_id", metavar="JOB_ID", help="the fine-tuning job id")
    watch.add_argument(
        "--interval",
        type=_positive_seconds,
        default=WATCH_INTERVAL,
        metavar="SECONDS",
        help="seconds between polls, give or take 10%% (default: %(default)g)",
    )
    watch.add_argument(
        "--since", metavar="ID", help="print only the checkpoints newer than this one"
    )
    _add_format_option(watch)
    _add_best_option(watch, "at the end, also name the checkpoint to deploy by METRIC")
    _add_client_options(watch)

    jobs = commands.add_parser(
        "jobs",
        help="list the account's fine-tuning jobs",
        description="List the account's fine-tuning jobs, newest first, across every page.",
    )
    _add_paging_options(jobs, "job")
    _add_format_option(jobs)
    _add_client_options(jobs)

    commands.add_parser(
        "demo",
        help="run the main job offline against the built-in fake API",
        description="Start the fake API on a free loopback port, list a demo job's "
        "checkpoints through the real client (surviving one injected 429), print the "
        "table and the best checkpoint, watch a running job on a fake clock (in no real "
        "time), and stop the fake.",
    )

    serve = commands.add_parser(
        "serve-fake",
        help="run the fake API until interrupted",
        description="Serve the fake fine-tuning API (jobs and their checkpoints) for other "
        f"programs to use: finished jobs, and one job, {RUNNING_JOB_ID}, that runs in real "
        f"time, making {RUNNING_JOB_CHECKPOINTS} checkpoints before it succeeds.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=_non_negative_int, default=8080, help="0 picks a free one")
    serve.add_argument("--api-key", help="the key to accept (default: a random one)")
    serve.add_argument("--jobs", type=_positive_int, default=3, help="how many jobs to serve")
    serve.add_argument(
        "--checkpoints", type=_non_negative_int, default=25, help="checkpoints per job"
    )
    serve.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    serve.add_argument(
        "--fault-rate", type=_rate, default=0.0, help="probability of a random fault (0..1)"
    )
    serve.add_argument(
        "--checkpoint-every",
        type=_positive_seconds,
        default=5.0,
        metavar="SECONDS",
        help="pace of the running job: seconds between its checkpoints (default: %(default)s)",
    )
    limits = serve.add_argument_group(
        "rate limit and latency",
        "Answer as a busy, distant API would: past --rate-limit, 429 with retry-after-ms; "
        "x-ratelimit-* headers on every answer; each answer --latency late.",
    )
    limits.add_argument(
        "--rate-limit",
        type=_requests_per_second,
        metavar="RPS",
        help="requests per second the fake takes on average (default: no limit)",
    )
    limits.add_argument(
        "--burst",
        type=_positive_int,
        metavar="N",
        help="requests it takes at once after a quiet spell (default: one second's worth)",
    )
    limits.add_argument(
        "--latency",
        type=_positive_seconds,
        metavar="SECONDS",
        help="delay every answer by this long (default: none)",
    )
    return parser


def _add_paging_options(
    command: argparse.ArgumentParser, item: str, *, per_job: bool = False
) -> None:
    command.add_argument("--limit", type=_positive_int, help="page size asked of the API")
    command.add_argument(
        "--after", help=f"start after this {item} id" + (" (one JOB only)" if per_job else "")
    )
    command.add_argument(
        "--max-items",
        type=_positive_int,
        help=f"stop after N {item}s" + (" of each job" if per_job else ""),
    )


def _add_format_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--format",
        choices=FORMATS,
        help="output format (default: table on a terminal, jsonl when piped)",
    )


def _add_best_option(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument(
        "--best",
        choices=METRICS,
        metavar="METRIC",
        help=f"{what} (losses: lowest wins; accuracies: highest wins); one of {', '.join(METRICS)}",
    )


def _add_client_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--base-url", help="API base URL (default: OPENAI_BASE_URL or the API)")
    command.add_argument(
        "--max-retries", type=_non_negative_int, default=2, help="retries per request"
    )
    command.add_argument("-v", "--verbose", action="store_true", help="log retries on stderr")


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    # Also refuses NaN, which every comparison fails, and infinity: never a checkpoint.
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {text}")
    return value


def _requests_per_second(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    # Also refuses NaN and infinity (no limit at all is the flag left out).
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a number of requests per second above 0, got {text}"
        )
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {text}")
    return value
