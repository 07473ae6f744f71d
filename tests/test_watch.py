"""``client.jobs`` and ``client.checkpoints.watch`` against a scripted loopback server.

The server here is written for these tests: its job and checkpoints change only when the
client's clock is slept on, so each poll sees exactly the state the test scripted.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any, cast

import pytest
from aiohttp import web

from fine_tune_ckpt import (
    APIResponseValidationError,
    AsyncAzureClient,
    AsyncClient,
    Checkpoint,
    CheckpointWatcher,
    FineTuneCkptError,
    FineTuningJob,
    InternalServerError,
    NotFoundError,
    PaginationError,
    to_wire,
)
from fine_tune_ckpt._watch import find_anchor, new_checkpoints, poll_delay
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, JobTimeline, synthetic_checkpoints

JOB = "ftjob-watched"
KEY = "sk-test-watch"


def job_body(job_id: str = JOB, status: str = "running", **fields: Any) -> dict[str, Any]:
    """A FineTuningJob as the API sends it."""
    body: dict[str, Any] = {
        "object": "fine_tuning.job",
        "id": job_id,
        "model": "gpt-4o-mini-2024-07-18",
        "created_at": 1_767_600_000,
        "fine_tuned_model": None,
        "organization_id": "org-123",
        "result_files": [],
        "status": status,
        "validation_file": None,
        "training_file": "file-abc123",
        "error": None,
        "finished_at": None,
        "hyperparameters": {"n_epochs": 3, "batch_size": "auto"},
        "trained_tokens": None,
        "seed": 42,
    }
    body.update(fields)
    return body


class Script:
    """What the server answers: a job, its checkpoints (newest first), and scripted faults."""

    def __init__(self, checkpoints: list[Checkpoint], status: str = "running") -> None:
        self.all = checkpoints  # newest first: the job's whole future
        self.visible = 0  # how many of the oldest exist now
        self.job = job_body(status=status)
        self.log: list[tuple[str, dict[str, str]]] = []
        self.faults: list[int] = []  # statuses to answer the next requests with
        self.extra_headers: dict[str, str] = {}
        self.jobs = [job_body(f"ftjob-{n:03}", "succeeded") for n in range(7)]

        #: How the server orders what exists (newest first unless a test says otherwise).
        self.order: Callable[[list[Checkpoint]], list[Checkpoint]] = list

    def existing(self) -> list[Checkpoint]:
        """The checkpoints that exist now, in the server's order (newest first)."""
        return self.order(self.all[len(self.all) - self.visible :])

    def appear(self, count: int) -> None:
        self.visible = min(len(self.all), self.visible + count)

    async def handle(self, request: web.Request) -> web.Response:
        self.log.append((request.path, dict(request.query)))
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"error": {"message": "no"}}, status=401)
        if self.faults:
            return web.json_response({"error": {"message": "down"}}, status=self.faults.pop(0))
        parts = request.path.strip("/").split("/")
        if parts == ["v1", "fine_tuning", "jobs"]:
            return self._page(self.jobs, request, to_dict=lambda job: job)
        if parts[:3] == ["v1", "fine_tuning", "jobs"] and parts[3] != JOB and len(parts) == 4:
            found = [job for job in self.jobs if job["id"] == parts[3]]
            if found:
                return web.json_response(found[0])
            return web.json_response({"error": {"message": "no such job"}}, status=404)
        if parts == ["v1", "fine_tuning", "jobs", JOB]:
            return web.json_response(self.job, headers=self.extra_headers)
        if parts == ["v1", "fine_tuning", "jobs", JOB, "checkpoints"]:
            return self._page(self.existing(), request, to_dict=to_wire)
        return web.json_response({"error": {"message": "no route"}}, status=404)

    def _page(
        self, items: list[Any], request: web.Request, *, to_dict: Callable[[Any], Any]
    ) -> web.Response:
        after = request.query.get("after")
        limit = int(request.query.get("limit", "10"))
        ids = [item["id"] if isinstance(item, dict) else item.id for item in items]
        start = ids.index(after) + 1 if after in ids else 0
        chunk = items[start : start + limit]
        body = {
            "object": "list",
            "data": [to_dict(item) for item in chunk],
            "has_more": start + limit < len(items),
        }
        return web.json_response(body, headers=self.extra_headers)

    def paths(self) -> list[str]:
        return [path.rsplit("/", 1)[-1] for path, _ in self.log]


