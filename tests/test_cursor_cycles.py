"""Cursor cycles of every length end in PaginationError: in memory, then over loopback.

A cycling server is scripted as a "rho": pages asked with cursors ``c0 -> c1 -> ... ->
c(n-1)``, each ending with the next cursor, until the last page ends with ``c(lead)``, a
cursor already used, so that following it would go round ``cycle`` pages forever. Every
page holds checkpoints of its own, so any item yielded twice would be the pager's fault.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import attrs
import orjson
import pytest
from aiohttp import web

from fine_tune_ckpt import (
    AsyncCheckpointPager,
    AsyncClient,
    Checkpoint,
    CheckpointMetrics,
    CheckpointPage,
    PaginationError,
)
from fine_tune_ckpt._paging import next_cursor
from fine_tune_ckpt._wire import RawPage, to_wire
from fine_tune_ckpt.testing import FakeClock

JOB = "ftjob-cycle"
START = "ftckpt_start"
SIZE = 3

Mode = Literal["async for", "pages()", "to_list()"]
MODES: tuple[Mode, ...] = ("async for", "pages()", "to_list()")


def _checkpoint(id_: str, step: int) -> Checkpoint:
    return Checkpoint(
        id=id_,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        fine_tuned_model_checkpoint=f"ft:m:o:s:x:ckpt-step-{step}",
        fine_tuning_job_id=JOB,
        metrics=CheckpointMetrics(),
        step_number=step,
    )


def _page(data: list[Checkpoint], *, has_more: bool = True) -> CheckpointPage:
    return CheckpointPage(
        data=tuple(data), has_more=has_more, first_id=data[0].id, last_id=data[-1].id
    )


@attrs.define
class Rho:
    """A server whose cursors run ``lead`` pages straight, then round ``cycle`` pages."""

    #: The cursor the walk starts from: ``None`` (the newest) or ``START``.
    start: str | None
    #: Pages before the one the cycle leads back to.
    lead: int
    #: How many pages go round before a cursor comes back.
    cycle: int
    #: ``cursors[i]`` asks for ``pages[i]``; the last entry, the closing page's last id,
    #: is ``cursors[lead]`` again.
    cursors: list[str | None] = attrs.field(init=False)
    #: The page served for each cursor.
    pages: list[CheckpointPage] = attrs.field(init=False)
    #: Every ``after`` asked for, in order.
    calls: list[str | None] = attrs.field(init=False, factory=list)

    def __attrs_post_init__(self) -> None:
        """Build the pages: ``SIZE`` new checkpoints each, the last one closing the cycle."""
        if self.lead == 0 and self.start is None:
            raise ValueError("a cycle can only lead back to a cursor, and None is not one")
        count = self.lead + self.cycle
        step = 100_000
        self.cursors = [self.start]
        self.pages = []
        for number in range(count):
            data = []
            for _ in range(SIZE):
                data.append(_checkpoint(f"ftckpt_{step:06d}", step))
                step -= 1
            if number == count - 1:
                # The cycle closes: the last page ends with a cursor already used, as a
                # server that went round would answer (its other items are new).
                repeated = self.cursors[self.lead]
                assert repeated is not None
                data[-1] = _checkpoint(repeated, step)
            self.pages.append(_page(data))
            self.cursors.append(data[-1].id)

    @property
    def following(self) -> list[Checkpoint]:
        """The items of every page the pager may yield: all but the one closing the cycle."""
        return [item for page in self.pages[:-1] for item in page.data]

    @property
    def last_good_cursor(self) -> str | None:
        """The cursor of the page that closes the cycle: where a resume must continue."""
        return self.cursors[-2]

    def serve(self, after: str | None) -> dict[str, Any]:
        """Record ``after`` and return its page as JSON.

        A cursor this server never handed out raises ``ValueError``: a bug in the test.

        A pager going round the cycle is stopped here, so a regression fails instead of
        hanging the suite.
        """
        self.calls.append(after)
        if len(self.calls) > 2 * len(self.pages):
            raise AssertionError(f"the pager went round the cycle: {self.calls}")
        return to_wire(self.pages[self.cursors.index(after)])

    async def fetch(self, after: str | None) -> RawPage:
        """The pure ``fetch_page``."""
        return RawPage(orjson.dumps(self.serve(after)))


#: (start, lead, cycle): every cycle length, back to the start, and after good pages.
SHAPES = [
    pytest.param(START, 0, 1, id="1-page-cycle-to-start"),
    pytest.param(None, 1, 1, id="1-page-cycle"),
    pytest.param(None, 1, 2, id="2-page-cycle"),
    pytest.param(None, 1, 3, id="3-page-cycle"),
    pytest.param(None, 1, 50, id="50-page-cycle"),
    pytest.param(START, 0, 2, id="2-page-cycle-to-start"),
    pytest.param(START, 0, 3, id="3-page-cycle-to-start"),
    pytest.param(None, 6, 3, id="3-page-cycle-after-6-good-pages"),
    pytest.param(START, 4, 50, id="50-page-cycle-after-4-good-pages"),
]


async def _walk(pager: AsyncCheckpointPager, mode: Mode) -> tuple[list[str], PaginationError]:
    """Walk ``pager`` one way until PaginationError; return the ids yielded and the error."""
    ids: list[str] = []
    with pytest.raises(PaginationError) as caught:
        if mode == "async for":
            async for checkpoint in pager:
                ids.append(checkpoint.id)
        elif mode == "pages()":
            async for page in pager.pages():
                ids += [checkpoint.id for checkpoint in page.data]
        else:
            ids = [checkpoint.id for checkpoint in await pager.to_list()]
    return ids, caught.value


def _check_stopped_at_the_cycle(
    rho: Rho, ids: list[str], error: PaginationError, mode: Mode
) -> None:
    """No item twice, nothing after the cycle, and a resume cursor at the bad page."""
    assert len(ids) == len(set(ids))
    if mode != "to_list()":  # to_list() raises instead of returning a partial list
        assert ids == [checkpoint.id for checkpoint in rho.following]
    assert error.resume_after == rho.last_good_cursor
    assert "repeated the cursor" in str(error) or "again" in str(error)
    # Each page was asked for once, and never with a cursor already used.
    assert rho.calls == rho.cursors[:-1]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("max_items", [None, 10_000])
@pytest.mark.parametrize(("start", "lead", "cycle"), SHAPES)
async def test_a_cycle_of_any_length_stops_the_walk(
    start: str | None, lead: int, cycle: int, max_items: int | None, mode: Mode
) -> None:
    """Any cursor coming back raises PaginationError with no item yielded twice."""
    rho = Rho(start, lead, cycle)
    pager = AsyncCheckpointPager(
        rho.fetch, fine_tuning_job_id=JOB, after=start, limit=SIZE, max_items=max_items
    )
    ids, error = await _walk(pager, mode)
    _check_stopped_at_the_cycle(rho, ids, error, mode)


@pytest.mark.parametrize("mode", MODES)
async def test_max_items_reached_before_the_cycle_closes_ends_cleanly(mode: Mode) -> None:
    """A cap met on the last page before the cycle closes ends the walk with no error."""
    rho = Rho(None, 2, 3)
    cap = len(rho.following)
    pager = AsyncCheckpointPager(rho.fetch, fine_tuning_job_id=JOB, limit=SIZE, max_items=cap)
    if mode == "pages()":
        ids = [item.id async for page in pager.pages() for item in page.data]
    elif mode == "async for":
        ids = [item.id async for item in pager]
    else:
        ids = [item.id for item in await pager.to_list()]
    assert ids == [checkpoint.id for checkpoint in rho.following]
    assert rho.calls == rho.cursors[:-2]


async def test_max_items_ending_inside_the_closing_page_still_raises() -> None:
    """A cap that needs one item of the page closing the cycle raises: that page is suspect."""
    rho = Rho(None, 2, 3)
    pager = AsyncCheckpointPager(
        rho.fetch, fine_tuning_job_id=JOB, limit=SIZE, max_items=len(rho.following) + 1
    )
    ids, error = await _walk(pager, "async for")
    _check_stopped_at_the_cycle(rho, ids, error, "async for")


@pytest.mark.parametrize(("start", "lead", "cycle"), SHAPES)
async def test_resuming_from_the_error_loses_and_repeats_nothing(
    start: str | None, lead: int, cycle: int
) -> None:
    """Once the server is fixed, a walk resumed at ``resume_after`` completes the listing."""
    rho = Rho(start, lead, cycle)
    pager = AsyncCheckpointPager(rho.fetch, fine_tuning_job_id=JOB, after=start, limit=SIZE)
    ids, error = await _walk(pager, "async for")

    fixed = [*rho.pages[-1].data[:-1], _checkpoint("ftckpt_fixed", 0)]
    rho.pages[-1] = _page(fixed, has_more=False)
    resumed = AsyncCheckpointPager(
        rho.fetch, fine_tuning_job_id=JOB, after=error.resume_after, limit=SIZE
    )
    ids += [checkpoint.id async for checkpoint in resumed]
    assert ids == [checkpoint.id for checkpoint in [*rho.following, *fixed]]


async def test_a_resume_against_a_server_still_cycling_is_caught_again() -> None:
    """Resuming at ``resume_after`` while the server still cycles raises again, not forever."""
    rho = Rho(None, 1, 3)
    pager = AsyncCheckpointPager(rho.fetch, fine_tuning_job_id=JOB, limit=SIZE)
    _, error = await _walk(pager, "async for")
    resumed = AsyncCheckpointPager(
        rho.fetch, fine_tuning_job_id=JOB, after=error.resume_after, limit=SIZE
    )
    with pytest.raises(PaginationError):
        await resumed.to_list()


def test_next_cursor_refuses_any_cursor_already_used() -> None:
    """The pure rule: a cursor in ``seen`` is refused; a fresh one is returned."""
    page = _page([_checkpoint("ftckpt_b", 2), _checkpoint("ftckpt_a", 1)])
    with pytest.raises(PaginationError, match="'ftckpt_a', already used earlier"):
        next_cursor(page, "ftckpt_z", seen={"ftckpt_y", "ftckpt_a", "ftckpt_z"})
    assert next_cursor(page, "ftckpt_z", seen={"ftckpt_y", "ftckpt_z"}) == "ftckpt_a"
    assert next_cursor(page, None, seen=frozenset()) == "ftckpt_a"


def test_next_cursor_counts_after_as_used_even_outside_seen() -> None:
    """The cursor that asked for the page is refused whether or not ``seen`` holds it."""
    page = _page([_checkpoint("ftckpt_z", 2), _checkpoint("ftckpt_a", 1)])
    with pytest.raises(PaginationError, match="repeated the cursor 'ftckpt_a'"):
        next_cursor(page, "ftckpt_a", seen=())


@pytest.mark.parametrize("position", [0, 1, 2])
def test_a_page_holding_its_own_cursor_anywhere_is_refused(position: int) -> None:
    """The item ``after`` named, sent again in any position, would be yielded twice."""
    items = [_checkpoint("ftckpt_c", 3), _checkpoint("ftckpt_d", 2), _checkpoint("ftckpt_e", 1)]
    items[position] = _checkpoint("ftckpt_b", 9)
    with pytest.raises(PaginationError, match=r"again|repeated the cursor"):
        next_cursor(_page(items), "ftckpt_b")


@pytest.mark.parametrize("has_more", [True, False])
def test_a_page_starting_with_its_own_cursor_is_refused(has_more: bool) -> None:
    """An ``after`` read as inclusive would repeat an item per page: refused, last page too."""
    page = attrs.evolve(
        _page([_checkpoint("ftckpt_b", 2), _checkpoint("ftckpt_c", 1)]), has_more=has_more
    )
    with pytest.raises(PaginationError, match="inclusive"):
        next_cursor(page, "ftckpt_b")
    assert next_cursor(page, "ftckpt_x") == ("ftckpt_c" if has_more else None)


def test_the_last_page_needs_no_cursor_check() -> None:
    """A page with ``has_more`` false ends the walk, whatever its last id."""
    page = _page([_checkpoint("ftckpt_a", 1)], has_more=False)
    assert next_cursor(page, "ftckpt_b", seen={"ftckpt_a"}) is None


@pytest.mark.parametrize("cursor", ["\ud800", "ftckpt_\udfff_x"])
def test_a_cursor_no_url_can_carry_is_refused(cursor: str) -> None:
    """An id with a lone surrogate (an escaped one in the JSON) would go out as ``after=``."""
    page = _page([_checkpoint("ftckpt_a", 2), _checkpoint(cursor, 1)])
    with pytest.raises(PaginationError, match="surrogate"):
        next_cursor(page, "ftckpt_b")


async def test_a_walk_stops_before_sending_an_unsendable_cursor() -> None:
    """Over loopback: the page's items are not yielded, no request goes out after it."""
    bad = b'"ftckpt_\\ud800"'
    queries: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        queries.append(dict(request.query))
        item = to_wire(_checkpoint("ftckpt_x", 1))
        body = orjson.dumps({"object": "list", "data": [item], "has_more": True})
        return web.Response(body=body.replace(b'"ftckpt_x"', bad), content_type="application/json")

    app = web.Application()
    app.router.add_get(f"/v1/fine_tuning/jobs/{JOB}/checkpoints", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with AsyncClient(
            api_key="sk-test", base_url=f"http://127.0.0.1:{port}/v1", clock=FakeClock()
        ) as client:
            with pytest.raises(PaginationError, match="surrogate") as caught:
                async for _ in client.checkpoints.list(JOB, after="ftckpt_start"):
                    pytest.fail("an item of the refused page was yielded")
    finally:
        await runner.cleanup()
    assert caught.value.resume_after == "ftckpt_start"
    assert queries == [{"after": "ftckpt_start"}]


class Blocking:
    """A ``fetch_page`` wrapper whose requests for ``hang_on`` wait until cancelled."""

    def __init__(self, fetch: Callable[[str | None], Awaitable[RawPage]], hang_on: str) -> None:
        self.fetch_inner = fetch
        self.hang_on = hang_on
        self.cancelled: list[str] = []

    async def fetch(self, after: str | None) -> RawPage:
        """Serve the page, or hang on ``hang_on`` and note the cancellation."""
        if after == self.hang_on:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(after)
                raise
        return await self.fetch_inner(after)


async def test_a_fresh_guess_for_a_repeated_cursor_is_discarded() -> None:
    """A read-ahead started on a misleading ``last_id`` is cancelled when the cycle shows."""
    rho = Rho(None, 1, 2)
    closing = rho.pages[-1]
    # The body's last_id (what read-ahead peeks at) is new; the real cursor is repeated.
    rho.pages[-1] = attrs.evolve(closing, last_id="ftckpt_guess")
    blocking = Blocking(rho.fetch, hang_on="ftckpt_guess")
    pager = AsyncCheckpointPager(blocking.fetch, fine_tuning_job_id=JOB, limit=SIZE)
    ids, error = await _walk(pager, "async for")
    assert ids == [checkpoint.id for checkpoint in rho.following]
    assert error.resume_after == rho.last_good_cursor
    assert blocking.cancelled == ["ftckpt_guess"]
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current and not t.done()] == []


