"""The paging rules and the pager, driven by an in-memory ``fetch_page`` (no socket)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest

from fine_tune_ckpt import (
    APIConnectionError,
    AsyncCheckpointPager,
    Checkpoint,
    CheckpointMetrics,
    CheckpointPage,
    PaginationError,
)
from fine_tune_ckpt._paging import next_cursor
from fine_tune_ckpt._wire import RawPage, to_wire


def _decoded(page: CheckpointPage) -> RawPage:
    """A page as the transport hands it over: raw JSON bytes."""
    return RawPage(orjson.dumps(to_wire(page)))


def _checkpoint(n: int) -> Checkpoint:
    return Checkpoint(
        id=f"ftckpt_{n:05d}",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        fine_tuned_model_checkpoint=f"ft:m:o:s:x:ckpt-step-{n}",
        fine_tuning_job_id="ftjob-1",
        metrics=CheckpointMetrics(),
        step_number=n,
    )


class Pages:
    """An in-memory API: ``total`` checkpoints served ``limit`` at a time, newest first."""

    def __init__(self, total: int, limit: int) -> None:
        self.items = [_checkpoint(n) for n in range(total, 0, -1)]
        self.limit = limit
        self.calls: list[str | None] = []
        self.fail_on_call: dict[int, Exception] = {}

    async def fetch(self, after: str | None) -> RawPage:
        self.calls.append(after)
        failure = self.fail_on_call.pop(len(self.calls), None)
        if failure is not None:
            raise failure
        ids = [item.id for item in self.items]
        start = 0 if after is None else ids.index(after) + 1
        data = tuple(self.items[start : start + self.limit])
        return _decoded(
            CheckpointPage(
                data=data,
                has_more=start + len(data) < len(self.items),
                first_id=data[0].id if data else None,
                last_id=data[-1].id if data else None,
            )
        )

    def pager(
        self, *, after: str | None = None, max_items: int | None = None
    ) -> AsyncCheckpointPager:
        return AsyncCheckpointPager(
            self.fetch,
            fine_tuning_job_id="ftjob-1",
            after=after,
            limit=self.limit,
            max_items=max_items,
        )


async def test_iterates_every_item_across_pages_in_order() -> None:
    """``async for`` yields every item once, newest first, until ``has_more`` is false."""
    api = Pages(total=23, limit=5)
    steps = [checkpoint.step_number async for checkpoint in api.pager()]
    assert steps == list(range(23, 0, -1))
    assert api.calls == [None, "ftckpt_00019", "ftckpt_00014", "ftckpt_00009", "ftckpt_00004"]


async def test_exact_multiple_of_the_page_size() -> None:
    """When the last page is full, ``has_more`` false still ends the walk with no extra call."""
    api = Pages(total=10, limit=5)
    assert len(await api.pager().to_list()) == 10
    assert len(api.calls) == 2


async def test_empty_job() -> None:
    """A job with no checkpoints yields nothing after one request."""
    api = Pages(total=0, limit=5)
    assert await api.pager().to_list() == []
    assert api.calls == [None]


async def test_creating_a_pager_sends_nothing() -> None:
    """A pager is lazy: nothing is fetched before it is iterated or awaited."""
    api = Pages(total=3, limit=5)
    api.pager()
    assert api.calls == []


async def test_awaiting_the_pager_returns_the_first_page() -> None:
    """``await pager`` fetches only the first page, as the official SDK does."""
    api = Pages(total=12, limit=5)
    page = await api.pager()
    assert [c.step_number for c in page.data] == [12, 11, 10, 9, 8]
    assert page.next_after == "ftckpt_00008"
    assert api.calls == [None]


async def test_pages_yields_whole_pages() -> None:
    """``pages()`` yields each page as sent."""
    api = Pages(total=12, limit=5)
    sizes = [len(page.data) async for page in api.pager().pages()]
    assert sizes == [5, 5, 2]


async def test_each_iteration_starts_again_from_the_starting_cursor() -> None:
    """Iterating twice walks twice from ``after``."""
    api = Pages(total=7, limit=5)
    pager = api.pager(after="ftckpt_00006")
    first = [c.step_number async for c in pager]
    second = [c.step_number async for c in pager]
    assert first == second == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("max_items", "expected_calls"),
    [(1, 1), (5, 1), (6, 2), (10, 2), (11, 3), (100, 3)],
)
async def test_max_items_stops_early_without_extra_pages(
    max_items: int, expected_calls: int
) -> None:
    """``max_items`` caps the items and never fetches a page it does not need."""
    api = Pages(total=12, limit=5)
    items = await api.pager(max_items=max_items).to_list()
    assert [c.step_number for c in items] == list(range(12, 12 - min(max_items, 12), -1))
    assert len(api.calls) == expected_calls


async def test_max_items_with_pages_stops_after_the_page_that_reaches_it() -> None:
    """``pages()`` honours ``max_items`` by page and never cuts a page."""
    api = Pages(total=12, limit=5)
    pages = [page async for page in api.pager(max_items=6).pages()]
    assert [len(page.data) for page in pages] == [5, 5]


async def test_errors_carry_the_cursor_to_resume_from() -> None:
    """An error on page 3 carries the last id of page 2; resuming there loses nothing."""
    api = Pages(total=12, limit=5)
    api.fail_on_call[3] = APIConnectionError("reset")
    seen: list[int] = []
    with pytest.raises(APIConnectionError) as caught:
        async for checkpoint in api.pager():
            seen.append(checkpoint.step_number)
    assert caught.value.resume_after == "ftckpt_00003"
    seen += [c.step_number async for c in api.pager(after=caught.value.resume_after)]
    assert seen == list(range(12, 0, -1))


async def test_error_on_the_first_page_resumes_from_the_start() -> None:
    """An error before any item carries the pager's own starting cursor."""
    api = Pages(total=12, limit=5)
    api.fail_on_call[1] = APIConnectionError("reset")
    with pytest.raises(APIConnectionError) as caught:
        await api.pager(after="ftckpt_00010")
    assert caught.value.resume_after == "ftckpt_00010"


