"""The fake's rate limit: a token bucket of requests, and the headers that report it.

Everything here is pure: the server reads its clock and hands the reading in, so a
:class:`FakeClock` makes the limit exactly repeatable. A :class:`TokenBucket` holds up to
``burst`` tokens and gains ``requests_per_second`` of them each second; every request
takes one whole token, or is refused when less than one is left. Tokens are fractional
between requests, so the next one arrives at an exact, computable moment.

The headers follow the API's: ``x-ratelimit-limit-requests`` is the bucket's capacity,
``x-ratelimit-remaining-requests`` the whole tokens left after this request, and
``x-ratelimit-reset-requests`` the time until the bucket is full again, as a Go duration
(``"20ms"``, ``"1.5s"``, ``"6m0s"``), as the API's "time until the limit resets to its
initial state".
"""

from __future__ import annotations

import math

import attrs

__all__ = [
    "Admission",
    "RateLimitPolicy",
    "TokenBucket",
    "azure_rate_limited_message",
    "go_duration",
    "rate_limit_headers",
    "rate_limited_message",
    "retry_after_headers",
    "whole_milliseconds",
]

# A request that arrives within a nanosecond before its token is due gets it, and so does
# one within a billionth of a token: a FakeClock advanced by exactly the wait a refusal
# named lands up to half a float step of the clock's reading short of it (under a
# nanosecond for readings below about six months).
_TIME_EPSILON = 1e-9
_TOKEN_EPSILON = 1e-9
_MS_PER_SECOND = 1000
_MS_PER_MINUTE = 60 * _MS_PER_SECOND
_MS_PER_HOUR = 60 * _MS_PER_MINUTE
# Go's longest duration (int64 nanoseconds, about 292 years) in whole milliseconds: a
# longer wait (a rate of one request a millennium) is reported as this, which a Go-duration
# parser still reads, rather than as a number no client could use.
_MAX_MS = (2**63 - 1) // 1_000_000


def _rate(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value!r}")


