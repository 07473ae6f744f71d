"""The only module that touches the network: one GET, retried by tenacity.

A response never leaves this module: each attempt reads the whole body inside
``async with`` and hands back an immutable :class:`Response`. Failures become this
library's exceptions here, so callers never see aiohttp's or tenacity's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import aiohttp
import attrs
from multidict import CIMultiDictProxy
from yarl import URL

from ._clock import Clock
from ._errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    error_for_status,
)
from ._retry import retry_wait, should_retry

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = ["Response", "Transport"]

logger = logging.getLogger("fine_tune_ckpt")

#: The largest body read from one answer. A page of 100 checkpoints is about 40 KiB; a
#: body past this is a broken or hostile server, and is refused instead of filling memory.
MAX_BODY_BYTES = 32 * 1024 * 1024


@attrs.frozen
class Response:
    """A 2xx answer, read in full: status, headers and raw body."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def request_id(self) -> str | None:
        """The answer's ``x-request-id``, for error reports."""
        return self.headers.get("x-request-id")


class Transport:
    """Sends GET requests through one reused ``aiohttp.ClientSession``, with retries.

    The session is the caller's when lent (used, never closed) or else created lazily
    inside the running event loop on the first request and closed by :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        timeout: float | None,
        deadline: float | None,
        max_retries: int,
        session: aiohttp.ClientSession | None,
        clock: Clock,
        ssl_context: ssl.SSLContext | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        random_source: Callable[[], float] = random.random,
    ) -> None:
        """Set up the transport; nothing is connected until the first request."""
        self._headers = dict(headers)
        self._timeout = timeout
        self._deadline = deadline
        self.max_retries = max_retries
        self._session = session
        self._owns_session = session is None
        self._closed = False
        self._clock = clock
        # True: aiohttp's default, verified TLS; a context replaces it, never disables it.
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._max_body_bytes = max_body_bytes
        self._random = random_source

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    async def aclose(self) -> None:
        """Close the session if this transport created it; a lent one stays open."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def get(self, url: URL) -> Response:
        """GET ``url`` and return its 2xx answer, retrying what the retry rules allow.

        Raises the last attempt's error once retries or the deadline are spent.
        """
        started = self._clock.monotonic()
        # Fast path: most requests succeed at once, and building tenacity's machinery
        # costs about 40 us a request. Only a retryable failure brings it in.
        try:
            return await self._attempt(url, started)
        except Exception as error:  # CancelledError is a BaseException: never caught
            if self.max_retries == 0 or not should_retry(error):
                raise
            first_failure: Exception | None = error

        async def attempt() -> Response:
            # Hand tenacity the failure it did not see, so one set of rules (wait, stop,
            # log) governs every retry, the first included.
            nonlocal first_failure
            if first_failure is not None:
                failure, first_failure = first_failure, None
                raise failure
            return await self._attempt(url, started)

        # Imported here, on the first retry: it is not needed on the success path, and
        # importing it eagerly costs every program that imports this package.
        from tenacity import AsyncRetrying, retry_if_exception

        retrying = AsyncRetrying(
            sleep=self._clock.sleep,
            stop=lambda state: self._should_stop(state, started),
            wait=self._wait,
            retry=retry_if_exception(should_retry),
            before_sleep=self._log_retry,
            reraise=True,
        )
        response: Response = await retrying(attempt)
        return response

    async def _attempt(self, url: URL, started: float) -> Response:
        """Make one HTTP exchange within the time left; no retries here."""
        budget = self._attempt_budget(started)
        session = self._get_session()
        try:
            async with (
                asyncio.timeout(budget),
                session.get(
                    url, headers=self._headers, raise_for_status=False, ssl=self._ssl
                ) as answer,
            ):
                status, headers = answer.status, answer.headers
                body = await self._read_body(answer)
        except TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
            raise APITimeoutError(f"Request timed out: GET {_safe(url)}") from exc
        except aiohttp.ClientError as exc:
            raise APIConnectionError(
                f"Connection error: GET {_safe(url)}: {type(exc).__name__}: {exc}"
            ) from exc
        if not 200 <= status < 300:
            raise error_for_status(status, body, headers)
        return Response(status, headers, body)

    async def _read_body(self, answer: aiohttp.ClientResponse) -> bytes:
        """Read the whole body, refusing one larger than ``max_body_bytes``."""
        announced = answer.content_length
        if announced is not None:
            if announced > self._max_body_bytes:
                raise self._too_large(answer)
            return await answer.read()
        # No length announced (chunked): count while reading.
        chunks = []
        size = 0
        async for chunk in answer.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > self._max_body_bytes:
                raise self._too_large(answer)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, answer: aiohttp.ClientResponse) -> APIResponseValidationError:
        return APIResponseValidationError(
            f"The API's answer is larger than {self._max_body_bytes} bytes; refused",
            status_code=answer.status,
            request_id=answer.headers.get("x-request-id"),
        )

    def _attempt_budget(self, started: float) -> float | None:
        """Seconds this attempt may take: the per-attempt timeout, cut to the deadline."""
        if self._deadline is None:
            return self._timeout
        remaining = self._deadline - (self._clock.monotonic() - started)
        if remaining <= 0:
            raise APITimeoutError(f"Deadline of {self._deadline} s reached before the request")
        return remaining if self._timeout is None else min(self._timeout, remaining)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("This AsyncClient is closed; create a new one to send requests")
        if self._session is None:
            # Our own asyncio.timeout bounds each attempt; aiohttp's 5-minute default would
            # only fire first and be mistaken for ours.
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self._session

    def _should_stop(self, state: RetryCallState, started: float) -> bool:
        if state.attempt_number > self.max_retries:
            return True
        if self._deadline is None:
            return False
        elapsed = self._clock.monotonic() - started
        # Sleeping past the deadline would only end in a timeout: give up now instead.
        return elapsed + state.upcoming_sleep >= self._deadline

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if error is None:  # tenacity waits only after a failed attempt; be safe anyway
            return 0.0
        return retry_wait(
            error, state.attempt_number - 1, now=self._clock.time(), random=self._random
        )

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        status = error.status_code if isinstance(error, APIStatusError) else None
        request_id = getattr(error, "request_id", None)
        logger.info(
            "Retrying in %.2f s after attempt %d of %d failed (status %s, request id %s): %s",
            state.upcoming_sleep,
            state.attempt_number,
            self.max_retries + 1,
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


def _safe(url: URL) -> str:
    """The URL for messages: never with user info, which could hold a secret."""
    return str(url.with_user(None)) if url.user or url.password else str(url)
