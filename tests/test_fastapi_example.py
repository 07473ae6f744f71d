"""The FastAPI example in docs/examples, served by uvicorn on loopback over the fake API."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import socket
import struct
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import aiohttp
import orjson
import pytest

from fine_tune_ckpt import AsyncClient, Checkpoint, Clock, to_wire
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault, JobTimeline

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "fastapi_app.py"
JOB = "ftjob-abc123"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = _load_example()


@contextlib.asynccontextmanager
async def serving(fake: FakeAPIServer, clock: Clock) -> AsyncIterator[str]:
    """Serve the example app on loopback, its client bound to ``fake`` and waiting on ``clock``."""
    async with AsyncClient(api_key=fake.api_key, base_url=fake.base_url, clock=clock) as client:
        example.app.dependency_overrides[example.get_client] = lambda: client
        try:
            async with example.serve(example.app) as base_url:
                yield base_url
        finally:
            example.app.dependency_overrides.clear()


@pytest.fixture
async def service(fake_api_env: FakeAPIServer, fake_clock: FakeClock) -> AsyncIterator[str]:
    """The example app on loopback; its client talks to the fake and waits on the fake's clock.

    Retries take no real time, and a watch's waits between polls move the fake's running
    jobs on, so a whole watch takes none either.
    """
    async with serving(fake_api_env, fake_clock) as base_url:
        yield base_url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client for the service."""
    async with aiohttp.ClientSession() as session:
        yield session


async def test_pages_with_cursor(
    service: str, http: aiohttp.ClientSession, fake_api: FakeAPIServer
) -> None:
    """Following ``next_after`` page by page gives every checkpoint once."""
    expected = fake_api.add_job(JOB, count=45)
    seen: list[dict[str, object]] = []
    after: str | None = None
    while True:
        query = f"?limit=20&after={after}" if after else "?limit=20"
        async with http.get(f"{service}/jobs/{JOB}/checkpoints{query}") as answer:
            assert answer.status == 200
            page = await answer.json()
        seen += page["data"]
        after = page["next_after"]
        if not page["has_more"]:
            assert after is None
            break
    assert seen == [to_wire(c) for c in expected]


async def test_stream_is_ndjson_of_every_checkpoint(
    service: str, http: aiohttp.ClientSession, fake_api: FakeAPIServer
) -> None:
    """The stream endpoint sends one wire JSON object per line, all of them."""
    expected = fake_api.add_job(JOB, count=250)
    async with http.get(f"{service}/jobs/{JOB}/checkpoints/stream") as answer:
        assert answer.status == 200
        assert answer.content_type == "application/x-ndjson"
        lines = (await answer.read()).splitlines()
    assert [orjson.loads(line) for line in lines] == [to_wire(c) for c in expected]


async def test_best_endpoint(
    service: str, http: aiohttp.ClientSession, fake_api: FakeAPIServer
) -> None:
    """The best endpoint answers the checkpoint with the best metric."""
    expected = fake_api.add_job(JOB, count=30)
    winner: Checkpoint = max(
        expected, key=lambda c: c.metrics.full_valid_mean_token_accuracy or 0.0
    )
    url = f"{service}/jobs/{JOB}/best?metric=full_valid_mean_token_accuracy"
    async with http.get(url) as answer:
        assert answer.status == 200
        assert await answer.json() == to_wire(winner)
    async with http.get(f"{service}/jobs/{JOB}/best?metric=accuracy") as answer:
        assert answer.status == 422


@pytest.mark.parametrize(
    ("path", "faults", "status"),
    [
        ("/jobs/ftjob-missing/checkpoints", [], 404),
        (f"/jobs/{JOB}/checkpoints?after=ftckpt_unknown", [], 400),
        (f"/jobs/{JOB}/checkpoints?limit=0", [], 422),
        (f"/jobs/{JOB}/checkpoints", [Fault(status=429, retry_after=9)] * 3, 503),
        (f"/jobs/{JOB}/checkpoints", [Fault(status=500)] * 3, 502),
        (f"/jobs/{JOB}/checkpoints", [Fault(non_json_body=True)], 502),
        (f"/jobs/{JOB}/checkpoints", [Fault(drop_connection=True)] * 6, 502),
        ("/jobs/ftjob-missing/checkpoints/stream", [], 404),
        ("/jobs/ftjob-missing/best", [], 404),
        (f"/jobs/{JOB}/best", [Fault(status=503)] * 3, 502),
    ],
)
async def test_upstream_errors_become_sensible_answers(
    service: str,
    http: aiohttp.ClientSession,
    fake_api: FakeAPIServer,
    path: str,
    faults: list[Fault],
    status: int,
) -> None:
    """404 stays 404, 429 becomes 503 with Retry-After, failures 502; never a 500."""
    fake_api.inject(*faults)
    async with http.get(f"{service}{path}") as answer:
        assert answer.status == status
        body = await answer.json()
    if status == 503:
        assert answer.headers["Retry-After"] == "9"
    if status == 502 and faults and faults[0].status:
        assert body["request_id"] == fake_api.requests[-1].request_id


