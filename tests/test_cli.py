"""The ``fine-tune-ckpt`` command, run as a user runs it: a subprocess, real exit codes."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import signal
import socket
import sys
from collections.abc import Callable, Iterator

import aiohttp
import attrs
import pytest
from aiohttp import web

from fine_tune_ckpt import AsyncClient, Checkpoint, FineTuneCkptError, _cli_common, to_wire
from fine_tune_ckpt import _cli as cli
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock

from .conftest import FIXTURES
from .test_fake_server import needs_ipv6

JOB = "ftjob-abc123"


@attrs.frozen
class Run:
    """What a finished command left behind."""

    code: int
    out: str
    err: str


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(settings)
    return env


async def _run(*args: str, env: dict[str, str] | None = None) -> Run:
    """Run ``python -m fine_tune_ckpt ARGS`` without blocking the loop serving the fake."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fine_tune_ckpt",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env if env is not None else _env(),
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def _for(fake: FakeAPIServer) -> dict[str, str]:
    return _env(OPENAI_API_KEY=fake.api_key, OPENAI_BASE_URL=fake.base_url)


async def test_demo_runs_the_main_job_offline() -> None:
    """``demo`` lists every page through a 429, names the checkpoint to deploy, then watches."""
    run = await _run("demo")
    assert run.code == 0, run.err
    assert "FULL_VALID_LOSS" in run.out
    assert "30 checkpoints in 3 pages. Deploy ft:gpt-4o-mini-2024-07-18:" in run.out
    assert "Retrying in 1.00 s" in run.err
    assert "status 429" in run.err
    # Then a running job watched to its end on a fake clock: minutes of it in no real time.
    watched = run.out.split("Watching ftjob-demo-live as it runs, on a fake clock:\n", 1)[1]
    header, *rows, summary = watched.splitlines()
    assert header.split()[:2] == ["STEP", "CREATED"]
    assert [row.split()[0] for row in rows] == ["100", "200", "300", "400"]
    assert re.fullmatch(
        r"\d+ polls a minute apart followed it for \d+ minutes of fake time, in no real time\.",
        summary,
    )
    assert run.err.splitlines()[-1].startswith("fine-tune-ckpt: job ftjob-demo-live succeeded: ft:")
    assert len(run.out.splitlines()) < 45  # short: the table of 30, then the watch


async def test_list_writes_wire_json_lines_when_piped(fake_api: FakeAPIServer) -> None:
    """Piped output is JSON Lines, each line the API's own JSON for a checkpoint."""
    expected = fake_api.add_job(JOB, count=25)
    run = await _run("list", JOB, env=_for(fake_api))
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert [json.loads(line) for line in lines] == [to_wire(c) for c in expected]


async def test_list_json_format(fake_api: FakeAPIServer) -> None:
    """``--format json`` writes one JSON array of wire checkpoints."""
    expected = fake_api.add_job(JOB, count=12)
    run = await _run("list", JOB, "--format", "json", env=_for(fake_api))
    assert json.loads(run.out) == [to_wire(c) for c in expected]


async def test_list_json_format_with_no_checkpoints(fake_api: FakeAPIServer) -> None:
    """An empty job gives an empty JSON array, and a table that says so."""
    fake_api.add_job("ftjob-empty", [])
    run = await _run("list", "ftjob-empty", "--format", "json", env=_for(fake_api))
    assert json.loads(run.out) == []
    run = await _run("list", "ftjob-empty", "--format", "table", env=_for(fake_api))
    assert "(no checkpoints)" in run.out


async def test_list_csv_format(fake_api: FakeAPIServer) -> None:
    """``--format csv`` writes a header and one row per checkpoint."""
    expected = fake_api.add_job(JOB, count=5)
    run = await _run("list", JOB, "--format", "csv", env=_for(fake_api))
    rows = list(csv.DictReader(io.StringIO(run.out)))
    assert [row["id"] for row in rows] == [c.id for c in expected]
    assert float(rows[0]["full_valid_loss"]) == expected[0].metrics.full_valid_loss
    assert rows[0]["created_at"] == expected[0].created_at.isoformat()


