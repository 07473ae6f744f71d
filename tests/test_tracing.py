"""OpenTelemetry: a CLIENT span per attempt inside an INTERNAL span per page, and a metric.

The SDK's in-memory exporters collect what the library reports through the API. The
providers are set once for the process (OpenTelemetry allows no other way); each test
clears what was collected before it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

otel_trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry import metrics  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from fine_tune_ckpt import AsyncClient, NotFoundError  # noqa: E402
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault  # noqa: E402

JOB = "ftjob-abc123"
PAGE = "fine_tuning.jobs.checkpoints.list"


class Counting(SpanProcessor):
    """Counts spans started and ended, so a span left open shows."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1


EXPORTER = InMemorySpanExporter()
READER = InMemoryMetricReader()
COUNTING = Counting()


@pytest.fixture(scope="module", autouse=True)
def _providers() -> None:
    """Install the SDK's providers once, feeding in-memory exporters."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    provider.add_span_processor(COUNTING)
    otel_trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture(autouse=True)
def _fresh() -> None:
    """Each test sees only its own spans and metric points."""
    EXPORTER.clear()
    READER.get_metrics_data()  # drain
    COUNTING.started = COUNTING.ended = 0


def _spans(kind: SpanKind | None = None) -> list[Any]:
    """The finished spans (of ``kind``), typed loosely: the SDK's attributes are Optional."""
    spans: list[Any] = list(EXPORTER.get_finished_spans())
    return [span for span in spans if kind is None or span.kind == kind]


def _client(fake: FakeAPIServer, **options: Any) -> AsyncClient:
    return AsyncClient(api_key=fake.api_key, base_url=fake.base_url, clock=FakeClock(), **options)


async def test_pages_and_attempts_nest_under_the_callers_span(fake_api: FakeAPIServer) -> None:
    """Three pages: three INTERNAL spans under the caller's span, each over one GET."""
    tracer = otel_trace.get_tracer("test")
    async with _client(fake_api) as client:
        with tracer.start_as_current_span("caller") as caller:
            items = [cp async for cp in client.checkpoints.list(JOB, limit=10)]
    assert len(items) == 25
    pages = _spans(SpanKind.INTERNAL)
    pages = [span for span in pages if span.name == PAGE]
    assert [span.attributes["fine_tune_ckpt.page.number"] for span in pages] == [1, 2, 3]
    assert [span.attributes["fine_tune_ckpt.page.items"] for span in pages] == [10, 10, 5]
    assert all(span.attributes["fine_tuning.job.id"] == JOB for span in pages)
    caller_id = caller.get_span_context().span_id
    assert all(span.parent is not None and span.parent.span_id == caller_id for span in pages)
    attempts = _spans(SpanKind.CLIENT)
    assert len(attempts) == 3
    page_ids = {span.context.span_id for span in pages}
    for attempt in attempts:
        assert attempt.name == "GET"
        assert attempt.parent is not None
        assert attempt.parent.span_id in page_ids
        attributes = attempt.attributes
        assert attributes["http.request.method"] == "GET"
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["server.port"] == fake_api.port
        assert attributes["http.response.status_code"] == 200
        assert str(attributes["url.full"]).startswith(f"{fake_api.base_url}/fine_tuning/jobs/")
        assert "http.request.resend_count" not in attributes
    assert COUNTING.started == COUNTING.ended


async def test_a_retried_page_has_one_span_per_attempt(fake_api: FakeAPIServer) -> None:
    """A 503 then a 200: two GET spans under one page, the first an error, the second a resend."""
    fake_api.inject(Fault(status=503))
    async with _client(fake_api) as client:
        await client.checkpoints.list(JOB)
    (page,) = [span for span in _spans() if span.name == PAGE]
    first, second = sorted(_spans(SpanKind.CLIENT), key=lambda span: span.start_time or 0)
    assert first.attributes["http.response.status_code"] == 503
    assert first.attributes["error.type"] == "503"
    assert first.status.status_code == StatusCode.ERROR
    assert second.attributes["http.request.resend_count"] == 1
    assert second.status.status_code != StatusCode.ERROR
    assert {first.parent.span_id, second.parent.span_id} == {page.context.span_id}