class ScriptedClock(FakeClock):
    """A fake clock that runs ``on_sleep`` each time the client sleeps (between polls)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_sleep: Callable[[], None] = lambda: None

    async def sleep(self, seconds: float) -> None:
        self.on_sleep()
        await super().sleep(seconds)


@pytest.fixture
def script() -> Script:
    """The scripted server's state: 30 checkpoints to come, none yet, a running job."""
    return Script(synthetic_checkpoints(JOB, 30))


@pytest.fixture
def clock() -> ScriptedClock:
    """The client's clock: fake, and the script's trigger between polls."""
    return ScriptedClock()


@pytest.fixture
async def api(script: Script, clock: ScriptedClock) -> AsyncIterator[AsyncClient]:
    """A client bound to a loopback server that answers from ``script``, without retries."""
    app = web.Application()

    async def route(request: web.Request) -> web.Response:
        return await script.handle(request)

    app.router.add_route("GET", "/{tail:.*}", route)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with AsyncClient(
            api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", clock=clock, max_retries=0
        ) as client:
            yield client
    finally:
        await runner.cleanup()


def ids(checkpoints: list[Checkpoint]) -> list[str]:
    """The ids of some checkpoints, in order."""
    return [checkpoint.id for checkpoint in checkpoints]


def oldest_first(script: Script) -> list[str]:
    """The ids of the job's whole future, oldest first."""
    return ids(list(reversed(script.all)))


# ---- the job reads -------------------------------------------------------------------


async def test_retrieve_types_every_field(api: AsyncClient, script: Script) -> None:
    """A job read whole: typed fields, error record, mappings, unknown fields, exact round trip."""
    script.job = job_body(
        status="failed",
        error={"code": "invalid_training_file", "message": "bad line 3", "param": "training_file"},
        finished_at=1_767_603_600,
        metadata={"team": "search"},
        integrations=[{"type": "wandb", "wandb": {"project": "p"}}],
        new_field={"kept": [1, 2]},
    )
    job = await api.jobs.retrieve(JOB)
    assert isinstance(job, FineTuningJob)
    assert job.status == "failed"
    assert job.is_finished
    assert job.error is not None
    assert job.error.code == "invalid_training_file"
    assert job.error.param == "training_file"
    assert job.finished_at is not None
    assert job.finished_at.year == 2026
    assert job.hyperparameters == {"n_epochs": 3, "batch_size": "auto"}
    assert job.metadata == {"team": "search"}
    assert job.extra == {"new_field": {"kept": (1, 2)}}
    assert job.response is not None
    assert job.response.status_code == 200
    assert to_wire(job) == script.job  # exactly what was served
    hash(job)  # records stay hashable, mappings inside included


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("status", "paused", "$.status"),
        ("created_at", "yesterday", "$.created_at"),
        ("error", {"code": 1, "message": "x", "param": None}, "$.error.code"),
        ("result_files", "file-1", "$.result_files"),
        ("metadata", {"k": 1}, "$.metadata"),
        ("hyperparameters", [1], "$.hyperparameters"),
    ],
)
async def test_retrieve_refuses_a_job_of_the_wrong_shape_by_path(
    api: AsyncClient, script: Script, field: str, value: object, problem: str
) -> None:
    """A job of the wrong shape is refused, the problem named by JSON path."""
    script.job = {**job_body(), field: value}
    with pytest.raises(APIResponseValidationError, match=problem.replace("$", r"\$")):
        await api.jobs.retrieve(JOB)