async def test_other_exceptions_pass_through_untouched() -> None:
    """Bugs are not dressed up as API errors."""
    api = Pages(total=12, limit=5)
    api.fail_on_call[1] = KeyError("bug")
    with pytest.raises(KeyError):
        await api.pager().to_list()


def _page(ids: list[str], *, has_more: bool) -> CheckpointPage:
    data = tuple(_checkpoint(int(i)) for i in ids)
    return CheckpointPage(data=data, has_more=has_more)


def test_next_cursor_rules() -> None:
    """The cursor is the last id while ``has_more``; ``None`` at the end."""
    assert next_cursor(_page(["3", "2"], has_more=True), None) == "ftckpt_00002"
    assert next_cursor(_page(["3", "2"], has_more=False), None) is None
    assert next_cursor(_page([], has_more=False), "x") is None


def test_a_repeated_cursor_is_refused() -> None:
    """A page whose last id is the cursor that asked for it would loop forever."""
    with pytest.raises(PaginationError, match="repeated the cursor 'ftckpt_00002'"):
        next_cursor(_page(["3", "2"], has_more=True), "ftckpt_00002")


def test_has_more_without_items_is_refused() -> None:
    """``has_more`` with an empty page leaves no cursor to follow."""
    with pytest.raises(PaginationError, match="no items"):
        next_cursor(_page([], has_more=True), "ftckpt_00002")


async def test_a_server_that_ignores_after_stops_with_pagination_error() -> None:
    """A server that serves page 1 again raises instead of yielding duplicates forever."""

    async def same_page(after: str | None) -> RawPage:
        return _decoded(_page(["5", "4"], has_more=True))

    pager = AsyncCheckpointPager(same_page, fine_tuning_job_id="ftjob-1")
    seen: list[int] = []
    with pytest.raises(PaginationError) as caught:
        async for checkpoint in pager:
            seen.append(checkpoint.step_number)
    assert seen == [5, 4]
    assert caught.value.resume_after == "ftckpt_00004"


