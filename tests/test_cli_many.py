"""``fine-tune-ckpt list`` over many jobs: JOB arguments, ``--jobs-from``, ``--all-jobs``.

Most tests run the command in this process with ``cli._run`` and a fake clock, so retries
take no real time. Usage errors go through ``main``; a FIFO, a piped stdin, a terminal
and Ctrl-C through a real subprocess.
"""

from __future__ import annotations

import asyncio
import csv
import errno
import inspect
import io
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fine_tune_ckpt import Checkpoint, walk_jobs
from fine_tune_ckpt import _cli as cli
from fine_tune_ckpt._cli_jobfile import MAX_LINE
from fine_tune_ckpt._cli_list_many import CONCURRENCY, PROGRESS_EVERY
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault

from .test_cli import Run, _for

#: Three jobs of 7, 12 and 3 checkpoints.
SIZES = {"ftjob-a": 7, "ftjob-b": 12, "ftjob-c": 3}

# The command reads the fake's URL and key from the environment, as a user's would.
pytestmark = pytest.mark.usefixtures("fake_api_env")


class Output(io.StringIO):
    """Standard output or error, a terminal or not; ``on_write`` runs after each write."""

    def __init__(self, *, tty: bool = False) -> None:
        super().__init__()
        self.tty = tty
        self.on_write: Callable[[Output], None] = lambda output: None

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        written = super().write(text)
        self.on_write(self)
        return written


class Lines(io.BytesIO):
    """A ``--jobs-from -`` stdin that counts the lines read from it."""

    def __init__(self, text: str) -> None:
        super().__init__(text.encode())
        self.read_lines = 0

    def readline(self, size: int | None = -1, /) -> bytes:
        line = super().readline(size)
        self.read_lines += bool(line)
        return line


@pytest.fixture
def made(fake_api: FakeAPIServer) -> dict[str, list[Checkpoint]]:
    """The jobs of ``SIZES`` on the fake, each job's checkpoints newest first."""
    return {job: fake_api.add_job(job, count=count) for job, count in SIZES.items()}


async def run_list(
    clock: FakeClock,
    *argv: str,
    out: Output | None = None,
    err: Output | None = None,
    stdin: io.BytesIO | None = None,
) -> Run:
    """Run ``fine-tune-ckpt list ARGV`` in this process, waiting on ``clock``."""
    out = out if out is not None else Output()
    err = err if err is not None else Output()
    args = cli._parser().parse_args(["list", *argv])
    code = await cli._run(args, out, err, clock=clock, stdin=stdin)
    return Run(code, out.getvalue(), err.getvalue())


def records(text: str, output_format: str) -> list[tuple[str, str]]:
    """(job id, checkpoint id or step) of each record the output holds, in its order."""
    if output_format == "json":
        return [(item["fine_tuning_job_id"], item["id"]) for item in json.loads(text)]
    if output_format == "jsonl":
        return [
            (item["fine_tuning_job_id"], item["id"]) for item in map(json.loads, text.splitlines())
        ]
    if output_format == "csv":
        table = csv.DictReader(io.StringIO(text))
        return [(row["fine_tuning_job_id"], row["id"]) for row in table]
    header, *rows = text.splitlines()
    assert header.split()[:3] == ["JOB", "STEP", "CREATED"]
    return [(row.split()[0], row.split()[1]) for row in rows]


def expected_records(made: dict[str, list[Checkpoint]], output_format: str) -> dict[str, list[str]]:
    """Each job's records as ``records`` reads them: checkpoint ids, or steps in a table."""
    return {
        job: [str(c.step_number) if output_format == "table" else c.id for c in checkpoints]
        for job, checkpoints in made.items()
    }


def per_job(found: list[tuple[str, str]]) -> dict[str, list[str]]:
    """The records grouped by job, each job's in the order printed."""
    grouped: dict[str, list[str]] = {}
    for job, record in found:
        grouped.setdefault(job, []).append(record)
    return grouped


