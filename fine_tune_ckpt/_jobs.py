"""``client.jobs``: ``GET /fine_tuning/jobs/{id}`` and ``GET /fine_tuning/jobs``."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from ._args import check_cursor, check_job_id, check_optional_positive_int
from ._backends import Backend
from ._errors import FineTuneCkptError
from ._models import FineTuningJob
from ._options import NOT_GIVEN, CallOptions, NotGiven
from ._paging import AsyncJobPager
from ._redact import scrub_error
from ._resource import fetch_raw, page_fetcher
from ._transport import Transport
from ._wire import structure_job

__all__ = ["JOBS_PATH", "AsyncJobsResource", "job_path"]

#: The path of the jobs listing.
JOBS_PATH = "/fine_tuning/jobs"


def job_path(fine_tuning_job_id: str) -> str:
    """One job's path, the id percent-encoded as one path segment (as checkpoints_path)."""
    return f"{JOBS_PATH}/{quote(fine_tuning_job_id, safe='')}"


class AsyncJobsResource:
    """Reads fine-tuning jobs; reach it as ``client.jobs``."""

    def __init__(self, transport: Transport, backend: Backend) -> None:
        """Bind the resource to a transport and the backend that builds its URLs."""
        self._transport = transport
        self._backend = backend

    async def retrieve(
        self,
        fine_tuning_job_id: str,
        *,
        timeout: float | NotGiven | None = NOT_GIVEN,  # noqa: ASYNC109 - the SDK's option
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> FineTuningJob:
        """Read one job: its status, ``fine_tuned_model``, ``error`` and the rest.

        The options override the client's for this request, as for
        ``client.checkpoints.list``. The job's ``response`` says what is known of the
        answer (status, request id, rate limits). Bad arguments raise ``TypeError``/
        ``ValueError`` naming the argument, at once.
        """
        job_id = check_job_id(fine_tuning_job_id)
        options = self._options(timeout, deadline, max_retries, extra_headers, extra_query)
        url = self._backend.url(job_path(job_id), dict(options.extra_query))
        raw = await fetch_raw(self._transport, url, _or_none(options))
        try:
            return structure_job(raw)
        except FineTuneCkptError as exc:
            scrub_error(exc, raw.secrets)  # a hostile answer may echo the key back
            raise

    def list(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        max_items: int | None = None,
        timeout: float | NotGiven | None = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str | int] | None = None,
    ) -> AsyncJobPager:
        """List the account's jobs, newest first; nothing is sent until you iterate.

        Pages exactly as ``client.checkpoints.list``: ``after`` starts after that job id,
        ``limit`` is the page size asked of the API (its default is 20), ``max_items``
        stops after that many jobs and fetches no page beyond them; the options apply to
        every page.
        """
        start = check_cursor("after", after)
        page_size = check_optional_positive_int("limit", limit)
        cap = check_optional_positive_int("max_items", max_items)
        options = self._options(timeout, deadline, max_retries, extra_headers, extra_query)
        fetch_page = page_fetcher(self._transport, self._backend, JOBS_PATH, page_size, options)
        return AsyncJobPager(fetch_page, after=start, limit=page_size, max_items=cap)

    def _options(
        self,
        timeout: float | NotGiven | None,
        deadline: float | NotGiven | None,
        max_retries: int | NotGiven,
        extra_headers: Mapping[str, str] | None,
        extra_query: Mapping[str, str | int] | None,
    ) -> CallOptions:
        return CallOptions.checked(
            timeout=timeout,
            deadline=deadline,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
            reserved_query=self._backend.reserved_query,
        )


def _or_none(options: CallOptions) -> CallOptions | None:
    """``None`` for the client's own settings: the transport's quickest path."""
    return None if options == CallOptions() else options