async def test_failures_mark_both_spans(fake_api: FakeAPIServer) -> None:
    """A 404 is an error on the attempt and on the page; a dropped answer names its class."""
    async with _client(fake_api, max_retries=0) as client:
        with pytest.raises(NotFoundError):
            await client.checkpoints.list("ftjob-missing")
        fake_api.inject(Fault(drop_connection=True), Fault(drop_connection=True))
        with pytest.raises(Exception):  # noqa: B017, PT011 - the class is checked below
            await client.checkpoints.list(JOB)
    attempts = sorted(_spans(SpanKind.CLIENT), key=lambda span: span.start_time or 0)
    assert attempts[0].attributes["error.type"] == "404"
    assert attempts[-1].attributes["error.type"] == "fine_tune_ckpt.APIConnectionError"
    assert all(span.status.status_code == StatusCode.ERROR for span in attempts)
    pages = [span for span in _spans() if span.name == PAGE]
    assert all(span.status.status_code == StatusCode.ERROR for span in pages)
    assert pages[0].attributes["error.type"] == "404"


async def test_no_secret_reaches_a_span_or_metric(fake_api: FakeAPIServer) -> None:
    """Key, organization, project and secret-looking query values appear nowhere."""
    secrets = ("sk-span-SECRET", "org-span-SECRET", "proj_span_SECRET", "q-span-SECRET")
    fake = FakeAPIServer(api_key=secrets[0])
    async with fake:
        fake.add_job(JOB, count=3)
        async with AsyncClient(
            api_key=secrets[0],
            organization=secrets[1],
            project=secrets[2],
            base_url=fake.base_url,
            default_query={"api_key": secrets[3]},
        ) as client:
            await client.checkpoints.list(JOB)
            fake.inject(Fault(status=500))
            await client.checkpoints.list(JOB, max_retries=1)
    text = "".join(str(span.to_json()) for span in _spans())
    metrics_data: Any = READER.get_metrics_data()
    text += str(metrics_data.to_json())
    assert not [secret for secret in secrets if secret in text]
    assert "REDACTED" in text


async def test_the_duration_histogram_has_a_point_per_attempt(fake_api: FakeAPIServer) -> None:
    """http.client.request.duration records each attempt, in seconds, by status."""
    fake_api.inject(Fault(status=503))
    async with _client(fake_api) as client:
        await client.checkpoints.list(JOB)
    data: Any = READER.get_metrics_data()
    points: list[Any] = [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "http.client.request.duration" and metric.unit == "s"
        for point in metric.data.data_points
        # Totals are cumulative across the process: keep this test's server's points.
        if point.attributes.get("server.port") == fake_api.port
    ]
    statuses = sorted(point.attributes["http.response.status_code"] for point in points)
    assert statuses == [200, 503]
    assert sum(point.count for point in points) == 2
    assert all(point.attributes["server.address"] == "127.0.0.1" for point in points)


async def test_every_span_ends_when_a_walk_is_abandoned(fake_api: FakeAPIServer) -> None:
    """Breaking out mid-walk (a read-ahead in flight) leaves no span open."""
    async with _client(fake_api) as client:
        async for _ in client.checkpoints.list(JOB, limit=5):
            break
        await client.checkpoints.list(JOB, max_items=3).to_list()
    assert COUNTING.started == COUNTING.ended > 0


def test_without_the_api_nothing_is_imported_and_listing_works() -> None:
    """With opentelemetry unimportable, the library lists as ever and reports nothing."""
    script = """
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if not installed
from fine_tune_ckpt import AsyncClient
from fine_tune_ckpt._tracing import enabled
from fine_tune_ckpt.testing import FakeAPIServer

async def main():
    async with FakeAPIServer() as fake:
        fake.add_job("ftjob-x", count=12)
        async with AsyncClient(api_key=fake.api_key, base_url=fake.base_url) as client:
            return len(await client.checkpoints.list("ftjob-x").to_list())

assert not enabled()
assert asyncio.run(main()) == 12
assert not any(name.startswith("opentelemetry.") for name in sys.modules)
print("ok")
"""
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_library_never_imports_the_sdk() -> None:
    """Importing and using the library pulls in opentelemetry's API, never its SDK."""
    script = """
import asyncio, sys
from fine_tune_ckpt import AsyncClient
from fine_tune_ckpt._tracing import enabled
assert enabled()
assert not any(name.startswith("opentelemetry.sdk") for name in sys.modules)
print("ok")
"""
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


