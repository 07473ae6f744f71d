"""A fake of the checkpoints endpoint on 127.0.0.1, built on ``aiohttp.web``.

It pages as the API does (newest first, ``after`` exclusive, ``limit`` defaulting to 10),
answers errors in the API's shape, logs every request it receives, and misbehaves on
demand through scripted :class:`Fault` objects.

A malformed request gets the API's 4xx answer, never a 500: a 500 would be a fault the
client under test retries, hiding that it sent something wrong. (A message that is not
HTTP at all, e.g. a control character in a header, is refused with a 400 by aiohttp's
parser before it is a request, so it is not logged.)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import secrets
import ssl
from collections import deque
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import attrs
from aiohttp import web

from .._models import Checkpoint
from .._wire import to_wire
from ._data import synthetic_checkpoints

__all__ = ["DEFAULT_LIMIT", "RANDOM_FAULTS", "FakeAPIServer", "Fault", "RecordedRequest"]

#: The page size when a request gives no ``limit``, as the API's.
DEFAULT_LIMIT = 10

# Any character but "/" may be in a job id, as the client percent-encodes any (aiohttp's
# default pattern would also refuse "{" and "}").
_ROUTE = "/v1/fine_tuning/jobs/{fine_tuning_job_id:[^/]+}/checkpoints"
_MAX_PORT = 65535
# More digits than any page size could need; longer ``limit`` values count as "all of
# them", since int() refuses strings of over 4300 digits.
_MAX_LIMIT_DIGITS = 18
_HUGE_LIMIT: int = 10**_MAX_LIMIT_DIGITS
_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@attrs.frozen
class Fault:
    """One scripted misbehaviour, used up by the next request the server receives.

    Combine fields freely: ``Fault(status=429, retry_after=2)`` answers 429 with a
    ``Retry-After: 2`` header; ``Fault(delay=0.5)`` answers correctly but late.
    """

    #: Answer with this status and an API-shaped error body instead of the page.
    status: int | None = None
    #: Send ``Retry-After`` with this many seconds (a string is sent as is, e.g. a date).
    retry_after: float | str | None = None
    #: Send ``retry-after-ms`` with this many milliseconds.
    retry_after_ms: float | None = None
    #: Send ``x-should-retry: true`` or ``false``.
    should_retry: bool | None = None
    #: Seconds to wait before answering (to trigger client timeouts).
    delay: float = 0.0
    #: Close the connection without answering.
    drop_connection: bool = False
    #: Announce the full body but send only half of it, then close.
    truncate_body: bool = False
    #: Answer 200 with a body that is not JSON.
    non_json_body: bool = False
    #: Answer with the page that ends at the request's ``after`` cursor, so the client
    #: sees the same cursor again.
    repeat_cursor: bool = False
    #: Answer ``307`` redirecting to this URL (the request's query is kept).
    redirect_to: str | None = None
    #: Append this many spaces to the JSON page: still valid, just huge.
    pad_body: int = 0
    #: Send the page with chunked transfer encoding, announcing no length.
    chunked: bool = False


#: What ``fault_rate`` draws from by default: every fault a client must survive by retrying.
RANDOM_FAULTS: tuple[Fault, ...] = (
    Fault(status=429, retry_after=1),
    Fault(status=429, retry_after_ms=250),
    Fault(status=500),
    Fault(status=502),
    Fault(status=503),
    Fault(drop_connection=True),
    Fault(truncate_body=True),
)


@attrs.frozen
class RecordedRequest:
    """A request the fake received, with secret headers left out."""

    method: str
    #: The path exactly as it arrived, still percent-encoded.
    raw_path: str
    #: The job id decoded from the path, or ``None`` when the path did not match.
    fine_tuning_job_id: str | None
    query: Mapping[str, str]
    #: The headers, without ``Authorization`` and cookies.
    headers: Mapping[str, str]
    #: Whether the request carried the right bearer token.
    authorized: bool
    #: The ``x-request-id`` the fake answered with.
    request_id: str


class FakeAPIServer:
    """A running fake of ``GET /fine_tuning/jobs/{id}/checkpoints`` for tests and demos.

    ``async with FakeAPIServer() as fake:`` starts it on a free loopback port; point a
    client at ``fake.base_url`` with ``fake.api_key``. Jobs are added with
    :meth:`add_job`; faults are queued with :meth:`inject`; ``fake.requests`` records
    what arrived.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        random_faults: Sequence[Fault] = RANDOM_FAULTS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """Prepare the fake; it listens only once started.

        ``api_key``: the only bearer token accepted (default: a random ``sk-fake-…``);
        pass ``""`` to accept any bearer token. ``port=0`` picks a free port. ``seed``
        makes the synthetic checkpoints. With ``fault_rate`` above 0, each request that
        no injected fault is waiting for misbehaves with that probability, as one of
        ``random_faults`` drawn from a generator seeded with ``fault_seed``: the same
        seed gives the same faults on the same sequence of requests. ``ssl_context``
        serves HTTPS instead of HTTP.
        """
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within [0, 1], got {fault_rate}")
        if fault_rate and not random_faults:
            raise ValueError("random_faults must not be empty when fault_rate is above 0")
        if not 0 <= port <= _MAX_PORT:
            raise ValueError(f"port must be within 0..{_MAX_PORT}, got {port}")
        # "[::1]" as copied from a URL means the address ::1.
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        self.api_key = f"sk-fake-{secrets.token_hex(12)}" if api_key is None else api_key
        self.host = host
        self.seed = seed
        self._port = port
        self._jobs: dict[str, list[dict[str, Any]]] = {}
        self._positions: dict[str, dict[str, int]] = {}
        self._faults: deque[Fault] = deque()
        self.fault_rate = fault_rate
        self._random_faults = tuple(random_faults)
        self._fault_random = random.Random(fault_seed)
        self._request_ids = itertools.count(1)
        #: Every request received, oldest first.
        self.requests: list[RecordedRequest] = []
        self._arrivals = asyncio.Condition()
        self._ssl_context = ssl_context
        self._in_flight = 0
        #: The most requests this fake was handling at the same moment.
        self.peak_concurrent_requests = 0
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    # -- data ----------------------------------------------------------------------

    def add_job(
        self,
        fine_tuning_job_id: str,
        checkpoints: Sequence[Checkpoint] | None = None,
        *,
        count: int = 25,
    ) -> list[Checkpoint]:
        """Serve a job: the given checkpoints (newest first), or ``count`` synthetic ones.

        Returns the checkpoints the job now serves, in the order the API lists them.
        """
        if checkpoints is None:
            checkpoints = synthetic_checkpoints(fine_tuning_job_id, count, seed=self.seed)
        items = [to_wire(checkpoint) for checkpoint in checkpoints]
        self._jobs[fine_tuning_job_id] = items
        self._positions[fine_tuning_job_id] = {item["id"]: i for i, item in enumerate(items)}
        return list(checkpoints)

    @property
    def job_ids(self) -> list[str]:
        """The ids of the jobs this fake serves."""
        return list(self._jobs)

    # -- faults --------------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each next request uses up one, in order."""
        self._faults.extend(faults)

    def clear_faults(self) -> None:
        """Drop the injected faults no request has used yet."""
        self._faults.clear()

    @property
    def pending_faults(self) -> int:
        """How many injected faults are still waiting for a request."""
        return len(self._faults)

    async def wait_for_requests(self, count: int) -> None:
        """Wait until at least ``count`` requests have arrived (e.g. to cancel mid-request)."""
        async with self._arrivals:
            await self._arrivals.wait_for(lambda: len(self.requests) >= count)

    # -- lifecycle -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The base URL to give a client, e.g. ``http://127.0.0.1:54321/v1``.

        An IPv6 host is bracketed, as URLs need: ``http://[::1]:54321/v1``.
        """
        if self._bound_port is None:
            raise RuntimeError("The fake server is not running; start it first")
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{url_host(self.host)}:{self._bound_port}/v1"

    @property
    def port(self) -> int:
        """The port the fake listens on."""
        if self._bound_port is None:
            raise RuntimeError("The fake server is not running; start it first")
        return self._bound_port

    async def start(self) -> None:
        """Start listening on ``host``:``port``."""
        if self._runner is not None:
            raise RuntimeError("The fake server is already running")
        app = web.Application()
        app.router.add_get(_ROUTE, self._handle)
        # Every other method and path too, so they are logged and answered as the API
        # answers them, rather than with aiohttp's plain-text 404 or 405.
        app.router.add_route("*", "/{path:.*}", self._handle)
        # handler_cancellation: a client that hangs up stops the handler, as on a real
        # server, so a delayed answer nobody waits for leaves no task behind.
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=0.5,
            handler_cancellation=True,
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._port, ssl_context=self._ssl_context)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening and close every connection. Safe to repeat."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._bound_port = None

    async def __aenter__(self) -> FakeAPIServer:
        """Start the fake and return it."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the fake."""
        await self.stop()

    # -- the endpoint --------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._in_flight += 1
        self.peak_concurrent_requests = max(self.peak_concurrent_requests, self._in_flight)
        try:
            return await self._answer(request)
        finally:
            self._in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        request_id = f"req_fake_{next(self._request_ids):06d}"
        job_id = (
            request.match_info.get("fine_tuning_job_id")
            if request.method in {"GET", "HEAD"}
            else None
        )
        authorized = self._authorized(request.headers.get("Authorization", ""))
        self.requests.append(
            RecordedRequest(
                method=request.method,
                raw_path=request.raw_path.split("?", 1)[0],
                fine_tuning_job_id=job_id,
                query=dict(request.query),
                headers={
                    name: value
                    for name, value in request.headers.items()
                    if name.lower() not in _SECRET_HEADERS
                },
                authorized=authorized,
                request_id=request_id,
            )
        )
        async with self._arrivals:
            self._arrivals.notify_all()
        fault = self._next_fault()
        headers = {"x-request-id": request_id, **_fault_headers(fault)}
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop_connection:
            return await _drop(request)
        if fault.redirect_to is not None:
            location = fault.redirect_to + (
                f"?{request.query_string}" if request.query_string else ""
            )
            return web.Response(status=307, headers={**headers, "Location": location})
        if fault.status is not None:
            return _fault_error(fault.status, headers)
        if fault.non_json_body:
            return web.Response(
                status=200,
                text="<html>Bad gateway</html>",
                content_type="text/html",
                headers=headers,
            )
        if not authorized:
            return _error(
                401,
                "Incorrect API key provided.",
                "invalid_request_error",
                None,
                headers,
                code="invalid_api_key",
            )
        if job_id is None:
            return _error(
                404,
                f"Invalid URL ({request.method} {request.path})",
                "invalid_request_error",
                None,
                headers,
            )
        if job_id not in self._jobs:
            return _error(
                404,
                f"Fine-tuning job {job_id!r} not found.",
                "invalid_request_error",
                "fine_tuning_job_id",
                headers,
                code="fine_tuning_job_not_found",
            )
        page, problem = self._page(job_id, request.query, repeat_cursor=fault.repeat_cursor)
        if problem is not None:
            return _error(400, problem[1], "invalid_request_error", problem[0], headers)
        body = json.dumps(page).encode() + b" " * fault.pad_body
        if fault.truncate_body:
            return await _truncated(request, body, headers)
        if fault.chunked:
            return await _chunked(request, body, headers)
        return web.Response(body=body, content_type="application/json", headers=headers)

    def _next_fault(self) -> Fault:
        if self._faults:
            return self._faults.popleft()
        if self.fault_rate and self._fault_random.random() < self.fault_rate:
            return self._fault_random.choice(self._random_faults)
        return Fault()

    def _authorized(self, header: str) -> bool:
        """Whether ``header`` is ``Bearer <the key>``; never raises, whatever it holds.

        aiohttp decodes header bytes as UTF-8 with surrogate escapes, so the header may
        hold any character, even a lone surrogate. compare_digest refuses non-ASCII
        strings, so both sides are compared as bytes.
        """
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if not self.api_key:
            return True
        return secrets.compare_digest(_raw(token), _raw(self.api_key))

    def _page(
        self, job_id: str, query: Mapping[str, str], *, repeat_cursor: bool
    ) -> tuple[dict[str, Any], tuple[str, str] | None]:
        items = self._jobs[job_id]
        raw_limit = query.get("limit")
        limit = DEFAULT_LIMIT
        if raw_limit is not None:
            parsed = _parse_limit(raw_limit)
            if parsed is None:
                return {}, ("limit", f"Invalid limit {raw_limit!r}: expected an integer >= 1.")
            limit = parsed
        after = query.get("after")
        start = 0
        if after is not None:
            position = self._positions[job_id].get(after)
            if position is None:
                return {}, ("after", f"No checkpoint {after!r} in job {job_id!r}.")
            start = position + 1
            if repeat_cursor:
                start = max(0, position + 1 - limit)
        data = items[start : start + limit]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": start + len(data) < len(items),
        }, None


