"""The pacing rules, as pure state: when the next request may start, how many may run.

Nothing here sleeps, reads a clock or touches a socket: the transport passes the time in
and does the waiting (see ``_transport``). Three rules, all shared by a client and its
``with_options`` copies:

- :class:`Pace`: what the API said. A 429's ``retry-after-ms``/``Retry-After`` holds back
  every start until it has passed; ``x-ratelimit-remaining-requests`` running low spreads
  the starts left over the time to ``x-ratelimit-reset-requests``.
- :class:`ConcurrencyWindow`: how many requests may be in flight, moved by AIMD on 429s and
  5xx (as TCP moves its congestion window).
- :class:`RequestsPerSecond`: the caller's own cap, ``max_requests_per_second``.

A start that nothing holds back costs one counter: :attr:`Pace.free` says how many starts
may go without asking, and the transport only decrements it.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping

from ._retry import MAX_RETRY_AFTER, retry_after_seconds

__all__ = [
    "INITIAL_CONCURRENCY",
    "LOW_WATER_FRACTION",
    "OPEN",
    "REMAINING_REQUESTS",
    "ConcurrencyWindow",
    "Pace",
    "RequestsPerSecond",
    "hold_seconds",
    "is_congestion",
]

#: Requests a new client has in flight at most before answers show the API takes more:
#: TCP's initial window (RFC 6928). It doubles with each round of answers while requests
#: queue for it, up to ``max_connections``.
INITIAL_CONCURRENCY = 10
#: Below this share of ``x-ratelimit-limit-requests`` left, starts are spread out rather
#: than spent at once; the rest is a margin for requests the answers have not counted yet
#: (other processes using the same key, answers still on their way).
LOW_WATER_FRACTION = 0.1
#: The header whose presence makes an answer worth reading for pacing.
REMAINING_REQUESTS = "x-ratelimit-remaining-requests"
#: The most :attr:`Pace.free` holds, when nothing limits starts. Counting down from it
#: stays within CPython's cached small ints (up to 256), so the fast path allocates
#: nothing; once it runs out, one start asks :meth:`Pace.delay` and it is granted again.
OPEN = 256


def hold_seconds(status: int, headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds a 429 asks every request of the client to wait, or ``None``.

    The server's ``retry-after-ms`` or ``retry-after`` (seconds, or an HTTP date compared
    with ``now``, a Unix time), read by the retry rules: so a hold is never longer than
    the wait a retry would take (at most ``MAX_RETRY_AFTER``). Other statuses hold nothing:
    a 503's ``Retry-After`` speaks of one overloaded server, which the concurrency window
    answers instead.
    """
    if status != 429:
        return None
    return retry_after_seconds(headers, now=now)


def is_congestion(status: int) -> bool:
    """Whether an answer says the API is overloaded: 429 and every 5xx shrink the window."""
    return status == 429 or status >= 500


class Pace:
    """When the next request may start, from what the API's answers said.

    Every start is either counted by the transport, which decrements :attr:`free` while it
    is above zero, or, once it is not, asks :meth:`delay` and reports :meth:`started`.
    Times are ``monotonic`` seconds given by the caller.
    """

    def __init__(self) -> None:
        """Start with nothing known: no hold, no budget, every start free."""
        #: Starts that may go without asking :meth:`delay`: 0 while anything holds them.
        self.free = OPEN
        #: Requests waiting their turn in a lane (kept by the transport): they hold a
        #: connection slot but were not sent, so they spend nothing of the budget yet.
        self.waiting = 0
        # What `free` was set to last: the difference is what the fast path spent since.
        self._granted = OPEN
        self._hold_until = -math.inf
        # Requests the API will still take before `_reset_at`, less those in flight
        # (`None`: no x-ratelimit-*-requests seen, or the reset has passed).
        self._estimate: int | None = None
        self._reset_at = -math.inf
        self._observed_at = -math.inf
        self._low_water = 1
        self._last_start = -math.inf
        # The last x-ratelimit-limit-requests, and how long the last reset was said to
        # take: once a reset passes, the budget is that limit again, for about that long,
        # until an answer says better (unknown: every start free, as before any answer).
        self._limit: int | None = None
        self._period = 0.0
        # Requests sent and not answered yet, as far as answers tell: those in flight at
        # the last answer, and every start since (each answer brings a new count).
        self._unanswered = 0

    def delay(self, now: float) -> float:
        """Seconds until the next start may happen (0.0: now)."""
        self._sync()
        wait = self._hold_until - now
        if self._estimate is not None and now >= self._reset_at:
            self._renew(now)
        estimate = self._estimate
        if estimate is not None and estimate <= self._low_water:
            # Spread what is left evenly until the reset: one start per
            # (time left) / (starts left + 1), so the last lands just before it.
            base = max(self._last_start, self._observed_at)
            next_start = base + (self._reset_at - base) / (max(estimate, 0) + 1)
            wait = max(wait, next_start - now)
        return max(wait, 0.0)

    def started(self, now: float) -> None:
        """Record a start that asked :meth:`delay` (the fast path only counts :attr:`free`)."""
        self._sync()
        self._last_start = now
        self._unanswered += 1
        if self._estimate is not None:
            self._estimate -= 1
        self._grant(now)

    def hold(self, seconds: float, now: float) -> None:
        """Hold back every start for ``seconds`` (a 429's ``Retry-After``)."""
        self._sync()
        self._hold_until = max(self._hold_until, now + seconds)
        self._grant(now)

    def observe(
        self,
        *,
        remaining: int | None,
        reset: float | None,
        limit: int | None,
        in_flight: int,
        now: float,
    ) -> None:
        """Take in an answer's ``x-ratelimit-*-requests`` (``None`` where absent).

        ``in_flight`` counts the other requests already sent: each will spend one of the
        ``remaining`` the answer reported, whether or not the server had counted it yet.
        """
        if remaining is None or reset is None:
            return
        self._sync()
        self._unanswered = max(in_flight, 0)
        self._estimate = remaining - self._unanswered
        # Never wait longer for pacing than a retry would for Retry-After: a budget that
        # resets in an hour is the API's to enforce, with a 429 saying how long to wait.
        self._reset_at = now + min(reset, MAX_RETRY_AFTER)
        self._observed_at = now
        self._low_water = max(1, math.ceil(limit * LOW_WATER_FRACTION)) if limit else 1
        self._limit = limit if limit is not None and limit > 0 else None
        self._period = max(self._reset_at - now, 0.0)
        self._grant(now)

    def _renew(self, now: float) -> None:
        """The reset has passed: the budget is whole again, as far as the API told.

        It is the limit the API announced, not "anything goes": a crowd of requests that
        waited for the reset must not all start at once (those past the limit would each
        meet a 429). The next reset is guessed one period on, until an answer says.
        """
        if self._limit is None or self._period <= 0:
            self._estimate = None
            return
        # Requests still on their way may land in the new window and spend it.
        self._estimate = self._limit - self._unanswered
        self._observed_at = now
        self._reset_at = now + self._period

    def _sync(self) -> None:
        """Charge the starts the fast path counted since :attr:`free` was last set."""
        used = self._granted - self.free
        self._granted = self.free
        self._unanswered += used
        if self._estimate is not None:
            self._estimate -= used

    def _grant(self, now: float) -> None:
        """Set :attr:`free`: how many starts may go before anything must be checked."""
        if self._estimate is not None and now >= self._reset_at:
            self._renew(now)
        if now < self._hold_until:
            free = 0
        elif self._estimate is not None:
            free = min(max(self._estimate - self._low_water, 0), OPEN)
        else:
            free = OPEN
        self.free = self._granted = free


