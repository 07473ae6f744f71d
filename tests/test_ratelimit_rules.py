"""The fake's token bucket and its headers, as pure arithmetic: no socket, no clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fine_tune_ckpt._metadata import RateLimit, parse_go_duration, rate_limit_from_headers
from fine_tune_ckpt.testing import RateLimitPolicy
from fine_tune_ckpt.testing._ratelimit import (
    Admission,
    TokenBucket,
    azure_rate_limited_message,
    go_duration,
    rate_limit_headers,
    rate_limited_message,
    retry_after_headers,
    whole_milliseconds,
)

POLICY = RateLimitPolicy(requests_per_second=200, burst=50)


def _drain(bucket: TokenBucket, now: float) -> TokenBucket:
    """The bucket after taking every whole token it holds at ``now``."""
    while True:
        after, admission = bucket.take(now)
        if not admission.admitted:
            return bucket
        bucket = after


# -- the policy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "burst"), [(200, 200), (0.5, 1), (2.5, 3), (1, 1), (1_000_000, 1_000_000)]
)
def test_burst_defaults_to_one_second_of_requests(rate: float, burst: int) -> None:
    """Without ``burst``, the bucket holds a second's worth of requests, at least one."""
    assert RateLimitPolicy(rate).burst == burst


@pytest.mark.parametrize("rate", [0, -1, math.nan, math.inf, -math.inf])
def test_a_rate_that_is_not_a_positive_finite_number_is_refused(rate: float) -> None:
    """``requests_per_second`` must be finite and above 0."""
    with pytest.raises(ValueError, match="requests_per_second"):
        RateLimitPolicy(rate, burst=1)


