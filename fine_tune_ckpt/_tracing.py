"""OpenTelemetry at two seams only: a CLIENT span per HTTP attempt, an INTERNAL span per page.

Optional. The only module that imports OpenTelemetry, and only its API
(``opentelemetry-api``, the ``fine-tune-ckpt[otel]`` extra), never the SDK: an application
configures the SDK and exporters, this library only reports into them. Without the API
installed every function here hands back a shared do-nothing handle.

- Each HTTP attempt (redirects included, retries each their own) is one CLIENT span named
  ``GET`` with the stable HTTP client conventions: ``http.request.method``,
  ``server.address``, ``server.port``, ``url.full`` (never user info; query values under
  secret-looking names replaced by ``REDACTED``), ``http.response.status_code``,
  ``http.request.resend_count`` on a retry, and on failure (a 4xx or 5xx answer included)
  ``error.type`` and span status Error. Its duration goes to the
  ``http.client.request.duration`` histogram, in seconds.
- Each page is one INTERNAL span named ``fine_tuning.jobs.checkpoints.list``, parent of
  its attempts, with ``fine_tuning.job.id``, ``fine_tune_ckpt.page.number`` (1-based) and
  ``fine_tune_ckpt.page.items``. Its parent is the span current where the caller iterates.

No span or metric ever carries the key, organization, project or any header value.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from yarl import URL

from ._errors import APIStatusError
from ._options import is_sensitive
from ._redact import without_user_info
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram
    from opentelemetry.trace import Span, Tracer

__all__ = ["AttemptTrace", "PageTrace", "active", "enabled", "start_attempt", "start_page"]

_SCOPE = "fine_tune_ckpt"


@functools.cache
def _instruments() -> tuple[Tracer, Histogram] | None:
    """The tracer and the duration histogram, or ``None`` without opentelemetry-api.

    Proxy objects of the API: they follow a provider the application sets later.
    """
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        return None
    tracer = trace.get_tracer(_SCOPE, __version__)
    histogram = metrics.get_meter(_SCOPE, __version__).create_histogram(
        "http.client.request.duration",
        unit="s",
        description="Duration of HTTP client requests.",
    )
    return tracer, histogram


def enabled() -> bool:
    """Whether opentelemetry-api is importable, so spans and metrics may be reported."""
    return _instruments() is not None


def active() -> bool:
    """Whether spans and measurements would reach anything: a provider is set.

    That is: opentelemetry-api is installed and the application has set a tracer or meter
    provider (an SDK, usually). Until it has, every span and measurement would go to the
    API's no-op objects: not making them at all spares each page tens of microseconds.
    Asked at every page and attempt, so a provider set later is picked up at once; the
    answer costs a few attribute reads while none is set, and one once one is (the API
    never unsets a provider).
    """
    global _provider_seen
    if _provider_seen:
        return True
    if _instruments() is None:
        return False
    unset = _no_provider_yet()
    if unset is not None and unset():
        return False
    _provider_seen = _provider_set()
    return _provider_seen


#: A provider was seen set: it stays so for the life of the process.
_provider_seen = False


@functools.cache
def _no_provider_yet() -> Callable[[], bool] | None:
    """A quick "certainly no provider set yet", or ``None`` where it cannot be had.

    ``get_tracer_provider()`` looks ``OTEL_PYTHON_TRACER_PROVIDER`` up in ``os.environ``
    on every call until a provider is set (a ``KeyError`` raised and caught each time),
    and the meter's likewise: together more than the rest of a page's tracing. The API's
    own globals say the same in two attribute reads. Where they are not found (another
    version of the API), or a variable names a provider to load, the public way is used.
    """
    from opentelemetry import trace
    from opentelemetry.environment_variables import (
        OTEL_PYTHON_METER_PROVIDER,
        OTEL_PYTHON_TRACER_PROVIDER,
    )
    from opentelemetry.metrics import _internal as metrics_internal

    if OTEL_PYTHON_TRACER_PROVIDER in os.environ or OTEL_PYTHON_METER_PROVIDER in os.environ:
        return None
    if not hasattr(trace, "_TRACER_PROVIDER") or not hasattr(metrics_internal, "_METER_PROVIDER"):
        return None

    def unset() -> bool:
        return trace._TRACER_PROVIDER is None and metrics_internal._METER_PROVIDER is None

    return unset


def _provider_set() -> bool:
    """Whether the application has set a tracer or meter provider, asked the public way."""
    from opentelemetry import metrics, trace

    # The API's own no-op providers, set on purpose, count as none: their spans go nowhere.
    if not isinstance(
        trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider
    ):
        return True
    meter_provider = metrics.get_meter_provider()
    # The API's stand-in before one is set is private (_ProxyMeterProvider): named here.
    return not isinstance(meter_provider, metrics.NoOpMeterProvider) and (
        type(meter_provider).__name__ != "_ProxyMeterProvider"
    )


def _error_type(error: BaseException) -> str:
    """Low-cardinality ``error.type``: the status for an error answer, else the class."""
    if isinstance(error, APIStatusError) and error.status_code >= 400:
        return str(error.status_code)
    module = type(error).__module__.split(".")[0]
    return f"{module}.{type(error).__qualname__}"


def _safe_url(url: URL) -> str:
    """``url.full`` without user info, and without the values of secret-looking parameters."""
    url = without_user_info(url)
    if any(is_sensitive(name) for name in url.query):
        url = url.with_query(
            [
                (name, "REDACTED" if is_sensitive(name) else value)
                for name, value in url.query.items()
            ]
        )
    return str(url)


class AttemptTrace:
    """The span and timer of one HTTP attempt."""

    def __init__(self, span: Span, histogram: Histogram, attributes: dict[str, Any]) -> None:
        """Hold a started span; :meth:`close` ends it and records the duration."""
        self._span = span
        self._histogram = histogram
        self._attributes = attributes
        self._started = time.perf_counter()

    def answered(self, status_code: int) -> None:
        """The attempt got an answer with ``status_code`` (2xx: success)."""
        self._span.set_attribute("http.response.status_code", status_code)
        self._attributes["http.response.status_code"] = status_code

    def failed(self, error: BaseException) -> None:
        """The attempt failed with ``error`` (an error answer, or none at all)."""
        from opentelemetry.trace import Status, StatusCode

        if isinstance(error, APIStatusError):
            self.answered(error.status_code)
        error_type = _error_type(error)
        self._span.set_attribute("error.type", error_type)
        self._attributes["error.type"] = error_type
        self._span.set_status(Status(StatusCode.ERROR, error_type))

    def cancelled(self) -> None:
        """The caller stopped the attempt: no outcome, but not a success to count either.

        The span keeps status Unset (nothing failed); ``error.type`` says ``cancelled``
        on it and on the duration metric, so dashboards do not count it as a success.
        """
        self._span.set_attribute("error.type", "cancelled")
        self._attributes["error.type"] = "cancelled"

    def close(self) -> None:
        """End the span and record the attempt's duration."""
        self._histogram.record(time.perf_counter() - self._started, self._attributes)
        self._span.end()


