"""The retry rules, as pure functions: which failures to retry and how long to wait.

The transport feeds these to tenacity; nothing here touches a socket or a clock.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable, Mapping

from ._errors import APIConnectionError, APIStatusError

__all__ = [
    "INITIAL_BACKOFF",
    "MAX_BACKOFF",
    "MAX_RETRY_AFTER",
    "backoff_seconds",
    "retry_after_seconds",
    "retry_wait",
    "should_retry",
]

#: First backoff wait, in seconds; it doubles on each retry.
INITIAL_BACKOFF = 0.5
#: Longest backoff wait, in seconds.
MAX_BACKOFF = 8.0
#: A server's ``Retry-After`` is obeyed only up to this many seconds; longer asks are
#: treated as "back off", not as "block this caller for an hour".
MAX_RETRY_AFTER = 60.0

_RETRIED_STATUSES = frozenset({408, 409, 429})


def should_retry(error: BaseException) -> bool:
    """Tell whether a failed attempt is worth another try.

    Connection failures and timeouts are; so are 408, 409, 429 and every 5xx, but no other
    status. A server's ``x-should-retry: true|false`` overrides the status. Anything that is
    not one of our API errors (notably ``asyncio.CancelledError``) never is.
    """
    if isinstance(error, APIConnectionError):
        return True
    if not isinstance(error, APIStatusError):
        return False
    override = error.headers.get("x-should-retry", "").strip().lower()
    if override == "true":
        return True
    if override == "false":
        return False
    return error.status_code in _RETRIED_STATUSES or error.status_code >= 500


def retry_after_seconds(headers: Mapping[str, str], *, now: float) -> float | None:
    """Read the server's requested wait from ``retry-after-ms`` or ``retry-after``.

    ``retry-after`` may be seconds or an HTTP date (compared with ``now``, a Unix time).
    Returns ``None`` when there is no usable value in (0, ``MAX_RETRY_AFTER``].
    """
    wait: float | None = None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        wait = _parse_float(milliseconds)
        wait = None if wait is None else wait / 1000
    if wait is None:
        value = headers.get("retry-after")
        if value is not None:
            wait = _parse_float(value)
            if wait is None:
                wait = _parse_http_date(value, now=now)
    if wait is None or not 0 < wait <= MAX_RETRY_AFTER:
        return None
    return wait


def backoff_seconds(retries_done: int, *, jitter: float) -> float:
    """Exponential backoff: 0.5 s doubling to at most 8 s, shortened by up to a quarter.

    ``jitter`` is a number in [0, 1) (from a random source) so that many clients failing
    together do not retry together.
    """
    base = min(INITIAL_BACKOFF * 2.0**retries_done, MAX_BACKOFF)
    return base * (1 - 0.25 * jitter)


def retry_wait(
    error: BaseException,
    retries_done: int,
    *,
    now: float,
    random: Callable[[], float],
) -> float:
    """Seconds to wait before the next attempt after ``error``.

    The server's ``retry-after-ms``/``retry-after`` wins when usable, else backoff.
    """
    if isinstance(error, APIStatusError):
        requested = retry_after_seconds(error.headers, now=now)
        if requested is not None:
            return requested
    return backoff_seconds(retries_done, jitter=random())


def _parse_float(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _parse_http_date(value: str, *, now: float) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.timestamp() - now
