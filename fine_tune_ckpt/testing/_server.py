"""A fake of the fine-tuning jobs and checkpoints endpoints on 127.0.0.1, on ``aiohttp.web``.

It serves ``GET /fine_tuning/jobs``, ``GET /fine_tuning/jobs/{id}`` and
``GET /fine_tuning/jobs/{id}/checkpoints``. It pages as the API does (newest first,
``after`` exclusive, ``limit`` defaulting to 10 checkpoints or 20 jobs), answers errors in
the API's shape, lets jobs run as its clock moves (see :class:`JobTimeline`), logs every
request it receives, and misbehaves on demand through scripted :class:`Fault` objects.
With ``flavor="azure"`` it is an Azure OpenAI resource instead: its routes,
``api-version`` rules, credentials, error shape and ``apim-request-id`` header.
With a :class:`RateLimitPolicy` it limits the rate of requests as the API does, with its
``x-ratelimit-*`` headers and 429s (the arithmetic is in ``_ratelimit``).

A malformed request gets the API's 4xx answer, never a 500: a 500 would be a fault the
client under test retries, hiding that it sent something wrong. (A message that is not
HTTP at all, e.g. a control character in a header, is refused with a 400 by aiohttp's
parser before it is a request, so it is not logged.)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import re
import secrets
import ssl
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from types import TracebackType
from typing import Any, Literal, get_args

import attrs
from aiohttp import web

from .._clock import SystemClock
from .._models import Checkpoint
from .._wire import to_wire
from ._data import synthetic_checkpoints
from ._jobs import (
    JobProfile,
    JobState,
    JobTimeline,
    SupportsMonotonic,
    SupportsTime,
    finished_times,
    job_object,
    make_profile,
    scheduled,
)
from ._ratelimit import (
    Admission,
    RateLimitPolicy,
    TokenBucket,
    azure_rate_limited_message,
    rate_limit_headers,
    rate_limited_message,
    retry_after_headers,
)

__all__ = [
    "DEFAULT_JOBS_LIMIT",
    "DEFAULT_LIMIT",
    "RANDOM_FAULTS",
    "Credential",
    "FakeAPIServer",
    "Fault",
    "Flavor",
    "RecordedRequest",
]

#: Which service the fake plays: the OpenAI API, or an Azure OpenAI resource.
Flavor = Literal["openai", "azure"]
#: The kind of credential that authorized a request.
Credential = Literal["api-key", "bearer"]

#: The page size of checkpoints when a request gives no ``limit``, as the API's.
DEFAULT_LIMIT = 10
#: The page size of jobs when a request gives no ``limit``, as the API's.
DEFAULT_JOBS_LIMIT = 20

_OPENAI_API = "openai"
_AZURE_DATED_API = "azure_dated"
_AZURE_V1_API = "azure_v1"
# Azure serves the dated API (``?api-version=2024-10-21``) under /openai and the GA v1 API
# under /openai/v1.
_PREFIXES = {_OPENAI_API: "/v1", _AZURE_DATED_API: "/openai", _AZURE_V1_API: "/openai/v1"}
_CHECKPOINTS = "checkpoints"
_JOB = "job"
_JOBS = "jobs"
# Any character but "/" may be in a job id, as the client percent-encodes any (aiohttp's
# default pattern would also refuse "{" and "}").
_ENDPOINTS = {
    _CHECKPOINTS: "/fine_tuning/jobs/{fine_tuning_job_id:[^/]+}/checkpoints",
    _JOB: "/fine_tuning/jobs/{fine_tuning_job_id:[^/]+}",
    _JOBS: "/fine_tuning/jobs",
}
# A route is named "<api>:<endpoint>", which tells the handler what matched.
_ROUTE_NAME_SEPARATOR = ":"
# [0-9], not \d: \d also matches other scripts' digits, which no api-version holds.
_DATED_API_VERSION = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})(-preview)?")
_V1_API_VERSIONS = frozenset({"preview"})
_MAX_PORT = 65535
# More digits than any page size could need; longer ``limit`` values count as "all of
# them", since int() refuses strings of over 4300 digits.
_MAX_LIMIT_DIGITS = 18
_HUGE_LIMIT: int = 10**_MAX_LIMIT_DIGITS
# api-key is Azure's key header; the log never keeps it, in either flavour.
_SECRET_HEADERS = frozenset({"api-key", "authorization", "cookie", "proxy-authorization"})


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
    """A request the fake received, with the values of secret headers left out."""

    method: str
    #: The path exactly as it arrived, still percent-encoded.
    raw_path: str
    #: The job id decoded from the path, or ``None`` when the path names none (the jobs
    #: list) or matched no endpoint.
    fine_tuning_job_id: str | None
    #: The query, decoded (for a repeated parameter, its last value).
    query: Mapping[str, str]
    #: The headers, without ``Authorization``, ``api-key``, cookies and
    #: ``Proxy-Authorization``.
    headers: Mapping[str, str]
    #: Whether the request carried a credential the fake accepts.
    authorized: bool
    #: The id the fake answered with: its ``x-request-id``, or on the Azure flavour its
    #: ``apim-request-id``.
    request_id: str
    #: The names of every header sent, secret ones included, in the order they came.
    header_names: tuple[str, ...] = ()
    #: What authorized the request: ``"bearer"`` (an ``Authorization: Bearer`` token),
    #: ``"api-key"`` (Azure's ``api-key`` header), or ``None`` when nothing did.
    credential: Credential | None = None


@attrs.frozen(eq=False)
class _ServedJob:
    """A job the fake serves: what stays the same, and how to tell where it stands."""

    profile: JobProfile
    #: Every checkpoint it has or will have, as the API sends them, newest first.
    checkpoints: list[dict[str, Any]]
    #: Each checkpoint's index in ``checkpoints``.
    positions: dict[str, int]
    timeline: JobTimeline
    #: Where a finished job (add_job) stands forever; ``None`` for a running one.
    finished: JobState | None
    #: The clock reading when a running job was added: its timeline starts there.
    added_at: float
    #: Which job was added later, for jobs created in the same second.
    order: int

    def at(self, now: float) -> JobState:
        """Where the job stands at the clock reading ``now``."""
        if self.finished is not None:
            return self.finished
        return self.timeline.at(now - self.added_at, checkpoints=len(self.checkpoints))

    def visible(self, state: JobState) -> list[dict[str, Any]]:
        """The checkpoints that exist in ``state``: the oldest ones, newest first."""
        return self.checkpoints[len(self.checkpoints) - state.checkpoints :]


class FakeAPIServer:
    """A running fake of the fine-tuning jobs API for tests and demos.

    It serves three endpoints: ``GET /fine_tuning/jobs/{id}/checkpoints`` (a job's
    checkpoints, newest first, 10 a page by default), ``GET /fine_tuning/jobs/{id}`` (a
    ``fine_tuning.job`` object) and ``GET /fine_tuning/jobs`` (every job, newest first, 20
    a page by default, ``after`` a job id; its pages have no ``first_id``/``last_id``).

    ``async with FakeAPIServer() as fake:`` starts it on a free loopback port; point a
    client at ``fake.base_url`` with ``fake.api_key``. Finished jobs are added with
    :meth:`add_job`, jobs that run as time passes with :meth:`add_running_job`; faults
    are queued with :meth:`inject`; ``fake.requests`` records what arrived.

    ``FakeAPIServer(flavor="azure")`` plays an Azure OpenAI resource at
    ``fake.azure_endpoint`` instead, serving the same three endpoints twice:

    - under ``/openai`` (``GET /openai/fine_tuning/jobs/{id}/checkpoints``, ...) is the
      dated API: it needs an ``api-version`` query parameter that is a date,
      ``YYYY-MM-DD``, optionally followed by ``-preview``; its checkpoint pages have no
      ``first_id``/``last_id``.
    - under ``/openai/v1`` is the GA v1 API: it takes no ``api-version`` or
      ``api-version=preview``; its pages are the OpenAI API's.
    - A request is authorized by ``api-key: <fake.api_key>`` or by
      ``Authorization: Bearer <token>`` with a token in ``fake.azure_ad_tokens``. When
      an ``Authorization`` header is sent, it alone decides, as on Azure: a wrong bearer
      token is a 401 even beside the right ``api-key``.
    - Errors are Azure's ``{"error": {"code", "message", "inner_error": {"code"}}}``,
      injected :class:`Fault` statuses included; every answer carries an
      ``apim-request-id`` (a UUID) and no ``x-request-id``.
    - Checks run in this order: an injected fault, the credential (401), the path (404),
      the ``api-version`` (400), the job (404), then ``limit`` and ``after`` (400).

    ``FakeAPIServer(rate_limit=RateLimitPolicy(requests_per_second=200, burst=50))`` limits
    the rate of requests, as the API does: one token bucket for every request on any path,
    read on the fake's clock. Every answer then reports the bucket in the API's
    ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests`` and
    ``x-ratelimit-reset-requests`` headers, and a request that finds the bucket empty is
    answered 429, with the API's ``rate_limit_exceeded`` error (Azure's on that flavour)
    and ``retry-after-ms`` and ``retry-after`` saying when the next token comes. That
    check runs before all the others: a refused request uses up no injected fault.
    ``rate_limited_count`` counts those refusals, ``request_count`` every request.
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
        flavor: Flavor = "openai",
        azure_oldest_first: bool = False,
        clock: SupportsMonotonic | None = None,
        rate_limit: RateLimitPolicy | None = None,
        latency: float = 0.0,
    ) -> None:
        """Prepare the fake; it listens only once started.

        ``api_key``: the only bearer token accepted (default: a random ``sk-fake-…``);
        pass ``""`` to accept any bearer token. ``port=0`` picks a free port. ``seed``
        makes the synthetic checkpoints. With ``fault_rate`` above 0, each request that
        no injected fault is waiting for misbehaves with that probability, as one of
        ``random_faults`` drawn from a generator seeded with ``fault_seed``: the same
        seed gives the same faults on the same sequence of requests. ``ssl_context``
        serves HTTPS instead of HTTP.

        ``flavor="azure"`` plays an Azure OpenAI resource (see the class); there
        ``api_key`` is the ``api-key`` header's value (``""`` accepts any). With
        ``azure_oldest_first`` its dated API lists checkpoints oldest first, as some
        Azure API versions did; ``after`` is still exclusive, so a client pages by the
        last item's id all the same.

        ``clock`` (anything with ``monotonic()``, e.g. a :class:`FakeClock`; default: real
        time) is what moves the jobs added by :meth:`add_running_job` on; with a
        ``time()`` too, it also dates them.

        ``rate_limit`` (a :class:`RateLimitPolicy`; default: none) refuses requests past
        a rate with 429, timed on ``clock``. ``latency`` (seconds, default 0) delays every
        answer, as a distant server would; it is waited in real time, so only when the
        fake keeps real time (no ``clock``, or a :class:`fine_tune_ckpt.SystemClock`).
        On any other clock, e.g. a :class:`FakeClock`, it is not waited at all: a fake
        clock moves only when the test moves it, and a test must never really wait.
        """
        if flavor not in get_args(Flavor):
            raise ValueError(f"flavor must be 'openai' or 'azure', got {flavor!r}")
        if azure_oldest_first and flavor != "azure":
            raise ValueError("azure_oldest_first needs flavor='azure'")
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within [0, 1], got {fault_rate}")
        if fault_rate and not random_faults:
            raise ValueError("random_faults must not be empty when fault_rate is above 0")
        if not 0 <= port <= _MAX_PORT:
            raise ValueError(f"port must be within 0..{_MAX_PORT}, got {port}")
        if isinstance(latency, bool) or not isinstance(latency, int | float):
            raise TypeError(f"latency must be a number of seconds, got {latency!r}")
        if not math.isfinite(latency) or latency < 0:
            raise ValueError(f"latency must be a finite number of seconds >= 0, got {latency!r}")
        if rate_limit is not None and not isinstance(rate_limit, RateLimitPolicy):
            raise TypeError(f"rate_limit must be a RateLimitPolicy or None, got {rate_limit!r}")
        if not host.strip():
            # An empty host would listen on every interface: the fake is for loopback.
            raise ValueError("host must name an address to listen on, e.g. 127.0.0.1")
        # "[::1]" as copied from a URL means the address ::1.
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        self.api_key = f"sk-fake-{secrets.token_hex(12)}" if api_key is None else api_key
        self.flavor: Flavor = flavor
        self.azure_oldest_first = azure_oldest_first
        #: The Microsoft Entra ID (Azure AD) bearer tokens the Azure flavour accepts; add
        #: to it freely, even while the fake runs. Empty at first.
        self.azure_ad_tokens: set[str] = set()
        self.host = host
        self.seed = seed
        self._port = port
        self._clock = clock
        # It starts full, so when it is made does not matter: time only refills it.
        self._bucket = None if rate_limit is None else TokenBucket.full(rate_limit, now=self._now())
        self._latency = float(latency)
        # Real waits only on real time: with a fake clock no test ever really waits.
        self._real_latency = (
            self._latency if clock is None or isinstance(clock, SystemClock) else 0.0
        )
        #: How many requests arrived, whatever their answer.
        self.request_count = 0
        #: How many requests the rate limit refused with 429 (injected 429s not counted).
        self.rate_limited_count = 0
        self._jobs: dict[str, _ServedJob] = {}
        self._job_order = itertools.count()
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
        """Serve a finished job: the given checkpoints (newest first), or ``count`` synthetic ones.

        The job is ``succeeded``, with plausible fields that depend only on its id, its
        checkpoints and ``seed``: created before its first checkpoint, finished after its
        last one, with a ``fine_tuned_model``. Adding a job again replaces it. Returns the
        checkpoints the job now serves, in the order the API lists them.
        """
        if checkpoints is None:
            checkpoints = synthetic_checkpoints(fine_tuning_job_id, count, seed=self.seed)
        created_at, finished_at = finished_times(checkpoints)
        profile = make_profile(
            fine_tuning_job_id, checkpoints, seed=self.seed, created_at=created_at
        )
        state = JobState("succeeded", len(checkpoints), finished_after=finished_at - created_at)
        self._serve(profile, checkpoints, JobTimeline(), finished=state)
        return list(checkpoints)

    def add_running_job(
        self,
        fine_tuning_job_id: str,
        checkpoints: Sequence[Checkpoint] | None = None,
        *,
        count: int = 10,
        timeline: JobTimeline = JobTimeline(),  # noqa: B008 - frozen, so safe to share
    ) -> list[Checkpoint]:
        """Serve a job that runs as the fake's clock moves, created now.

        The job goes through ``validating_files``, ``queued`` and ``running`` to
        ``timeline.outcome``, as ``timeline`` says; while it runs, its checkpoints appear
        one every ``timeline.checkpoint_every`` seconds, oldest first, and both the
        checkpoints endpoint and the job endpoints show only what exists at the moment of
        each request. It ends with its last checkpoint.

        ``checkpoints`` (newest first) are served as given; without them, ``count``
        synthetic ones are made, dated when the timeline makes each. Adding a job again
        replaces it and starts its clock again. Returns every checkpoint the job will
        have, newest first.
        """
        now = self._now()
        created_at = int(
            self._clock.time() if isinstance(self._clock, SupportsTime) else time.time()
        )
        if checkpoints is None:
            made = synthetic_checkpoints(fine_tuning_job_id, count, seed=self.seed)
            checkpoints = scheduled(timeline, made, created_at)
        profile = make_profile(
            fine_tuning_job_id, checkpoints, seed=self.seed, created_at=created_at
        )
        self._serve(profile, checkpoints, timeline, added_at=now)
        return list(checkpoints)

    def _serve(
        self,
        profile: JobProfile,
        checkpoints: Sequence[Checkpoint],
        timeline: JobTimeline,
        *,
        finished: JobState | None = None,
        added_at: float = 0.0,
    ) -> None:
        items = [to_wire(checkpoint) for checkpoint in checkpoints]
        self._jobs[profile.id] = _ServedJob(
            profile=profile,
            checkpoints=items,
            positions={item["id"]: i for i, item in enumerate(items)},
            timeline=timeline,
            finished=finished,
            added_at=added_at,
            order=next(self._job_order),
        )

    def _now(self) -> float:
        """The fake's clock reading, in seconds."""
        return time.monotonic() if self._clock is None else self._clock.monotonic()

    @property
    def rate_limit(self) -> RateLimitPolicy | None:
        """The rate limit the fake enforces, or ``None``."""
        return None if self._bucket is None else self._bucket.policy

    @property
    def latency(self) -> float:
        """Seconds each answer is delayed by, when the fake keeps real time."""
        return self._latency

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

        An IPv6 host is bracketed, as URLs need: ``http://[::1]:54321/v1``. On the
        Azure flavour it is ``azure_endpoint + "/openai"``.
        """
        suffix = "/openai" if self.flavor == "azure" else "/v1"
        return self._origin() + suffix

    @property
    def azure_endpoint(self) -> str:
        """The Azure flavour's resource endpoint, with no path: ``http://127.0.0.1:54321``.

        An IPv6 host is bracketed; with an ``ssl_context`` the scheme is ``https``.
        """
        if self.flavor != "azure":
            raise RuntimeError("azure_endpoint needs FakeAPIServer(flavor='azure')")
        return self._origin()

    def _origin(self) -> str:
        if self._bound_port is None:
            raise RuntimeError("The fake server is not running; start it first")
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{url_host(self.host)}:{self._bound_port}"

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
        apis = (_AZURE_DATED_API, _AZURE_V1_API) if self.flavor == "azure" else (_OPENAI_API,)
        for api in apis:
            for endpoint, path in _ENDPOINTS.items():
                name = f"{api}{_ROUTE_NAME_SEPARATOR}{endpoint}"
                app.router.add_get(_PREFIXES[api] + path, self._handle, name=name)
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
        azure = self.flavor == "azure"
        if azure:
            request_id = str(uuid.uuid4())
            headers = {"apim-request-id": request_id}
        else:
            request_id = f"req_fake_{next(self._request_ids):06d}"
            headers = {"x-request-id": request_id}
        # The catch-all route has no name, and only GET (and HEAD) reach a named one.
        route = request.match_info.route.name if request.method in {"GET", "HEAD"} else None
        api, endpoint = route.split(_ROUTE_NAME_SEPARATOR) if route else (None, None)
        job_id = request.match_info.get("fine_tuning_job_id") if api is not None else None
        credential = self._credential(request.headers)
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
                authorized=credential is not None,
                request_id=request_id,
                header_names=tuple(request.headers.keys()),
                credential=credential,
            )
        )
        self.request_count += 1
        async with self._arrivals:
            self._arrivals.notify_all()
        admission = self._admit()
        if admission is not None:
            headers.update(rate_limit_headers(admission))
        if self._real_latency:
            await asyncio.sleep(self._real_latency)
        if admission is not None and not admission.admitted:
            self.rate_limited_count += 1
            return self._rate_limited(admission, headers)
        fault = self._next_fault()
        headers.update(_fault_headers(fault))
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
            if azure:
                return _azure_fault_error(fault.status, headers)
            return _fault_error(fault.status, headers)
        if fault.non_json_body:
            return web.Response(
                status=200,
                text="<html>Bad gateway</html>",
                content_type="text/html",
                headers=headers,
            )
        if azure:
            refusal = self._azure_refusal(request, api, job_id, credential, headers)
        else:
            refusal = self._openai_refusal(request, endpoint, job_id, credential, headers)
        if refusal is not None:
            return refusal
        # One reading for the whole answer, so the job and its checkpoints agree.
        now = self._now()
        if endpoint == _JOBS:
            answer, problem = self._jobs_page(now, request.query, repeat_cursor=fault.repeat_cursor)
        elif job_id is None:  # never: both refusals answer every other request without a job
            raise AssertionError("a request without a job id was not refused")
        elif endpoint == _JOB:
            answer, problem = self._job_object(job_id, now), None
        else:
            answer, problem = self._page(
                job_id,
                now,
                request.query,
                repeat_cursor=fault.repeat_cursor,
                oldest_first=api == _AZURE_DATED_API and self.azure_oldest_first,
                with_ids=api != _AZURE_DATED_API,
            )
        if problem is not None:
            param, message = problem
            if azure:
                inner = "InvalidLimit" if param == "limit" else "InvalidCursor"
                return _azure_error(400, "BadRequest", message, inner, headers)
            return _error(400, message, "invalid_request_error", param, headers)
        body = json.dumps(answer).encode() + b" " * fault.pad_body
        if fault.truncate_body:
            return await _truncated(request, body, headers)
        if fault.chunked:
            return await _chunked(request, body, headers)
        return web.Response(body=body, content_type="application/json", headers=headers)

    def _admit(self) -> Admission | None:
        """Take a token for a request arriving now; ``None`` when there is no rate limit."""
        if self._bucket is None:
            return None
        self._bucket, admission = self._bucket.take(self._now())
        return admission

    def _rate_limited(self, admission: Admission, headers: Mapping[str, str]) -> web.Response:
        """The 429 of a request the rate limit refused, in the flavour's shape."""
        headers = {**headers, **retry_after_headers(admission)}
        if self.flavor == "azure":
            message = azure_rate_limited_message(admission)
            return _azure_error(429, "429", message, "RateLimitExceeded", headers)
        message = rate_limited_message(admission)
        return _error(429, message, "requests", None, headers, code="rate_limit_exceeded")

    def _openai_refusal(
        self,
        request: web.Request,
        endpoint: str | None,
        job_id: str | None,
        credential: Credential | None,
        headers: Mapping[str, str],
    ) -> web.Response | None:
        """The OpenAI API's answer to a request it refuses before paging, or ``None``."""
        if credential is None:
            return _error(
                401,
                "Incorrect API key provided.",
                "invalid_request_error",
                None,
                headers,
                code="invalid_api_key",
            )
        if endpoint is None:
            return _error(
                404,
                f"Invalid URL ({request.method} {request.path})",
                "invalid_request_error",
                None,
                headers,
            )
        if job_id is not None and job_id not in self._jobs:
            return _error(
                404,
                f"Fine-tuning job {job_id!r} not found.",
                "invalid_request_error",
                "fine_tuning_job_id",
                headers,
                code="fine_tuning_job_not_found",
            )
        return None

    def _azure_refusal(
        self,
        request: web.Request,
        api: str | None,
        job_id: str | None,
        credential: Credential | None,
        headers: Mapping[str, str],
    ) -> web.Response | None:
        """Azure's answer to a request it refuses before paging, or ``None``."""
        if credential is None:
            return _azure_error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make "
                "sure to provide a valid key for an active subscription and use a correct "
                "regional API endpoint for your resource.",
                _azure_credential_problem(request.headers),
                headers,
            )
        if api is None:
            return _azure_error(404, "404", "Resource not found", "ResourceNotFound", headers)
        version_problem = _azure_api_version_problem(api, request.query.get("api-version"))
        if version_problem is not None:
            message, inner = version_problem
            return _azure_error(400, "BadRequest", message, inner, headers)
        if job_id is not None and job_id not in self._jobs:
            return _azure_error(
                404,
                "NotFound",
                f"Fine-tuning job {job_id!r} not found.",
                "FineTuningJobNotFound",
                headers,
            )
        return None

    def _next_fault(self) -> Fault:
        if self._faults:
            return self._faults.popleft()
        if self.fault_rate and self._fault_random.random() < self.fault_rate:
            return self._fault_random.choice(self._random_faults)
        return Fault()

    def _credential(self, headers: Mapping[str, str]) -> Credential | None:
        """The kind of credential that authorizes a request with ``headers``, or ``None``.

        The OpenAI flavour takes only ``Authorization: Bearer <api_key>``. The Azure one
        takes a bearer token from ``azure_ad_tokens`` or ``api-key: <api_key>``; when an
        ``Authorization`` header is sent, Azure judges it alone, so the fake does too.
        """
        authorization = headers.get("Authorization")
        if self.flavor == "openai":
            return "bearer" if self._bearer_matches(authorization, (self.api_key,)) else None
        if authorization is not None:
            return "bearer" if self._bearer_matches(authorization, self.azure_ad_tokens) else None
        key = headers.get("api-key")
        if key is None:
            return None
        if not self.api_key:
            return "api-key" if key else None
        return "api-key" if secrets.compare_digest(_raw(key), _raw(self.api_key)) else None

    def _bearer_matches(self, header: str | None, accepted: Iterable[str]) -> bool:
        """Whether ``header`` is ``Bearer <one of accepted>``; never raises, whatever it holds.

        aiohttp decodes header bytes as UTF-8 with surrogate escapes, so the header may
        hold any character, even a lone surrogate. compare_digest refuses non-ASCII
        strings, so both sides are compared as bytes. On the OpenAI flavour an empty
        ``api_key`` accepts any token.
        """
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return False
        if self.flavor == "openai" and not self.api_key:
            return True
        raw = _raw(token)
        # Not any(): every candidate is compared, so the time says nothing of which matched.
        matches = [secrets.compare_digest(raw, _raw(candidate)) for candidate in accepted]
        return any(matches)

    def _page(
        self,
        job_id: str,
        now: float,
        query: Mapping[str, str],
        *,
        repeat_cursor: bool,
        oldest_first: bool = False,
        with_ids: bool = True,
    ) -> tuple[dict[str, Any], tuple[str, str] | None]:
        """A page of the checkpoints ``job_id`` has at ``now``, or the (param, message) refused."""
        served = self._jobs[job_id]
        items = served.visible(served.at(now))
        # Checkpoints not made yet are the newest ones: positions count past them.
        unmade = len(served.checkpoints) - len(items)
        if oldest_first:
            items = items[::-1]
        limit, problem = _limit(query, DEFAULT_LIMIT)
        if problem is not None:
            return {}, problem
        after = query.get("after")
        position = None
        if after is not None:
            index = served.positions.get(after)
            if index is None or index < unmade:
                return {}, ("after", f"No checkpoint {after!r} in job {job_id!r}.")
            position = index - unmade
            if oldest_first:  # positions count newest first
                position = len(items) - 1 - position
        start = _start(position, limit, repeat_cursor=repeat_cursor)
        data = items[start : start + limit]
        page: dict[str, Any] = {"object": "list", "data": data}
        if with_ids:
            page["first_id"] = data[0]["id"] if data else None
            page["last_id"] = data[-1]["id"] if data else None
        page["has_more"] = start + len(data) < len(items)
        return page, None

    def _jobs_page(
        self, now: float, query: Mapping[str, str], *, repeat_cursor: bool
    ) -> tuple[dict[str, Any], tuple[str, str] | None]:
        """A page of every job as it stands at ``now``, newest first, or the refusal."""
        # Newest first as the API lists them: by creation, the later added first on a tie.
        jobs = sorted(
            self._jobs.values(),
            key=lambda served: (served.profile.created_at, served.order),
            reverse=True,
        )
        limit, problem = _limit(query, DEFAULT_JOBS_LIMIT)
        if problem is not None:
            return {}, problem
        after = query.get("after")
        position = None
        if after is not None:
            ids = [served.profile.id for served in jobs]
            if after not in ids:
                return {}, ("after", f"No fine-tuning job {after!r}.")
            position = ids.index(after)
        start = _start(position, limit, repeat_cursor=repeat_cursor)
        data = [
            job_object(served.profile, served.at(now), served.timeline)
            for served in jobs[start : start + limit]
        ]
        # No first_id/last_id: the API's list of jobs has none.
        return {"object": "list", "data": data, "has_more": start + len(data) < len(jobs)}, None

    def _job_object(self, job_id: str, now: float) -> dict[str, Any]:
        """The ``fine_tuning.job`` object of ``job_id`` as it stands at ``now``."""
        served = self._jobs[job_id]
        return job_object(served.profile, served.at(now), served.timeline)


