"""``client.checkpoints``: ``GET /fine_tuning/jobs/{id}/checkpoints``, listed and watched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import quote

from yarl import URL

from ._args import check_cursor, check_job_id, check_optional_positive_int
from ._backends import Backend
from ._clock import Clock
from ._metadata import response_info
from ._models import Checkpoint, FineTuningJob
from ._options import NOT_GIVEN, CallOptions, NotGiven
from ._paging import AsyncCheckpointPager, FetchPage
from ._transport import Transport
from ._watch import CheckpointWatcher, check_poll_interval, check_since
from ._wire import RawPage

__all__ = ["AsyncCheckpointsResource", "checkpoints_path", "fetch_raw", "page_fetcher"]


def checkpoints_path(fine_tuning_job_id: str) -> str:
    """The endpoint's path, with the job id percent-encoded as one path segment.

    ``/``, ``?``, ``#`` and ``%`` in the id are encoded, so the id can never change the
    path or add a query.
    """
    return f"/fine_tuning/jobs/{quote(fine_tuning_job_id, safe='')}/checkpoints"


async def fetch_raw(transport: Transport, url: URL, options: CallOptions | None) -> RawPage:
    """GET ``url`` through ``transport`` and hand back the 2xx answer, not yet decoded."""
    response = await transport.get(url, options)
    info = response_info(
        response.status,
        response.headers,
        request_id=response.request_id,
        attempts=response.attempts,
        elapsed=response.elapsed,
    )
    return RawPage(response.body, response.status, response.request_id, response.secrets, info)


def page_fetcher(
    transport: Transport,
    backend: Backend,
    path: str,
    page_size: int | None,
    options: CallOptions,
) -> FetchPage:
    """The ``fetch_page(cursor)`` of a cursor listing at ``path`` (checkpoints or jobs).

    Each page's query is the call's ``extra_query`` with ``after`` and ``limit`` on top.
    """
    # What backend.url(path, query) would make, its fixed parts built once per listing.
    endpoint = backend.endpoint(path)
    fixed_query: dict[str, str | int] = {**dict(backend.query), **options.extra_query}
    call_options = None if options == CallOptions() else options

    async def fetch_page(cursor: str | None) -> RawPage:
        query = dict(fixed_query)
        if cursor is not None:
            query["after"] = cursor
        if page_size is not None:
            query["limit"] = page_size
        url = endpoint.with_query(query) if query else endpoint
        return await fetch_raw(transport, url, call_options)

    return fetch_page


class AsyncCheckpointsResource:
    """Lists the checkpoints of fine-tuning jobs; reach it as ``client.checkpoints``."""

    def __init__(
        self,
        transport: Transport,
        backend: Backend,
        *,
        retrieve_job: Callable[[str], Awaitable[FineTuningJob]],
        clock: Clock,
    ) -> None:
        """Bind the resource to a transport and the backend that builds its URLs.

        A watch reads its job with ``retrieve_job`` and waits between polls on ``clock``.
        """
        self._transport = transport
        self._backend = backend
        self._retrieve_job = retrieve_job
        self._clock = clock

    def list(
        self,
        fine_tuning_job_id: str,
        *,
        after: str | None = None,
        limit: int | None = None,
        max_items: int | None = None,
        timeout: float | NotGiven | None = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> AsyncCheckpointPager:
        """List a job's checkpoints, newest first; nothing is sent until you iterate.

        ``after`` starts after that checkpoint id (for example an error's
        ``resume_after``); ``limit`` is the page size asked of the API (its default is 10);
        ``max_items`` stops after that many checkpoints and fetches no page beyond them.
        ``timeout``, ``deadline`` and ``max_retries`` override the client's for every page
        of this walk; ``extra_headers`` and ``extra_query`` are added to every page's
        request (over the client's defaults). Bad arguments raise ``TypeError``/
        ``ValueError`` naming the argument, at once.
        """
        job_id = check_job_id(fine_tuning_job_id)
        start = check_cursor("after", after)
        page_size = check_optional_positive_int("limit", limit)
        cap = check_optional_positive_int("max_items", max_items)
        options = CallOptions.checked(
            timeout=timeout,
            deadline=deadline,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
            reserved_query=self._backend.reserved_query,
        )
        return self._pager(job_id, start, page_size, cap, options)

    def watch(
        self,
        fine_tuning_job_id: str,
        *,
        poll_interval: float = 30.0,
        since: str | Checkpoint | None = None,
    ) -> CheckpointWatcher:
        """Watch a job: yield each of its checkpoints once, oldest first, as it appears.

        ``async for checkpoint in client.checkpoints.watch(job_id)`` yields the
        checkpoints that exist (with ``since``, a checkpoint id or record, only those
        newer than it), then each new one as a poll finds it, and ends once the job has
        succeeded, failed or been cancelled; ``watcher.job`` is the job as last read.
        Polls are ``poll_interval`` seconds apart (give or take 10%, longer if the API
        asks with ``Retry-After``) on the client's clock; each reads the job and only the
        newest page(s) of checkpoints. A poll that fails after its retries raises with
        ``resume_after`` set to the ``since`` that goes on without a gap or a duplicate.
        Nothing is sent until you iterate. Bad arguments raise at once.
        """
        job_id = check_job_id(fine_tuning_job_id)
        interval = check_poll_interval(poll_interval)
        start = check_since(since)
        retrieve_job = self._retrieve_job

        def list_checkpoints(read_ahead: bool) -> AsyncCheckpointPager:
            return self._pager(job_id, None, None, None, CallOptions(), read_ahead=read_ahead)

        return CheckpointWatcher(
            fine_tuning_job_id=job_id,
            list_checkpoints=list_checkpoints,
            retrieve_job=lambda: retrieve_job(job_id),
            poll_interval=interval,
            since=start,
            clock=self._clock,
        )

    def _pager(
        self,
        job_id: str,
        start: str | None,
        page_size: int | None,
        cap: int | None,
        options: CallOptions,
        *,
        read_ahead: bool = True,
    ) -> AsyncCheckpointPager:
        path = checkpoints_path(job_id)
        return AsyncCheckpointPager(
            page_fetcher(self._transport, self._backend, path, page_size, options),
            fine_tuning_job_id=job_id,
            after=start,
            limit=page_size,
            max_items=cap,
            read_ahead=read_ahead,
        )