def url_host(host: str) -> str:
    """``host`` as it goes in a URL: an IPv6 address in brackets, its zone id escaped."""
    if ":" in host:  # only IPv6 literals hold colons; names and IPv4 addresses cannot
        return "[" + host.replace("%", "%25") + "]"
    return host


def _raw(text: str) -> bytes:
    """``text`` as bytes, for any string: equal bytes if and only if equal strings."""
    # surrogatepass, unlike strict UTF-8, encodes lone surrogates too, and stays one-to-one.
    return text.encode("utf-8", "surrogatepass")


def _parse_limit(raw: str) -> int | None:
    """The page size ``raw`` asks for, or ``None`` when it is not an integer >= 1.

    Only ASCII digits count: ``str.isdigit`` also accepts "²", which int() refuses.
    """
    if not raw.isascii() or not raw.isdigit():
        return None
    digits = raw.lstrip("0")
    if not digits:
        return None
    if len(digits) > _MAX_LIMIT_DIGITS:
        return _HUGE_LIMIT
    return int(digits)


def _fault_headers(fault: Fault) -> dict[str, str]:
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = str(fault.retry_after)
    if fault.retry_after_ms is not None:
        headers["retry-after-ms"] = str(fault.retry_after_ms)
    if fault.should_retry is not None:
        headers["x-should-retry"] = "true" if fault.should_retry else "false"
    return headers


