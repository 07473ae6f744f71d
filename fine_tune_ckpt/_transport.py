"""The only module that touches the network: one GET, retried by tenacity.

A response never leaves this module: each attempt reads the whole body inside
``async with`` (counted after decompression, against a cap) and hands back an immutable
:class:`Response`. Failures become this library's exceptions here, raised with causes
scrubbed of credentials, so callers never see aiohttp's or tenacity's, nor the key.

Each attempt, in order: wait for one of the pool's slots (counts toward the deadline
only), then exchange within the attempt's timeout, following redirects by the rules of
``_redirects``. The own session lives per event loop (see :class:`Transport`).

Pacing (the rules are in ``_pacing``): once it has its slot, an attempt that anything
holds back (a 429's hold, a request budget running low, a cap) waits its turn in its
:class:`Lane`; each answer's status and ``x-ratelimit-*`` headers feed the pool's
:class:`~._pacing.Pace` and the slots' window.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import ssl
import sys
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import TYPE_CHECKING

import aiohttp
import attrs
from multidict import CIMultiDictProxy
from yarl import URL

from ._backends import Credential
from ._clock import Clock
from ._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    ClientClosedError,
    FineTuneCkptError,
    error_for_status,
    request_id_of,
)
from ._metadata import request_budget_from_headers
from ._options import CallOptions, Limits, is_sensitive
from ._pacing import (
    REMAINING_REQUESTS,
    ConcurrencyWindow,
    Pace,
    RequestsPerSecond,
    hold_seconds,
    is_congestion,
)
from ._proxies import ProxyRules
from ._redact import redacted_text, scrub_chain, scrub_error, secrets_of, without_user_info
from ._redirects import REDIRECT_STATUSES, redirect_target, same_origin
from ._retry import retry_wait, should_retry
from ._tracing import active as tracing_active
from ._tracing import start_attempt

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["DEFAULT_MAX_CONNECTIONS", "MAX_BODY_BYTES", "Lane", "Pool", "Response", "Transport"]

logger = logging.getLogger("fine_tune_ckpt")

#: The largest body read from one answer. A page of 100 checkpoints is about 40 KiB; a
#: body past this is a broken or hostile server, and is refused instead of filling memory.
MAX_BODY_BYTES = 32 * 1024 * 1024
#: Connections the client's own session keeps open at most, as the official SDK's pool.
DEFAULT_MAX_CONNECTIONS = 1000
#: How much of a body is read at a time when it has to be counted as it is decoded.
_READ_CHUNK = 256 * 1024
#: The window's ceiling for a lent session whose connector sets no limit.
_UNBOUNDED = sys.maxsize


@attrs.frozen
class Response:
    """A 2xx answer, read in full: status, headers and raw body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    #: What must never appear in an error built from this answer (the credentials sent).
    secrets: tuple[str, ...] = ()
    #: Attempts the request took (1 with no retry).
    attempts: int = 1
    #: Seconds the request took, every attempt and wait included.
    elapsed: float = 0.0

    @property
    def request_id(self) -> str | None:
        """The answer's ``x-request-id`` (or Azure's ``apim-request-id``), for error reports."""
        return request_id_of(self.headers)


