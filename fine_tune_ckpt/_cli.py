"""The ``fine-tune-ckpt`` command: list or watch checkpoints, list jobs, demo, serve the fake.

Exit codes: 0 success, 1 API or network error (one line, no traceback) or a watched job
that failed or was cancelled, 2 usage error, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import aclosing
from typing import IO, TYPE_CHECKING, cast

from ._client import AsyncClient
from ._clock import Clock
from ._errors import APIError, FineTuneCkptError
from ._models import Checkpoint, FineTuningJob
from ._output import CHECKPOINTS, FORMATS, JOBS, Writer
from ._paging import AsyncCheckpointPager
from ._selection import METRICS, BestSoFar, better_is, pick_best
from ._version import __version__
from ._watch import CheckpointWatcher

if TYPE_CHECKING:  # the demo's fake is imported only when it runs
    from .testing import FakeAPIServer, FakeClock

__all__ = ["main"]

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DEMO_JOB_ID = "ftjob-demo"
#: The running job the demo watches, on a fake clock.
DEMO_WATCHED_JOB_ID = "ftjob-demo-live"
#: Seconds between the polls of ``watch`` unless ``--interval`` says otherwise: the
#: library's default.
WATCH_INTERVAL = 30.0
#: The job serve-fake runs in real time, beside the finished ones.
RUNNING_JOB_ID = "ftjob-running"
#: How many checkpoints that job makes before it succeeds.
RUNNING_JOB_CHECKPOINTS = 10


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
    args: argparse.Namespace, out: IO[str], err: IO[str], *, clock: Clock | None = None
) -> int:
    """Run the parsed command; the clients it makes wait on ``clock`` (tests: a fake one)."""
    if args.command == "list":
        return await _list_command(args, out, err, clock=clock)
    if args.command == "watch":
        return await _watch_command(args, out, err, clock=clock)
    if args.command == "jobs":
        return await _jobs_command(args, out, err, clock=clock)
    if args.command == "demo":
        return await _demo_command(out, err)
    return await _serve_command(args, out, err)


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
        help="list a job's checkpoints",
        description="List a job's checkpoints, newest first, across every page.",
    )
    listing.add_argument("job_id", metavar="JOB_ID", help="the fine-tuning job id")
    _add_paging_options(listing, "checkpoint")
    _add_format_option(listing)
    _add_best_option(listing, "print only the checkpoint to deploy by METRIC")
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


def _add_paging_options(command: argparse.ArgumentParser, item: str) -> None:
    command.add_argument("--limit", type=_positive_int, help="page size asked of the API")
    command.add_argument("--after", help=f"start after this {item} id")
    command.add_argument("--max-items", type=_positive_int, help=f"stop after N {item}s")


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


# -- list ---------------------------------------------------------------------------


async def _list_command(
    args: argparse.Namespace, out: IO[str], err: IO[str], *, clock: Clock | None = None
) -> int:
    try:
        client = _client(args, clock)
        pager = client.checkpoints.list(
            args.job_id, after=args.after, limit=args.limit, max_items=args.max_items
        )
    except (FineTuneCkptError, ValueError, TypeError) as exc:
        return _usage_error(exc, err)
    output_format = _output_format(args, out)
    with _retry_log(err, enabled=args.verbose):
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
                print(_one_line(exc, resume_option="--after"), file=err)
                return EXIT_API_ERROR
            finally:
                await items.aclose()
    return EXIT_OK


def _client(args: argparse.Namespace, clock: Clock | None) -> AsyncClient:
    """The client of a command, from its options and the OPENAI_* variables."""
    return AsyncClient(base_url=args.base_url, max_retries=args.max_retries, clock=clock)


def _usage_error(error: Exception, err: IO[str]) -> int:
    # Bad settings (an argument or OPENAI_* variable): say which, in one line.
    print(f"fine-tune-ckpt: error: {_printable(str(error))}", file=err)
    return EXIT_USAGE


def _output_format(args: argparse.Namespace, out: IO[str]) -> str:
    return str(args.format or ("table" if out.isatty() else "jsonl"))


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
        print(_no_best(ranking), file=err)
        return EXIT_API_ERROR
    writer = Writer(output_format, out, CHECKPOINTS)
    writer.write(best)
    writer.close()
    print(_best_reason(ranking, best), file=out if output_format == "table" else err)
    return EXIT_OK


def _best_reason(ranking: BestSoFar, best: Checkpoint) -> str:
    metric = ranking.metric
    return (
        f"Best by {metric} ({better_is(metric)} wins among {ranking.seen} checkpoints): "
        f"step {best.step_number}, {metric}={getattr(best.metrics, metric)}"
    )


def _no_best(ranking: BestSoFar) -> str:
    return f"fine-tune-ckpt: none of {ranking.seen} checkpoints reports {ranking.metric}"


def _one_line(error: FineTuneCkptError, *, resume_option: str) -> str:
    """The error on one line, with the option and value that resume where it stopped."""
    if isinstance(error, APIError):
        line = f"fine-tune-ckpt: error: {type(error).__name__}: {error.message}"
        if error.request_id:
            line += f" (request id {error.request_id})"
    else:
        line = f"fine-tune-ckpt: error: {type(error).__name__}: {error}"
    if error.resume_after:
        line += f"; resume with {resume_option} {error.resume_after}"
    # The message and ids come from the server: keep its newlines and escape codes off
    # the terminal.
    return _printable(line)


def _reason(error: Exception) -> str:
    """Why an address could not be used, without asyncio's restating of the address."""
    if isinstance(error, OSError):
        if error.errno is not None and error.errno > 0:  # getaddrinfo's codes are negative
            return os.strerror(error.errno)
        if error.strerror:
            return error.strerror
    return str(error)