async def test_retrieve_of_an_unknown_job_is_not_found(api: AsyncClient) -> None:
    """An unknown job is the SDK's NotFoundError."""
    with pytest.raises(NotFoundError):
        await api.jobs.retrieve("ftjob-nope")


@pytest.mark.parametrize("bad", ["", "  ", "..", 3, None])
async def test_retrieve_checks_the_job_id_before_sending(
    api: AsyncClient, script: Script, bad: Any
) -> None:
    """A bad job id raises naming the argument, and nothing is sent."""
    with pytest.raises((TypeError, ValueError), match="fine_tuning_job_id"):
        await api.jobs.retrieve(bad)
    assert script.log == []


async def test_list_pages_jobs_like_checkpoints(api: AsyncClient, script: Script) -> None:
    """Jobs page as checkpoints do: cursor, limit, max_items, await, after, pages()."""
    jobs = await api.jobs.list(limit=3).to_list()
    assert [job.id for job in jobs] == [job["id"] for job in script.jobs]
    assert [query for _, query in script.log] == [
        {"limit": "3"},
        {"limit": "3", "after": "ftjob-002"},
        {"limit": "3", "after": "ftjob-005"},
    ]
    first = await api.jobs.list(limit=2)
    assert [job.id for job in first.data] == ["ftjob-000", "ftjob-001"]
    assert first.next_after == "ftjob-001"
    capped = [job.id async for job in api.jobs.list(limit=2, max_items=3)]
    assert capped == ["ftjob-000", "ftjob-001", "ftjob-002"]
    resumed = [job.id async for job in api.jobs.list(after="ftjob-004")]
    assert resumed == ["ftjob-005", "ftjob-006"]
    pages = [len(page.data) async for page in api.jobs.list(limit=4).pages()]
    assert pages == [4, 3]


async def test_list_of_jobs_has_the_cursor_cycle_guard(api: AsyncClient, script: Script) -> None:
    """A server that answers every cursor with the first page again cannot loop the walk."""
    script.jobs = script.jobs[:2]

    original = script._page
    script._page = lambda items, request, *, to_dict: web.json_response(  # type: ignore[method-assign]
        {"object": "list", "data": script.jobs, "has_more": True}
    )
    try:
        with pytest.raises(PaginationError) as caught:
            await api.jobs.list().to_list()
    finally:
        script._page = original  # type: ignore[method-assign]
    assert caught.value.resume_after == "ftjob-001"


async def test_list_error_carries_resume_after(api: AsyncClient, script: Script) -> None:
    """An error in a jobs walk carries the cursor that resumes it with no gap."""
    seen: list[str] = []
    pager = api.jobs.list(limit=3)
    with pytest.raises(InternalServerError) as caught:
        async for job in pager:
            seen.append(job.id)
            if len(seen) == 3:
                script.faults.append(500)
    resumed = [job.id async for job in api.jobs.list(after=caught.value.resume_after)]
    # The read-ahead may have fetched page 2 before the fault was set: nothing lost either way.
    assert len(seen) in (3, 6)
    assert seen + resumed == [job["id"] for job in script.jobs]


# ---- the pure rules of a watch -------------------------------------------------------


def _twin(of: Checkpoint, *, id: str, step: int, later: int = 0) -> Checkpoint:
    """A checkpoint made ``later`` seconds after ``of``, with its own id and step."""
    return Checkpoint(
        id=id,
        created_at=of.created_at + timedelta(seconds=later),
        fine_tuned_model_checkpoint="ft:x",
        fine_tuning_job_id=JOB,
        metrics=of.metrics,
        step_number=step,
    )