def _fault_error(status: int, headers: Mapping[str, str]) -> web.Response:
    """An injected error status, worded as the real API words it."""
    if status == 429:
        return _error(
            429,
            "Rate limit reached for requests (injected by the fake).",
            "requests",
            None,
            headers,
            code="rate_limit_exceeded",
        )
    if status >= 500:
        return _error(
            status,
            "The server had an error while processing your request (injected).",
            "server_error",
            None,
            headers,
        )
    return _error(status, f"Injected {status} error.", "invalid_request_error", None, headers)


def _error(
    status: int,
    message: str,
    error_type: str,
    param: str | None,
    headers: Mapping[str, str],
    *,
    code: str | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=dict(headers))


async def _drop(request: web.Request) -> web.StreamResponse:
    transport = request.transport
    if transport is not None:
        transport.abort()
    # Nothing can be sent on an aborted connection; aiohttp discards this response.
    return web.Response(status=500)


async def _chunked(
    request: web.Request, body: bytes, headers: Mapping[str, str]
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=dict(headers))
    response.content_type = "application/json"
    response.enable_chunked_encoding()
    await response.prepare(request)
    step = 64 * 1024
    for start in range(0, len(body), step):
        await response.write(body[start : start + step])
    await response.write_eof()
    return response


async def _truncated(
    request: web.Request, body: bytes, headers: Mapping[str, str]
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers=dict(headers))
    response.content_type = "application/json"
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    transport = request.transport
    if transport is not None:
        transport.abort()
    return response
