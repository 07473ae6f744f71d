"""The paging rules and the pager that follows them across cursor pages.

The pager never touches the network itself: it calls the ``fetch_page`` coroutine it was
given, so every rule here can be tested without a socket.

Rules:

- The next page's ``after`` is the id of the current page's last item.
- The walk ends when ``has_more`` is false, or once ``max_items`` items are out.
- A page with ``has_more`` but no items, or whose last id is the cursor that asked for it,
  cannot be followed: :class:`PaginationError` instead of an endless loop.
- Every library error raised during a walk carries ``resume_after``.
- Retries happen below, one request at a time: a retried page never replays items.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import aclosing
from typing import Any

from ._errors import FineTuneCkptError, PaginationError
from ._models import Checkpoint, CheckpointPage

__all__ = ["AsyncCheckpointPager", "next_cursor"]

FetchPage = Callable[[str | None], Awaitable[CheckpointPage]]


def next_cursor(page: CheckpointPage, after: str | None) -> str | None:
    """Return the ``after`` of the page following ``page`` (fetched with ``after``).

    ``None`` means ``page`` is the last one. Raises :class:`PaginationError` when the
    server's answer cannot be followed without looping forever.
    """
    if not page.has_more:
        return None
    cursor = page.next_after
    if cursor is None:
        raise PaginationError(
            "The API said has_more=true but sent a page with no items, so there is no "
            "cursor to continue from"
        )
    if cursor == after:
        raise PaginationError(
            f"The API repeated the cursor {cursor!r}: following it would loop forever"
        )
    return cursor


class AsyncCheckpointPager:
    """The checkpoints of one job, fetched page by page as you iterate.

    Creating it sends nothing. ``async for checkpoint in pager`` yields every checkpoint
    across pages; :meth:`pages` yields whole pages; ``await pager`` returns the first page;
    :meth:`to_list` gathers every checkpoint. Each iteration starts again from ``after``.
    """

    def __init__(
        self,
        fetch_page: FetchPage,
        *,
        fine_tuning_job_id: str,
        after: str | None = None,
        limit: int | None = None,
        max_items: int | None = None,
    ) -> None:
        """Wrap ``fetch_page(after)``, the coroutine that fetches one page."""
        self._fetch_page = fetch_page
        #: The job whose checkpoints are listed.
        self.fine_tuning_job_id = fine_tuning_job_id
        #: The cursor each iteration starts from (``None``: the newest checkpoint).
        self.after = after
        #: The page size asked of the API (``None``: the API's default).
        self.limit = limit
        #: The most checkpoints an iteration yields (``None``: all of them).
        self.max_items = max_items

    def __repr__(self) -> str:
        """Show what this pager lists."""
        return (
            f"AsyncCheckpointPager(fine_tuning_job_id={self.fine_tuning_job_id!r}, "
            f"after={self.after!r}, limit={self.limit!r}, max_items={self.max_items!r})"
        )

    def __aiter__(self) -> AsyncGenerator[Checkpoint, None]:
        """Iterate over every checkpoint, newest first, across pages."""
        return self._items()

    def __await__(self) -> Generator[Any, None, CheckpointPage]:
        """Fetch and return the first page only."""
        return self._fetch(self.after).__await__()

    def pages(self) -> AsyncGenerator[CheckpointPage, None]:
        """Iterate over whole pages as the API sends them.

        With ``max_items`` set, iteration stops after the page that reaches it; pages are
        never cut, so the last one may hold more items than ``max_items`` allows.
        """
        return self._pages()

    async def to_list(self) -> list[Checkpoint]:
        """Gather every checkpoint (up to ``max_items``) into a list."""
        return [checkpoint async for checkpoint in self]

    async def _items(self) -> AsyncGenerator[Checkpoint, None]:
        remaining = self.max_items
        async with aclosing(self._pages()) as pages:
            async for page in pages:
                items = page.data
                if remaining is not None:
                    items = items[:remaining]
                    remaining -= len(items)
                for item in items:
                    yield item

    async def _pages(self) -> AsyncGenerator[CheckpointPage, None]:
        after = self.after
        seen = 0
        while True:
            page = await self._fetch(after)
            try:
                cursor = next_cursor(page, after)
            except PaginationError as exc:
                exc.resume_after = after
                raise
            yield page
            seen += len(page.data)
            if cursor is None or (self.max_items is not None and seen >= self.max_items):
                return
            after = cursor

    async def _fetch(self, after: str | None) -> CheckpointPage:
        try:
            return await self._fetch_page(after)
        except FineTuneCkptError as exc:
            exc.resume_after = after
            raise
