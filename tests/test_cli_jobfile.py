"""Reading ``--jobs-from``: ids one by one from files, pipes and terminals, and every refusal."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
from collections.abc import AsyncIterator, Iterator
from typing import IO

import pytest

from fine_tune_ckpt._cli_jobfile import (
    MAX_LINE,
    JobsFileError,
    job_id_from_line,
    open_jobs_file,
    read_job_ids,
)

NAME = "--jobs-from jobs.txt"


@pytest.fixture
def pipe() -> Iterator[tuple[io.FileIO, io.FileIO]]:
    """Both ends of an OS pipe: (read end, write end)."""
    reader, writer = os.pipe()
    with io.FileIO(reader, "r") as read_end, io.FileIO(writer, "w") as write_end:
        yield read_end, write_end


async def ids_of(lines: AsyncIterator[str]) -> list[str]:
    """Every id the reader yields."""
    return [job_id async for job_id in lines]


@pytest.mark.parametrize(
    ("line", "number", "job_id"),
    [
        (b"ftjob-abc\n", 2, "ftjob-abc"),
        (b"  ftjob-abc \t\r\n", 2, "ftjob-abc"),
        (b"ftjob-abc", 2, "ftjob-abc"),
        (b"\xef\xbb\xbfftjob-abc\n", 1, "ftjob-abc"),
        (b"\n", 2, None),
        (b"   \t\n", 2, None),
        (b"# a comment\n", 2, None),
        (b"   #indented comment\n", 2, None),
    ],
)
def test_a_line_holds_one_id_or_nothing(line: bytes, number: int, job_id: str | None) -> None:
    """An id loses the whitespace around it; blank and ``#`` lines (and a BOM) hold none."""
    assert job_id_from_line(line, number, NAME) == job_id


def test_a_byte_order_mark_counts_only_at_the_start() -> None:
    """After the first line, a BOM is part of the line: not a job id."""
    with pytest.raises(JobsFileError, match="line 3: one job id per line"):
        job_id_from_line(b"\xef\xbb\xbfftjob-abc\n", 3, NAME)


async def test_a_file_is_read_one_line_at_a_time() -> None:
    """A regular file's ids come in order; the reader goes no further than asked."""
    stream = io.BytesIO(b"ftjob-1\n# skip\nftjob-2\nftjob-3\n")
    ids = read_job_ids(stream, NAME)
    assert await anext(ids) == "ftjob-1"
    assert stream.tell() == len(b"ftjob-1\n")
    assert await ids_of(ids) == ["ftjob-2", "ftjob-3"]


async def test_a_pipe_gives_each_id_as_it_is_written(
    pipe: tuple[io.FileIO, io.FileIO],
) -> None:
    """From a pipe, an id comes as soon as its line is written, the writer still going."""
    read_end, write_end = pipe
    ids = read_job_ids(read_end, NAME)
    write_end.write(b"ftjob-1\n")
    assert await asyncio.wait_for(anext(ids), timeout=5) == "ftjob-1"
    waiting = asyncio.ensure_future(anext(ids))
    await asyncio.sleep(0)
    assert not waiting.done()  # the loop is free while the writer is silent
    write_end.write(b"\n# two more\nftjob-2\nftj")
    assert await asyncio.wait_for(waiting, timeout=5) == "ftjob-2"
    write_end.write(b"ob-3")
    write_end.close()
    assert await asyncio.wait_for(ids_of(ids), timeout=5) == ["ftjob-3"]


async def test_a_pipe_is_left_open_and_blocking_when_the_reading_stops(
    pipe: tuple[io.FileIO, io.FileIO],
) -> None:
    """Closing the reader, or cancelling a wait for the next id, leaves stdin as it was."""
    read_end, write_end = pipe
    ids = read_job_ids(read_end, NAME)
    write_end.write(b"ftjob-1\n")
    assert await asyncio.wait_for(anext(ids), timeout=5) == "ftjob-1"
    assert not os.get_blocking(read_end.fileno())  # the loop watches it meanwhile
    waiting = asyncio.ensure_future(anext(ids))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await ids.aclose()
    assert os.get_blocking(read_end.fileno())
    write_end.write(b"ftjob-2\n")
    assert read_end.read(100) == b"ftjob-2\n"  # still open, and ours to read


async def test_a_terminal_is_read_like_a_pipe_and_left_blocking() -> None:
    """A terminal (``--jobs-from -`` typed by hand) is watched by the loop, then restored."""
    import pty

    controller, terminal = pty.openpty()
    try:
        with io.FileIO(terminal, "r", closefd=False) as stream:
            ids = read_job_ids(stream, NAME)
            os.write(controller, b"ftjob-typed\n")
            assert await asyncio.wait_for(anext(ids), timeout=5) == "ftjob-typed"
            await ids.aclose()
        assert os.get_blocking(terminal)
    finally:
        os.close(controller)
        os.close(terminal)


async def test_dev_null_is_no_jobs() -> None:
    """``--jobs-from /dev/null`` (or a cron job's stdin): no ids, at once."""
    with open_jobs_file(os.devnull, io.BytesIO()) as stream:
        assert await ids_of(read_job_ids(stream, NAME)) == []


@pytest.mark.parametrize("through", ["file", "pipe"])
async def test_a_line_too_long_is_refused(pipe: tuple[io.FileIO, io.FileIO], through: str) -> None:
    """A line over ``MAX_LINE`` bytes is refused, naming it, whether from a file or a pipe."""
    read_end, write_end = pipe
    ok = b"x" * MAX_LINE + b"\n"  # the longest line taken
    content = b"ftjob-1\n" + ok + b"y" * (MAX_LINE + 1) + b"\n"
    if through == "file":
        stream: IO[bytes] = io.BytesIO(content)
    else:
        stream = read_end
        writing = asyncio.create_task(asyncio.to_thread(write_end.write, content))
    ids = read_job_ids(stream, NAME)
    assert await anext(ids) == "ftjob-1"
    assert await anext(ids) == "x" * MAX_LINE
    with pytest.raises(JobsFileError) as refused:
        await anext(ids)
    assert str(refused.value) == f"{NAME}, line 3: longer than {MAX_LINE} bytes"
    if through == "pipe":
        read_end.close()  # a writer still at it meets a closed pipe, as `yes | ...` would
        with contextlib.suppress(BrokenPipeError):
            await writing


async def test_a_read_error_is_a_jobs_file_error() -> None:
    """An I/O error while reading is one :class:`JobsFileError` naming the file."""

    class Failing(io.BytesIO):
        def readline(self, size: int | None = -1, /) -> bytes:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    with pytest.raises(JobsFileError) as refused:
        await ids_of(read_job_ids(Failing(), NAME))
    assert str(refused.value) == f"cannot read {NAME}: {os.strerror(errno.EIO)}"


def test_dash_is_stdin_left_open() -> None:
    """``-`` is the stdin given, which the reading does not close."""
    stdin = io.BytesIO(b"ftjob-1\n")
    with open_jobs_file("-", stdin) as stream:
        assert stream is stdin
    assert not stdin.closed