def test_find_anchor_by_id_by_record_and_across_a_tie() -> None:
    """The poll stops after the page that passes its anchor, not before a same-second tie."""
    page = synthetic_checkpoints(JOB, 6)  # newest first, minutes apart
    assert find_anchor(page, None) == (None, False)
    assert find_anchor(page, page[2].id) == (page[2], True)
    assert find_anchor(page, "ftckpt_elsewhere") == (None, False)
    assert find_anchor(page, page[3]) == (page[3], True)
    gone = page[3]
    assert find_anchor([cp for cp in page if cp is not gone], gone) == (gone, True)
    # The anchor ends the page: the next page may hold one made in the same second.
    assert find_anchor(page[:3], page[2].id) == (page[2], False)
    tie = _twin(page[2], id="ftckpt_tie", step=1)
    assert find_anchor([*page[:3], tie], page[2].id) == (page[2], False)
    assert find_anchor([tie, page[3]], page[2].id, found=page[2]) == (page[2], True)


def test_new_checkpoints_by_id_whatever_the_listing_order() -> None:
    """New is decided by id; past since, by time; the batch comes out oldest first."""
    page = synthetic_checkpoints(JOB, 6)  # newest first
    oldest_first = list(reversed(page))
    assert new_checkpoints(page, None, known=set(), complete=True) == oldest_first
    known = {cp.id for cp in page[2:]}
    assert new_checkpoints(page, page[2], known=known, complete=True) == oldest_first[4:]
    # Made in the anchor's second, listed after it: new, as its id was never listed.
    tie = _twin(page[0], id="ftckpt_tie", step=1)
    seen = {cp.id for cp in page}
    assert new_checkpoints([page[0], tie, *page[1:]], page[0], known=seen, complete=True) == [tie]
    # Out of order and shuffled: still each new one, sorted by time.
    shuffled = [page[3], page[0], page[5], page[1], page[4], page[2]]
    assert new_checkpoints(shuffled, None, known=set(), complete=True) == oldest_first
    # Past since, older checkpoints were never read: only the not-older are new.
    assert new_checkpoints(page, page[2], known={page[2].id}, complete=False) == [
        page[1],
        page[0],
    ]
    older = _twin(page[3], id="ftckpt_older", step=1)
    assert new_checkpoints([*page[:3], older], page[2], known={page[2].id}, complete=False) == [
        page[1],
        page[0],
    ]
    later_tie = _twin(page[2], id="ftckpt_same_second", step=page[2].step_number + 1)
    assert new_checkpoints(
        [page[0], page[1], page[2], later_tie], page[2], known={page[2].id}, complete=False
    ) == [later_tie, page[1], page[0]]
    # Listed twice in one poll: once.
    assert new_checkpoints([page[0], page[0]], None, known=set(), complete=True) == [page[0]]


def test_poll_delay_jitters_and_honours_retry_after() -> None:
    """Polls wait the interval give or take 10%, or longer when the server asks."""
    assert poll_delay(30, [], now=0, draw=lambda: 0.0) == pytest.approx(27)
    assert poll_delay(30, [], now=0, draw=lambda: 0.999999) == pytest.approx(33, abs=1e-4)
    assert poll_delay(30, [{"retry-after-ms": "45000"}], now=0, draw=lambda: 0.5) == 45
    assert poll_delay(30, [{}, {"retry-after": "50"}], now=0, draw=lambda: 0.5) == 50
    # Shorter than the interval changes nothing; over a minute is not obeyed.
    assert poll_delay(30, [{"retry-after": "1"}], now=0, draw=lambda: 0.5) == 30
    assert poll_delay(30, [{"retry-after": "3600"}], now=0, draw=lambda: 0.5) == 30


# ---- watching ------------------------------------------------------------------------


def schedule(script: Script, clock: ScriptedClock, *steps: Callable[[], None]) -> None:
    """Run one step at each sleep of the client, in order; then nothing."""
    pending = list(steps)

    def next_step() -> None:
        if pending:
            pending.pop(0)()

    clock.on_sleep = next_step


