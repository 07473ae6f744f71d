"""The pacing rules on their own: holds, the request budget, the window, the cap (no socket)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fine_tune_ckpt._metadata import rate_limit_from_headers, request_budget_from_headers
from fine_tune_ckpt._pacing import (
    INITIAL_CONCURRENCY,
    OPEN,
    ConcurrencyWindow,
    Pace,
    RequestsPerSecond,
    hold_seconds,
    is_congestion,
)

WALL = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (429, {"retry-after-ms": "1500"}, 1.5),
        (429, {"retry-after": "2"}, 2.0),
        (429, {"retry-after": "Tue, 14 Nov 2023 22:13:30 GMT"}, 10.0),
        (429, {"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        (429, {}, None),
        (429, {"retry-after": "soon"}, None),
        (429, {"retry-after": "3600"}, None),  # past the 60 s a retry would obey
        (429, {"retry-after": "0"}, None),
        (503, {"retry-after": "2"}, None),  # one overloaded server: the window answers it
        (200, {"retry-after": "2"}, None),
    ],
)
def test_hold_seconds(status: int, headers: dict[str, str], expected: float | None) -> None:
    """Only a 429 holds the client, for its usable retry-after-ms or Retry-After."""
    assert hold_seconds(status, headers, now=WALL) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [(429, True), (500, True), (503, True), (599, True), (200, False), (404, False), (408, False)],
)
def test_is_congestion(status: int, expected: bool) -> None:
    """429 and every 5xx say the API is overloaded; nothing else does."""
    assert is_congestion(status) is expected


class TestPace:
    """The pool-wide start times: holds and the request budget."""

    def test_nothing_known_costs_nothing(self) -> None:
        """With nothing heard from the API every start is free, and stays so."""
        pace = Pace()
        assert pace.free == OPEN
        assert pace.delay(0.0) == 0.0
        for _ in range(OPEN):
            pace.free -= 1
        assert pace.delay(0.0) == 0.0  # ran out: asked once, and granted again
        pace.started(0.0)
        assert pace.free == OPEN

    def test_a_hold_stops_every_start_until_it_passes(self) -> None:
        """A hold closes the fast path and delays starts until it has passed."""
        pace = Pace()
        pace.hold(2.0, now=10.0)
        assert pace.free == 0
        assert pace.delay(10.0) == 2.0
        assert pace.delay(11.5) == 0.5
        assert pace.delay(12.0) == 0.0
        pace.started(12.0)
        assert pace.free == OPEN  # open again

    def test_a_shorter_hold_never_shortens_a_longer_one(self) -> None:
        """Holds only extend."""
        pace = Pace()
        pace.hold(5.0, now=0.0)
        pace.hold(1.0, now=1.0)
        assert pace.delay(2.0) == 3.0

    def test_a_large_budget_leaves_the_fast_path_open(self) -> None:
        """Plenty of requests left: that many starts (less the margin) need no check."""
        pace = Pace()
        pace.observe(remaining=59, reset=1.0, limit=60, in_flight=0, now=0.0)
        assert pace.free == 59 - 6  # 10 % of the limit is kept as a margin
        assert pace.delay(0.0) == 0.0
        pace.observe(remaining=1300, reset=1.0, limit=10000, in_flight=0, now=0.0)
        assert pace.free == OPEN  # at most OPEN at a time...
        for _ in range(OPEN):
            pace.free -= 1
        pace.started(0.0)
        assert pace.free == 1300 - OPEN - 1 - 1000  # ...each charged to the budget

    def test_requests_in_flight_count_against_the_budget(self) -> None:
        """Each request already sent will spend one of what the answer reported."""
        pace = Pace()
        pace.observe(remaining=59, reset=1.0, limit=60, in_flight=50, now=0.0)
        assert pace.free == 3

    def test_a_low_budget_spreads_what_is_left_over_the_reset(self) -> None:
        """At the low-water mark, starts are spaced (time to reset) / (left + 1)."""
        pace = Pace()
        pace.observe(remaining=3, reset=8.0, limit=30, in_flight=0, now=0.0)
        assert pace.free == 0
        starts = []
        now = 0.0
        for _ in range(4):
            now += pace.delay(now)
            starts.append(now)
            pace.started(now)
        assert starts == [2.0, 4.0, 6.0, 8.0]  # 3 left: the 4th start waits for the reset
        assert pace.delay(8.0) == 0.0  # and the budget is the limit again,
        assert pace.free == 30 - 4 - 3  # less the 4 starts not answered, less the low water

    def test_an_empty_budget_waits_for_the_reset(self) -> None:
        """Nothing left (or less than in flight): the next start waits for the reset."""
        pace = Pace()
        pace.observe(remaining=2, reset=5.0, limit=100, in_flight=4, now=1.0)
        assert pace.delay(1.0) == 5.0

    def test_fast_starts_are_charged_to_the_budget(self) -> None:
        """Starts counted only by ``free`` still use up the budget."""
        pace = Pace()
        pace.observe(remaining=20, reset=10.0, limit=20, in_flight=0, now=0.0)
        assert pace.free == 18
        for _ in range(18):
            pace.free -= 1
        # 2 left, at the margin: spread over the 10 s to the reset.
        assert pace.delay(0.0) == pytest.approx(10.0 / 3)

    def test_a_reset_far_away_is_waited_at_most_a_minute(self) -> None:
        """No pacing wait is longer than a Retry-After a retry would obey."""
        pace = Pace()
        pace.observe(remaining=0, reset=6 * 3600.0, limit=100, in_flight=0, now=0.0)
        assert pace.delay(0.0) == 60.0

    def test_answers_without_the_headers_change_nothing(self) -> None:
        """A missing remaining or reset count leaves the pace as it was."""
        pace = Pace()
        pace.observe(remaining=None, reset=1.0, limit=60, in_flight=0, now=0.0)
        pace.observe(remaining=0, reset=None, limit=60, in_flight=0, now=0.0)
        assert pace.delay(0.0) == 0.0
        assert pace.free == OPEN

    def test_without_a_limit_the_margin_is_one(self) -> None:
        """No x-ratelimit-limit-requests: pacing starts when one request is left."""
        pace = Pace()
        pace.observe(remaining=5, reset=1.0, limit=None, in_flight=0, now=0.0)
        assert pace.free == 4


class TestConcurrencyWindow:
    """AIMD on the number of requests in flight."""

    def test_it_starts_small_and_doubles_per_round_while_requests_queue(self) -> None:
        """Slow start: +1 per answer, so a full round of answers doubles it."""
        window = ConcurrencyWindow(1000)
        assert window.limit == INITIAL_CONCURRENCY
        for _ in range(INITIAL_CONCURRENCY):
            window.grow()
        assert window.limit == 2 * INITIAL_CONCURRENCY

    def test_it_never_passes_the_cap(self) -> None:
        """``max_connections`` bounds it, from the start and while growing."""
        assert ConcurrencyWindow(3).limit == 3
        window = ConcurrencyWindow(12)
        for _ in range(100):
            window.grow()
        assert window.limit == 12

    def test_a_congestion_halves_what_was_in_flight_once_per_round(self) -> None:
        """The first 429/5xx of a round halves the flight; the rest of that round do not."""
        window = ConcurrencyWindow(1000)
        epoch = window.epoch
        assert window.congested(epoch, in_flight=10) == 5
        assert window.congested(epoch, in_flight=9) == 5  # sent before the cut
        assert window.congested(window.epoch, in_flight=5) == 2  # sent after it
        assert window.congested(window.epoch, in_flight=1) == 1  # never below one

    def test_after_a_cut_it_grows_by_one_per_round(self) -> None:
        """Congestion avoidance: one more per full window of answers."""
        window = ConcurrencyWindow(1000)
        window.congested(window.epoch, in_flight=8)
        assert window.limit == 4
        for _ in range(3):
            window.grow()
        assert window.limit == 4
        window.grow()
        assert window.limit == 5
        for _ in range(5):
            window.grow()
        assert window.limit == 6


class TestRequestsPerSecond:
    """The caller's cap."""

    def test_starts_are_spaced(self) -> None:
        """Two per second: starts half a second apart, no burst."""
        cap = RequestsPerSecond(2)
        assert cap.delay(0.0) == 0.0
        cap.started(0.0)
        assert cap.delay(0.0) == 0.5
        assert cap.delay(0.25) == 0.25
        cap.started(0.5)
        assert cap.delay(0.9) == pytest.approx(0.1)

    def test_a_rate_below_one_means_one_start_every_so_often(self) -> None:
        """0.5 per second: one start every two seconds."""
        cap = RequestsPerSecond(0.5)
        cap.started(3.0)
        assert cap.delay(3.0) == 2.0

    def test_an_idle_spell_allows_no_burst(self) -> None:
        """After a long pause the next starts are spaced again."""
        cap = RequestsPerSecond(4)
        cap.started(0.0)
        cap.started(100.0)
        assert cap.delay(100.0) == 0.25