def screen(text: str) -> list[str]:
    """The lines a terminal shows for ``text``: CR goes back to the start, CR ESC[K clears."""
    shown_lines = []
    for line in text.split("\n"):
        first, *overwrites = line.split("\r")
        shown = first
        for part in overwrites:
            if part.startswith("\x1b[K"):
                shown = part.removeprefix("\x1b[K")
            else:
                shown = part + shown[len(part) :]
        shown_lines.append(shown)
    return shown_lines


# -- naming the jobs ----------------------------------------------------------------


@pytest.mark.parametrize("output_format", ["table", "json", "jsonl", "csv"])
async def test_several_jobs_are_tagged_in_every_format(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock, output_format: str
) -> None:
    """Every checkpoint of every job once, named with its job; each job in its own order."""
    run = await run_list(fake_clock, *SIZES, "--format", output_format, "--limit", "5")
    assert (run.code, run.err) == (0, "")
    assert per_job(records(run.out, output_format)) == expected_records(made, output_format)


async def test_the_table_names_each_job_in_a_first_column(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock
) -> None:
    """A table of many jobs: a JOB column in front of the one-job table's columns."""
    run = await run_list(fake_clock, "ftjob-c", "ftjob-a", out=Output(tty=True))
    header, *rows = run.out.splitlines()
    assert header.startswith("JOB" + " " * 29 + "   STEP     CREATED (UTC)")
    for row in rows:
        job, step, *_ = row.split()
        model = next(c for c in made[job] if str(c.step_number) == step).fine_tuned_model_checkpoint
        assert row == f"{job.ljust(30)}  {row[32:]}"
        assert row.endswith(model)


async def test_a_job_named_twice_is_listed_twice(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock
) -> None:
    """The jobs are walked as named, as a shell loop would: no silent deduplication."""
    run = await run_list(fake_clock, "ftjob-c", "ftjob-c")
    found = records(run.out, "jsonl")
    assert sorted(found) == sorted(2 * [("ftjob-c", c.id) for c in made["ftjob-c"]])


async def test_jobs_from_a_file_skips_blanks_comments_and_whitespace(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock, tmp_path: Path
) -> None:
    """``--jobs-from FILE``: one id a line; blank lines, ``#`` lines and a BOM are skipped."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_bytes(
        b"\xef\xbb\xbf# the sweep\n  ftjob-a  \n\n\t\n   # not this one\nftjob-b\r\nftjob-c"
    )
    run = await run_list(fake_clock, "--jobs-from", str(jobs), "--format", "csv")
    assert (run.code, run.err) == (0, "")
    assert per_job(records(run.out, "csv")) == expected_records(made, "csv")


async def test_jobs_from_stdin(made: dict[str, list[Checkpoint]], fake_clock: FakeClock) -> None:
    """``--jobs-from -`` reads standard input."""
    stdin = Lines("ftjob-b\nftjob-a\n")
    run = await run_list(fake_clock, "--jobs-from", "-", stdin=stdin)
    assert run.code == 0, run.err
    assert per_job(records(run.out, "jsonl")) == {
        job: [c.id for c in made[job]] for job in ("ftjob-b", "ftjob-a")
    }


async def test_an_empty_jobs_file_lists_nothing_and_succeeds(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock, fake_api: FakeAPIServer
) -> None:
    """No id in the file: nothing to do, an empty table or JSON array, exit 0."""
    for output_format, ending in [("table", "\n(no checkpoints)\n"), ("json", "[\n]\n")]:
        run = await run_list(
            fake_clock, "--jobs-from", "-", "--format", output_format, stdin=Lines("# none\n\n")
        )
        assert (run.code, run.err) == (0, "")
        assert run.out.endswith(ending)
    assert fake_api.requests == []


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_the_jobs_file_is_read_as_workers_free_up(
    fake_clock: FakeClock, fake_api: FakeAPIServer, concurrency: int
) -> None:
    """The first checkpoint is printed with about ``--concurrency`` ids read, not all 20."""
    names = [f"ftjob-lazy{n}" for n in range(20)]
    for name in names:
        fake_api.add_job(name, count=2)
    stdin = Lines("".join(f"{name}\n" for name in names))
    out = Output()
    read_at_first_write: list[int] = []
    out.on_write = lambda output: read_at_first_write.append(stdin.read_lines)
    argv = ("--jobs-from", "-", "--concurrency", str(concurrency))
    run = await run_list(fake_clock, *argv, out=out, stdin=stdin)
    assert run.code == 0, run.err
    # One id per worker, and at most one more each: a worker whose one-page job ended
    # takes its next id before the consumer gets to run.
    assert read_at_first_write[0] <= 2 * concurrency
    assert stdin.read_lines == len(names)
    assert len(run.out.splitlines()) == 2 * len(names)


def test_the_default_concurrency_is_walk_jobs() -> None:
    """``--concurrency`` defaults to what ``walk_jobs`` does."""
    assert inspect.signature(walk_jobs).parameters["concurrency"].default == CONCURRENCY
    assert cli._parser().parse_args(["list", "--all-jobs"]).concurrency == CONCURRENCY


async def test_all_jobs_walks_every_job_of_the_account(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock, fake_api: FakeAPIServer
) -> None:
    """``--all-jobs``: the account's jobs, as ``client.jobs.list()`` pages them, each walked."""
    everything = {job: fake_api.add_job(job) for job in fake_api.job_ids}  # abc123 and SIZES
    run = await run_list(fake_clock, "--all-jobs", "--format", "json")
    assert run.code == 0, run.err
    assert per_job(records(run.out, "json")) == expected_records(everything, "json")
    listings = [r for r in fake_api.requests if r.fine_tuning_job_id is None]
    assert listings  # the jobs came from the API's listing
    assert set(made) < set(everything)