_ACTIVE_SCENARIOS = {
    "a tracer provider set later is seen at once": """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
assert not active() and not active()
trace.set_tracer_provider(TracerProvider())
assert active()
""",
    "a meter provider alone counts": """
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
assert not active()
metrics.set_meter_provider(MeterProvider())
assert active()
""",
    "the API's own no-op meter provider does not": """
from opentelemetry import metrics
assert not active()
metrics.set_meter_provider(metrics.NoOpMeterProvider())
assert not active() and not active()
""",
    "the API's own no-op tracer provider does not": """
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
assert not active()
trace.set_tracer_provider(trace.NoOpTracerProvider())
assert not active() and not active()
from opentelemetry import metrics
metrics.set_meter_provider(MeterProvider())
assert active()
""",
    "a provider named by the environment is loaded": """
assert active()
""",
    "without the API's globals the public way answers": """
import fine_tune_ckpt._tracing as tracing
tracing._no_provider_yet = lambda: None  # as if another version of the API
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
assert not active()
trace.set_tracer_provider(TracerProvider())
assert active()
""",
}


@pytest.mark.parametrize("scenario", sorted(_ACTIVE_SCENARIOS))
def test_active_follows_the_providers(scenario: str) -> None:
    """``active()`` (asked at every page) says whether a provider is set, as the API would.

    Each in a fresh interpreter: a provider can be set only once per process.
    """
    environment = {**os.environ}
    environment.pop("OTEL_PYTHON_TRACER_PROVIDER", None)
    environment.pop("OTEL_PYTHON_METER_PROVIDER", None)
    if "environment" in scenario:
        environment["OTEL_PYTHON_TRACER_PROVIDER"] = "sdk_tracer_provider"
    script = (
        "from fine_tune_ckpt._tracing import active, _provider_set\n"
        + _ACTIVE_SCENARIOS[scenario]
        + "assert active() == _provider_set()\nprint('ok')\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


async def test_a_cancelled_attempt_is_marked_so(fake_api: FakeAPIServer) -> None:
    """An attempt the caller cancels ends with error.type 'cancelled', status Unset."""
    import asyncio

    fake_api.inject(Fault(delay=5))
    async with _client(fake_api) as client:
        task = asyncio.ensure_future(client.checkpoints.list(JOB).to_list())
        await fake_api.wait_for_requests(1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (attempt,) = _spans(SpanKind.CLIENT)
    assert attempt.attributes["error.type"] == "cancelled"
    assert attempt.status.status_code == StatusCode.UNSET
    assert COUNTING.started == COUNTING.ended


@pytest.mark.parametrize("name", ["sig", "Signature", "X-Goog-Signature", "AWSAccessKeyId", "sas"])
async def test_signature_query_values_are_redacted_in_url_full(
    fake_api: FakeAPIServer, name: str
) -> None:
    """The semantic conventions' secret query parameters read REDACTED in url.full."""
    async with _client(fake_api) as client:
        await client.checkpoints.list(JOB, extra_query={name: "q-SIG-SECRET"})
    (attempt,) = _spans(SpanKind.CLIENT)
    assert "q-SIG-SECRET" not in attempt.attributes["url.full"]
    assert f"{name}=REDACTED" in attempt.attributes["url.full"]


async def test_a_jobs_listing_has_its_own_page_spans(fake_api: FakeAPIServer) -> None:
    """``client.jobs.list()`` pages are spans named for that listing, with no job id."""
    for n in range(5):
        fake_api.add_job(f"ftjob-traced-{n}", count=1)
    async with _client(fake_api) as client:
        jobs = [job async for job in client.jobs.list(limit=2)]
        await client.jobs.retrieve(JOB)
    assert len(jobs) == 6
    pages = [span for span in _spans(SpanKind.INTERNAL) if span.name == "fine_tuning.jobs.list"]
    assert [span.attributes["fine_tune_ckpt.page.number"] for span in pages] == [1, 2, 3]
    assert all("fine_tuning.job.id" not in span.attributes for span in pages)
    assert len(_spans(SpanKind.CLIENT)) == 4  # three pages and the retrieve
    assert COUNTING.started == COUNTING.ended
