"""``fine-tune-ckpt watch``: a running job's checkpoints as they appear, and its exit codes.

Most tests run the command in this process with ``cli._run`` and the clock the fake runs
its jobs on, so each wait between polls moves the job on and a whole watch takes no real
time. Usage errors go through ``main``; Ctrl-C through a real subprocess.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from fine_tune_ckpt import Checkpoint, CheckpointMetrics, to_wire
from fine_tune_ckpt import _cli as cli
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault, JobTimeline

from .test_cli import Run, _env

JOB = "ftjob-live"
TIMELINE = JobTimeline(validating_files=2, queued=3, checkpoint_every=5)


# The command reads the fake's URL and key from the environment, as a user's would.
pytestmark = pytest.mark.usefixtures("fake_api_env")


class Output(io.StringIO):
    """Standard output that notes, at each flush, the fake time and everything written so far.

    ``on_flush`` runs after each note: a test's hook to act mid-watch.
    """

    def __init__(self, clock: FakeClock, *, tty: bool = False) -> None:
        super().__init__()
        self.clock = clock
        self.tty = tty
        self.flushes: list[tuple[float, str]] = []
        self.on_flush: Callable[[Output], None] = lambda output: None

    def isatty(self) -> bool:
        return self.tty

    def flush(self) -> None:
        self.flushes.append((self.clock.monotonic(), self.getvalue()))
        self.on_flush(self)

    def lines(self) -> list[str]:
        return self.getvalue().splitlines()


async def watch(clock: FakeClock, *argv: str, out: Output | None = None) -> Run:
    """Run ``fine-tune-ckpt watch ARGV`` in this process, waiting on ``clock``."""
    out = out if out is not None else Output(clock)
    err = io.StringIO()
    code = await cli._run(cli._parser().parse_args(["watch", *argv]), out, err, clock=clock)
    return Run(code, out.getvalue(), err.getvalue())


def oldest_first(made: list[Checkpoint]) -> list[Checkpoint]:
    """A job's checkpoints in the order a watch prints them (``made`` is newest first)."""
    return made[::-1]


def job_line(run: Run) -> str:
    """The one line stderr holds: how the job ended."""
    assert run.err.count("\n") == 1, run.err
    return run.err.strip()


async def test_table_rows_appear_as_the_checkpoints_do_and_success_exits_0(
    fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """On a terminal: a table, each row flushed before the next checkpoint exists; exit 0."""
    made = fake_api.add_running_job(JOB, count=4, timeline=TIMELINE)
    out = Output(fake_clock, tty=True)
    run = await watch(fake_clock, JOB, "--interval", "2", out=out)
    assert run.code == 0, run.err
    header, *rows = out.lines()
    assert header.split()[:2] == ["STEP", "CREATED"]
    assert [row.split()[0] for row in rows] == [str(c.step_number) for c in oldest_first(made)]
    for k, row in enumerate(rows, start=1):
        shown_at = next(when for when, text in out.flushes if row in text)
        made_at = TIMELINE.running_from + k * TIMELINE.checkpoint_every
        assert made_at <= shown_at < made_at + TIMELINE.checkpoint_every
    job = job_line(run)
    assert job.startswith(f"fine-tune-ckpt: job {JOB} succeeded: ft:gpt-4o-mini-2024-07-18:")


@pytest.mark.parametrize("output_format", ["json", "jsonl", "csv", None])
async def test_each_format_holds_every_checkpoint_oldest_first(
    fake_api: FakeAPIServer, fake_clock: FakeClock, output_format: str | None
) -> None:
    """``json``, ``jsonl`` (the default when piped) and ``csv`` carry every checkpoint once."""
    made = fake_api.add_running_job(JOB, count=5, timeline=TIMELINE)
    options = ["--format", output_format] if output_format else []
    run = await watch(fake_clock, JOB, "--interval", "4", *options)
    assert run.code == 0, run.err
    expected = [to_wire(c) for c in oldest_first(made)]
    if output_format == "json":
        assert json.loads(run.out) == expected
    elif output_format == "csv":
        rows = list(csv.DictReader(io.StringIO(run.out)))
        assert [row["id"] for row in rows] == [c["id"] for c in expected]
        assert rows[0]["step_number"] == str(expected[0]["step_number"])
    else:
        assert [json.loads(line) for line in run.out.splitlines()] == expected


async def test_each_checkpoint_is_flushed_when_it_is_printed(
    fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """Piped JSON Lines are flushed one checkpoint at a time, so a reader sees each at once."""
    fake_api.add_running_job(JOB, count=3, timeline=TIMELINE)
    out = Output(fake_clock)
    await watch(fake_clock, JOB, "--interval", "2", out=out)
    counts = [text.count("\n") for _, text in out.flushes]
    assert counts[:3] == [1, 2, 3]


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            "The training file has 3 lines of invalid JSON.",
            "The training file has 3 lines of invalid JSON.",
        ),
        ("first line\nsecond \x1b[31mred", "first line\\nsecond \\x1b[31mred"),
    ],
    ids=["plain", "control-characters"],
)
async def test_a_failed_job_exits_1_with_its_error_on_one_line(
    fake_api: FakeAPIServer, fake_clock: FakeClock, message: str, shown: str
) -> None:
    """A failed job: its checkpoints, then exit 1 and status, code, message, param on one line."""
    timeline = JobTimeline(
        validating_files=2,
        queued=3,
        checkpoint_every=5,
        outcome="failed",
        error_code="invalid_training_file",
        error_message=message,
        error_param="training_file",
    )
    made = fake_api.add_running_job(JOB, count=2, timeline=timeline)
    run = await watch(fake_clock, JOB, "--interval", "3")
    assert run.code == 1
    assert len(run.out.splitlines()) == len(made)
    assert job_line(run) == (
        f"fine-tune-ckpt: job {JOB} failed: invalid_training_file: {shown} (param training_file)"
    )