async def test_list_table_format(fake_api: FakeAPIServer) -> None:
    """``--format table`` writes aligned columns with the model names."""
    expected = fake_api.add_job(JOB, count=3)
    run = await _run("list", JOB, "--format", "table", env=_for(fake_api))
    header, *rows = run.out.splitlines()
    assert header.split()[:2] == ["STEP", "CREATED"]
    assert [row.split()[0] for row in rows] == [str(c.step_number) for c in expected]
    assert rows[0].endswith(expected[0].fine_tuned_model_checkpoint)


async def test_list_paging_options(fake_api: FakeAPIServer) -> None:
    """``--limit``, ``--after`` and ``--max-items`` shape the listing as in the library."""
    expected = fake_api.add_job(JOB, count=25)
    run = await _run(
        "list",
        JOB,
        "--limit",
        "4",
        "--after",
        expected[2].id,
        "--max-items",
        "6",
        env=_for(fake_api),
    )
    assert [json.loads(line)["id"] for line in run.out.splitlines()] == [
        c.id for c in expected[3:9]
    ]
    assert [r.query.get("limit") for r in fake_api.requests] == ["4", "4"]


async def test_base_url_option_wins_over_the_environment(fake_api: FakeAPIServer) -> None:
    """``--base-url`` overrides OPENAI_BASE_URL."""
    env = _env(OPENAI_API_KEY=fake_api.api_key, OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    run = await _run("list", JOB, "--base-url", fake_api.base_url, env=env)
    assert run.code == 0, run.err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


#: The one-job runs whose output is pinned in tests/fixtures/cli_list_one_job.json.
ONE_JOB_RUNS = {
    "table": ["--format", "table", "--limit", "7"],
    "json": ["--format", "json"],
    "jsonl": [],
    "csv": ["--format", "csv", "--max-items", "9"],
    "best-table": ["--format", "table", "--best", "full_valid_loss"],
    "best-json": ["--format", "json", "--best", "valid_mean_token_accuracy"],
    "tty-default": [],
}


async def test_list_of_one_job_prints_byte_for_byte_as_pinned(
    fake_api_env: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """``list JOB`` in every format, ``--best`` too: exit code, stdout and stderr as pinned."""
    golden = json.loads((FIXTURES / "cli_list_one_job.json").read_text())
    assert set(ONE_JOB_RUNS) == set(golden)
    for name, options in ONE_JOB_RUNS.items():
        out = _Terminal() if name == "tty-default" else io.StringIO()
        err = io.StringIO()
        args = cli._parser().parse_args(["list", JOB, *options])
        code = await cli._run(args, out, err, clock=fake_clock)
        assert {"code": code, "out": out.getvalue(), "err": err.getvalue()} == golden[name], name


@pytest.mark.parametrize(
    ("metric", "pick"),
    [("full_valid_loss", min), ("full_valid_mean_token_accuracy", max)],
)
async def test_best_picks_the_checkpoint_to_deploy(
    fake_api: FakeAPIServer, metric: str, pick: Callable[..., Checkpoint]
) -> None:
    """``--best`` prints only the winner (losses lowest, accuracies highest) and why."""
    expected = fake_api.add_job(JOB, count=25)
    run = await _run("list", JOB, "--best", metric, "--format", "json", env=_for(fake_api))
    assert run.code == 0, run.err
    winner = pick(expected, key=lambda c: getattr(c.metrics, metric))
    assert json.loads(run.out) == [to_wire(winner)]
    assert f"Best by {metric}" in run.err
    assert f"step {winner.step_number}" in run.err


async def test_best_with_no_checkpoint_reporting_the_metric(fake_api: FakeAPIServer) -> None:
    """When no checkpoint reports the metric, the command says so and exits 1."""
    fake_api.add_job("ftjob-empty", [])
    run = await _run("list", "ftjob-empty", "--best", "valid_loss", env=_for(fake_api))
    assert run.code == 1
    assert "none of 0 checkpoints reports valid_loss" in run.err


async def test_api_error_is_one_line_with_the_request_id(fake_api: FakeAPIServer) -> None:
    """An unknown job exits 1 with one line naming the error and request id."""
    run = await _run("list", "ftjob-missing", env=_for(fake_api))
    assert run.code == 1
    assert run.err.count("\n") == 1
    assert "NotFoundError" in run.err
    assert fake_api.requests[0].request_id in run.err
    assert "Traceback" not in run.err


async def test_wrong_key_is_never_echoed(fake_api: FakeAPIServer) -> None:
    """A wrong key gives AuthenticationError and appears in no output."""
    env = _env(OPENAI_API_KEY="sk-do-not-print-me", OPENAI_BASE_URL=fake_api.base_url)
    run = await _run("list", JOB, "-v", env=env)
    assert run.code == 1
    assert "AuthenticationError" in run.err
    assert "sk-do-not-print-me" not in run.out + run.err


async def test_network_error_exits_1() -> None:
    """A refused connection exits 1 with APIConnectionError, after retries."""
    env = _env(OPENAI_API_KEY="sk-x", OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    run = await _run("list", JOB, "--max-retries", "0", env=env)
    assert run.code == 1
    assert "APIConnectionError" in run.err


async def test_missing_key_is_a_usage_error() -> None:
    """Without OPENAI_API_KEY the command exits 2 and names the variable."""
    run = await _run("list", JOB)
    assert run.code == 2
    assert "OPENAI_API_KEY" in run.err


@pytest.mark.parametrize(
    "args",
    [
        ("list", JOB, "--limit", "0"),
        ("list", JOB, "--limit", "ten"),
        ("list", JOB, "--format", "xml"),
        ("list", JOB, "--best", "accuracy"),
        ("serve-fake", "--checkpoint-every", "0"),
        ("serve-fake", "--checkpoint-every", "nan"),
        ("nope",),
        (),
    ],
)
async def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    """Bad command lines exit 2 with argparse's message."""
    run = await _run(*args, env=_env(OPENAI_API_KEY="sk-x"))
    assert run.code == 2
    assert "usage:" in run.err


async def test_blank_job_id_is_a_usage_error() -> None:
    """A blank job id is refused before any request, exit 2."""
    run = await _run("list", "  ", env=_env(OPENAI_API_KEY="sk-x"))
    assert run.code == 2
    assert "fine_tuning_job_id" in run.err


@pytest.mark.parametrize("command", [(), ("list",), ("demo",), ("serve-fake",)])
async def test_help_on_every_command(command: tuple[str, ...]) -> None:
    """``--help`` works on every command and exits 0."""
    run = await _run(*command, "--help")
    assert run.code == 0
    assert "usage: fine-tune-ckpt" in run.out


async def test_version() -> None:
    """``--version`` prints the package version."""
    from fine_tune_ckpt import __version__

    run = await _run("--version")
    assert run.out.strip() == f"fine-tune-ckpt {__version__}"


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", "127.0.0.1"),
        pytest.param("::1", "[::1]", marks=needs_ipv6),
        pytest.param("[::1]", "[::1]", marks=needs_ipv6),
    ],
)
async def test_serve_fake_serves_until_terminated(host: str, shown: str) -> None:
    """``serve-fake`` prints a usable URL (IPv6 bracketed), key and jobs; stops on SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fine_tune_ckpt",
        "serve-fake",
        "--host",
        host,
        "--port",
        "0",
        "--jobs",
        "2",
        "--checkpoints",
        "7",
        stdout=asyncio.subprocess.PIPE,
        env=_env(),
    )
    assert process.stdout is not None
    try:
        lines = [
            (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode().strip()
            for _ in range(5)
        ]
        base_url = lines[0].rsplit(" ", 1)[1]
        api_key = lines[1].split(": ", 1)[1]
        jobs = lines[2].split(": ", 1)[1].split(", ")
        running = lines[3].split(": ", 1)[1].split(" ", 1)[0]
        assert base_url.startswith(f"http://{shown}:")
        assert f"OPENAI_BASE_URL={base_url} " in lines[4]
        assert jobs == ["ftjob-fake001", "ftjob-fake002"]
        assert running == "ftjob-running"
        assert "a checkpoint every 5 s; succeeds after 55 s" in lines[3]
        async with AsyncClient(api_key=api_key, base_url=base_url, clock=FakeClock()) as client:
            assert len(await client.checkpoints.list(jobs[1]).to_list()) == 7
        # The running job has just started (55 s to go), and is listed with the others.
        async with aiohttp.ClientSession(
            base_url=base_url + "/", headers={"Authorization": f"Bearer {api_key}"}
        ) as http:
            async with http.get(f"fine_tuning/jobs/{running}") as answer:
                status = (await answer.json())["status"]
                assert status in {"validating_files", "queued", "running"}
            async with http.get("fine_tuning/jobs") as answer:
                listed = [job["id"] for job in (await answer.json())["data"]]
        assert sorted(listed) == sorted([*jobs, running])
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 0


async def test_terminal_gets_a_table_and_progress(fake_api: FakeAPIServer) -> None:
    """On a terminal, stdout defaults to a table and stderr shows pages and items so far."""
    import pty

    # Small output: nothing reads the terminal until the command ends (a pty holds ~4 KiB).
    expected = fake_api.add_job(JOB, count=10)
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fine_tune_ckpt",
            "list",
            JOB,
            "--limit",
            "4",
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
    assert out.splitlines()[0].split()[:2] == ["STEP", "CREATED"]
    assert len(out.splitlines()) == 1 + len(expected)
    assert "3 pages, 10 checkpoints" in err


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("--rate-limit", "0"), "argument --rate-limit: must be a number of requests per second"),
        (("--rate-limit", "-5"), "argument --rate-limit: must be a number of requests per second"),
        (("--rate-limit", "nan"), "argument --rate-limit: must be a number of requests per second"),
        (("--rate-limit", "inf"), "argument --rate-limit: must be a number of requests per second"),
        (("--rate-limit", "fast"), "argument --rate-limit: not a number: 'fast'"),
        (("--rate-limit", "10", "--burst", "0"), "argument --burst: must be at least 1"),
        (("--rate-limit", "10", "--burst", "2.5"), "argument --burst: not a whole number"),
        (("--latency", "0"), "argument --latency: must be a number of seconds above 0"),
        (("--latency", "-0.1"), "argument --latency: must be a number of seconds above 0"),
        (("--latency", "inf"), "argument --latency: must be a number of seconds above 0"),
        (("--latency", "NaN"), "argument --latency: must be a number of seconds above 0"),
    ],
)
def test_serve_fake_rate_limit_flags_are_checked(
    args: tuple[str, ...], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rate, burst or latency that is not a positive finite number exits 2 naming the flag."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve-fake", "--port", "0", *args])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    last = err.splitlines()[-1]
    assert last.startswith("fine-tune-ckpt serve-fake: error: ")
    assert problem in last


async def test_serve_fake_burst_needs_a_rate_limit() -> None:
    """``--burst`` alone is one line on stderr and exit 2, before anything listens."""
    run = await _run("serve-fake", "--port", "0", "--burst", "5")
    assert (run.code, run.out) == (2, "")
    assert run.err == "fine-tune-ckpt: error: --burst needs --rate-limit\n"


async def test_serve_fake_limits_the_rate_and_delays_answers() -> None:
    """``--rate-limit``, ``--burst`` and ``--latency`` are announced and enforced."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fine_tune_ckpt",
        "serve-fake",
        "--port",
        "0",
        # A token every 2 s: the third request, a few ms after the burst, is refused.
        *("--rate-limit", "0.5", "--burst", "2", "--latency", "0.01"),
        stdout=asyncio.subprocess.PIPE,
        env=_env(),
    )
    assert process.stdout is not None
    try:
        lines = [
            (await asyncio.wait_for(process.stdout.readline(), timeout=30)).decode().strip()
            for _ in range(7)
        ]
        base_url = lines[0].rsplit(" ", 1)[1]
        api_key = lines[1].split(": ", 1)[1]
        assert lines[4] == "Rate limit: 0.5 requests per second, bursts of 2"
        assert lines[5] == "Latency: 0.01 s per answer"
        assert lines[6].startswith("Try: ")
        answers = []
        async with aiohttp.ClientSession(
            base_url=base_url + "/", headers={"Authorization": f"Bearer {api_key}"}
        ) as http:
            for _ in range(3):
                async with http.get("fine_tuning/jobs") as answer:
                    answers.append((answer.status, answer.headers.copy(), await answer.json()))
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 0
    assert [status for status, _, _ in answers] == [200, 200, 429]
    assert [headers["x-ratelimit-remaining-requests"] for _, headers, _ in answers] == [
        "1",
        "0",
        "0",
    ]
    _, refused, body = answers[2]
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert 1900 < int(refused["retry-after-ms"]) <= 2000
    assert refused["retry-after"] == "2"


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else is listening on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        (("--port", "BUSY"), "in use"),
        (("--port", "65536"), "port must be within 0..65535"),
        # TEST-NET-1: a numeric address (no lookup) that is on no machine's interfaces.
        (("--host", "192.0.2.1", "--port", "0"), "cannot listen on 192.0.2.1:0"),
        (("--host", "a..b", "--port", "0"), "cannot listen on a..b:0"),  # refused unlooked-up
        (("--host", "", "--port", "0"), "host must name an address"),
    ],
    ids=["busy-port", "port-out-of-range", "foreign-address", "malformed-host", "empty-host"],
)
async def test_serve_fake_on_an_unusable_address_is_one_line_exit_2(
    busy_port: int, where: tuple[str, ...], reason: str
) -> None:
    """A busy or invalid port or host exits 2 with one line on stderr, no traceback."""
    args = [str(busy_port) if arg == "BUSY" else arg for arg in where]
    run = await _run("serve-fake", *args)
    assert run.code == 2
    assert run.out == ""
    assert run.err.count("\n") == 1
    assert run.err.startswith("fine-tune-ckpt: error: ")
    assert reason in run.err.lower() if reason == "in use" else reason in run.err


