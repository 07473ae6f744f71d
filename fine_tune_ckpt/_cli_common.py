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

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "best_reason",
    "choose_format",
    "error_line",
    "make_client",
    "no_best",
    "printable",
    "retry_log",
    "usage_error",
]

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def make_client(args: argparse.Namespace, clock: Clock | None) -> AsyncClient:
    """The client of a command, from its options and the OPENAI_* variables."""
    return AsyncClient(base_url=args.base_url, max_retries=args.max_retries, clock=clock)


def usage_error(error: Exception, err: IO[str]) -> int:
    """Say on one line which setting (an argument or OPENAI_* variable) is bad; exit 2."""
    print(f"fine-tune-ckpt: error: {printable(str(error))}", file=err)
    return EXIT_USAGE


def choose_format(args: argparse.Namespace, out: IO[str]) -> str:
    """``--format``, else a table on a terminal and JSON Lines for a pipe or file."""
    return str(args.format or ("table" if out.isatty() else "jsonl"))


def best_reason(ranking: BestSoFar, best: Checkpoint) -> str:
    """Why ``best`` won: the metric, which way it wins, among how many, and its value."""
    metric = ranking.metric
    return (
        f"Best by {metric} ({better_is(metric)} wins among {ranking.seen} checkpoints): "
        f"step {best.step_number}, {metric}={getattr(best.metrics, metric)}"
    )


def no_best(ranking: BestSoFar) -> str:
    """The line saying that no checkpoint reports the metric."""
    return f"fine-tune-ckpt: none of {ranking.seen} checkpoints reports {ranking.metric}"


def error_line(
    error: FineTuneCkptError, *, resume_option: str | None, about: str | None = None
) -> str:
    """The error on one line, with the option and value that resume where it stopped.

    ``about`` says what failed (e.g. ``job ftjob-abc``) when the command did several
    things; ``resume_option`` ``None`` when no option of the command can resume it.
    """
    line = "fine-tune-ckpt: error: "
    if about is not None:
        line += f"{about}: "
    if isinstance(error, APIError):
        line += f"{type(error).__name__}: {error.message}"
        if error.request_id:
            line += f" (request id {error.request_id})"
    else:
        line += f"{type(error).__name__}: {error}"
    if error.resume_after and resume_option is not None:
        line += f"; resume with {resume_option} {error.resume_after}"
    # The message and ids come from the server: keep its newlines and escape codes off
    # the terminal.
    return printable(line)


def printable(text: str) -> str:
    """``text`` on one line: newlines and other control characters shown escaped."""
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


@contextlib.contextmanager
def retry_log(err: IO[str], *, enabled: bool) -> Iterator[None]:
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
