"""Checks of the caller's arguments, run before any request so nothing is half-done."""

from __future__ import annotations

import math

__all__ = [
    "check_bool",
    "check_cursor",
    "check_job_id",
    "check_non_negative_int",
    "check_optional_positive_int",
    "check_optional_rate",
    "check_optional_seconds",
    "check_positive_int",
    "check_sendable",
]


def check_job_id(value: object) -> str:
    """Return ``value`` if it can be a fine-tuning job id, else raise naming the argument."""
    if not isinstance(value, str):
        raise TypeError(f"fine_tuning_job_id must be a str, not {type(value).__name__}")
    if not value.strip():
        raise ValueError("fine_tuning_job_id must not be empty or blank")
    if value in {".", ".."}:
        # Percent-encoding cannot make these safe: servers and proxies normalise them away.
        raise ValueError(f"fine_tuning_job_id must not be {value!r}")
    check_sendable("fine_tuning_job_id", value)
    return value


def check_cursor(name: str, value: object) -> str | None:
    """Return ``value`` if it is ``None`` or a non-empty string cursor."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty; pass None to start from the beginning")
    check_sendable(name, value)
    return value


def check_sendable(name: str, value: str) -> None:
    """Raise ValueError if ``value`` cannot go into a URL: a lone surrogate has no UTF-8.

    Percent-encoding would fail on it, or (yarl, in a query) drop it without a word: an
    ``after`` of one would go out empty and start the listing over.
    """
    if value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{name} holds a lone surrogate ({value[exc.start]!r} at position {exc.start}), "
            "which no URL can carry"
        ) from None


def check_optional_positive_int(name: str, value: object) -> int | None:
    """Return ``value`` if it is ``None`` or an int of at least 1 (``True`` is no number)."""
    return None if value is None else _check_int(name, value, minimum=1)


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int of at least 1 (``True`` is no number)."""
    return _check_int(name, value, minimum=1)


def check_non_negative_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int of at least 0 (``True`` is no number)."""
    return _check_int(name, value, minimum=0)


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def check_optional_seconds(name: str, value: object) -> float | None:
    """Return ``value`` as float seconds if it is ``None`` or a finite number above 0."""
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float: no finite number of seconds
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        shown = value if isinstance(value, float) or abs(value) < 10**30 else "a huge number"
        raise ValueError(f"{name} must be a finite number of seconds above 0, got {shown}")
    return seconds


def check_optional_rate(name: str, value: object) -> float | None:
    """Return ``value`` as a float if it is ``None`` or a finite number above 0 per second."""
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number or None, not {type(value).__name__}")
    try:
        rate = float(value)
    except OverflowError:  # an int too large for a float: no finite rate
        rate = math.inf
    # 1 / rate is the spacing between starts: it must be a finite number of seconds too.
    if not math.isfinite(rate) or rate <= 0 or not math.isfinite(1.0 / rate):
        shown = value if isinstance(value, float) or abs(value) < 10**30 else "a huge number"
        raise ValueError(f"{name} must be a finite number above 0, got {shown}")
    return rate


def check_bool(name: str, value: object) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (not 0, 1 or another truthy value)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__}")
    return value
