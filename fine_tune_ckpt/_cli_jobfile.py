"""Job ids for ``list --jobs-from FILE``: one per line, read only as the walk asks for them.

Blank lines, the whitespace around an id, whole-line ``#`` comments and a UTF-8 byte order
mark are ignored; anything else that is not one job id is a :class:`JobsFileError` naming
the line. A pipe, FIFO or terminal (``-`` is stdin) is read without blocking the event
loop, so the walks under way go on while the writer is slow; a regular file is read line
by line as it is (a disk never keeps a read waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
from collections.abc import AsyncGenerator
from contextlib import AbstractContextManager, aclosing
from typing import IO

from ._args import check_job_id

__all__ = ["MAX_LINE", "JobsFileError", "job_id_from_line", "open_jobs_file", "read_job_ids"]

#: The longest line taken, in bytes without its newline (a job id is about 30): a file
#: that is not a list of ids fails at its first long line instead of filling memory.
MAX_LINE = 64 * 1024


class JobsFileError(Exception):
    """The file cannot be read, or a line is not one job id: the user's to fix."""


class _LineTooLong(Exception):
    """A line longer than :data:`MAX_LINE`."""


def open_jobs_file(path: str, stdin: IO[bytes]) -> AbstractContextManager[IO[bytes]]:
    """The file ``path`` names, open for reading (``-``: ``stdin``, left open at the end).

    Raises OSError when it cannot be opened, before anything is sent.
    """
    if path == "-":
        return contextlib.nullcontext(stdin)
    return open(path, "rb")


async def read_job_ids(stream: IO[bytes], name: str) -> AsyncGenerator[str, None]:
    """Yield the job ids of ``stream`` one by one, reading no further than asked.

    ``name`` is how errors name the file, e.g. ``--jobs-from jobs.txt``.
    """
    lines = _pipe_lines(stream) if _is_pipe(stream) else _file_lines(stream)
    number = 0
    try:
        async with aclosing(lines):
            async for raw in lines:
                number += 1
                job_id = job_id_from_line(raw, number, name)
                if job_id is not None:
                    yield job_id
    except OSError as exc:
        raise JobsFileError(f"cannot read {name}: {exc.strerror or exc}") from None
    except _LineTooLong:
        raise JobsFileError(f"{name}, line {number + 1}: longer than {MAX_LINE} bytes") from None


def job_id_from_line(raw: bytes, number: int, name: str) -> str | None:
    """The job id line ``number`` holds, or ``None`` for a blank or ``#`` comment line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JobsFileError(f"{name}, line {number}: not UTF-8 text") from None
    if number == 1:
        text = text.removeprefix("\ufeff")  # left by some Windows editors
    text = text.strip()
    if not text or text.startswith("#"):
        return None
    if not text.isprintable() or any(char.isspace() for char in text):
        # Two ids on a line, or an id with a note after it: say so rather than ask the
        # API for a job that cannot exist.
        raise JobsFileError(f"{name}, line {number}: one job id per line, got {text!r}")
    try:
        return check_job_id(text)
    except ValueError as exc:
        raise JobsFileError(f"{name}, line {number}: {exc}") from None


def _is_pipe(stream: IO[bytes]) -> bool:
    """Whether reading ``stream`` could wait for a writer: a pipe, FIFO, socket or terminal."""
    if sys.platform == "win32":  # its loops watch no such descriptor: read it as a file
        return False
    try:
        descriptor = stream.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream
        return False
    mode = os.fstat(descriptor).st_mode
    # Not every character device: /dev/null cannot be watched, and never waits.
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(descriptor)


async def _file_lines(stream: IO[bytes]) -> AsyncGenerator[bytes, None]:
    while raw := stream.readline(MAX_LINE + 1):
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            raise _LineTooLong
        yield raw


async def _pipe_lines(stream: IO[bytes]) -> AsyncGenerator[bytes, None]:
    descriptor = stream.fileno()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    # A copy of the descriptor: the transport closes the file it is given, not our stdin.
    pipe = os.fdopen(os.dup(descriptor), "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
    except BaseException:
        pipe.close()
        raise
    try:
        while True:
            try:
                raw = await reader.readline()
            except ValueError:  # the stream reader's way of saying a line has no end in sight
                raise _LineTooLong from None
            if not raw:
                return
            yield raw
    finally:
        transport.close()
        # The transport made the descriptor non-blocking, which the copy shares with the
        # original: a shell reading the same terminal after us would get EAGAIN.
        with contextlib.suppress(OSError):
            os.set_blocking(descriptor, True)