async def test_a_guess_that_is_a_used_cursor_is_never_sent() -> None:
    """A ``last_id`` naming a used cursor starts no read-ahead; the real cursor is followed."""
    rho = Rho(START, 0, 3)
    # No cycle after all: the closing page really ends with a new id and the listing ends
    # there, but its body's last_id still names the starting cursor.
    tail = [*rho.pages[-1].data[:-1], _checkpoint("ftckpt_new", 0)]
    rho.pages[-1] = _page(tail)
    rho.pages.append(_page([_checkpoint("ftckpt_end", -1)], has_more=False))
    rho.cursors[-1] = "ftckpt_new"
    rho.cursors.append("ftckpt_end")
    rho.pages[1] = attrs.evolve(rho.pages[1], last_id=START)
    items = await AsyncCheckpointPager(
        rho.fetch, fine_tuning_job_id=JOB, after=START, limit=SIZE
    ).to_list()
    assert [item.id for item in items] == [item.id for page in rho.pages for item in page.data]
    assert rho.calls == rho.cursors[:-1]  # START was asked for once: by the first page
    assert len(rho.calls) == len(set(rho.calls))


# -- over loopback ---------------------------------------------------------------------


@attrs.define
class CyclingServer:
    """A tiny ``aiohttp.web`` API serving a :class:`Rho` on 127.0.0.1."""

    rho: Rho
    base_url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one page, recording its ``after``."""
        page = self.rho.serve(request.query.get("after"))
        return web.json_response(page, dumps=lambda o: orjson.dumps(o).decode())


@pytest.fixture
async def cycling() -> AsyncIterator[Callable[[Rho], Awaitable[AsyncClient]]]:
    """Start a cycling server for a Rho and hand back a client bound to it."""
    runners: list[web.AppRunner] = []
    clients: list[AsyncClient] = []

    async def serve(rho: Rho) -> AsyncClient:
        server = CyclingServer(rho)
        app = web.Application()
        app.router.add_get(f"/v1/fine_tuning/jobs/{JOB}/checkpoints", server.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        client = AsyncClient(
            api_key="sk-cycle", base_url=f"http://127.0.0.1:{port}/v1", clock=FakeClock()
        )
        clients.append(client)
        return client

    try:
        yield serve
    finally:
        for client in clients:
            await client.aclose()
        for runner in runners:
            await runner.cleanup()


LOOPBACK_SHAPES = [
    pytest.param(START, 0, 1, id="1-page-cycle-to-start"),
    pytest.param(None, 1, 2, id="2-page-cycle"),
    pytest.param(START, 0, 3, id="3-page-cycle-to-start"),
    pytest.param(None, 5, 3, id="3-page-cycle-after-5-good-pages"),
    pytest.param(None, 1, 50, id="50-page-cycle"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("max_items", [None, 10_000])
@pytest.mark.parametrize(("start", "lead", "cycle"), LOOPBACK_SHAPES)
async def test_a_cycling_server_over_loopback_stops_the_walk(
    cycling: Callable[[Rho], Awaitable[AsyncClient]],
    start: str | None,
    lead: int,
    cycle: int,
    max_items: int | None,
    mode: Mode,
) -> None:
    """Over HTTP too: PaginationError, no duplicate, no request with a used cursor."""
    rho = Rho(start, lead, cycle)
    client = await cycling(rho)
    pager = client.checkpoints.list(JOB, after=start, limit=SIZE, max_items=max_items)
    ids, error = await _walk(pager, mode)
    _check_stopped_at_the_cycle(rho, ids, error, mode)