def _burst(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


# A hand-written __init__ (attrs runs the validators in __attrs_init__) so that the
# signature reads ``burst: int | None = None`` while the field itself is always an int.
@attrs.frozen(init=False)
class RateLimitPolicy:
    """How many requests the fake takes: ``requests_per_second`` on average, ``burst`` at once.

    A token bucket: it holds up to ``burst`` tokens, starts full and gains
    ``requests_per_second`` tokens a second. Each request takes one; a request that finds
    less than one token is answered 429. ``burst`` defaults to one second's worth of
    requests (at least 1).
    """

    #: Tokens gained per second: the rate the fake sustains.
    requests_per_second: float = attrs.field(validator=_rate)
    #: Tokens the bucket holds: how many requests may come at once after a quiet spell.
    burst: int = attrs.field(validator=_burst)

    def __init__(self, requests_per_second: float, burst: int | None = None) -> None:
        """Check both numbers; ``burst=None`` is one second's worth of requests, at least 1."""
        if burst is None:
            # The rate is checked first, so a bad one is named rather than failing ceil().
            _rate(self, attrs.fields(RateLimitPolicy).requests_per_second, requests_per_second)
            burst = max(1, math.ceil(requests_per_second))
        self.__attrs_init__(requests_per_second, burst)


@attrs.frozen
class Admission:
    """What a :class:`TokenBucket` decided about one request, and its state after it."""

    #: The policy of the bucket that decided.
    policy: RateLimitPolicy
    #: Whether the request took a token (``False``: answer 429).
    admitted: bool
    #: Whole tokens left after this request: ``x-ratelimit-remaining-requests``.
    remaining: int
    #: Seconds until the bucket is full again: ``x-ratelimit-reset-requests``.
    reset: float
    #: Seconds until a token is available; 0 for an admitted request.
    retry_after: float

    @property
    def limit(self) -> int:
        """The bucket's capacity: ``x-ratelimit-limit-requests``."""
        return self.policy.burst


@attrs.frozen
class TokenBucket:
    """A token bucket at one moment: ``tokens`` (fractional) as of the clock reading ``at``.

    Immutable: :meth:`take` returns the bucket after the request beside its verdict.
    """

    policy: RateLimitPolicy
    #: Tokens held at ``at``, between 0 and ``policy.burst``.
    tokens: float
    #: The latest clock reading the bucket has seen, in seconds.
    at: float

    @classmethod
    def full(cls, policy: RateLimitPolicy, *, now: float) -> TokenBucket:
        """A bucket holding ``policy.burst`` tokens at the clock reading ``now``."""
        return cls(policy, float(policy.burst), now)

    def refilled(self, now: float) -> TokenBucket:
        """The bucket at ``now``: the tokens gained since ``at``, up to the capacity.

        A reading before ``at`` (a clock set back) adds nothing and leaves ``at`` where it
        is, so time already counted is never counted twice.
        """
        if now <= self.at:
            return self
        gained = (now - self.at) * self.policy.requests_per_second
        return TokenBucket(self.policy, min(float(self.policy.burst), self.tokens + gained), now)

    def take(self, now: float) -> tuple[TokenBucket, Admission]:
        """Take a token for a request arriving at ``now``: the bucket after it, and the verdict."""
        bucket = self.refilled(now)
        tokens = bucket.tokens
        rate = self.policy.requests_per_second
        slack = max(_TOKEN_EPSILON, rate * _TIME_EPSILON)
        admitted = tokens + slack >= 1
        if admitted:
            tokens = max(tokens - 1, 0.0)
            bucket = TokenBucket(self.policy, tokens, bucket.at)
        missing = self.policy.burst - tokens
        return bucket, Admission(
            policy=self.policy,
            admitted=admitted,
            # The slack forgives float rounding, never past what a full bucket holds after
            # one request: at a high rate it is many tokens, and the limit is the burst.
            remaining=min(math.floor(tokens + slack), self.policy.burst - 1),
            reset=missing / rate if missing > slack else 0.0,
            retry_after=0.0 if admitted else (1 - tokens) / rate,
        )


def whole_milliseconds(seconds: float) -> int:
    """``seconds`` in whole milliseconds, rounded up: waiting that long is always enough.

    A product within float noise of a whole number (``0.005 * 1000`` may come out a hair
    above 5) is that number, not the next one: at most a nanosecond short, which the
    bucket forgives. Waits past Go's longest duration (about 292 years, infinity
    included) are that duration.
    """
    value = seconds * _MS_PER_SECOND
    if not value < _MAX_MS:  # "not <" also catches inf and nan
        return _MAX_MS
    nearest = round(value)
    if math.isclose(value, nearest, rel_tol=1e-12, abs_tol=1e-6):
        return nearest
    return math.ceil(value)


def _whole_seconds(seconds: float) -> int:
    """``seconds`` in whole seconds, rounded up from the whole milliseconds."""
    return -(-whole_milliseconds(seconds) // _MS_PER_SECOND)


def go_duration(seconds: float) -> str:
    """``seconds``, rounded up to the millisecond, as Go's ``time.Duration`` writes it.

    As the API sends ``x-ratelimit-reset-*``: ``"0s"``, ``"20ms"``, ``"1s"``, ``"1.5s"``,
    ``"6m0s"``, ``"1h0m0.25s"``. Never in microseconds, so the text stays ASCII.
    """
    ms = whole_milliseconds(seconds)
    if ms == 0:
        return "0s"
    if ms < _MS_PER_SECOND:
        return f"{ms}ms"
    hours, rest = divmod(ms, _MS_PER_HOUR)
    minutes, rest = divmod(rest, _MS_PER_MINUTE)
    whole, fraction = divmod(rest, _MS_PER_SECOND)
    text = f"{whole}.{fraction:03d}".rstrip("0") if fraction else str(whole)
    if hours:
        return f"{hours}h{minutes}m{text}s"
    if minutes:
        return f"{minutes}m{text}s"
    return f"{text}s"


def rate_limit_headers(admission: Admission) -> dict[str, str]:
    """The ``x-ratelimit-*-requests`` headers that report ``admission``."""
    return {
        "x-ratelimit-limit-requests": str(admission.limit),
        "x-ratelimit-remaining-requests": str(admission.remaining),
        "x-ratelimit-reset-requests": go_duration(admission.reset),
    }


def retry_after_headers(admission: Admission) -> dict[str, str]:
    """``retry-after-ms`` and ``retry-after`` (whole seconds) of a refused request.

    Both are rounded up, so a client that waits what either says finds a token.
    """
    return {
        "retry-after-ms": str(whole_milliseconds(admission.retry_after)),
        "retry-after": str(_whole_seconds(admission.retry_after)),
    }


def rate_limited_message(admission: Admission) -> str:
    """The OpenAI API's message for a refused request, with the fake's numbers."""
    return (
        "Rate limit reached for requests in organization org-fake on requests per second "
        f"(RPS): Limit {admission.policy.requests_per_second:g}, Burst {admission.limit}, Used "
        f"{admission.limit - admission.remaining}, Requested 1. Please try again in "
        f"{go_duration(admission.retry_after)}. Visit "
        "https://platform.openai.com/account/rate-limits to learn more."
    )


def azure_rate_limited_message(admission: Admission) -> str:
    """Azure OpenAI's message for a refused request, naming the whole seconds to wait."""
    seconds = _whole_seconds(admission.retry_after)
    return (
        "Requests to the fine-tuning API have exceeded the call rate limit of your current "
        f"pricing tier. Please retry after {seconds} second{'' if seconds == 1 else 's'}."
    )