@pytest.mark.parametrize(
    "error",
    [
        ValueError("api_key must not contain control characters"),
        TypeError("api_key must be a str or None, not bytes"),
        FineTuneCkptError("No API key: pass api_key= or set the OPENAI_API_KEY variable"),
        ValueError("organization must not hold\nline breaks or \x1b[31mescapes"),
    ],
    ids=["ValueError", "TypeError", "FineTuneCkptError", "multi-line-message"],
)
async def test_list_turns_bad_settings_into_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    """Any error from making the client (bad settings) is one line on stderr and exit 2."""

    def refuse(**settings: object) -> AsyncClient:
        raise error

    monkeypatch.setattr(_cli_common, "AsyncClient", refuse)
    out, err = io.StringIO(), io.StringIO()
    code = await cli._run(cli._parser().parse_args(["list", JOB]), out, err)
    assert code == 2
    assert out.getvalue() == ""
    assert err.getvalue().count("\n") == 1
    assert err.getvalue().startswith("fine-tune-ckpt: error: ")
    assert "\x1b" not in err.getvalue()


@pytest.mark.parametrize(
    "settings",
    [
        {"OPENAI_BASE_URL": "ftp://example.invalid/v1"},
        {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1#fragment"},
        {"OPENAI_API_KEY": "sk-first\nsk-second"},
        {"OPENAI_API_KEY": "sk-a\x1bb"},
        {"OPENAI_ORG_ID": "org-a\rb"},
        {"OPENAI_PROJECT_ID": "proj_\u200bx"},
    ],
    ids=[
        "base-url-scheme",
        "base-url-fragment",
        "key-newline",
        "key-escape",
        "org-cr",
        "project-zwsp",
    ],
)
async def test_bad_environment_is_one_line_exit_2(settings: dict[str, str]) -> None:
    """An OPENAI_* variable the client refuses exits 2 with one line, before any request."""
    # A closed loopback port as the default: nothing may reach the internet.
    loopback = {"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    run = await _run("list", JOB, env=_env(**{**loopback, **settings}))
    assert run.code == 2
    assert run.err.count("\n") == 1
    assert "Traceback" not in run.err
    assert "sk-second" not in run.err


async def test_server_text_in_an_error_line_stays_one_line() -> None:
    """An API error message with newlines or escape codes is printed escaped, on one line."""

    async def refuse(request: web.Request) -> web.Response:
        message = "first line\nsecond line \x1b[31mred\x1b[0m\r"
        body = {"error": {"message": message, "type": "x", "param": None, "code": None}}
        return web.json_response(body, status=400, headers={"x-request-id": "req_1"})

    app = web.Application()
    app.router.add_get("/{path:.*}", refuse)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        env = _env(OPENAI_API_KEY="sk-x", OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1")
        run = await _run("list", JOB, env=env)
    finally:
        await runner.cleanup()
    assert run.code == 1
    assert run.err.count("\n") == 1
    assert "\x1b" not in run.err
    assert "\r" not in run.err
    assert "first line\\nsecond line" in run.err