def _printable(text: str) -> str:
    """``text`` on one line: newlines and other control characters shown escaped."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


@contextlib.contextmanager
def _retry_log(err: IO[str], *, enabled: bool) -> Iterator[None]:
    """Show the library's retry log lines on stderr while the command runs."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("fine_tune_ckpt")
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("fine-tune-ckpt: %(message)s"))
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


# -- watch --------------------------------------------------------------------------


async def _watch_command(
    args: argparse.Namespace, out: IO[str], err: IO[str], *, clock: Clock | None = None
) -> int:
    try:
        client = _client(args, clock)
        watcher = client.checkpoints.watch(
            args.job_id, poll_interval=args.interval, since=args.since
        )
    except (FineTuneCkptError, ValueError, TypeError) as exc:
        return _usage_error(exc, err)
    with _retry_log(err, enabled=args.verbose):
        async with client:
            return await _follow(watcher, _output_format(args, out), args.best, out, err)


async def _follow(
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
        print(_one_line(exc, resume_option="--since"), file=err)
        return EXIT_API_ERROR
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels us, then main returns 130
        writer.close()
        line = "fine-tune-ckpt: interrupted"
        if watcher.since is not None:
            line += f"; resume with --since {watcher.since}"
        print(_printable(line), file=err)
        raise
    writer.close()
    code = EXIT_OK
    if ranking is not None:
        if ranking.best is None:
            print(_no_best(ranking), file=err)
            code = EXIT_API_ERROR
        else:
            reason = f"{_best_reason(ranking, ranking.best)}: deploy "
            reason += ranking.best.fine_tuned_model_checkpoint
            print(_printable(reason), file=out if output_format == "table" else err)
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
    return _printable(line)


# -- jobs ---------------------------------------------------------------------------


async def _jobs_command(
    args: argparse.Namespace, out: IO[str], err: IO[str], *, clock: Clock | None = None
) -> int:
    try:
        client = _client(args, clock)
        pager = client.jobs.list(after=args.after, limit=args.limit, max_items=args.max_items)
    except (FineTuneCkptError, ValueError, TypeError) as exc:
        return _usage_error(exc, err)
    writer = Writer(_output_format(args, out), out, JOBS)
    with _retry_log(err, enabled=args.verbose):
        async with client, aclosing(aiter(pager)) as jobs:
            try:
                async for job in jobs:
                    writer.write(job)
            except APIError as exc:
                print(_one_line(exc, resume_option="--after"), file=err)
                return EXIT_API_ERROR
    writer.close()
    return EXIT_OK


# -- demo ---------------------------------------------------------------------------


async def _demo_command(out: IO[str], err: IO[str]) -> int:
    from .testing import FakeAPIServer, FakeClock

    # The fake's running job moves on this clock, and so does the client that watches it:
    # each wait between polls moves the job on at once. Dated from now, as a real job is.
    clock = FakeClock(wall_start=time.time())
    async with FakeAPIServer(clock=clock) as fake:
        code = await _demo_listing(fake, out, err)
        if code == EXIT_OK:
            code = await _demo_watch(fake, clock, out, err)
    return code


async def _demo_listing(fake: FakeAPIServer, out: IO[str], err: IO[str]) -> int:
    """List a finished job's checkpoints through one 429, then name the one to deploy."""
    from .testing import Fault

    fake.add_job(DEMO_JOB_ID, count=30)
    # The second page is refused once with 429 + Retry-After, to show the retry.
    fake.inject(Fault(), Fault(status=429, retry_after=1))
    print(f"fine-tune-ckpt: demo: fake API on {fake.base_url}, job {DEMO_JOB_ID}", file=err)
    with _retry_log(err, enabled=True):
        async with AsyncClient(api_key=fake.api_key, base_url=fake.base_url) as client:
            writer = Writer("table", out, CHECKPOINTS)
            checkpoints = []
            pages = 0
            try:
                async for page in client.checkpoints.list(DEMO_JOB_ID, limit=10).pages():
                    pages += 1
                    print(
                        f"fine-tune-ckpt: demo: page {pages}: {len(page.data)} checkpoints",
                        file=err,
                    )
                    for checkpoint in page.data:
                        writer.write(checkpoint)
                        checkpoints.append(checkpoint)
            except APIError as exc:
                print(_one_line(exc, resume_option="--after"), file=err)
                return EXIT_API_ERROR
            writer.close()
    best = pick_best(checkpoints, "full_valid_loss")
    if best is None:
        print("fine-tune-ckpt: demo: no checkpoint reports full_valid_loss", file=err)
        return EXIT_API_ERROR
    print(
        f"\n{len(checkpoints)} checkpoints in {pages} pages. Deploy "
        f"{best.fine_tuned_model_checkpoint} (step {best.step_number}): lowest "
        f"full_valid_loss, {best.metrics.full_valid_loss}.",
        file=out,
    )
    return EXIT_OK


async def _demo_watch(fake: FakeAPIServer, clock: FakeClock, out: IO[str], err: IO[str]) -> int:
    """Watch a job run to the end on the fake clock: minutes of polls in no real time."""
    from .testing import JobTimeline

    timeline = JobTimeline(validating_files=30, queued=60, checkpoint_every=120)
    fake.add_running_job(DEMO_WATCHED_JOB_ID, count=4, timeline=timeline)
    started = clock.monotonic()
    print(f"\nWatching {DEMO_WATCHED_JOB_ID} as it runs, on a fake clock:", file=out)
    async with AsyncClient(api_key=fake.api_key, base_url=fake.base_url, clock=clock) as client:
        watcher = client.checkpoints.watch(DEMO_WATCHED_JOB_ID, poll_interval=60)
        code = await _follow(watcher, "table", None, out, err)
    if code == EXIT_OK:
        minutes = (clock.monotonic() - started) / 60
        print(
            f"{len(clock.sleeps) + 1} polls a minute apart followed it for {minutes:.0f} "
            "minutes of fake time, in no real time.",
            file=out,
        )
    return code


# -- serve-fake ---------------------------------------------------------------------


async def _serve_command(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
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
        print(f"fine-tune-ckpt: error: {_printable(str(exc))}", file=err)
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
        print(f"fine-tune-ckpt: error: {_printable(line)}", file=err)
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
