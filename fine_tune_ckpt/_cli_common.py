"""What the commands share: exit codes, the client, output format, error lines, logging."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from typing import IO

from ._client import AsyncClient
from ._clock import Clock
from ._errors import APIError, FineTuneCkptError
from ._models import Checkpoint
from ._selection import BestSoFar, better_is

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _client(args: argparse.Namespace, clock: Clock | None) -> AsyncClient:
    """The client of a command, from its options and the OPENAI_* variables."""
    return AsyncClient(base_url=args.base_url, max_retries=args.max_retries, clock=clock)


def _usage_error(error: Exception, err: IO[str]) -> int:
    # Bad settings (an argument or OPENAI_* variable): say which, in one line.
    print(f"fine-tune-ckpt: error: {_printable(str(error))}", file=err)
    return EXIT_USAGE


def _output_format(args: argparse.Namespace, out: IO[str]) -> str:
    return str(args.format or ("table" if out.isatty() else "jsonl"))


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
