"""The pure retry rules: what is retried and how long to wait."""

from __future__ import annotations

import email.utils

import pytest

from fine_tune_ckpt import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    PaginationError,
)
from fine_tune_ckpt._errors import error_for_status
from fine_tune_ckpt._retry import (
    backoff_seconds,
    retry_after_seconds,
    retry_wait,
    should_retry,
)

NOW = 1_700_000_000.0


def _status(status: int, **headers: str) -> APIStatusError:
    return error_for_status(status, b"", headers)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 599])
def test_retryable_statuses(status: int) -> None:
    """408, 409, 429 and every 5xx are retried."""
    assert should_retry(_status(status))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422, 300, 304])
def test_other_statuses_are_not_retried(status: int) -> None:
    """Other statuses are final."""
    assert not should_retry(_status(status))


def test_connection_errors_and_timeouts_are_retried() -> None:
    """A failed connection or a timeout is retried."""
    assert should_retry(APIConnectionError("reset"))
    assert should_retry(APITimeoutError("slow"))


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [(500, "false", False), (400, "true", True), (429, "FALSE", False), (404, " True ", True)],
)
def test_x_should_retry_overrides_the_status(status: int, header: str, expected: bool) -> None:
    """``x-should-retry`` wins over the status rule, in either direction."""
    assert should_retry(_status(status, **{"x-should-retry": header})) is expected


def test_x_should_retry_with_another_value_is_ignored() -> None:
    """An unknown ``x-should-retry`` value leaves the status rule in charge."""
    assert should_retry(_status(503, **{"x-should-retry": "maybe"}))


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bug"),
        APIResponseValidationError("bad", status_code=200),
        PaginationError("loop"),
    ],
)
def test_other_failures_are_never_retried(error: Exception) -> None:
    """Bugs, invalid pages and pagination errors are not retried."""
    assert not should_retry(error)


def test_cancellation_is_never_retried() -> None:
    """``asyncio.CancelledError`` is not a failure to retry."""
    import asyncio

    assert not should_retry(asyncio.CancelledError())


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "junk", "retry-after": "3"}, 3.0),
        ({"retry-after": "60"}, 60.0),
        ({"Retry-After": "4"}, None),  # plain dict: the transport passes case-insensitive ones
        ({"retry-after": "61"}, None),
        ({"retry-after": "0"}, None),
        ({"retry-after": "-3"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_retry_after_headers(headers: dict[str, str], expected: float | None) -> None:
    """``retry-after-ms`` then ``retry-after`` is obeyed when in (0, 60] seconds."""
    assert retry_after_seconds(headers, now=NOW) == expected


def test_retry_after_as_http_date() -> None:
    """``retry-after`` may be an HTTP date, counted from now."""
    date = email.utils.formatdate(NOW + 5, usegmt=True)
    assert retry_after_seconds({"retry-after": date}, now=NOW) == pytest.approx(5.0)
    past = email.utils.formatdate(NOW - 5, usegmt=True)
    assert retry_after_seconds({"retry-after": past}, now=NOW) is None


def test_retry_after_lookup_is_case_insensitive_on_errors() -> None:
    """Header names on errors match in any case, as HTTP says."""
    error = _status(429, **{"Retry-After": "7"})
    assert retry_wait(error, 0, now=NOW, random=lambda: 0.0) == 7.0


@pytest.mark.parametrize(
    ("retries_done", "expected"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0), (30, 8.0)],
)
def test_backoff_doubles_from_half_a_second_to_eight(retries_done: int, expected: float) -> None:
    """With no jitter, backoff is 0.5 s doubling up to 8 s."""
    assert backoff_seconds(retries_done, jitter=0.0) == expected


def test_jitter_shortens_backoff_by_at_most_a_quarter() -> None:
    """Jitter keeps the wait within [75 %, 100 %] of the base wait."""
    assert backoff_seconds(2, jitter=0.999999) == pytest.approx(1.5, rel=1e-5)
    assert backoff_seconds(2, jitter=0.5) == 1.75


def test_wait_falls_back_to_backoff_without_a_usable_header() -> None:
    """A 503 without ``retry-after`` (or a connection error) backs off exponentially."""
    assert retry_wait(_status(503), 1, now=NOW, random=lambda: 0.0) == 1.0
    assert retry_wait(_status(503, **{"retry-after": "600"}), 0, now=NOW, random=lambda: 0) == 0.5
    assert retry_wait(APIConnectionError("x"), 3, now=NOW, random=lambda: 0.0) == 4.0