async def test_paging_options_apply_to_each_job(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock, fake_api: FakeAPIServer
) -> None:
    """``--max-items`` caps each job; ``--limit`` is the page size of every request."""
    run = await run_list(fake_clock, *SIZES, "--max-items", "4", "--limit", "2")
    assert per_job(records(run.out, "jsonl")) == {
        job: [c.id for c in checkpoints[:4]] for job, checkpoints in made.items()
    }
    assert {r.query.get("limit") for r in fake_api.requests} == {"2"}


# -- the best checkpoint of each job -------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "pick"),
    [("full_valid_loss", min), ("full_valid_mean_token_accuracy", max)],
)
async def test_best_gives_one_line_per_job(
    made: dict[str, list[Checkpoint]],
    fake_clock: FakeClock,
    metric: str,
    pick: Callable[..., Checkpoint],
) -> None:
    """``--best``: each job's winner, tagged; stdout holds only them, the reason on stderr."""
    run = await run_list(fake_clock, *SIZES, "--best", metric, "--format", "jsonl")
    assert run.code == 0, run.err
    winners = {job: pick(cs, key=lambda c: getattr(c.metrics, metric)) for job, cs in made.items()}
    assert sorted(records(run.out, "jsonl")) == sorted((j, c.id) for j, c in winners.items())
    better = "lowest" if metric.endswith("loss") else "highest"
    assert run.err == f"Best by {metric} ({better} wins): one checkpoint for each of 3 jobs\n"


async def test_best_in_a_table_ends_with_what_the_rows_are(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock
) -> None:
    """In a table, the line saying what the rows are comes last, on stdout."""
    run = await run_list(fake_clock, *SIZES, "--best", "valid_loss", out=Output(tty=True))
    assert (run.code, run.err) == (0, "")
    header, *rows, last = run.out.splitlines()
    assert header.startswith("JOB")
    assert sorted(row.split()[0] for row in rows) == sorted(SIZES)
    assert last == "Best by valid_loss (lowest wins): one checkpoint for each of 3 jobs"