async def test_failure_mid_stream_ends_with_a_resume_line(
    service: str, http: aiohttp.ClientSession, fake_api: FakeAPIServer
) -> None:
    """Once streaming, a failure ends the stream with a line saying where to resume."""
    expected = fake_api.add_job(JOB, count=250)
    fake_api.inject(Fault(), *[Fault(status=500)] * 3)
    async with http.get(f"{service}/jobs/{JOB}/checkpoints/stream") as answer:
        lines = [orjson.loads(line) for line in (await answer.read()).splitlines()]
    assert lines[:-1] == [to_wire(c) for c in expected[:100]]
    assert lines[-1] == {"error": "InternalServerError", "resume_after": expected[99].id}


async def test_disconnecting_mid_stream_stops_the_upstream_walk(
    service: str, http: aiohttp.ClientSession, fake_api: FakeAPIServer
) -> None:
    """A caller that hangs up mid-stream stops the walk: no work goes on for nobody."""
    fake_api.add_job(JOB, count=3000)  # 30 pages
    fake_api.inject(*[Fault(delay=0.05)] * 30)
    async with http.get(f"{service}/jobs/{JOB}/checkpoints/stream") as answer:
        await answer.content.readline()
        await fake_api.wait_for_requests(3)
        answer.close()  # hang up
    await asyncio.sleep(0.3)
    after_hang_up = len(fake_api.requests)
    await asyncio.sleep(0.5)
    assert len(fake_api.requests) == after_hang_up < 30


def _hang_up_after_first_bytes(port: int, path: str, *, reset: bool) -> bytes:
    """Ask for ``path`` from another thread, read a little, then hang up (RST if ``reset``).

    The caller must be outside the server's event loop: only then can it hang up while
    the server is busy sending, which is when failed sends pile up.
    """
    with socket.socket() as sock:
        # A small window: the server cannot push the whole walk into socket buffers.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        first = sock.recv(1024)
        if reset:  # close with RST, as a crashed or killed caller does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return first


@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
async def test_hanging_up_mid_stream_logs_little_and_stops_the_walk(
    service: str, fake_api: FakeAPIServer, caplog: pytest.LogCaptureFixture, reset: bool
) -> None:
    """A caller that hangs up mid-stream costs a few log lines at most, and no more pages."""
    caplog.set_level(logging.WARNING)
    fake_api.add_job(JOB, count=5000)  # 50 pages: far more than the caller takes
    port = int(service.rsplit(":", 1)[1])
    path = f"/jobs/{JOB}/checkpoints/stream"
    first = await asyncio.to_thread(_hang_up_after_first_bytes, port, path, reset=reset)
    assert first.startswith(b"HTTP/1.1 200")
    # Wait for the walk to settle: the request count stops moving.
    settled = -1
    for _ in range(40):
        await asyncio.sleep(0.05)
        if len(fake_api.requests) == settled:
            break
        settled = len(fake_api.requests)
    await asyncio.sleep(0.2)
    assert len(fake_api.requests) == settled < 50
    failed_sends = [r for r in caplog.records if "socket.send() raised exception" in r.message]
    assert len(failed_sends) <= 2, f"{len(failed_sends)} failed-send warnings"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ---- the watch endpoint ---------------------------------------------------------------

LIVE = "ftjob-live"
TIMELINE = JobTimeline(validating_files=2, queued=3, checkpoint_every=5)


async def _watch(http: aiohttp.ClientSession, url: str) -> list[dict[str, object]]:
    """GET a watch and read it to its end, one NDJSON line at a time."""
    async with http.get(url) as answer:
        assert answer.status == 200
        assert answer.content_type == "application/x-ndjson"
        return [orjson.loads(line) async for line in answer.content]


async def test_watch_streams_each_new_checkpoint_then_the_finished_job(
    service: str, http: aiohttp.ClientSession, fake_api: FakeAPIServer
) -> None:
    """A running job: its checkpoints oldest first, as they appear, then the job, succeeded."""
    made = fake_api.add_running_job(LIVE, count=5, timeline=TIMELINE)
    lines = await _watch(http, f"{service}/jobs/{LIVE}/checkpoints/watch?interval=2")
    *checkpoints, job = lines
    assert checkpoints == [to_wire(c) for c in reversed(made)]
    assert job["object"] == "fine_tuning.job"
    assert job["id"] == LIVE
    assert job["status"] == "succeeded"
    assert isinstance(job["fine_tuned_model"], str)