async def test_a_cancelled_job_exits_1(fake_api: FakeAPIServer, fake_clock: FakeClock) -> None:
    """A cancelled job: exit 1, its status on one line."""
    timeline = JobTimeline(validating_files=1, queued=1, checkpoint_every=5, outcome="cancelled")
    fake_api.add_running_job(JOB, count=1, timeline=timeline)
    run = await watch(fake_clock, JOB, "--interval", "3")
    assert run.code == 1
    assert job_line(run) == f"fine-tune-ckpt: job {JOB} cancelled"


async def test_since_prints_only_the_newer_checkpoints(
    fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """``--since ID``: only the checkpoints after it, and a finished job ends at once."""
    made = oldest_first(fake_api.add_running_job(JOB, count=6, timeline=TIMELINE))
    fake_clock.advance(TIMELINE.duration(6))
    run = await watch(fake_clock, JOB, "--since", made[2].id)
    assert run.code == 0, run.err
    assert [json.loads(line)["id"] for line in run.out.splitlines()] == [c.id for c in made[3:]]
    assert fake_clock.sleeps == []


@pytest.mark.parametrize(
    ("metric", "pick"),
    [("full_valid_loss", min), ("full_valid_mean_token_accuracy", max)],
)
async def test_best_names_the_checkpoint_to_deploy_after_printing_them_all(
    fake_api: FakeAPIServer,
    fake_clock: FakeClock,
    metric: str,
    pick: Callable[..., Checkpoint],
) -> None:
    """``--best``: every checkpoint as it appears, then the winner; on stderr when piped."""
    made = fake_api.add_running_job(JOB, count=6, timeline=TIMELINE)
    winner = pick(made, key=lambda c: getattr(c.metrics, metric))
    run = await watch(fake_clock, JOB, "--interval", "4", "--best", metric)
    assert run.code == 0, run.err
    assert len(run.out.splitlines()) == len(made)
    best, job = run.err.splitlines()
    assert best.startswith(f"Best by {metric} (")
    assert f"among 6 checkpoints): step {winner.step_number}, " in best
    assert best.endswith(f": deploy {winner.fine_tuned_model_checkpoint}")
    assert job.startswith(f"fine-tune-ckpt: job {JOB} succeeded")


async def test_best_in_a_table_ends_the_table(
    fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """In a table, the winner's line comes last on stdout, after every row."""
    made = fake_api.add_running_job(JOB, count=3, timeline=TIMELINE)
    winner = min(made, key=lambda c: c.metrics.valid_loss or 0.0)
    run = await watch(
        fake_clock, JOB, "--interval", "4", "--best", "valid_loss", "--format", "table"
    )
    assert run.code == 0, run.err
    *_, last = run.out.splitlines()
    assert last.startswith("Best by valid_loss (lowest wins among 3 checkpoints)")
    assert last.endswith(winner.fine_tuned_model_checkpoint)


async def test_best_when_no_checkpoint_reports_the_metric_exits_1(
    fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """``--best`` with nothing to rank: the checkpoints, then a line saying so, exit 1."""
    bare = [
        Checkpoint(
            id=f"ftckpt_bare{n}",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            fine_tuned_model_checkpoint=f"ft:m:o:s:x:ckpt-step-{n}",
            fine_tuning_job_id=JOB,
            metrics=CheckpointMetrics(),
            step_number=n,
        )
        for n in (2, 1)
    ]
    fake_api.add_running_job(JOB, bare, timeline=TIMELINE)
    run = await watch(fake_clock, JOB, "--interval", "4", "--best", "valid_loss")
    assert run.code == 1
    assert len(run.out.splitlines()) == 2
    assert run.err.splitlines()[0] == "fine-tune-ckpt: none of 2 checkpoints reports valid_loss"


async def test_an_api_error_mid_watch_names_the_since_that_resumes_it(
    fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """A poll failing after its retries: exit 1, one line; ``--since`` from it misses nothing."""
    made = oldest_first(fake_api.add_running_job(JOB, count=6, timeline=TIMELINE))
    out = Output(fake_clock)

    def break_after_two(output: Output) -> None:
        if len(output.lines()) == 2:
            fake_api.inject(Fault(status=500))

    out.on_flush = break_after_two
    run = await watch(fake_clock, JOB, "--interval", "2", "--max-retries", "0", out=out)
    assert run.code == 1
    assert run.err.count("\n") == 1
    assert "InternalServerError" in run.err
    assert fake_api.requests[-1].request_id in run.err
    assert run.err.rstrip().endswith(f"; resume with --since {made[1].id}")
    assert "Traceback" not in run.err
    rest = await watch(fake_clock, JOB, "--interval", "2", "--since", made[1].id)
    assert rest.code == 0, rest.err
    printed = [json.loads(line)["id"] for line in (run.out + rest.out).splitlines()]
    assert printed == [c.id for c in made]


async def test_a_since_the_job_does_not_have_exits_1(
    fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """``--since`` an id the job does not list: one line saying so, exit 1."""
    fake_api.add_running_job(JOB, count=3, timeline=TIMELINE)
    fake_clock.advance(TIMELINE.duration(3))
    run = await watch(fake_clock, JOB, "--since", "ftckpt_elsewhere")
    assert run.code == 1
    assert run.err.count("\n") == 1
    assert "not a checkpoint of job" in run.err


async def test_an_unknown_job_exits_1_with_nothing_to_resume(
    fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """An unknown job is the API's 404 on one line, with no ``--since`` to offer."""
    run = await watch(fake_clock, "ftjob-missing", "--format", "json")
    assert run.code == 1
    assert json.loads(run.out) == []  # the output a tool reads stays valid
    assert run.err.startswith("fine-tune-ckpt: error: NotFoundError: ")
    assert "--since" not in run.err


async def test_cancelling_the_command_closes_the_output_and_names_the_since(
    fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """Cancelled (as Ctrl-C does) mid-watch: valid JSON so far, and where to resume."""
    made = oldest_first(fake_api.add_running_job(JOB, count=1000, timeline=TIMELINE))
    out = Output(fake_clock)
    first_row = asyncio.Event()
    out.on_flush = lambda output: first_row.set()
    err = io.StringIO()
    args = cli._parser().parse_args(["watch", JOB, "--interval", "2", "--format", "json"])
    task = asyncio.create_task(cli._run(args, out, err, clock=fake_clock))
    await first_row.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    printed = [item["id"] for item in json.loads(out.getvalue())]
    assert printed == [c.id for c in made[: len(printed)]]
    assert printed
    assert err.getvalue() == f"fine-tune-ckpt: interrupted; resume with --since {printed[-1]}\n"


async def test_ctrl_c_exits_130_after_the_checkpoints_so_far() -> None:
    """SIGINT to a real watch: exit 130, no traceback; what a pipe got came as it appeared."""
    # Real time: the job makes a checkpoint every 0.1 s for 100 s; the test stops it early.
    timeline = JobTimeline(validating_files=0, queued=0, checkpoint_every=0.1)
    async with FakeAPIServer() as fake:
        fake.add_running_job(JOB, count=1000, timeline=timeline)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fine_tune_ckpt",
            "watch",
            JOB,
            "--interval",
            "0.05",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_env(OPENAI_API_KEY=fake.api_key, OPENAI_BASE_URL=fake.base_url),
        )
        assert process.stdout is not None
        try:
            first = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        finally:
            process.send_signal(signal.SIGINT)
        rest, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 130, err.decode()
    printed = [json.loads(line)["id"] for line in (first + rest).decode().splitlines()]
    assert printed
    assert err.decode() == f"fine-tune-ckpt: interrupted; resume with --since {printed[-1]}\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["watch"],
        ["watch", JOB, "--interval", "0"],
        ["watch", JOB, "--interval", "-5"],
        ["watch", JOB, "--interval", "nan"],
        ["watch", JOB, "--interval", "inf"],
        ["watch", JOB, "--interval", "soon"],
        ["watch", JOB, "--format", "xml"],
        ["watch", JOB, "--best", "accuracy"],
        ["watch", JOB, "--max-retries", "-1"],
    ],
)
def test_bad_command_lines_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A bad interval, format, metric or a missing job id: argparse's usage error, exit 2."""
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "usage: fine-tune-ckpt watch" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["watch", "  "], "fine_tuning_job_id"),
        (["watch", JOB, "--since", " "], "since"),
        (["watch", JOB, "--base-url", "ftp://example.invalid/v1"], "base_url"),
    ],
    ids=["blank-job-id", "blank-since", "bad-base-url"],
)
def test_bad_values_are_one_line_exit_2(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str], closed_port_env: None
) -> None:
    """A blank job id or ``--since``, a bad base URL: one line naming it, exit 2, nothing sent."""
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("fine-tune-ckpt: error: ")
    assert named in captured.err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    """``watch --help`` names every option and exits 0."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["watch", "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for option in ("--interval", "--since", "--format", "--best", "--base-url", "--max-retries"):
        assert option in shown