class Transport:
    """Sends GET requests through one reused ``aiohttp.ClientSession``, with retries.

    The session is the caller's when lent (used, never closed) or else the transport's
    own: created inside the running event loop on first use, replaced by a new one when a
    later request runs in another loop (each ``asyncio.run()``, each test's loop), closed
    by :meth:`aclose` or, if nobody calls it, when its loop shuts down.

    ``headers`` go with every request; ``credentials`` (the key, organization and project
    headers) only to the origin of the URL asked for, never across a redirect elsewhere.
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        credentials: Mapping[str, str],
        origin_headers: Mapping[str, str] | None = None,
        credential: Credential | None = None,
        extra_secrets: tuple[str, ...] = (),
        proxies: ProxyRules | None = None,
        timeout: float | None,
        deadline: float | None,
        max_retries: int,
        session: aiohttp.ClientSession | None,
        clock: Clock,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        ssl_context: ssl.SSLContext | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        random_source: Callable[[], float] = random.random,
        pool: Pool | None = None,
        pacing: bool = True,
        max_requests_per_second: float | None = None,
        lane: Lane | None = None,
    ) -> None:
        """Set up the transport; nothing is connected until the first request.

        ``pool`` shares another transport's sessions and connections (``with_options``):
        this transport then never closes them. ``pacing`` applies to a pool made here.
        ``lane`` is the other transport's place in the queue for pacing;
        ``max_requests_per_second`` adds a cap of this transport's own on top of it.

        ``headers`` go everywhere; ``origin_headers`` (a gateway's) and ``credentials``
        only to the origin asked for; ``credential`` is asked of its provider before every
        attempt. ``extra_secrets`` are scrubbed from errors besides the credentials.
        """
        self._public_headers = dict(headers)
        self._headers = {**headers, **(origin_headers or {}), **credentials}
        self._credential = credential
        self._secrets = secrets_of(credentials.values()) + extra_secrets
        self._proxies = proxies if proxies is not None else ProxyRules()
        self._limits = Limits(timeout=timeout, deadline=deadline, max_retries=max_retries)
        self._owns_pool = pool is None
        self.pool = pool if pool is not None else Pool(session, max_connections, pacing=pacing)
        lane = lane if lane is not None else self.pool.lane
        if max_requests_per_second is not None:
            lane = lane.narrowed(max_requests_per_second)
        #: Where this transport's requests wait their turn when pacing holds them back;
        #: a ``with_options`` copy shares it, unless it adds a cap of its own.
        self.lane = lane
        self._pace = self.pool.pace
        # A cap means every start is checked: the fast path is only for uncapped lanes.
        self._capped = bool(lane.windows)
        self._closed = False
        self._clock = clock
        # True: aiohttp's default, verified TLS; a context replaces it, never disables it.
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._max_body_bytes = max_body_bytes
        self._random = random_source

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt, unless a call says otherwise."""
        return self._limits.max_retries

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called here, or on the transport owning the pool."""
        return self._closed or self.pool.closed

    @property
    def _session(self) -> aiohttp.ClientSession | None:
        """The session in use now, if any (for tests and diagnostics)."""
        return self.pool.session

    async def aclose(self) -> None:
        """Stop sending; close the pool's own session if this transport owns the pool."""
        self._closed = True
        if self._owns_pool:
            await self.pool.aclose()

    async def get(self, url: URL, options: CallOptions | None = None) -> Response:
        """GET ``url`` and return its 2xx answer, retrying what the retry rules allow.

        ``options`` are one call's overrides (timeouts, retries, extra headers). Raises the
        last attempt's error once retries or the deadline are spent.
        """
        call = self._call(url, options)
        # Without OpenTelemetry configured, no wrapper coroutine per attempt: it costs on
        # every page.
        attempt_once = self._attempt if tracing_active() else self._attempt_untraced
        # Fast path: most requests succeed at once, and building tenacity's machinery
        # costs about 40 us a request. Only a retryable failure brings it in.
        try:
            return await attempt_once(call)
        except Exception as error:  # CancelledError is a BaseException: never caught
            if call.limits.max_retries == 0 or not _retryable(error):
                raise
            first_failure: Exception | None = error

        async def attempt() -> Response:
            # Hand tenacity the failure it did not see, so one set of rules (wait, stop,
            # log) governs every retry, the first included.
            nonlocal first_failure
            if first_failure is not None:
                failure, first_failure = first_failure, None
                raise failure
            return await attempt_once(call)

        # Imported here, on the first retry: it is not needed on the success path, and
        # importing it eagerly costs every program that imports this package.
        from tenacity import AsyncRetrying, retry_if_exception

        retrying = AsyncRetrying(
            sleep=self._clock.sleep,
            stop=lambda state: self._should_stop(state, call),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            before_sleep=lambda state: self._log_retry(state, call),
            reraise=True,
        )
        response: Response = await retrying(attempt)
        return response

    def _call(self, url: URL, options: CallOptions | None) -> _Call:
        """The state of one request: its bounds, headers and secrets, and what it took."""
        started = self._clock.monotonic()
        if options is None:
            return _Call(url, started, self._limits, self._headers, self._secrets)
        extra = options.extra_headers
        secret_values = [*extra.items(), *options.extra_query.items()]
        secrets = self._secrets + tuple(
            value for name, value in secret_values if is_sensitive(name) and value
        )
        return _Call(
            url, started, options.limits(self._limits), {**self._headers, **extra}, secrets
        )

    async def _attempt(self, call: _Call) -> Response:
        """Make one attempt as one OpenTelemetry span (used when the API is installed)."""
        trace = start_attempt(call.url, call.attempts)
        if trace is None:
            return await self._attempt_untraced(call)
        try:
            response = await self._attempt_untraced(call)
        except Exception as error:
            trace.failed(error)
            trace.close()
            raise
        except BaseException:  # cancelled: the caller stopped it, the request did not fail
            trace.cancelled()
            trace.close()
            raise
        trace.answered(response.status)
        trace.close()
        return response

    async def _attempt_untraced(self, call: _Call) -> Response:
        """Make one HTTP exchange (redirects included) within the time left; no retries.

        aiohttp's exceptions never leave: each becomes one of ours, raised outside the
        ``except`` clause and with a scrubbed cause, so no link of its chain holds a secret.
        """
        if self._closed:
            raise ClientClosedError()
        url = call.url
        call.attempts += 1
        own = self.pool.own
        slots: _Slots | None
        if own is not None and own.loop is asyncio.get_running_loop():
            session, slots = own.session, own.slots  # the common case, without an await
        else:
            session, slots = await self.pool.session_for_this_loop()
        headers, secrets = call.headers, call.secrets
        if self._credential is not None:
            # Asked before every attempt, retries included: a token may have expired since.
            # A provider that hangs (a vault that does not answer) is bound by the deadline.
            try:
                async with self._until_deadline(call):
                    value = await self._credential.current()
            except TimeoutError:
                raise APITimeoutError(
                    f"Deadline of {call.limits.deadline} s reached while asking the "
                    f"{self._credential.name} provider"
                ) from None
            headers = {**headers, self._credential.header: value}
            secrets = secrets + secrets_of([value])
        failure: FineTuneCkptError
        cause: BaseException
        pace = self._pace
        try:
            if slots is not None and not slots.take():
                # Waiting for a free connection counts toward the deadline, never toward
                # the attempt's own timeout: 300 calls sharing 100 connections must not
                # time out for having queued behind each other.
                async with self._until_deadline(call):
                    await slots.wait()
            answered = False
            try:
                # Asked once the slot is ours, so the answer is not stale: requests that
                # queued for a slot must not all start on what the pace said before.
                if self._capped or (pace is not None and pace.free <= 0):
                    # Something holds starts back (a 429's Retry-After, a request budget
                    # running low, a cap): wait for this attempt's turn.
                    await self._take_turn(call)
                elif pace is not None:
                    pace.free -= 1  # the whole cost of pacing when no limit is near
                epoch = slots.epoch if slots is not None else 0
                async with asyncio.timeout(self._attempt_budget(call)):
                    response = await self._exchange(session, call, headers, secrets)
            except APIStatusError as refused:
                if pace is not None:
                    self._learn(pace, refused.status_code, refused.headers, slots, epoch)
                raise
            else:
                answered = True
                if pace is not None and REMAINING_REQUESTS in response.headers:
                    self._learn(pace, response.status, response.headers, slots, epoch)
                return response
            finally:
                if slots is not None:
                    slots.give_back(answered)
        except TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
            failure, cause = (
                APITimeoutError(f"Request timed out: GET {without_user_info(url)}"),
                exc,
            )
        except aiohttp.ClientError as exc:
            reason = redacted_text(f"{type(exc).__name__}: {exc}", secrets)
            failure = APIConnectionError(
                f"Connection error: GET {without_user_info(url)}: {reason}"
            )
            cause = exc
        except (RuntimeError, ValueError) as exc:
            # aiohttp's answer to a session used outside its loop or closed under us, or to
            # a request it refuses to build: not transient, so not an APIConnectionError
            # that would be retried.
            reason = redacted_text(f"{type(exc).__name__}: {exc}", secrets)
            failure = FineTuneCkptError(f"The aiohttp session cannot send requests: {reason}")
            cause = exc
        failure.args = (redacted_text(failure.args[0], secrets),)  # a query may hold a key
        if isinstance(failure, APIError):
            failure.message = failure.args[0]
        raise failure from scrub_chain(cause, secrets)

    async def _take_turn(self, call: _Call) -> None:
        """Wait for this attempt's turn to start; on return, it may start at once.

        The lane's requests queue first come, first served, each holding its slot (the
        window bounds how many wait); only the one at the head waits on the clock, so a
        fake clock moves exactly as far as pacing asks. Every wait counts toward the
        deadline; one that would pass it is not taken.
        """
        lane, clock = self.lane, self._clock
        if lane.idle:
            now = clock.monotonic()
            if lane.delay(now) <= 0:  # e.g. the fast path's count ran out, nothing more
                lane.started(now)
                return
        turn = lane.enter()
        try:
            if not lane.is_head(turn):
                async with self._until_deadline(call):
                    await turn
            while (delay := lane.delay(now := clock.monotonic())) > 0:
                self._check_wait_fits(call, delay)
                await clock.sleep(delay)
            lane.started(now)
        finally:
            lane.leave(turn)

    def _check_wait_fits(self, call: _Call, delay: float) -> None:
        """Raise at once if waiting ``delay`` seconds for pacing would pass the deadline."""
        deadline = call.limits.deadline
        if deadline is None:
            return
        if self._clock.monotonic() - call.started + delay >= deadline:
            raise _HeldPastDeadline(
                f"Deadline of {deadline} s would pass while this client holds requests back "
                f"for another {delay:.3g} s (the API's rate limit or max_requests_per_second)"
            )

    def _learn(
        self,
        pace: Pace,
        status: int,
        headers: Mapping[str, str],
        slots: _Slots | None,
        epoch: int,
    ) -> None:
        """Feed an answer to the pacing: a 429's hold, a window cut, the request budget.

        Called while the attempt still holds its slot: ``slots.in_flight`` counts it.
        """
        now = self._clock.monotonic()
        if is_congestion(status):
            seconds = hold_seconds(status, headers, now=self._clock.time())
            if seconds is not None:
                pace.hold(seconds, now)
            if slots is not None:
                slots.congested(epoch)
        if REMAINING_REQUESTS in headers:
            remaining, reset, limit = request_budget_from_headers(headers)
            pace.observe(
                remaining=remaining,
                reset=reset,
                limit=limit,
                # Sent and unanswered: not this one, nor those holding a slot in a lane.
                in_flight=slots.in_flight - 1 - pace.waiting if slots is not None else 0,
                now=now,
            )

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        call: _Call,
        origin_headers: Mapping[str, str],
        secrets: tuple[str, ...],
    ) -> Response:
        """GET the call's URL, following redirects by the rules of ``_redirects``."""
        url = asked = call.url
        headers = origin_headers
        visited: set[URL] = set()
        while True:
            async with session.get(
                url,
                headers=headers,
                raise_for_status=False,
                allow_redirects=False,
                ssl=self._ssl,
                proxy=self._proxies.proxy_for(url),
            ) as answer:
                status, answer_headers = answer.status, answer.headers
                target = None
                if status in REDIRECT_STATUSES:  # checked here: the common case costs nothing
                    visited.add(url)
                    try:
                        target = redirect_target(
                            url,
                            status,
                            answer_headers,
                            visited=visited,
                            request_id=request_id_of(answer_headers),
                        )
                    except APIStatusError as refused:
                        scrub_error(refused, secrets)  # a Location may echo the key
                        raise
                if target is None:
                    body = await self._read_body(answer)
            if target is None:
                break
            url = target
            # Credentials go only where they were meant to: never to another origin.
            headers = origin_headers if same_origin(url, asked) else self._public_headers
        if not 200 <= status < 300:
            error = error_for_status(status, body, answer_headers)
            scrub_error(error, secrets)  # an answer may echo what it was sent
            raise error
        elapsed = self._clock.monotonic() - call.started
        return Response(status, answer_headers, body, secrets, call.attempts, elapsed)

    async def _read_body(self, answer: aiohttp.ClientResponse) -> bytes:
        """Read the whole body, refusing one larger than ``max_body_bytes`` once decoded.

        ``Content-Length`` counts the bytes on the wire; with a ``Content-Encoding`` that
        aiohttp undoes (gzip, deflate, br, zstd), the body can be a thousand times larger.
        So an encoded body, or one of unknown length, is counted as it is decoded, chunk by
        chunk, and refused the moment it passes the cap: memory stays near the cap.
        """
        announced = answer.content_length
        if announced is not None and announced > self._max_body_bytes:
            raise self._too_large(answer)
        if announced is not None and "Content-Encoding" not in answer.headers:
            return await answer.read()
        chunks = []
        size = 0
        async for chunk in answer.content.iter_chunked(_READ_CHUNK):
            size += len(chunk)
            if size > self._max_body_bytes:
                raise self._too_large(answer)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, answer: aiohttp.ClientResponse) -> APIError:
        """The error for a body past the cap: a bad page, or the status it came with."""
        message = f"The API's answer is larger than {self._max_body_bytes} bytes; refused"
        if not 200 <= answer.status < 300:
            # The status still says what happened (and whether to retry); the body is lost.
            error = error_for_status(answer.status, b"", answer.headers)
            error.message = f"{error.message} ({message})"
            error.args = (error.message,)
            return error
        return APIResponseValidationError(
            message, status_code=answer.status, request_id=request_id_of(answer.headers)
        )

    def _attempt_budget(self, call: _Call) -> float | None:
        """Seconds this attempt may take: the per-attempt timeout, cut to the deadline."""
        remaining = self._deadline_left(call)
        timeout = call.limits.timeout
        if remaining is None:
            return timeout
        return remaining if timeout is None else min(timeout, remaining)

    def _until_deadline(self, call: _Call) -> contextlib.AbstractAsyncContextManager[object]:
        """Bound what follows (queueing for a connection included) by the deadline."""
        if call.limits.deadline is None:
            return _NO_LIMIT
        return asyncio.timeout(self._deadline_left(call))

    def _deadline_left(self, call: _Call) -> float | None:
        """Seconds left before the deadline (``None``: no deadline); raise if none are."""
        deadline = call.limits.deadline
        if deadline is None:
            return None
        remaining = deadline - (self._clock.monotonic() - call.started)
        if remaining <= 0:
            raise APITimeoutError(f"Deadline of {deadline} s reached before the request")
        return remaining

    def _should_stop(self, state: RetryCallState, call: _Call) -> bool:
        if state.attempt_number > call.limits.max_retries:
            return True
        deadline = call.limits.deadline
        if deadline is None:
            return False
        elapsed = self._clock.monotonic() - call.started
        # Sleeping past the deadline would only end in a timeout: give up now instead.
        return elapsed + state.upcoming_sleep >= deadline

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if error is None:  # tenacity waits only after a failed attempt; be safe anyway
            return 0.0
        return retry_wait(
            error, state.attempt_number - 1, now=self._clock.time(), random=self._random
        )

    def _log_retry(self, state: RetryCallState, call: _Call) -> None:
        error = state.outcome.exception() if state.outcome else None
        status = error.status_code if isinstance(error, APIStatusError) else None
        request_id = getattr(error, "request_id", None)
        logger.info(
            "Retrying in %.2f s after attempt %d of %d failed (status %s, request id %s): %s",
            state.upcoming_sleep,
            state.attempt_number,
            call.limits.max_retries + 1,
            status,
            request_id,
            error,
            extra={
                "attempt": state.attempt_number,
                "status_code": status,
                "wait": state.upcoming_sleep,
                "request_id": request_id,
            },
        )