class ConcurrencyWindow:
    """How many requests may be in flight: AIMD with slow start, as TCP's window.

    Starts at :data:`INITIAL_CONCURRENCY` (at most ``cap``). While requests queue for it,
    each good answer grows it: by one (doubling per round of answers) below the
    threshold, by one per full window above it; failures grow nothing. A 429 or 5xx
    halves what was in flight and makes that the threshold, once per round: requests sent
    before a cut do not cut again. The window never leaves [1, ``cap``].
    """

    def __init__(self, cap: int, initial: int = INITIAL_CONCURRENCY) -> None:
        """A window of ``min(initial, cap)`` that may grow up to ``cap``."""
        #: The most it may grow to (``max_connections``).
        self.cap = cap
        #: Requests allowed in flight now.
        self.limit = max(1, min(initial, cap))
        #: Bumped by each cut; a request reports the epoch it started in.
        self.epoch = 0
        self._threshold = cap
        self._credit = 0

    def grow(self) -> int:
        """A request was answered while others queued: grow by the rule; return the limit."""
        if self.limit >= self.cap:
            return self.limit
        if self.limit < self._threshold:
            self.limit += 1
        else:
            self._credit += 1
            if self._credit >= self.limit:
                self._credit = 0
                self.limit += 1
        return self.limit

    def congested(self, epoch: int, in_flight: int) -> int:
        """A request started in ``epoch`` met a 429 or 5xx; return the limit after it.

        ``in_flight`` counts that request with the others still out. Only the first such
        answer of a round cuts: the rest were sent before the cut could have helped.
        """
        if epoch == self.epoch:
            self.epoch += 1
            self.limit = self._threshold = max(1, in_flight // 2)
            self._credit = 0
        return self.limit


#: The most starts a :class:`RequestsPerSecond` window counts (a higher cap is as tight).
_MOST_COUNTED_PER_SECOND = 1_000_000


class RequestsPerSecond:
    """The caller's cap: starts at least ``1/rate`` s apart, and never a burst past it.

    Two rules, both exact under floating point because each compares against a start
    actually recorded: consecutive starts are ``1/rate`` seconds apart, and no one-second
    window holds more than ``max(1, floor(rate))`` starts (so, for a whole ``rate``, at
    most ``rate`` in any window ``[t, t + 1)``).
    """

    def __init__(self, rate: float) -> None:
        """A cap of ``rate`` starts per second (a positive, finite number)."""
        #: The cap, in starts per second.
        self.rate = rate
        self._interval = 1.0 / rate
        # Past a million a second the window rule is moot (the spacing rule alone keeps to
        # the cap) and a deque cannot be told a length past 2**63: never more is looser.
        self._per_second = max(1, math.floor(min(rate, _MOST_COUNTED_PER_SECOND)))
        self._last = -math.inf
        # Starts of the last second, oldest first: only the latest `_per_second` matter.
        self._recent: collections.deque[float] = collections.deque(maxlen=self._per_second)

    def delay(self, now: float) -> float:
        """Seconds until the next start may happen (0.0: now)."""
        recent = self._recent
        while recent and recent[0] + 1.0 <= now:
            recent.popleft()
        wait = self._last + self._interval - now
        if len(recent) >= self._per_second:
            wait = max(wait, recent[-self._per_second] + 1.0 - now)
        return max(wait, 0.0)

    def started(self, now: float) -> None:
        """Record a start at ``now``."""
        self._last = now
        self._recent.append(now)