async def test_watch_yields_existing_then_new_oldest_first_and_ends_with_the_job(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """Existing checkpoints, then new ones, oldest first; each poll reads only what it must."""
    script.appear(12)

    def finish() -> None:
        script.appear(3)
        script.job = job_body(status="succeeded", fine_tuned_model="ft:gpt:org::abc")

    schedule(
        script, clock, lambda: script.appear(2), lambda: None, lambda: script.appear(11), finish
    )
    watcher = api.checkpoints.watch(JOB, poll_interval=60)
    seen = [checkpoint.id async for checkpoint in watcher]
    assert seen == oldest_first(script)[:28]
    assert watcher.job is not None
    assert watcher.job.status == "succeeded"
    assert watcher.job.fine_tuned_model == "ft:gpt:org::abc"
    assert watcher.last_checkpoint is not None
    assert watcher.since == seen[-1]
    assert len(clock.sleeps) == 4
    assert all(54 <= delay <= 66 for delay in clock.sleeps)
    # Each poll reads the job first, then only the newest page(s).
    assert script.paths() == [
        JOB,
        "checkpoints",
        "checkpoints",  # first poll: 12 exist, two pages
        JOB,
        "checkpoints",  # 2 new: one page
        JOB,
        "checkpoints",  # nothing new
        JOB,
        "checkpoints",
        "checkpoints",  # 11 new: the boundary is on page 2
        JOB,
        "checkpoints",  # 3 new, and the job is over
    ]


async def test_watch_ends_at_once_for_a_finished_job(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """A job already over: its checkpoints, and no wait."""
    script.appear(30)
    script.job = job_body(status="cancelled")
    watcher = api.checkpoints.watch(JOB)
    assert [cp.id async for cp in watcher] == oldest_first(script)
    assert clock.sleeps == []
    assert watcher.job is not None
    assert watcher.job.status == "cancelled"


async def test_watch_of_a_failed_job_keeps_its_error(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """A failed job ends the watch, and its error is on ``watcher.job``."""
    script.appear(1)

    def fail() -> None:
        script.job = job_body(
            status="failed", error={"code": "server_error", "message": "boom", "param": None}
        )

    schedule(script, clock, fail)
    watcher = api.checkpoints.watch(JOB, poll_interval=5)
    assert len([cp async for cp in watcher]) == 1
    assert watcher.job is not None
    assert watcher.job.error is not None
    assert watcher.job.error.message == "boom"


async def test_since_yields_only_newer_checkpoints(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """``since`` an id: only the checkpoints newer than it."""
    script.appear(20)
    script.job = job_body(status="succeeded")
    order = oldest_first(script)
    assert [cp.id async for cp in api.checkpoints.watch(JOB, since=order[14])] == order[15:20]
    assert [cp.id async for cp in api.checkpoints.watch(JOB, since=order[19])] == []


async def test_since_an_id_the_job_does_not_have_is_an_error(
    api: AsyncClient, script: Script
) -> None:
    """``since`` an id the job does not list: a library error, not a guess."""
    script.appear(5)
    with pytest.raises(FineTuneCkptError, match="not a checkpoint of job"):
        await anext(aiter(api.checkpoints.watch(JOB, since="ftckpt_other")))


async def test_since_a_record_the_api_no_longer_lists(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """The API keeps only recent checkpoints: a record still marks where the new ones begin."""
    script.appear(10)
    script.job = job_body(status="succeeded")
    gone = script.existing()[4]
    script.all.remove(gone)
    script.visible -= 1
    watched = [cp.id async for cp in api.checkpoints.watch(JOB, since=gone)]
    assert watched == [cp.id for cp in reversed(script.existing()[:4])]


async def test_a_failed_poll_raises_and_since_resumes_without_gap_or_duplicate(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """A poll failing after its retries raises; ``since=resume_after`` loses and repeats nothing."""
    script.appear(4)

    def break_it() -> None:
        script.appear(3)
        script.faults.append(500)

    schedule(script, clock, lambda: script.appear(2), break_it)
    seen: list[str] = []
    with pytest.raises(InternalServerError) as caught:
        async for checkpoint in api.checkpoints.watch(JOB, poll_interval=1):
            seen.append(checkpoint.id)
    assert caught.value.resume_after == seen[-1]
    script.job = job_body(status="succeeded")
    clock.on_sleep = lambda: None
    rest = [cp.id async for cp in api.checkpoints.watch(JOB, since=caught.value.resume_after)]
    assert seen + rest == oldest_first(script)[:9]


async def test_a_failed_first_poll_resumes_from_the_start(api: AsyncClient, script: Script) -> None:
    """Nothing yielded yet: ``resume_after`` is None, which starts over."""
    script.faults.append(503)
    with pytest.raises(InternalServerError) as caught:
        await anext(aiter(api.checkpoints.watch(JOB)))
    assert caught.value.resume_after is None


async def test_retry_after_on_an_answer_spaces_the_polls(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """A ``retry-after-ms`` longer than the interval spaces the polls."""
    script.extra_headers = {"retry-after-ms": "45000"}
    schedule(script, clock, lambda: None, lambda: script.job.update(status="succeeded"))
    assert [cp async for cp in api.checkpoints.watch(JOB, poll_interval=10)] == []
    assert clock.sleeps == [45, 45]


async def test_a_checkpoint_listed_twice_is_yielded_once(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """A server listing one checkpoint twice does not make the watch yield it twice."""
    script.appear(3)
    script.all.insert(len(script.all) - 2, script.all[-3])  # the newest, listed twice
    script.visible += 1
    script.job = job_body(status="succeeded")
    watched = [cp.id async for cp in api.checkpoints.watch(JOB)]
    assert sorted(watched) == sorted(set(watched))
    assert len(watched) == 3


async def test_breaking_out_and_iterating_again_goes_on(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """After ``break``, iterating the same watcher again goes on where it stopped."""
    script.appear(6)
    schedule(script, clock, lambda: script.job.update(status="succeeded"))
    watcher = api.checkpoints.watch(JOB)
    first: list[str] = []
    async for checkpoint in watcher:
        first.append(checkpoint.id)
        if len(first) == 2:
            break
    rest = [cp.id async for cp in watcher]
    assert first + rest == oldest_first(script)[:6]


async def test_cancelling_a_watch_mid_sleep_leaves_nothing_behind(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """Cancelled while waiting for the next poll: nothing keeps running."""
    script.appear(2)
    asleep = asyncio.Event()
    never = asyncio.Event()

    async def sleep_forever(seconds: float) -> None:
        asleep.set()
        await never.wait()

    clock.sleep = sleep_forever  # type: ignore[method-assign]
    got: list[str] = []

    async def consume() -> None:
        async for checkpoint in api.checkpoints.watch(JOB):
            got.append(checkpoint.id)

    task = asyncio.create_task(consume())
    await asleep.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert got == oldest_first(script)[:2]


async def test_cancelling_a_watch_mid_request_leaves_nothing_behind(
    api: AsyncClient, script: Script
) -> None:
    """Cancelled while a request is in flight: nothing keeps running."""
    script.appear(2)
    gate = asyncio.Event()
    handle = script.handle

    async def slow(request: web.Request) -> web.Response:
        await gate.wait()
        return await handle(request)

    script.handle = slow  # type: ignore[method-assign]
    task = asyncio.create_task(api.checkpoints.watch(JOB).__aiter__().__anext__())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gate.set()


@pytest.mark.parametrize(
    ("arguments", "error", "name"),
    [
        ({"poll_interval": 0}, ValueError, "poll_interval"),
        ({"poll_interval": -1.0}, ValueError, "poll_interval"),
        ({"poll_interval": math.nan}, ValueError, "poll_interval"),
        ({"poll_interval": math.inf}, ValueError, "poll_interval"),
        ({"poll_interval": 10**400}, ValueError, "poll_interval"),
        ({"poll_interval": True}, TypeError, "poll_interval"),
        ({"poll_interval": "30"}, TypeError, "poll_interval"),
        ({"since": 3}, TypeError, "since"),
        ({"since": ""}, ValueError, "since"),
        ({"since": "  "}, ValueError, "since"),
    ],
)
def test_watch_refuses_bad_arguments_at_once(
    api: AsyncClient, arguments: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Bad ``poll_interval``/``since`` raise naming the argument, before anything is sent."""
    with pytest.raises(error, match=name):
        api.checkpoints.watch(JOB, **arguments)


async def test_repr_names_the_job_and_where_the_watch_stands(
    api: AsyncClient, script: Script
) -> None:
    """The watcher's repr shows the job, the interval and the ``since`` to go on from."""
    script.appear(2)
    watcher = api.checkpoints.watch(JOB, poll_interval=7)
    iterator = aiter(watcher)
    first = await anext(iterator)
    await iterator.aclose()
    assert repr(watcher) == (
        f"CheckpointWatcher(fine_tuning_job_id='ftjob-watched', poll_interval=7.0, "
        f"since={first.id!r})"
    )


async def test_created_at_orders_a_record_since(api: AsyncClient, script: Script) -> None:
    """A ``since`` record newer than everything listed yields nothing."""
    script.appear(3)
    script.job = job_body(status="succeeded")
    newest = script.existing()[0]
    later = Checkpoint(
        id="ftckpt_future",
        created_at=newest.created_at + timedelta(days=1),
        fine_tuned_model_checkpoint="ft:x",
        fine_tuning_job_id=JOB,
        metrics=newest.metrics,
        step_number=newest.step_number + 1,
    )
    assert [cp async for cp in api.checkpoints.watch(JOB, since=later)] == []


# ---- against the built-in fake's running jobs ------------------------------------------


async def _watch_on_fake(
    flavor: str, *, count: int, every: float, interval: float, outcome: str = "succeeded"
) -> tuple[list[Checkpoint], list[Checkpoint], CheckpointWatcher, FakeAPIServer]:
    clock = FakeClock()
    timeline = JobTimeline(checkpoint_every=every, outcome=cast(Any, outcome))
    async with FakeAPIServer(clock=clock, flavor=cast(Any, flavor)) as fake:
        made = fake.add_running_job("ftjob-live", count=count, timeline=timeline)
        client: AsyncClient
        if flavor == "azure":
            client = AsyncAzureClient(
                api_key=fake.api_key,
                azure_endpoint=fake.azure_endpoint,
                api_version="2024-10-21",
                clock=clock,
            )
        else:
            client = AsyncClient(api_key=fake.api_key, base_url=fake.base_url, clock=clock)
        async with client:
            watcher = client.checkpoints.watch("ftjob-live", poll_interval=interval)
            seen = [checkpoint async for checkpoint in watcher]
    return made, seen, watcher, fake


@pytest.mark.parametrize("flavor", ["openai", "azure"])
@pytest.mark.parametrize(
    ("count", "every", "interval"),
    [
        (12, 5.0, 30.0),  # several new checkpoints per poll, more than a page at the end
        (6, 60.0, 7.0),  # many polls find nothing
        (5, 30.0, 30.0),  # the same pace: on the edge of each checkpoint
        (25, 1.0, 300.0),  # all at once, across three pages
        (0, 5.0, 10.0),  # a job that makes none
    ],
)
async def test_a_running_fake_job_is_watched_whole_once_in_order(
    flavor: str, count: int, every: float, interval: float
) -> None:
    """Whatever the pace of checkpoints against the polls: each once, oldest first."""
    made, seen, watcher, fake = await _watch_on_fake(
        flavor, count=count, every=every, interval=interval
    )
    assert seen == list(reversed(made))
    assert watcher.job is not None
    assert watcher.job.status == "succeeded"
    checkpoint_reads = [
        r for r in fake.requests if r.raw_path.split("?")[0].endswith("/checkpoints")
    ]
    job_reads = len(fake.requests) - len(checkpoint_reads)
    # Never a re-walk: pages beyond one per poll only for what is new.
    assert len(checkpoint_reads) <= job_reads + count // 10 + 1


@pytest.mark.parametrize("outcome", ["failed", "cancelled"])
async def test_a_fake_job_that_ends_badly_ends_the_watch(outcome: str) -> None:
    """A failed or cancelled job still yields what it made, and ends the watch."""
    made, seen, watcher, _ = await _watch_on_fake(
        "openai", count=3, every=10, interval=15, outcome=outcome
    )
    assert seen == list(reversed(made))
    assert watcher.job is not None
    assert watcher.job.status == outcome
    assert (watcher.job.error is not None) == (outcome == "failed")


# ---- what an outside attack found --------------------------------------------------------


async def test_a_checkpoint_made_in_the_same_second_listed_after_the_last_one_is_yielded(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """A server ordering by (created_at, id) may list a fresh one after the last yielded."""
    script.appear(3)
    newest = script.existing()[0]
    before = [cp.id for cp in script.existing()]
    fresh = Checkpoint(
        id="ftckpt_000",  # sorts before every other id: listed after its same-second twin
        created_at=newest.created_at,
        fine_tuned_model_checkpoint="ft:x",
        fine_tuning_job_id=JOB,
        metrics=newest.metrics,
        step_number=newest.step_number + 100,
    )
    script.order = lambda items: sorted(items, key=lambda cp: (cp.created_at, cp.id))[::-1]

    def add_twin() -> None:
        script.all.insert(len(script.all) - script.visible, fresh)  # the newest that exists
        script.visible += 1

    schedule(script, clock, add_twin, lambda: script.job.update(status="succeeded"))
    watched = [cp.id async for cp in api.checkpoints.watch(JOB)]
    assert watched == [*reversed(before), "ftckpt_000"]


async def test_a_server_listing_out_of_order_loses_nothing_and_yields_oldest_first(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """Shuffled listings: every checkpoint once, each poll's batch sorted by time."""
    script.order = lambda items: items[1::2] + items[0::2]
    script.appear(5)
    schedule(
        script,
        clock,
        lambda: script.appear(3),
        lambda: script.appear(4),
        lambda: script.job.update(status="succeeded"),
    )
    watched = [cp async for cp in api.checkpoints.watch(JOB, poll_interval=1)]
    assert sorted(cp.id for cp in watched) == sorted(oldest_first(script)[:12])
    first_batch = watched[:5]
    assert first_batch == sorted(first_batch, key=lambda cp: cp.created_at)


async def test_an_unknown_since_is_raised_with_itself_to_resume_from(
    api: AsyncClient, script: Script
) -> None:
    """Resuming from the error's ``resume_after`` must not start over from nothing."""
    script.appear(3)
    with pytest.raises(FineTuneCkptError) as caught:
        await anext(aiter(api.checkpoints.watch(JOB, since="ftckpt_unknown")))
    assert caught.value.resume_after == "ftckpt_unknown"


async def test_the_job_read_by_a_poll_is_kept_when_its_checkpoints_read_fails(
    api: AsyncClient, script: Script, clock: ScriptedClock
) -> None:
    """``watcher.job`` is the job as the last poll read it, even if the poll then failed."""
    script.appear(1)
    handle = script.handle

    async def fail_checkpoints(request: web.Request) -> web.Response:
        if request.path.endswith("/checkpoints"):
            return web.json_response({"error": {"message": "down"}}, status=500)
        return await handle(request)

    def finish_and_break() -> None:
        script.job = job_body(status="failed", error={"code": "x", "message": "y", "param": None})
        script.handle = fail_checkpoints  # type: ignore[method-assign]

    schedule(script, clock, finish_and_break)
    watcher = api.checkpoints.watch(JOB)
    with pytest.raises(InternalServerError):
        async for _ in watcher:
            pass
    assert watcher.job is not None
    assert watcher.job.status == "failed"
    script.handle = handle  # type: ignore[method-assign]
    assert [cp async for cp in watcher] == []  # the retried poll finds nothing new, and ends
