"""The paging rules and the one pager that follows them across cursor pages.

One generic pager serves every cursor listing: :class:`AsyncCheckpointPager` (a job's
checkpoints) and :class:`AsyncJobPager` (the account's jobs) are it, named for what they
yield. The pager never touches the network itself: it calls the ``fetch_page`` coroutine it was
given, so every rule here can be tested without a socket.

Rules:

- The next page's ``after`` is the id of the current page's last item.
- The walk ends when ``has_more`` is false, or once ``max_items`` items are out.
- A page with ``has_more`` but no items cannot be followed: there is no cursor.
- A cursor is used at most once per walk. A page whose last id is a cursor this walk has
  already asked with (the walk's starting ``after`` included) would lead back to pages
  already yielded, A -> B -> A -> B ... forever, however long the cycle: it raises
  :class:`PaginationError` instead, before any of its items is yielded and before any
  request is sent with that cursor. The walk remembers one cursor per page for this.
- Every library error raised during a walk carries ``resume_after``. For a
  :class:`PaginationError` that is the cursor the unfollowable page was asked for with:
  the last item yielded (or the starting ``after``), so resuming there skips nothing and
  repeats nothing the walk yielded; a server still cycling is caught again.
- Retries happen below, one request at a time: a retried page never replays items.
- Read-ahead: the next page's request starts as soon as its cursor can be read from the
  tail of the raw body, before this page is decoded, checked and turned into records, so
  that work and the consumer's overlap the network wait. The guess is checked against the
  rules above once the page is structured; a wrong guess is cancelled and the right
  request sent. With ``max_items`` the read-ahead waits until the page is counted, so no
  page past the cap is ever requested. Stopping early cancels the request in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Generator
from contextlib import aclosing
from typing import Any, Generic, Protocol, TypeVar

import attrs

from ._args import check_sendable
from ._errors import FineTuneCkptError, PaginationError
from ._metadata import ResponseInfo
from ._models import Checkpoint, CheckpointPage, FineTuningJob, FineTuningJobPage
from ._redact import scrub_error
from ._tracing import active as tracing_active
from ._tracing import start_page
from ._wire import RawPage, structure_job_page, structure_page

__all__ = [
    "AsyncCheckpointPager",
    "AsyncCursorPager",
    "AsyncJobPager",
    "CursorPage",
    "check_follows",
    "next_cursor",
]

#: Fetches the page after a cursor, as received (nothing decoded yet).
FetchPage = Callable[[str | None], Awaitable[RawPage]]


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


_Item = TypeVar("_Item", bound=_Identified)
_Item_co = TypeVar("_Item_co", bound=_Identified, covariant=True)


class CursorPage(Protocol[_Item_co]):
    """What the pager needs of a page: its items, ``has_more`` and the next cursor."""

    @property
    def data(self) -> tuple[_Item_co, ...]:
        """The page's items, in the API's order."""
        ...

    @property
    def has_more(self) -> bool:
        """Whether the API holds more items after this page."""
        ...

    @property
    def next_after(self) -> str | None:
        """The next page's cursor (the last item's id), or ``None`` after the last page."""
        ...


_Page = TypeVar("_Page", bound=CursorPage[Any])


def next_cursor(
    page: CursorPage[_Identified], after: str | None, *, seen: Collection[str] = ()
) -> str | None:
    """Return the ``after`` of the page following ``page`` (fetched with ``after``).

    ``None`` means ``page`` is the last one. ``seen`` holds the cursors this walk has
    already asked with (``after`` counts whether or not it is among them). Raises
    :class:`PaginationError` when the server's answer cannot be followed without looping
    forever: ``has_more`` with no items, a cursor already used in this walk, or a page
    that holds the item its cursor named (an ``after`` read as inclusive would repeat one
    item on every page).
    """
    if not page.has_more:
        check_follows(page, after)
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
    if cursor in seen:
        # Its page was already fetched in this walk, so every page after it would come
        # again too: a cycle of two or more pages, as endless as the one-page one above.
        raise PaginationError(
            f"The API repeated the cursor {cursor!r}, already used earlier in this walk: "
            "following it would go round the same pages forever"
        )
    check_follows(page, after)
    try:
        check_sendable("the cursor", cursor)
    except ValueError as exc:
        raise PaginationError(f"The API sent an item id that cannot be followed: {exc}") from None
    return cursor


def check_follows(page: CursorPage[_Identified], after: str | None) -> None:
    """Raise :class:`PaginationError` if ``page``, asked for ``after``, holds that item.

    ``after`` is exclusive: the item it names belongs to an earlier page. Sending it again,
    first (a server reading the cursor as inclusive) or anywhere else, would yield it twice.
    """
    if after is not None and any(item.id == after for item in page.data):
        raise PaginationError(
            f"The API answered after={after!r} with that item again: it reads the "
            "cursor as inclusive, and following it would repeat items"
        )


class AsyncCursorPager(Generic[_Item, _Page]):
    """Items of a cursor listing, fetched page by page as you iterate.

    Creating it sends nothing. ``async for item in pager`` yields every item across
    pages; :meth:`pages` yields whole pages; ``await pager`` returns the first page;
    :meth:`to_list` gathers every item. Each iteration starts again from ``after``.
    """

    def __init__(
        self,
        fetch_page: FetchPage,
        structure: Callable[[RawPage], _Page],
        *,
        operation: str,
        fine_tuning_job_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
        max_items: int | None = None,
        read_ahead: bool = True,
    ) -> None:
        """Wrap ``fetch_page(after)`` and ``structure``, which turns its answer into a page.

        ``fetch_page`` fetches one page; ``structure`` raises a library error for an
        answer that is not a valid page. ``operation`` names the listing in traces;
        ``fine_tuning_job_id`` is the job it belongs to, if any. ``read_ahead=False``
        asks for each page only once the previous one is consumed: for a reader that
        usually stops within the first page or two (a watch's poll).
        """
        self._fetch_page = fetch_page
        self._structure_raw = structure
        self._operation = operation
        self._job_id = fine_tuning_job_id
        self._read_ahead = read_ahead
        #: The cursor each iteration starts from (``None``: the newest item).
        self.after = after
        #: The page size asked of the API (``None``: the API's default).
        self.limit = limit
        #: The most checkpoints an iteration yields (``None``: all of them).
        self.max_items = max_items
        #: The newest page's :class:`ResponseInfo` (status, request id, rate limits, ...),
        #: updated as each page arrives while you iterate; ``None`` before the first.
        self.last_response: ResponseInfo | None = None

    def __repr__(self) -> str:
        """Show what this pager lists."""
        return (
            f"{type(self).__name__}(after={self.after!r}, limit={self.limit!r}, "
            f"max_items={self.max_items!r})"
        )

    def __aiter__(self) -> AsyncGenerator[_Item, None]:
        """Iterate over every item, newest first, across pages."""
        return self._items()

    def __await__(self) -> Generator[Any, None, _Page]:
        """Fetch and return the first page only."""
        return self._first_page().__await__()

    def pages(self) -> AsyncGenerator[_Page, None]:
        """Iterate over whole pages as the API sends them.

        With ``max_items`` set, iteration stops after the page that reaches it; pages are
        never cut, so the last one may hold more items than ``max_items`` allows.
        """
        return self._pages()

    async def to_list(self) -> list[_Item]:
        """Gather every item (up to ``max_items``) into a list."""
        return [item async for item in self]

    async def _items(self) -> AsyncGenerator[_Item, None]:
        remaining = self.max_items
        async with aclosing(self._pages()) as pages:
            async for page in pages:
                items = page.data
                if remaining is not None:
                    items = items[:remaining]
                    remaining -= len(items)
                for item in items:
                    yield item

    async def _first_page(self) -> _Page:
        page = self._structure(await self._fetch(self.after, 1), self.after)
        try:
            check_follows(page, self.after)
        except PaginationError as exc:
            exc.resume_after = self.after
            raise
        return page

    async def _pages(self) -> AsyncGenerator[_Page, None]:
        after = self.after
        # Every cursor this walk has asked with, one short string per page: any of them
        # coming back is a cycle, whatever its length (see next_cursor).
        used: set[str] = set() if after is None else {after}
        count = 0
        number = 1  # of the page in hand, as the page spans count them
        ahead: asyncio.Task[RawPage] | None = None
        try:
            raw = await self._fetch(after, number)
            while True:
                # Without a cap, guess the cursor from the raw bytes and start at once;
                # with one, only the counted page can tell whether another is needed. A
                # guess already used is never sent: if right, next_cursor refuses it; if
                # wrong, the real cursor is requested below once the page is checked.
                guess = raw.peek_cursor() if self.max_items is None and self._read_ahead else None
                if guess is not None and guess not in used:
                    ahead = asyncio.create_task(self._fetch(guess, number + 1))
                    await _let_it_start()
                page = self._structure(raw, after)
                try:
                    cursor = next_cursor(page, after, seen=used)
                except PaginationError as exc:
                    # None of this page was yielded: resuming at its own cursor loses
                    # nothing and repeats nothing. A read-ahead is discarded below.
                    exc.resume_after = after
                    raise
                if cursor is not None:
                    used.add(cursor)
                count += len(page.data)
                done = cursor is None or (self.max_items is not None and count >= self.max_items)
                if ahead is not None and (done or cursor != guess):
                    await _discard(ahead)
                    ahead = None
                if done:
                    yield page
                    return
                if not self._read_ahead:
                    yield page
                    raw = await self._fetch(cursor, number + 1)
                    after = cursor
                    number += 1
                    continue
                if ahead is None:
                    ahead = asyncio.create_task(self._fetch(cursor, number + 1))
                    await _let_it_start()
                yield page
                raw = await ahead
                ahead = None
                after = cursor
                number += 1
        finally:
            if ahead is not None:
                await _discard(ahead)

    async def _fetch(self, after: str | None, number: int) -> RawPage:
        """Fetch page ``number``; a library error learns the cursor to resume from.

        With OpenTelemetry, the page's span starts here and is current while its attempts
        run, so they are its children; it ends once the page is turned into records.
        """
        trace = start_page(self._operation, number, self._job_id) if tracing_active() else None
        try:
            if trace is None:
                return await self._fetch_page(after)
            with trace.current():
                raw = await self._fetch_page(after)
        except FineTuneCkptError as exc:
            exc.resume_after = after
            if trace is not None:
                trace.fail(exc)
            raise
        except BaseException:
            if trace is not None:
                trace.end()
            raise
        return attrs.evolve(raw, trace=trace)

    def _structure(self, raw: RawPage, after: str | None) -> _Page:
        if raw.response is not None:
            self.last_response = raw.response
        try:
            page = self._structure_raw(raw)
        except FineTuneCkptError as exc:
            exc.resume_after = after
            scrub_error(exc, raw.secrets)  # a hostile page may echo the key back
            if raw.trace is not None:
                raw.trace.fail(exc)
            raise
        if raw.trace is not None:
            raw.trace.finish(len(page.data))
        return page


class AsyncCheckpointPager(AsyncCursorPager[Checkpoint, CheckpointPage]):
    """The checkpoints of one job, newest first, fetched page by page as you iterate.

    ``client.checkpoints.list(job_id)`` returns one. Creating it sends nothing. ``async for
    checkpoint in pager`` yields every checkpoint across pages; :meth:`pages` yields whole
    pages; ``await pager`` returns the first page; :meth:`to_list` gathers every checkpoint.
    Each iteration starts again from ``after``.
    """

    def __init__(
        self,
        fetch_page: FetchPage,
        *,
        fine_tuning_job_id: str,
        after: str | None = None,
        limit: int | None = None,
        max_items: int | None = None,
        read_ahead: bool = True,
    ) -> None:
        """Wrap ``fetch_page(after)``, the coroutine that fetches one page of the job."""
        super().__init__(
            fetch_page,
            structure_page,
            operation=CHECKPOINTS_OPERATION,
            fine_tuning_job_id=fine_tuning_job_id,
            after=after,
            limit=limit,
            max_items=max_items,
            read_ahead=read_ahead,
        )
        #: The job whose checkpoints are listed.
        self.fine_tuning_job_id = fine_tuning_job_id

    def __repr__(self) -> str:
        """Show what this pager lists."""
        return (
            f"AsyncCheckpointPager(fine_tuning_job_id={self.fine_tuning_job_id!r}, "
            f"after={self.after!r}, limit={self.limit!r}, max_items={self.max_items!r})"
        )


class AsyncJobPager(AsyncCursorPager[FineTuningJob, FineTuningJobPage]):
    """The account's fine-tuning jobs, newest first, fetched page by page as you iterate.

    ``client.jobs.list()`` returns one; it pages, reads ahead, caps and resumes exactly as
    :class:`AsyncCheckpointPager` does.
    """

    def __init__(
        self,
        fetch_page: FetchPage,
        *,
        after: str | None = None,
        limit: int | None = None,
        max_items: int | None = None,
    ) -> None:
        """Wrap ``fetch_page(after)``, the coroutine that fetches one page of jobs."""
        super().__init__(
            fetch_page,
            structure_job_page,
            operation=JOBS_OPERATION,
            after=after,
            limit=limit,
            max_items=max_items,
        )


#: The listings' names in traces (their page spans).
CHECKPOINTS_OPERATION = "fine_tuning.jobs.checkpoints.list"
JOBS_OPERATION = "fine_tuning.jobs.list"


async def _let_it_start() -> None:
    """Give a read-ahead task just created one loop turn to put its request on the wire.

    Without it, the task would not start before the pager next waits, which is only after
    the page is structured and consumed: no overlap at all. The task is stored before
    this await, so a cancellation here still finds and discards it.
    """
    await asyncio.sleep(0)


async def _discard(task: asyncio.Task[RawPage]) -> None:
    """Cancel a read-ahead nobody will consume, and wait until it has let go of its socket.

    ``asyncio.wait`` neither raises the task's error (it is nobody's now) nor swallows a
    cancellation of the caller itself.
    """
    task.cancel()
    await asyncio.wait([task])
    if task.cancelled():
        return
    if task.exception() is None:  # (marks a failure as seen: a page nobody wants)
        trace = task.result().trace
        if trace is not None:
            trace.end()  # fetched ahead, never used: its span still ends
