"""``client.checkpoints``: the one endpoint, ``GET /fine_tuning/jobs/{id}/checkpoints``."""

from __future__ import annotations

from urllib.parse import quote

from yarl import URL

from ._args import check_cursor, check_job_id, check_optional_positive_int
from ._paging import AsyncCheckpointPager
from ._transport import Transport
from ._wire import RawPage

__all__ = ["AsyncCheckpointsResource", "checkpoints_url"]


def checkpoints_url(base_url: URL, fine_tuning_job_id: str) -> URL:
    """Build the endpoint's URL with the job id percent-encoded as one path segment.

    ``/``, ``?``, ``#`` and ``%`` in the id are encoded, so the id can never change the
    path or add a query.
    """
    segment = quote(fine_tuning_job_id, safe="")
    # encoded=True: yarl must not decode the segment again or fold away dot segments.
    return URL(f"{base_url}/fine_tuning/jobs/{segment}/checkpoints", encoded=True)


class AsyncCheckpointsResource:
    """Lists the checkpoints of fine-tuning jobs; reach it as ``client.checkpoints``."""

    def __init__(self, transport: Transport, base_url: URL) -> None:
        """Bind the resource to a transport and the API's base URL."""
        self._transport = transport
        self._base_url = base_url

    def list(
        self,
        fine_tuning_job_id: str,
        *,
        after: str | None = None,
        limit: int | None = None,
        max_items: int | None = None,
    ) -> AsyncCheckpointPager:
        """List a job's checkpoints, newest first; nothing is sent until you iterate.

        ``after`` starts after that checkpoint id (for example an error's
        ``resume_after``); ``limit`` is the page size asked of the API (its default is 10);
        ``max_items`` stops after that many checkpoints and fetches no page beyond them.
        Bad arguments raise ``TypeError``/``ValueError`` naming the argument, at once.
        """
        job_id = check_job_id(fine_tuning_job_id)
        start = check_cursor("after", after)
        page_size = check_optional_positive_int("limit", limit)
        cap = check_optional_positive_int("max_items", max_items)
        url = checkpoints_url(self._base_url, job_id)
        transport = self._transport

        async def fetch_page(cursor: str | None) -> RawPage:
            query: dict[str, str | int] = {}
            if cursor is not None:
                query["after"] = cursor
            if page_size is not None:
                query["limit"] = page_size
            response = await transport.get(url.with_query(query) if query else url)
            return RawPage(response.body, response.status, response.request_id, response.secrets)

        return AsyncCheckpointPager(
            fetch_page, fine_tuning_job_id=job_id, after=start, limit=page_size, max_items=cap
        )