async def test_a_job_with_no_checkpoint_to_rank_counts_as_failed(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock, fake_api: FakeAPIServer
) -> None:
    """``--best`` and a job without the metric: a line on stderr, the others printed, exit 1."""
    fake_api.add_job("ftjob-empty", [])
    run = await run_list(fake_clock, "ftjob-a", "ftjob-empty", "--best", "valid_loss")
    assert run.code == 1
    assert [job for job, _ in records(run.out, "jsonl")] == ["ftjob-a"]
    assert run.err.splitlines() == [
        "fine-tune-ckpt: job ftjob-empty: none of 0 checkpoints reports valid_loss",
        "Best by valid_loss (lowest wins): one checkpoint for each of 1 jobs",
    ]


# -- failed jobs --------------------------------------------------------------------


async def test_an_unknown_job_is_one_line_and_the_others_are_printed(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock, fake_api: FakeAPIServer
) -> None:
    """A 404 for one job: one line naming it and the request id, the rest printed, exit 1."""
    run = await run_list(fake_clock, "ftjob-a", "ftjob-missing", "ftjob-c", "--format", "json")
    assert run.code == 1
    assert per_job(records(run.out, "json")) == {
        job: [c.id for c in made[job]] for job in ("ftjob-a", "ftjob-c")
    }
    (line,) = run.err.splitlines()
    (refused,) = [r for r in fake_api.requests if r.fine_tuning_job_id == "ftjob-missing"]
    assert line.startswith("fine-tune-ckpt: error: job ftjob-missing: NotFoundError: ")
    assert line.endswith(f"(request id {refused.request_id})")  # nothing to resume from


async def test_a_job_failing_after_its_retries_names_the_after_that_resumes_it(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock, fake_api: FakeAPIServer
) -> None:
    """500s past the retries mid-job: that job's line names ``--after``; it picks up exactly."""
    # One job at a time, so the faults meet ftjob-a's second page and its one retry.
    fake_api.inject(Fault(), Fault(status=500), Fault(status=500))
    argv = ("--concurrency", "1", "--limit", "5", "--max-retries", "1")
    run = await run_list(fake_clock, *SIZES, *argv)
    assert run.code == 1
    printed = per_job(records(run.out, "jsonl"))
    assert printed == {
        "ftjob-a": [c.id for c in made["ftjob-a"][:5]],
        "ftjob-b": [c.id for c in made["ftjob-b"]],
        "ftjob-c": [c.id for c in made["ftjob-c"]],
    }
    (line,) = run.err.splitlines()
    assert line.startswith("fine-tune-ckpt: error: job ftjob-a: InternalServerError: ")
    assert line.endswith(f"; resume with --after {made['ftjob-a'][4].id}")
    rest = await run_list(fake_clock, "ftjob-a", "--after", made["ftjob-a"][4].id)
    assert rest.code == 0, rest.err
    resumed = [job_checkpoint for _, job_checkpoint in records(rest.out, "jsonl")]
    assert printed["ftjob-a"] + resumed == [c.id for c in made["ftjob-a"]]


async def test_a_failing_account_listing_stops_the_walk_with_one_line(
    fake_clock: FakeClock, fake_api: FakeAPIServer
) -> None:
    """``--all-jobs`` whose job listing fails: the output closed (valid JSON), one line, exit 1."""
    fake_api.inject(Fault(status=500))
    run = await run_list(fake_clock, "--all-jobs", "--format", "json", "--max-retries", "0")
    assert run.code == 1
    assert json.loads(run.out) == []
    (line,) = run.err.splitlines()
    assert line.startswith("fine-tune-ckpt: error: listing the jobs: InternalServerError: ")
    assert "resume with" not in line


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"ftjob-a\nftjob-b ftjob-c\n", "line 2: one job id per line, got 'ftjob-b ftjob-c'"),
        (b"ftjob-a # best run\n", "line 1: one job id per line, got 'ftjob-a # best run'"),
        (b"ftjob-\x1b[31ma\n", "line 1: one job id per line, got 'ftjob-\\x1b[31ma'"),
        (b"# jobs\n\xff\xfe\n", "line 2: not UTF-8 text"),
        (b"ftjob-a\n" + b"x" * (MAX_LINE + 1) + b"\n", f"line 2: longer than {MAX_LINE} bytes"),
        (b"..\n", "line 1: fine_tuning_job_id must not be '..'"),
    ],
    ids=["two-ids", "a-note", "escape-code", "not-utf-8", "too-long", "dot-dot"],
)
async def test_a_line_that_is_not_one_job_id_is_a_usage_error(
    made: dict[str, list[Checkpoint]],
    fake_clock: FakeClock,
    tmp_path: Path,
    content: bytes,
    problem: str,
) -> None:
    """A bad line in ``--jobs-from``: exit 2 naming the file and line; output stays valid."""
    jobs = tmp_path / "jobs.txt"
    jobs.write_bytes(content)
    run = await run_list(fake_clock, "--jobs-from", str(jobs), "--format", "json")
    assert run.code == 2
    assert isinstance(json.loads(run.out), list)
    assert run.err.splitlines()[0] == f"fine-tune-ckpt: error: --jobs-from {jobs}, {problem}"