@pytest.mark.parametrize("outcome", ["failed", "cancelled"])
async def test_watch_ends_with_the_job_however_it_ended(
    service: str, http: aiohttp.ClientSession, fake_api: FakeAPIServer, outcome: str
) -> None:
    """A failed or cancelled job ends the stream too: the last line says how, error included."""
    timeline = JobTimeline(
        validating_files=2,
        queued=3,
        checkpoint_every=5,
        outcome=outcome,  # type: ignore[arg-type]
        error_code="invalid_training_file",
        error_message="bad line 3",
        error_param="training_file",
    )
    made = fake_api.add_running_job(LIVE, count=2, timeline=timeline)
    *checkpoints, job = await _watch(http, f"{service}/jobs/{LIVE}/checkpoints/watch?interval=4")
    assert [c["id"] for c in checkpoints] == [c.id for c in reversed(made)]
    assert job["status"] == outcome
    if outcome == "failed":
        assert job["error"] == {
            "code": "invalid_training_file",
            "message": "bad line 3",
            "param": "training_file",
        }
    else:
        assert job["error"] is None


async def test_watch_since_streams_only_newer_checkpoints(
    service: str, http: aiohttp.ClientSession, fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """``since``: only the checkpoints after it; a job already over ends the stream at once."""
    made = list(reversed(fake_api.add_running_job(LIVE, count=6, timeline=TIMELINE)))
    fake_clock.advance(TIMELINE.duration(6))
    url = f"{service}/jobs/{LIVE}/checkpoints/watch?since={made[3].id}"
    *checkpoints, job = await _watch(http, url)
    assert [c["id"] for c in checkpoints] == [c.id for c in made[4:]]
    assert job["status"] == "succeeded"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("", 404),
        ("?interval=0", 422),
        ("?interval=soon", 422),
        ("?interval=86400", 422),
        ("?since=", 422),
    ],
)
async def test_watch_refuses_before_streaming(
    service: str, http: aiohttp.ClientSession, fake_api: FakeAPIServer, query: str, status: int
) -> None:
    """An unknown job is a 404, a bad interval or an empty ``since`` a 422, before any line."""
    job = "ftjob-missing" if status == 404 else "ftjob-abc123"
    async with http.get(f"{service}/jobs/{job}/checkpoints/watch{query}") as answer:
        assert answer.status == status
        assert answer.content_type == "application/json"


async def test_a_failure_mid_watch_ends_with_the_since_that_resumes_it(
    service: str, http: aiohttp.ClientSession, fake_api: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """A poll failing after its retries ends the stream; ``since=resume_after`` goes on exactly."""
    made = list(reversed(fake_api.add_running_job(LIVE, count=6, timeline=TIMELINE)))
    fake_clock.advance(TIMELINE.running_from + 2 * TIMELINE.checkpoint_every)
    # The job read before streaming, then two polls (job, page) pass; the third fails.
    fake_api.inject(*[Fault()] * 5, *[Fault(status=500)] * 3)
    *checkpoints, failure = await _watch(
        http, f"{service}/jobs/{LIVE}/checkpoints/watch?interval=2"
    )
    assert len(checkpoints) >= 2
    assert failure == {"error": "InternalServerError", "resume_after": checkpoints[-1]["id"]}
    url = f"{service}/jobs/{LIVE}/checkpoints/watch?interval=2&since={failure['resume_after']}"
    *rest, job = await _watch(http, url)
    assert [c["id"] for c in checkpoints + rest] == [c.id for c in made]
    assert job["status"] == "succeeded"


class StuckClock(FakeClock):
    """A client clock whose waits last until cancelled, noting that they were."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.waiting.set()
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def test_hanging_up_while_the_watch_waits_stops_it(
    fake_api_env: FakeAPIServer, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """A caller that hangs up between polls cancels the wait at once: no poll follows."""
    fake_api_env.add_running_job(LIVE, count=10, timeline=TIMELINE)
    fake_clock.advance(TIMELINE.running_from + 2 * TIMELINE.checkpoint_every)
    clock = StuckClock()
    async with serving(fake_api_env, clock) as service:
        async with http.get(f"{service}/jobs/{LIVE}/checkpoints/watch?interval=30") as answer:
            first = orjson.loads(await answer.content.readline())
            await asyncio.wait_for(clock.waiting.wait(), timeout=10)
            polled = len(fake_api_env.requests)
            answer.close()  # hang up while the watch waits for its next poll
        await asyncio.wait_for(clock.cancelled.wait(), timeout=10)
        await asyncio.sleep(0.1)  # time for a poll, had the watch gone on
        assert len(fake_api_env.requests) == polled
    assert first["object"] == "fine_tuning.job.checkpoint"
    assert clock.sleeps == [pytest.approx(30, rel=0.1)]