@attrs.define(eq=False)
class _Call:
    """One request as the transport runs it: what bounds it and what it took so far."""

    url: URL
    started: float
    limits: Limits
    headers: Mapping[str, str]
    secrets: tuple[str, ...]
    attempts: int = 0


class Pool:
    """The sessions and connections of a client and of its ``with_options`` copies.

    A lent session, or the client's own, one per event loop (see :class:`_OwnSession`).
    Closing the pool closes the own session; copies share it and never close it.

    With ``pacing``, the pool also holds what the API's answers taught: one
    :class:`~._pacing.Pace` for every request of the client and its copies, and slots
    whose window backs off on 429s and 5xx.
    """

    def __init__(
        self, lent: aiohttp.ClientSession | None, max_connections: int, *, pacing: bool = True
    ) -> None:
        """Hold ``lent`` if given; else open an own session on first use."""
        self._lent = lent
        self._max_connections = max_connections
        #: What the API said about when requests may start (``None``: pacing is off).
        self.pace = Pace() if pacing else None
        #: Where uncapped requests wait their turn when the pace holds them back.
        self.lane = Lane(self.pace, ())
        self.own: _OwnSession | None = None
        self._lent_loop: asyncio.AbstractEventLoop | None = None
        self._lent_semaphore: _Slots | None = None
        self.closed = False

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session in use now, if any."""
        if self._lent is not None:
            return self._lent
        return None if self.own is None else self.own.session

    async def aclose(self) -> None:
        """Close the own session; a lent one stays open. Safe to repeat."""
        self.closed = True
        own, self.own = self.own, None
        if own is not None:
            await own.close()

    async def session_for_this_loop(self) -> tuple[aiohttp.ClientSession, _Slots | None]:
        """The session to use in the running loop, and the slots that bound its pool."""
        if self.closed:
            raise ClientClosedError()
        loop = asyncio.get_running_loop()
        if self._lent is not None:
            return self._lent, self._lent_slots(self._lent, loop)
        own = self.own
        if own is None or own.loop is not loop:
            if own is not None:
                await own.retire()
            own = self.own = await _OwnSession.open(
                loop, self._max_connections, adaptive=self.pace is not None
            )
        return own.session, own.slots

    def _lent_slots(
        self, session: aiohttp.ClientSession, loop: asyncio.AbstractEventLoop
    ) -> _Slots | None:
        if session.closed:
            raise FineTuneCkptError(
                "The aiohttp.ClientSession lent to AsyncClient(session=...) is closed; "
                "lend an open session, or let the client create its own"
            )
        session_loop = _loop_of(session)
        if session_loop is not None and session_loop is not loop:
            raise FineTuneCkptError(
                "The aiohttp.ClientSession lent to AsyncClient(session=...) belongs to another "
                "event loop; create the session inside the loop that uses the client"
            )
        if self._lent_loop is not loop:
            self._lent_loop = loop
            limit = session.connector.limit if session.connector is not None else 0
            if self.pace is not None:
                # Pacing needs the count in flight and a window to move, pool limit or not.
                cap = limit or _UNBOUNDED
                self._lent_semaphore = _Slots(cap, ConcurrencyWindow(cap))
            else:
                self._lent_semaphore = _Slots(limit) if limit else None
        return self._lent_semaphore


class _OwnSession:
    """The transport's own session in one event loop.

    With it: the slots that bound its pool, and the guard that closes it when that loop
    shuts down.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        session: aiohttp.ClientSession,
        slots: _Slots,
        guard: AsyncGenerator[None, None],
    ) -> None:
        self.loop = loop
        self.session = session
        self.slots = slots
        self._guard = guard

    @classmethod
    async def open(
        cls, loop: asyncio.AbstractEventLoop, max_connections: int, *, adaptive: bool = False
    ) -> _OwnSession:
        """Create a session in ``loop`` with a pool of ``max_connections``.

        ``adaptive``: its slots start at a smaller window that AIMD moves (pacing).
        """
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections),
            # Our own asyncio.timeout bounds each attempt; aiohttp's 5-minute default
            # would only fire first and be mistaken for ours.
            timeout=aiohttp.ClientTimeout(total=None),
        )
        guard = _close_at_loop_shutdown(session)
        await anext(guard)  # parks it at its yield: the loop now tracks it
        window = ConcurrencyWindow(max_connections) if adaptive else None
        return cls(loop, session, _Slots(max_connections, window), guard)

    async def close(self) -> None:
        """Close the session now, if it is in the running loop; else retire it."""
        if self.loop is asyncio.get_running_loop():
            await self._guard.aclose()
        else:
            await self.retire()

    async def retire(self) -> None:
        """Let go of a session made in another loop than the running one.

        Its loop normally closed it already, at shutdown. A loop closed without that step
        (``loop.close()`` straight after ``run_until_complete``) leaves its sockets to the
        garbage collector, which nothing can avoid; marking the session closed at least
        spares the "Unclosed client session" warning. A loop still alive (another
        thread's) keeps its session until its guard closes it there.
        """
        if self.loop.is_closed() and not self.session.closed:
            await self.session.close()