async def test_a_bad_line_on_stdin_names_stdin(fake_clock: FakeClock) -> None:
    """``--jobs-from -``: the error names stdin and the line."""
    run = await run_list(fake_clock, "--jobs-from", "-", stdin=Lines("\n\nftjob-a ftjob-b\n"))
    assert run.code == 2
    assert run.err == (
        "fine-tune-ckpt: error: stdin, line 3: one job id per line, got 'ftjob-a ftjob-b'\n"
    )


@pytest.mark.parametrize("where", ["missing.txt", "."], ids=["missing", "a-directory"])
async def test_a_jobs_file_that_cannot_be_read_is_a_usage_error(
    fake_clock: FakeClock, fake_api: FakeAPIServer, tmp_path: Path, where: str
) -> None:
    """A ``--jobs-from`` path that cannot be opened: one line, exit 2, nothing sent."""
    path = tmp_path / where
    run = await run_list(fake_clock, "--jobs-from", str(path))
    assert (run.code, run.out) == (2, "")
    reason = os.strerror(errno.ENOENT if where == "missing.txt" else errno.EISDIR)
    assert run.err == f"fine-tune-ckpt: error: cannot read --jobs-from {path}: {reason}\n"
    assert fake_api.requests == []


# -- usage errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        ([], "name the jobs: JOB ..., --jobs-from FILE or --all-jobs"),
        (["--format", "json"], "name the jobs: JOB ..., --jobs-from FILE or --all-jobs"),
        (
            ["ftjob-a", "--all-jobs"],
            "JOB arguments and --all-jobs do not go together: name the jobs one way",
        ),
        (
            ["ftjob-a", "--jobs-from", "jobs.txt"],
            "JOB arguments and --jobs-from do not go together: name the jobs one way",
        ),
        (
            ["--jobs-from", "-", "--all-jobs"],
            "--jobs-from and --all-jobs do not go together: name the jobs one way",
        ),
        (
            ["ftjob-a", "ftjob-b", "--after", "x"],
            "--after resumes one job: use it with exactly one JOB",
        ),
        (["--all-jobs", "--after", "x"], "--after resumes one job: use it with exactly one JOB"),
        (
            ["--jobs-from", "-", "--after", "x"],
            "--after resumes one job: use it with exactly one JOB",
        ),
        (["ftjob-a", " "], "fine_tuning_job_id must not be empty or blank"),
    ],
)
def test_naming_the_jobs_wrongly_is_one_line_exit_2(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str], closed_port_env: None
) -> None:
    """No job, two ways of naming them, ``--after`` with many, a blank id: one line, exit 2."""
    assert cli.main(["list", *argv]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"fine-tune-ckpt: error: {problem}\n")