@pytest.mark.parametrize("rate", [True, "200", None])
def test_a_rate_that_is_not_a_number_is_a_type_error(rate: object) -> None:
    """A bool, a string or ``None`` is no rate."""
    with pytest.raises(TypeError, match="requests_per_second"):
        RateLimitPolicy(rate, burst=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(("burst", "error"), [(0, ValueError), (-3, ValueError), (1.5, TypeError)])
def test_a_burst_below_one_or_fractional_is_refused(burst: object, error: type[Exception]) -> None:
    """``burst`` is a whole number of requests, at least 1."""
    with pytest.raises(error, match="burst"):
        RateLimitPolicy(10, burst=burst)  # type: ignore[arg-type]


def test_a_bool_burst_is_refused() -> None:
    """``burst=True`` is a mistake, not one request."""
    with pytest.raises(TypeError, match="burst"):
        RateLimitPolicy(10, burst=True)


# -- the bucket ---------------------------------------------------------------------------


def test_a_full_bucket_takes_a_burst_at_once_then_refuses() -> None:
    """``burst`` requests at one instant are admitted, counting down; the next is refused."""
    bucket = TokenBucket.full(POLICY, now=10.0)
    remaining = []
    for _ in range(50):
        bucket, admission = bucket.take(10.0)
        assert admission.admitted
        assert admission.retry_after == 0.0
        remaining.append(admission.remaining)
    assert remaining == list(range(49, -1, -1))
    bucket, refused = bucket.take(10.0)
    assert refused == Admission(
        policy=POLICY, admitted=False, remaining=0, reset=50 / 200, retry_after=1 / 200
    )
    assert refused.limit == 50


def test_time_refills_at_the_rate_up_to_the_burst() -> None:
    """Each second adds ``requests_per_second`` tokens, never more than ``burst``."""
    empty = _drain(TokenBucket.full(POLICY, now=0.0), 0.0)
    assert empty.tokens == 0.0
    assert empty.refilled(0.1).tokens == pytest.approx(20.0)
    assert empty.refilled(0.25).tokens == 50.0
    assert empty.refilled(1000.0).tokens == 50.0
    # Twenty whole tokens after 0.1 s: twenty requests, then a refusal.
    assert _drain(empty, 0.1).refilled(0.1).tokens < 1


def test_fractional_tokens_count_toward_the_next_request() -> None:
    """Half a token is kept, and the wait names only the half still missing."""
    empty = _drain(TokenBucket.full(POLICY, now=0.0), 0.0)
    half, refused = empty.take(0.0025)
    assert not refused.admitted
    assert half.tokens == pytest.approx(0.5)
    assert refused.retry_after == pytest.approx(0.0025)
    assert refused.reset == pytest.approx(49.5 / 200)
    assert refused.remaining == 0
    # The refusal took nothing: the rest of the wait completes the token.
    _, admitted = half.take(0.005)
    assert admitted.admitted
    assert admitted.remaining == 0


@given(
    rate=st.floats(0.01, 1e6),
    burst=st.integers(1, 1000),
    start=st.floats(0, 1e6),
    tokens=st.floats(0, 0.999),
)
def test_waiting_exactly_the_retry_after_always_finds_a_token(
    rate: float, burst: int, start: float, tokens: float
) -> None:
    """A request sent ``retry_after`` seconds after a refusal is admitted, in float arithmetic."""
    bucket = TokenBucket(RateLimitPolicy(rate, burst=burst), tokens, start)
    bucket, refused = bucket.take(start)
    assert not refused.admitted
    assert refused.retry_after == pytest.approx((1 - tokens) / rate)
    _, admission = bucket.take(start + refused.retry_after)
    assert admission.admitted


def test_a_clock_going_back_adds_nothing_and_counts_nothing_twice() -> None:
    """A reading earlier than the last one refills nothing; time is counted from the latest."""
    empty = _drain(TokenBucket.full(POLICY, now=5.0), 5.0)
    earlier = empty.refilled(4.0)
    assert earlier == empty
    _, refused = empty.take(4.0)
    assert not refused.admitted
    assert refused.retry_after == pytest.approx(1 / 200)
    # Back to 4.0 and on to 5.005: only the 5 ms after 5.0 count.
    assert earlier.refilled(5.005).tokens == pytest.approx(1.0)


@given(
    rate=st.floats(0.1, 1000),
    burst=st.integers(1, 100),
    steps=st.lists(st.floats(-1, 1), max_size=200),
)
def test_the_bucket_never_admits_more_than_burst_plus_rate_times_elapsed(
    rate: float, burst: int, steps: list[float]
) -> None:
    """Over any arrivals (the clock jumping back too), admissions stay within the limit."""
    policy = RateLimitPolicy(rate, burst=burst)
    bucket = TokenBucket.full(policy, now=0.0)
    now = latest = 0.0
    admitted = 0
    for step in steps:
        now += step
        latest = max(latest, now)
        before = bucket.refilled(now).tokens
        bucket, admission = bucket.take(now)
        assert 0.0 <= bucket.tokens <= burst
        assert admission.admitted == (before >= 1 - max(1e-9, rate * 1e-9))
        assert 0 <= admission.remaining <= burst
        assert admission.reset == pytest.approx((burst - bucket.tokens) / rate, abs=1e-8)
        admitted += admission.admitted
        assert admitted <= burst + rate * latest + 1e-6


# -- what the headers say -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.0004, "1ms"),
        (0.005, "5ms"),
        (1 / 200, "5ms"),
        (0.02, "20ms"),
        (0.999, "999ms"),
        (1.0, "1s"),
        (1.5, "1.5s"),
        (1.25, "1.25s"),
        (10.0, "10s"),
        (17.28, "17.28s"),
        (60.0, "1m0s"),
        (360.0, "6m0s"),
        (86.4, "1m26.4s"),
        (3600.0, "1h0m0s"),
        (3723.004, "1h2m3.004s"),
        (90000.0, "25h0m0s"),
    ],
)
def test_durations_are_written_as_go_writes_them(seconds: float, text: str) -> None:
    """Reset times read as the API's ``x-ratelimit-reset-*``: Go's ``Duration.String()``."""
    assert go_duration(seconds) == text


@given(st.integers(0, 10**10))
def test_every_duration_written_parses_back_to_its_milliseconds(ms: int) -> None:
    """What the fake writes, the client's Go-duration parser reads back (to a float step)."""
    text = go_duration(ms / 1000)
    assert text.isascii()
    assert parse_go_duration(text) == pytest.approx(ms / 1000, rel=1e-15, abs=0)