async def _close_at_loop_shutdown(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Close ``session`` when this generator is closed.

    Parked at its ``yield``, it is one of its loop's open async generators, which
    ``asyncio.run()``, ``asyncio.Runner`` and pytest-asyncio close
    (``loop.shutdown_asyncgens()``) before they close the loop. So a client that nobody
    closed, such as one created at module level, still lets go of its connections before
    its loop ends, with no "Unclosed client session" warning, and the next loop gets a
    session of its own.
    """
    try:
        yield
    finally:
        await session.close()


#: Stands in for a deadline timer where there is no deadline.
_NO_LIMIT: contextlib.nullcontext[None] = contextlib.nullcontext()


class _Slots:
    """The pool's free connections, counted; waiters are served first come, first served.

    ``asyncio.Semaphore`` would do, but costs seven Python calls a request on the success
    path; :meth:`take` is one attribute test when a connection is free.

    With a :class:`~._pacing.ConcurrencyWindow` (pacing), fewer than ``size`` may be
    taken: the window's limit, which grows while requests queue and shrinks on 429s and
    5xx (:meth:`congested`). A cut can leave ``_free`` below zero: requests already out
    finish, and no new one starts until enough have.
    """

    def __init__(self, size: int, window: ConcurrencyWindow | None = None) -> None:
        self._window = window
        self._limit = size if window is None else window.limit
        self._free = self._limit
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        #: The window's epoch, read by a request when it takes its slot (see
        #: :meth:`congested`); always 0 without a window.
        self.epoch = 0

    @property
    def in_flight(self) -> int:
        """Slots taken now (handed to a waiter included)."""
        return self._limit - self._free

    def take(self) -> bool:
        """Take a free slot at once if there is one nobody is queueing for."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def wait(self) -> None:
        """Wait for a slot handed over by :meth:`give_back`."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.give_back()  # handed a slot just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def give_back(self, answered: bool = False) -> None:
        """Return a slot: to the longest waiter still waiting, else to the free count.

        ``answered``: the request got a good answer; if others were queueing meanwhile,
        demand exceeds the window, which grows.
        """
        self._free += 1
        if self._waiters:
            if answered and self._window is not None:
                self._resize(self._window.grow())
            self._serve()

    def congested(self, epoch: int) -> None:
        """A request that took its slot in ``epoch`` met a 429 or 5xx: maybe cut the window.

        Called before that request gives its slot back, so it counts as in flight.
        """
        window = self._window
        if window is not None:
            self._resize(window.congested(epoch, self.in_flight))
            self.epoch = window.epoch

    def _resize(self, limit: int) -> None:
        self._free += limit - self._limit
        self._limit = limit

    def _serve(self) -> None:
        """Hand free slots to the longest waiters still waiting."""
        while self._free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            # A loop closed the hard way leaves waiters nobody can wake: its tasks are
            # only being collected, and their cleanup lands here.
            if not waiter.done() and not waiter.get_loop().is_closed():
                self._free -= 1
                waiter.set_result(None)


class Lane:
    """Requests waiting their turn to start, first come, first served; one sleeps at a time.

    A pool's uncapped requests share one lane. A client with ``max_requests_per_second``
    has a lane of its own, with that cap on top of the caps of the client it was copied
    from, if any (``windows``). Every lane of a pool consults the pool's one ``pace``.
    """

    def __init__(self, pace: Pace | None, windows: tuple[RequestsPerSecond, ...]) -> None:
        self.pace = pace
        self.windows = windows
        self._queue: collections.deque[asyncio.Future[None]] = collections.deque()

    def narrowed(self, rate: float) -> Lane:
        """A new lane whose requests also keep to ``rate`` starts per second."""
        return Lane(self.pace, (*self.windows, RequestsPerSecond(rate)))

    def delay(self, now: float) -> float:
        """Seconds until the next start may happen, by the pace and every cap."""
        wait = 0.0 if self.pace is None else self.pace.delay(now)
        for window in self.windows:
            wait = max(wait, window.delay(now))
        return wait

    def started(self, now: float) -> None:
        """Record a start with the pace and every cap."""
        if self.pace is not None:
            self.pace.started(now)
        for window in self.windows:
            window.started(now)

    @property
    def idle(self) -> bool:
        """Whether nobody is waiting in line."""
        return not self._queue

    def enter(self) -> asyncio.Future[None]:
        """Join the queue; the future is set when this entry becomes the head."""
        loop = asyncio.get_running_loop()
        queue = self._queue
        if queue and queue[0].get_loop() is not loop:
            # Left by a loop that was closed without letting its tasks clean up: nobody
            # will ever wake those entries, and nobody is waiting on them.
            if self.pace is not None:
                self.pace.waiting -= len(queue)
            queue.clear()
        turn: asyncio.Future[None] = loop.create_future()
        queue.append(turn)
        if self.pace is not None:
            self.pace.waiting += 1
        return turn

    def is_head(self, turn: asyncio.Future[None]) -> bool:
        """Whether ``turn`` is first in the queue (and so may wait on the clock)."""
        return self._queue[0] is turn

    def leave(self, turn: asyncio.Future[None]) -> None:
        """Leave the queue, started or not; the head hands its place to the next."""
        queue = self._queue
        if queue and queue[0] is turn:
            queue.popleft()
            # A dead loop's entries (its tasks are being collected) are not woken.
            if queue and not queue[0].done() and not queue[0].get_loop().is_closed():
                queue[0].set_result(None)
        else:
            try:
                queue.remove(turn)
            except ValueError:  # cleared by enter(): counted out there
                return
        if self.pace is not None:
            self.pace.waiting -= 1


class _HeldPastDeadline(APITimeoutError):
    """Waiting for pacing would pass the deadline: final, retrying could not help."""


def _retryable(error: BaseException) -> bool:
    """The retry rules, except that a request held past its deadline is not retried."""
    return should_retry(error) and not isinstance(error, _HeldPastDeadline)


def _loop_of(session: aiohttp.ClientSession) -> asyncio.AbstractEventLoop | None:
    """The loop a lent session was created in, or ``None`` if aiohttp no longer says.

    aiohttp keeps it in a private attribute (its public ``loop`` property warns that it
    is deprecated); when it is gone, aiohttp's own RuntimeError is turned into ours.
    """
    loop = getattr(session, "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None