async def test_breaking_out_closes_the_walk() -> None:
    """``break`` stops the walk: beyond the read-ahead of page 2, nothing is fetched."""
    api = Pages(total=20, limit=5)
    async for checkpoint in api.pager():
        if checkpoint.step_number == 18:
            break
    await asyncio.sleep(0)
    assert api.calls == [None, "ftckpt_00016"]


def test_repr_names_the_listing() -> None:
    """The pager's repr says what it lists."""
    api = Pages(total=1, limit=5)
    assert repr(api.pager(max_items=3)) == (
        "AsyncCheckpointPager(fine_tuning_job_id='ftjob-1', after=None, limit=5, max_items=3)"
    )


async def test_next_page_is_requested_while_the_consumer_works() -> None:
    """Read-ahead: page 2 is on its way before the consumer has finished page 1."""
    api = Pages(total=12, limit=5)
    calls_seen_during_page_1: list[list[str | None]] = []
    async for checkpoint in api.pager():
        if checkpoint.step_number == 12:
            await asyncio.sleep(0)  # the consumer does some async work
            await asyncio.sleep(0)
            calls_seen_during_page_1.append(list(api.calls))
    assert calls_seen_during_page_1 == [[None, "ftckpt_00008"]]


async def test_no_read_ahead_past_max_items() -> None:
    """A page that completes ``max_items`` starts no read-ahead."""
    api = Pages(total=12, limit=5)
    async for _ in api.pager(max_items=5):
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    assert api.calls == [None]


async def test_read_ahead_failure_carries_its_cursor() -> None:
    """An error of the read-ahead request surfaces when its page is reached, with a cursor."""
    api = Pages(total=12, limit=5)
    api.fail_on_call[2] = APIConnectionError("reset")
    seen = []
    with pytest.raises(APIConnectionError) as caught:
        async for checkpoint in api.pager():
            seen.append(checkpoint.step_number)
    assert seen == [12, 11, 10, 9, 8]
    assert caught.value.resume_after == "ftckpt_00008"


async def test_a_wrong_early_guess_is_replaced_by_the_real_cursor() -> None:
    """A server whose ``last_id`` is not the last item's id costs a request, never an item."""
    api = Pages(total=12, limit=5)

    async def misleading(after: str | None) -> RawPage:
        wire = orjson.loads((await api.fetch(after)).body)
        if wire["data"]:
            wire["last_id"] = wire["data"][0]["id"]  # the early guess will be wrong
        return RawPage(orjson.dumps(wire))

    pager = AsyncCheckpointPager(misleading, fine_tuning_job_id="ftjob-1", limit=5)
    steps = [checkpoint.step_number async for checkpoint in pager]
    assert steps == list(range(12, 0, -1))
    real_cursors = [call for call in api.calls if call in {None, "ftckpt_00008", "ftckpt_00003"}]
    assert real_cursors == [None, "ftckpt_00008", "ftckpt_00003"]


async def test_cancelling_at_any_point_leaves_no_read_ahead_behind() -> None:
    """Cancelled after any number of loop turns, a walk leaves no task running."""

    class SlowPages(Pages):
        async def fetch(self, after: str | None) -> RawPage:
            await asyncio.sleep(0)
            if after is not None:  # a read-ahead that only cancellation can end
                await asyncio.Event().wait()
            return await super().fetch(after)

    current = asyncio.current_task()
    for turns in range(12):
        api = SlowPages(total=30, limit=5)
        task = asyncio.create_task(api.pager().to_list())
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait([task])
        for _ in range(5):
            await asyncio.sleep(0)
        left = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for stray in left:
            stray.cancel()
        assert left == [], f"after {turns} turns: {left}"
