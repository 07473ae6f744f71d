"""``fine-tune-ckpt jobs``: the account's jobs in a table, CSV, JSON or JSON Lines."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import attrs
import pytest

from fine_tune_ckpt import AsyncClient, FineTuningJob, to_wire
from fine_tune_ckpt import _cli as cli
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault, JobTimeline

from .test_cli import Run

# The command reads the fake's URL and key from the environment, as a user's would.
pytestmark = pytest.mark.usefixtures("fake_api_env")


class Output(io.StringIO):
    """Standard output, a terminal or not."""

    def __init__(self, *, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.fixture
async def jobs(fake_api: FakeAPIServer, client: AsyncClient) -> list[FineTuningJob]:
    """Five jobs (one still validating its files), newest first, as the API lists them."""
    for number in range(3):
        fake_api.add_job(f"ftjob-done{number}", count=2 + number)
    fake_api.add_running_job("ftjob-live", count=3, timeline=JobTimeline())
    return await client.jobs.list().to_list()


async def run_jobs(clock: FakeClock, *argv: str, tty: bool = False) -> Run:
    """Run ``fine-tune-ckpt jobs ARGV`` in this process."""
    out, err = Output(tty=tty), io.StringIO()
    code = await cli._run(cli._parser().parse_args(["jobs", *argv]), out, err, clock=clock)
    return Run(code, out.getvalue(), err.getvalue())


async def test_a_terminal_gets_a_table(jobs: list[FineTuningJob], fake_clock: FakeClock) -> None:
    """On a terminal: id, status, model, times and fine-tuned model, newest first."""
    run = await run_jobs(fake_clock, tty=True)
    assert run.code == 0, run.err
    header, *rows = run.out.splitlines()
    assert header.split() == [
        "ID",
        "STATUS",
        "MODEL",
        "CREATED",
        "(UTC)",
        "FINISHED",
        "(UTC)",
        "FINE_TUNED_MODEL",
    ]
    assert [row.split()[:3] for row in rows] == [[j.id, j.status, j.model] for j in jobs]
    for job, row in zip(jobs, rows, strict=True):
        if job.fine_tuned_model is None:  # the job still validating its files
            assert row.split()[-2:] == ["-", "-"]
        else:
            assert row.endswith(job.fine_tuned_model)
            assert job.finished_at is not None
            assert job.finished_at.strftime("%Y-%m-%d %H:%M") in row


async def test_csv_has_one_column_per_field(
    jobs: list[FineTuningJob], fake_clock: FakeClock
) -> None:
    """``--format csv``: the same six fields, times in ISO 8601, blanks for what is unset."""
    run = await run_jobs(fake_clock, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(run.out)))
    assert [list(row) for row in rows[:1]] == [
        ["id", "status", "model", "created_at", "finished_at", "fine_tuned_model"]
    ]
    assert [
        (row["id"], row["status"], row["created_at"], row["finished_at"], row["fine_tuned_model"])
        for row in rows
    ] == [
        (
            job.id,
            job.status,
            job.created_at.isoformat(),
            job.finished_at.isoformat() if job.finished_at else "",
            job.fine_tuned_model or "",
        )
        for job in jobs
    ]


@pytest.mark.parametrize("output_format", ["json", "jsonl", None])
async def test_json_formats_carry_the_whole_job_as_the_api_sent_it(
    jobs: list[FineTuningJob], fake_clock: FakeClock, output_format: str | None
) -> None:
    """``json`` and ``jsonl`` (the default when piped) hold every field, as on the wire."""
    options = ["--format", output_format] if output_format else []
    run = await run_jobs(fake_clock, *options)
    assert run.code == 0, run.err
    expected = [to_wire(job) for job in jobs]
    if output_format == "json":
        assert json.loads(run.out) == expected
    else:
        assert [json.loads(line) for line in run.out.splitlines()] == expected


async def test_paging_options(
    jobs: list[FineTuningJob], fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """``--limit``, ``--after`` and ``--max-items`` shape the listing as in the library."""
    fake_api.requests.clear()
    run = await run_jobs(fake_clock, "--limit", "2", "--after", jobs[0].id, "--max-items", "3")
    assert [json.loads(line)["id"] for line in run.out.splitlines()] == [j.id for j in jobs[1:4]]
    assert [request.query.get("limit") for request in fake_api.requests] == ["2", "2"]


async def test_no_jobs(fake_api: FakeAPIServer, fake_clock: FakeClock) -> None:
    """An empty account: a table that says so, an empty JSON array."""
    async with FakeAPIServer(api_key=fake_api.api_key) as empty:
        argv = ["--base-url", empty.base_url]
        assert (await run_jobs(fake_clock, *argv, tty=True)).out.endswith("(no jobs)\n")
        assert json.loads((await run_jobs(fake_clock, *argv, "--format", "json")).out) == []


async def test_an_api_error_mid_listing_names_the_after_that_resumes_it(
    jobs: list[FineTuningJob], fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """A page failing after its retries: exit 1, one line naming ``--after`` to resume with."""
    fake_api.inject(Fault(), Fault(status=500))
    run = await run_jobs(fake_clock, "--limit", "2", "--max-retries", "0")
    assert run.code == 1
    assert [json.loads(line)["id"] for line in run.out.splitlines()] == [j.id for j in jobs[:2]]
    assert run.err.count("\n") == 1
    assert run.err.startswith("fine-tune-ckpt: error: InternalServerError: ")
    assert run.err.rstrip().endswith(f"; resume with --after {jobs[1].id}")


@pytest.mark.parametrize(
    "argv",
    [["jobs", "--limit", "0"], ["jobs", "--max-items", "x"], ["jobs", "--format", "xml"]],
)
def test_bad_command_lines_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A bad page size, cap or format: argparse's usage error, exit 2."""
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "usage: fine-tune-ckpt jobs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["jobs", "--after", ""], "after"),
        (["jobs", "--base-url", "ftp://example.invalid/v1"], "base_url"),
    ],
    ids=["blank-after", "bad-base-url"],
)
def test_bad_values_are_one_line_exit_2(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str], closed_port_env: None
) -> None:
    """An empty ``--after`` or a bad base URL: one line naming it, exit 2."""
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert named in captured.err


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    """``jobs --help`` names every option and exits 0."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["jobs", "--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for option in ("--limit", "--after", "--max-items", "--format", "--base-url", "-v"):
        assert option in shown


@pytest.mark.parametrize("layout", ["checkpoints", "jobs"])
def test_a_table_shows_server_sent_control_characters_escaped(layout: str) -> None:
    """Escape sequences in a value the server sent never reach the terminal raw."""
    from fine_tune_ckpt._output import CHECKPOINTS, JOBS, Writer
    from fine_tune_ckpt.testing import synthetic_checkpoints

    hostile = "ft:evil\x1b[2J\x1b[31m\rOVERWRITE\x07"
    out = io.StringIO()
    if layout == "checkpoints":
        (checkpoint,) = synthetic_checkpoints("ftjob-x", 1)
        checkpoints = Writer("table", out, CHECKPOINTS)
        checkpoints.write(attrs.evolve(checkpoint, fine_tuned_model_checkpoint=hostile))
        checkpoints.close()
    else:
        job = FineTuningJob(
            id="ftjob-\x1b]0;title\x07",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            model="gpt\x1b[31m",
            status="succeeded",
            organization_id="org",
            training_file="file",
            fine_tuned_model=hostile,
        )
        jobs = Writer("table", out, JOBS)
        jobs.write(job)
        jobs.close()
    text = out.getvalue()
    assert "\x1b" not in text
    assert "\r" not in text
    assert "\x07" not in text
    assert "\\x1b[2J" in text or "\\x1b]0;title" in text