@pytest.mark.parametrize(
    ("seconds", "ms"), [(0.0, 0), (0.005, 5), (0.0050001, 6), (0.0025, 3), (1 / 3, 334)]
)
def test_waits_are_rounded_up_to_whole_milliseconds(seconds: float, ms: int) -> None:
    """A wait in whole milliseconds is never shorter than the exact one (float noise aside)."""
    assert whole_milliseconds(seconds) == ms


@pytest.mark.parametrize("rate", [1e-12, 1e-200, 5e-324])
def test_waits_too_long_for_go_are_capped_at_its_longest_duration(rate: float) -> None:
    """A rate of one request in centuries reports Go's longest duration, still readable."""
    bucket = _drain(TokenBucket.full(RateLimitPolicy(rate, burst=1), now=0.0), 0.0)
    _, refused = bucket.take(0.0)
    headers = {**rate_limit_headers(refused), **retry_after_headers(refused)}
    longest = (2**63 - 1) // 1_000_000
    assert headers["retry-after-ms"] == str(longest)
    assert rate_limit_from_headers(headers).reset_requests == longest / 1000
    assert whole_milliseconds(math.inf) == longest


def test_the_headers_of_an_answer_parse_back_to_the_bucket() -> None:
    """``x-ratelimit-*-requests`` read by the client give the bucket's limit, remaining, reset."""
    bucket = TokenBucket.full(POLICY, now=0.0)
    for _ in range(20):
        bucket, admission = bucket.take(0.0)
    headers = rate_limit_headers(admission)
    assert rate_limit_from_headers(headers) == RateLimit(
        limit_requests=50,
        remaining_requests=30,
        reset_requests=0.1,
        limit_tokens=None,
        remaining_tokens=None,
        reset_tokens=None,
    )


@pytest.mark.parametrize(
    ("rate", "ms", "seconds"),
    [(200, "5", "1"), (0.4, "2500", "3"), (3, "334", "1"), (1, "1000", "1")],
)
def test_a_refusal_says_when_the_next_token_comes(rate: float, ms: str, seconds: str) -> None:
    """``retry-after-ms`` and ``retry-after`` (whole seconds) are rounded up, never short."""
    bucket = _drain(TokenBucket.full(RateLimitPolicy(rate, burst=1), now=0.0), 0.0)
    _, refused = bucket.take(0.0)
    assert retry_after_headers(refused) == {"retry-after-ms": ms, "retry-after": seconds}


def test_the_refusal_messages_read_as_the_services() -> None:
    """The OpenAI message names the limit and the wait; Azure's the whole seconds."""
    bucket = _drain(TokenBucket.full(POLICY, now=0.0), 0.0)
    _, refused = bucket.take(0.0)
    message = rate_limited_message(refused)
    assert message.startswith("Rate limit reached for requests")
    assert "Limit 200, Burst 50, Used 50, Requested 1. Please try again in 5ms." in message
    assert azure_rate_limited_message(refused).endswith("Please retry after 1 second.")
    slow = _drain(TokenBucket.full(RateLimitPolicy(0.25, burst=1), now=0.0), 0.0)
    _, refused = slow.take(0.0)
    assert "Please try again in 4s." in rate_limited_message(refused)
    assert azure_rate_limited_message(refused).endswith("Please retry after 4 seconds.")


@pytest.mark.parametrize("rate", [1.0, 1e6, 1e9, 1e12, 1e300])
@pytest.mark.parametrize("later", [0.0, 1e-9, 0.5, 10.0])
def test_remaining_never_exceeds_the_limit_however_high_the_rate(rate: float, later: float) -> None:
    """The rounding slack grows with the rate; what is reported never passes the burst."""
    policy = RateLimitPolicy(rate)
    bucket, admission = TokenBucket.full(policy, now=0.0).take(0.0)
    _, admission = bucket.take(later)
    assert 0 <= admission.remaining <= max(admission.limit - 1, 0)