class PageTrace:
    """The span of one page, from its request to its records."""

    def __init__(self, span: Span) -> None:
        """Hold a started span; :meth:`finish`, :meth:`fail` or :meth:`end` ends it."""
        self._span = span
        self._ended = False

    @contextlib.contextmanager
    def current(self) -> Iterator[None]:
        """Make the page's span the current one: its attempts become its children."""
        from opentelemetry import trace

        with trace.use_span(self._span, end_on_exit=False):
            yield

    def finish(self, items: int) -> None:
        """The page arrived with ``items`` checkpoints."""
        self._span.set_attribute("fine_tune_ckpt.page.items", items)
        self.end()

    def fail(self, error: BaseException) -> None:
        """The page could not be had."""
        from opentelemetry.trace import Status, StatusCode

        error_type = _error_type(error)
        self._span.set_attribute("error.type", error_type)
        self._span.set_status(Status(StatusCode.ERROR, error_type))
        self.end()

    def end(self) -> None:
        """End the span (once), e.g. for a page fetched ahead that nobody used."""
        if not self._ended:
            self._ended = True
            self._span.end()


def start_attempt(url: URL, resend_count: int) -> AttemptTrace | None:
    """Start the span of an HTTP attempt at ``url``; ``None`` without OpenTelemetry."""
    instruments = _instruments()
    if instruments is None or not active():
        return None
    tracer, histogram = instruments
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {
        "http.request.method": "GET",
        "server.address": url.host or "",
        "server.port": url.port or 0,
    }
    span_attributes = {**attributes, "url.full": _safe_url(url)}
    if resend_count:
        span_attributes["http.request.resend_count"] = resend_count
    span = tracer.start_span("GET", kind=SpanKind.CLIENT, attributes=span_attributes)
    return AttemptTrace(span, histogram, attributes)


def start_page(operation: str, number: int, fine_tuning_job_id: str | None) -> PageTrace | None:
    """Start the span of page ``number`` of a listing; ``None`` without OpenTelemetry.

    ``operation`` names the listing (``fine_tuning.jobs.checkpoints.list``); the job id is
    an attribute when the listing belongs to one job.
    """
    instruments = _instruments()
    if instruments is None or not active():
        return None
    tracer, _ = instruments
    from opentelemetry.trace import SpanKind

    attributes: dict[str, str | int] = {"fine_tune_ckpt.page.number": number}
    if fine_tuning_job_id is not None:
        attributes["fine_tuning.job.id"] = fine_tuning_job_id
    span = tracer.start_span(operation, kind=SpanKind.INTERNAL, attributes=attributes)
    return PageTrace(span)