@given(
    rate=st.one_of(
        st.integers(min_value=1, max_value=50),
        st.floats(min_value=0.05, max_value=50, allow_nan=False, allow_infinity=False),
    ),
    arrivals=st.lists(
        st.floats(min_value=0, max_value=3, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=80,
    ),
)
def test_the_cap_holds_for_any_arrivals(rate: float, arrivals: list[float]) -> None:
    """Whatever the arrivals, starts obey both rules of the cap.

    Consecutive starts are at least 1/rate apart; any ``floor(rate)`` (at least 1) starts
    later than a start are a full second after it, so no window [t, t + 1) holds more
    than ``rate`` starts when ``rate`` is whole.
    """
    cap = RequestsPerSecond(rate)
    now = 0.0
    starts: list[float] = []
    for gap in arrivals:
        now += gap
        while (delay := cap.delay(now)) > 0:
            now += delay
        cap.started(now)
        starts.append(now)
    per_second = max(1, math.floor(rate))
    interval = 1.0 / rate
    for earlier, later in itertools.pairwise(starts):
        assert later >= earlier + interval
    for earlier, later in zip(starts, starts[per_second:], strict=False):
        assert later >= earlier + 1.0
    if rate == int(rate):
        for start in starts:
            assert sum(start <= other < start + 1.0 for other in starts) <= rate


_budget_values = st.one_of(
    st.sampled_from(["0", "59", "10000", "1s", "6m0s", "250ms", "", " 7 ", "-1", "1e3", "abc"]),
    st.text(max_size=12),
)


@given(
    headers=st.dictionaries(
        st.sampled_from(
            [
                "x-ratelimit-limit-requests",
                "X-RateLimit-Remaining-Requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
                "x-ratelimit-reset-tokens",
                "content-type",
            ]
        ),
        _budget_values,
    )
)
def test_the_request_budget_is_read_as_the_rate_limit_record_reads_it(
    headers: dict[str, str],
) -> None:
    """Pacing's cheaper reader agrees with ``RateLimit`` on every header it reads."""
    full = rate_limit_from_headers(headers)
    assert request_budget_from_headers(headers) == (
        full.remaining_requests,
        full.reset_requests,
        full.limit_requests,
    )


def test_after_a_reset_the_budget_is_the_limit_less_what_is_on_its_way() -> None:
    """A reset brings the announced limit back, not "anything goes" (from an outside attack).

    Requests still unanswered may land in the new window, so they are charged to it.
    """
    pace = Pace()
    pace.observe(remaining=0, reset=1.0, limit=20, in_flight=0, now=0.0)
    assert pace.delay(0.0) == 1.0
    for _ in range(5):
        pace.started(1.0)  # each waited out the reset
    assert pace.free == 20 - 5 - 2  # the limit, less those started, less the low water
    pace.observe(remaining=3, reset=0.5, limit=20, in_flight=4, now=1.1)
    assert pace.free == 0  # an answer says better: 3 left, 4 on their way


def test_without_a_known_limit_a_reset_frees_every_start() -> None:
    """No x-ratelimit-limit-requests: after the reset, nothing is known to hold starts."""
    pace = Pace()
    pace.observe(remaining=0, reset=1.0, limit=None, in_flight=0, now=0.0)
    assert pace.delay(2.0) == 0.0
    pace.started(2.0)
    assert pace.free == OPEN