def _limit(query: Mapping[str, str], default: int) -> tuple[int, tuple[str, str] | None]:
    """The page size ``query`` asks for, or the (param, message) that refuses it."""
    raw = query.get("limit")
    if raw is None:
        return default, None
    parsed = _parse_limit(raw)
    if parsed is None:
        return default, ("limit", f"Invalid limit {raw!r}: expected an integer >= 1.")
    return parsed, None


def _start(position: int | None, limit: int, *, repeat_cursor: bool) -> int:
    """Where a page starts: after the ``after`` item at ``position`` (``None``: no cursor).

    With ``repeat_cursor``, the page that ends at that item instead, so a client sees the
    same cursor again.
    """
    if position is None:
        return 0
    if repeat_cursor:
        return max(0, position + 1 - limit)
    return position + 1


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


def _azure_error(
    status: int, code: str, message: str, inner_code: str, headers: Mapping[str, str]
) -> web.Response:
    """An error in Azure OpenAI's shape: no ``type`` or ``param``, an ``inner_error``."""
    body = {"error": {"code": code, "message": message, "inner_error": {"code": inner_code}}}
    return web.json_response(body, status=status, headers=dict(headers))


def _azure_fault_error(status: int, headers: Mapping[str, str]) -> web.Response:
    """An injected error status, worded as Azure words it."""
    if status == 429:
        return _azure_error(
            429,
            "429",
            "Requests to the fine-tuning API have exceeded the call rate limit of your "
            "current pricing tier (injected by the fake).",
            "RateLimitExceeded",
            headers,
        )
    if status >= 500:
        return _azure_error(
            status,
            "InternalServerError",
            "The server had an error while processing your request (injected).",
            "ServerError",
            headers,
        )
    return _azure_error(status, str(status), f"Injected {status} error.", "Injected", headers)


def _azure_credential_problem(headers: Mapping[str, str]) -> str:
    """The ``inner_error`` code of a 401: which credential was wrong, or that none came."""
    if "Authorization" in headers:
        return "InvalidBearerToken"
    if "api-key" in headers:
        return "InvalidApiKey"
    return "MissingCredential"


def _azure_api_version_problem(api: str, version: str | None) -> tuple[str, str] | None:
    """Why ``version`` is no ``api-version`` for ``api``, as (message, inner code)."""
    if api == _AZURE_V1_API:
        if version is None or version in _V1_API_VERSIONS:
            return None
        return (
            f"API version {version!r} is not supported by the v1 API: send none, or 'preview'.",
            "UnsupportedApiVersion",
        )
    if version is None:
        return "Missing required query parameter 'api-version'.", "MissingApiVersion"
    matched = _DATED_API_VERSION.fullmatch(version)
    if matched is None or not _is_date(matched.group(1)):
        return (
            f"API version {version!r} is not supported: expected YYYY-MM-DD, optionally "
            "with '-preview'.",
            "UnsupportedApiVersion",
        )
    return None


def _is_date(text: str) -> bool:
    """Whether ``text`` (``YYYY-MM-DD``) names a day of the calendar."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


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