@pytest.mark.parametrize(
    "argv",
    [
        ["--all-jobs", "--concurrency", "0"],
        ["--all-jobs", "--concurrency", "many"],
        ["--all-jobs", "--concurrency", "-2"],
        ["--all-jobs", "--jobs-from"],
    ],
)
def test_bad_flags_are_argparse_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``--concurrency`` that is not a whole number above 0, a flag missing its value: exit 2."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["list", *argv])
    assert exited.value.code == 2
    assert "usage: fine-tune-ckpt list" in capsys.readouterr().err


def test_help_names_the_ways_to_name_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    """``list --help`` shows JOB, ``--jobs-from``, ``--all-jobs`` and ``--concurrency``."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["list", "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for option in ("[JOB ...]", "--jobs-from FILE", "--all-jobs", "--concurrency N"):
        assert option in shown


# -- progress and interruptions -----------------------------------------------------


async def test_progress_counts_jobs_and_checkpoints_on_a_terminal(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock
) -> None:
    """Stderr a terminal, stdout a pipe: jobs done and checkpoints so far, then cleared."""
    err = Output(tty=True)
    run = await run_list(fake_clock, *SIZES, "ftjob-missing", "--concurrency", "1", err=err)
    assert run.code == 1
    assert "\r1 jobs done, 7 checkpoints" in run.err
    assert "\r3 jobs done, 22 checkpoints" in run.err
    assert "\r4 jobs done (1 failed), 22 checkpoints" in run.err
    assert run.err.endswith("\r\x1b[K")
    shown = [line for line in screen(run.err) if line]
    assert len(shown) == 1  # the progress line never runs into the failure's line
    assert shown[0].startswith("fine-tune-ckpt: error: job ftjob-missing: NotFoundError: ")


async def test_progress_moves_within_a_long_job(
    fake_clock: FakeClock, fake_api: FakeAPIServer
) -> None:
    """Between job ends the progress line is redrawn every ``PROGRESS_EVERY`` checkpoints."""
    fake_api.add_job("ftjob-long", count=2 * PROGRESS_EVERY + 50)
    fake_api.add_job("ftjob-short", count=1)
    err = Output(tty=True)
    run = await run_list(fake_clock, "ftjob-long", "ftjob-short", "--concurrency", "1", err=err)
    assert run.code == 0, run.err
    assert run.err.split("\r")[1:-1] == [
        f"0 jobs done, {PROGRESS_EVERY} checkpoints",
        f"0 jobs done, {2 * PROGRESS_EVERY} checkpoints",
        f"1 jobs done, {2 * PROGRESS_EVERY + 50} checkpoints",
        f"2 jobs done, {2 * PROGRESS_EVERY + 51} checkpoints",
    ]


async def test_rows_and_progress_on_one_screen_never_run_together(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock
) -> None:
    """Stdout and stderr the same terminal: each row lands on a clean line of its own."""
    terminal = Output(tty=True)
    run = await run_list(fake_clock, *SIZES, out=terminal, err=terminal)
    assert run.code == 0
    header, *rows = [line for line in screen(terminal.getvalue()) if line]
    assert header.startswith("JOB ")
    assert per_job([(row.split()[0], row.split()[1]) for row in rows]) == expected_records(
        made, "table"
    )


async def test_cancelling_closes_the_output_and_names_each_unfinished_job(
    made: dict[str, list[Checkpoint]], fake_clock: FakeClock, fake_api: FakeAPIServer
) -> None:
    """Cancelled (as Ctrl-C does) mid-job: valid JSON so far, and ``--after`` for that job."""
    big = fake_api.add_job("ftjob-big", count=40)
    out = Output()
    printed = asyncio.Event()
    out.on_write = lambda output: printed.set() if output.getvalue().count("\n") > 12 else None
    err = Output()
    argv = [
        "list",
        "ftjob-c",
        "ftjob-big",
        "--format",
        "json",
        "--limit",
        "5",
        "--concurrency",
        "1",
    ]
    task = asyncio.create_task(cli._run(cli._parser().parse_args(argv), out, err, clock=fake_clock))
    await printed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    got = per_job([(item["fine_tuning_job_id"], item["id"]) for item in json.loads(out.getvalue())])
    assert got["ftjob-c"] == [c.id for c in made["ftjob-c"]]
    partial = got["ftjob-big"]
    assert partial == [c.id for c in big[: len(partial)]]
    assert 0 < len(partial) < len(big)
    assert err.getvalue().splitlines() == [
        "fine-tune-ckpt: interrupted after 1 jobs",
        f"fine-tune-ckpt: job ftjob-big unfinished; resume with --after {partial[-1]}",
    ]


# -- through a real process ---------------------------------------------------------


async def test_a_fifo_is_read_as_the_ids_come(tmp_path: Path, fake_api: FakeAPIServer) -> None:
    """``--jobs-from FIFO``: a job's output comes out before the writer has sent the next id."""
    made = {job: fake_api.add_job(job, count=count) for job, count in SIZES.items()}
    fifo = tmp_path / "jobs.fifo"
    os.mkfifo(fifo)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fine_tune_ckpt",
        "list",
        "--jobs-from",
        str(fifo),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_for(fake_api),
    )
    assert process.stdout is not None
    try:
        writer = await _open_for_writing(fifo)
        with os.fdopen(writer, "wb", buffering=0) as ids:
            ids.write(b"ftjob-c\n")
            # The FIFO is still open: the first job is done while the file goes on.
            first = await asyncio.wait_for(process.stdout.readline(), timeout=30)
            assert json.loads(first)["fine_tuning_job_id"] == "ftjob-c"
            ids.write(b"# and then\nftjob-a\n")
        rest, err = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    found = records((first + rest).decode(), "jsonl")
    assert per_job(found) == {job: [c.id for c in made[job]] for job in ("ftjob-c", "ftjob-a")}


async def _open_for_writing(fifo: Path) -> int:
    """The FIFO's write end, once the command has opened it for reading."""
    deadline = time.monotonic() + 30
    while True:
        try:
            descriptor = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:  # ENXIO: no reader yet
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.01)
        else:
            os.set_blocking(descriptor, True)
            return descriptor


async def test_ctrl_c_exits_130_with_the_output_closed(fake_api: FakeAPIServer) -> None:
    """SIGINT while the command waits on a piped stdin: exit 130, valid JSON, one line."""
    fake_api.add_job("ftjob-a", count=3)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fine_tune_ckpt",
        "list",
        "--jobs-from",
        "-",
        "--format",
        "json",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_for(fake_api),
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        process.stdin.write(b"ftjob-a\n")
        await process.stdin.drain()
        opening = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        first = await asyncio.wait_for(process.stdout.readline(), timeout=30)
    finally:
        process.send_signal(signal.SIGINT)  # stdin stays open: the command is still reading
    rest, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 130, err.decode()
    printed = json.loads(opening + first + rest)
    assert [item["fine_tuning_job_id"] for item in printed] == ["ftjob-a"] * 3
    assert err.decode() == "fine-tune-ckpt: interrupted after 1 jobs\n"


async def test_a_terminal_gets_a_tagged_table_and_progress(fake_api: FakeAPIServer) -> None:
    """On a terminal: a table with a JOB column on stdout, jobs done so far on stderr."""
    import pty

    for job, count in SIZES.items():
        fake_api.add_job(job, count=count)
    # Small output: nothing reads the terminal until the command ends (a pty holds ~4 KiB).
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fine_tune_ckpt",
            "list",
            *SIZES,
            "--max-items",
            "2",
            stdout=out_slave,
            stderr=err_slave,
            env=_for(fake_api),
        )
        code = await asyncio.wait_for(process.wait(), timeout=60)
        out = os.read(out_master, 65536).decode()
        err = os.read(err_master, 65536).decode()
    finally:
        for fd in (out_master, out_slave, err_master, err_slave):
            os.close(fd)
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split()[:2] == ["JOB", "STEP"]
    assert sorted(row.split()[0] for row in rows) == sorted(2 * list(SIZES))
    assert "\r3 jobs done, 6 checkpoints" in err
    assert err.endswith("\r\x1b[K")
