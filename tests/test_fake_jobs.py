"""The fake's job endpoints and running jobs: the timeline, the answers, the spec, the SDK."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import aiohttp
import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDictProxy
from yarl import URL

from fine_tune_ckpt import AsyncCheckpointPager, AsyncClient, Checkpoint, NotFoundError
from fine_tune_ckpt.testing import (
    DEFAULT_JOBS_LIMIT,
    FakeAPIServer,
    FakeClock,
    Fault,
    JobState,
    JobTimeline,
    synthetic_checkpoints,
)
from fine_tune_ckpt.testing._jobs import job_object, make_profile

from .test_fake_azure import AZURE_ERROR_SCHEMA
from .test_fake_server import ERROR_SCHEMA, _raw_get
from .test_fake_server import PAGE_SCHEMA as CHECKPOINT_PAGE_SCHEMA

JOBS_SPEC = yaml.safe_load((Path(__file__).parent / "fixtures/spec/jobs.openapi.yaml").read_text())
JOB_FIELDS = set(JOBS_SPEC["components"]["schemas"]["FineTuningJob"]["properties"])
DATED = "2024-10-21"
# 2 s validating files, 3 s queued, then a checkpoint every 5 s: 4 of them end it at 25 s.
TIMELINE = JobTimeline(validating_files=2, queued=3, checkpoint_every=5)
RUNNING = "ftjob-running"


def _exclusive_bounds_as_2020_12(node: Any) -> Any:
    """``node`` with OpenAPI 3.0's boolean exclusive bounds written as JSON Schema 2020-12's.

    The upstream spec says ``minimum: 0, exclusiveMinimum: true`` (3.0: "above 0") in a
    3.1 document, where 2020-12 reads ``exclusiveMinimum: true`` as "above 1" (a bool is
    the number 1): a ``learning_rate_multiplier`` of 1.0, as in the spec's own example,
    would be refused. The spec means "above 0"; the copy on disk stays verbatim.
    """
    if isinstance(node, list):
        return [_exclusive_bounds_as_2020_12(item) for item in node]
    if not isinstance(node, dict):
        return node
    fixed = {key: _exclusive_bounds_as_2020_12(value) for key, value in node.items()}
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if fixed.get(exclusive) is True and bound in fixed:
            fixed[exclusive] = fixed.pop(bound)
    return fixed


def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    """A validator for one component schema of the jobs spec, resolving its $refs."""
    components = _exclusive_bounds_as_2020_12(JOBS_SPEC["components"])
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": components}
    return jsonschema.Draft202012Validator(schema)


JOB_SCHEMA = _validator("FineTuningJob")
JOBS_PAGE_SCHEMA = _validator("ListPaginatedFineTuningJobsResponse")


def _check_job(body: Any) -> None:
    """``body`` is a spec-valid job object holding no field the spec does not name."""
    JOB_SCHEMA.validate(body)
    assert set(body) <= JOB_FIELDS


def _check_jobs_page(body: Any) -> None:
    """``body`` is a spec-valid page of jobs, without ids the real list does not have."""
    JOBS_PAGE_SCHEMA.validate(body)
    assert set(body) == {"object", "data", "has_more"}
    for job in body["data"]:
        _check_job(job)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A bare aiohttp session, to see exactly what the fake sends."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def fake(fake_clock: FakeClock) -> AsyncIterator[FakeAPIServer]:
    """A fake on the fake clock, serving no job yet."""
    async with FakeAPIServer(clock=fake_clock) as server:
        yield server


async def _get(
    http: aiohttp.ClientSession, fake: FakeAPIServer, path: str, **query: str
) -> tuple[int, CIMultiDictProxy[str], Any]:
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    async with http.get(fake.base_url + path, params=query, headers=headers) as answer:
        return answer.status, answer.headers, await answer.json()


async def _job(http: aiohttp.ClientSession, fake: FakeAPIServer, job_id: str) -> Any:
    status, _, body = await _get(http, fake, f"/fine_tuning/jobs/{job_id}")
    assert status == 200
    _check_job(body)
    return body


async def _checkpoint_ids(
    http: aiohttp.ClientSession, fake: FakeAPIServer, job_id: str, **query: str
) -> list[str]:
    status, _, body = await _get(http, fake, f"/fine_tuning/jobs/{job_id}/checkpoints", **query)
    assert status == 200
    CHECKPOINT_PAGE_SCHEMA.validate(body)
    return [item["id"] for item in body["data"]]


# -- the timeline, pure -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (0.0, JobState("validating_files", 0)),
        (1.999, JobState("validating_files", 0)),
        (2.0, JobState("queued", 0)),
        (4.999, JobState("queued", 0)),
        (5.0, JobState("running", 0, estimated_finish_after=25.0)),
        (9.999, JobState("running", 0, estimated_finish_after=25.0)),
        (10.0, JobState("running", 1, estimated_finish_after=25.0)),
        (20.0, JobState("running", 3, estimated_finish_after=25.0)),
        (24.999, JobState("running", 3, estimated_finish_after=25.0)),
        (25.0, JobState("succeeded", 4, finished_after=25.0)),
        (1e9, JobState("succeeded", 4, finished_after=25.0)),
        (-5.0, JobState("validating_files", 0)),  # a clock set back reads as 0
    ],
)
def test_timeline_moves_through_every_status(elapsed: float, expected: JobState) -> None:
    """validating_files, queued, running with a checkpoint every 5 s, then the outcome."""
    assert TIMELINE.at(elapsed, checkpoints=4) == expected
    assert TIMELINE.duration(4) == 25.0
    assert TIMELINE.running_from == 5.0


def test_boundaries_reached_by_float_sums_count_as_reached() -> None:
    """0.1 * 3 and similar sums, a hair below the boundary in floating point, reach it."""
    timeline = JobTimeline(validating_files=0.1, queued=0.2, checkpoint_every=0.1)
    assert timeline.at(0.1 + 0.2, checkpoints=5).status == "running"
    assert timeline.at(0.3 + 0.1 * 3, checkpoints=5).checkpoints == 3


@pytest.mark.parametrize("outcome", ["failed", "cancelled"])
def test_other_outcomes_end_the_same_way(outcome: Literal["failed", "cancelled"]) -> None:
    """A failed or cancelled job ends with its last checkpoint, as a succeeded one."""
    timeline = JobTimeline(outcome=outcome)
    end = timeline.duration(3)
    assert timeline.at(end, checkpoints=3) == JobState(outcome, 3, finished_after=end)


def test_zero_length_phases_are_skipped() -> None:
    """With no validation or queueing the job runs at once; with no checkpoints it ends."""
    straight = JobTimeline(validating_files=0, queued=0, checkpoint_every=1)
    assert straight.at(0, checkpoints=2).status == "running"
    bad_file = JobTimeline(validating_files=4, queued=0, outcome="failed")
    assert bad_file.at(3.9, checkpoints=0).status == "validating_files"
    assert bad_file.at(4, checkpoints=0) == JobState("failed", 0, finished_after=4.0)


@given(
    st.lists(st.floats(min_value=0, max_value=200, allow_nan=False), min_size=2, max_size=20),
    st.integers(min_value=0, max_value=12),
)
def test_time_only_moves_a_job_forward(readings: list[float], checkpoints: int) -> None:
    """Later readings never show an earlier status or fewer checkpoints, nor more than exist."""
    order = ["validating_files", "queued", "running", "succeeded"]
    states = [TIMELINE.at(elapsed, checkpoints=checkpoints) for elapsed in sorted(readings)]
    for before, after in itertools.pairwise(states):
        assert order.index(before.status) <= order.index(after.status)
        assert before.checkpoints <= after.checkpoints <= checkpoints
    for state in states:
        assert (state.estimated_finish_after is not None) == (state.status == "running")
        assert (state.finished_after is not None) == (state.status == "succeeded")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"validating_files": -1}, "validating_files must be a finite number >= 0"),
        ({"queued": float("nan")}, "queued must be"),
        ({"queued": float("inf")}, "queued must be"),
        ({"checkpoint_every": 0}, "checkpoint_every must be a finite number > 0"),
        ({"outcome": "running"}, "outcome must be"),
    ],
)
def test_bad_timelines_are_refused(arguments: dict[str, Any], message: str) -> None:
    """Negative, infinite or NaN durations, no pace, or a non-final outcome: ValueError."""
    with pytest.raises(ValueError, match=message):
        JobTimeline(**arguments)


def test_a_negative_checkpoint_count_is_refused() -> None:
    """A job cannot have fewer than no checkpoints."""
    with pytest.raises(ValueError, match="checkpoints must not be negative"):
        TIMELINE.at(0, checkpoints=-1)


def test_job_objects_follow_their_state() -> None:
    """Each status gives a spec-valid object with the fields the API fills at that point."""
    checkpoints = synthetic_checkpoints("ftjob-x", 4)
    profile = make_profile("ftjob-x", checkpoints, seed=0, created_at=1_700_000_000)
    failing = JobTimeline(error_code="invalid_file", error_message="Bad.", error_param="x")
    seen: dict[str, dict[str, Any]] = {}
    for status, state in [
        ("validating_files", JobState("validating_files", 0)),
        ("running", JobState("running", 2, estimated_finish_after=24.5)),
        ("succeeded", JobState("succeeded", 4, finished_after=25.0)),
        ("failed", JobState("failed", 4, finished_after=25.0)),
        ("cancelled", JobState("cancelled", 4, finished_after=25.0)),
    ]:
        seen[status] = job_object(profile, state, failing)
        _check_job(seen[status])
        assert seen[status]["status"] == status
    early, running, succeeded = seen["validating_files"], seen["running"], seen["succeeded"]
    # Hyperparameters resolve when the job starts running.
    assert set(early["hyperparameters"].values()) == {"auto"}
    assert "auto" not in running["hyperparameters"].values()
    assert running["method"]["supervised"]["hyperparameters"] == running["hyperparameters"]
    assert running["estimated_finish"] == 1_700_000_025  # whole seconds, rounded up
    assert running["finished_at"] is running["fine_tuned_model"] is None
    assert running["trained_tokens"] is None
    assert running["result_files"] == []
    assert succeeded["finished_at"] == 1_700_000_025
    assert succeeded["estimated_finish"] is None
    assert succeeded["trained_tokens"] > 0
    assert len(succeeded["result_files"]) == 1
    # The final model is named as its checkpoints are, without the step.
    model_prefix = checkpoints[0].fine_tuned_model_checkpoint.rsplit(":", 2)[0]
    assert succeeded["fine_tuned_model"].startswith(model_prefix + ":")
    assert seen["failed"]["error"] == {"code": "invalid_file", "message": "Bad.", "param": "x"}
    assert seen["failed"]["fine_tuned_model"] is None
    assert all(seen[s]["error"] is None for s in seen if s != "failed")
    assert seen["cancelled"]["finished_at"] == 1_700_000_025


def test_job_profiles_are_seeded() -> None:
    """The same job, checkpoints and seed give the same fields; another seed others."""
    checkpoints = synthetic_checkpoints("ftjob-x", 3)
    first = make_profile("ftjob-x", checkpoints, seed=1, created_at=0)
    assert first == make_profile("ftjob-x", checkpoints, seed=1, created_at=0)
    assert first != make_profile("ftjob-x", checkpoints, seed=2, created_at=0)
    own_names = [
        Checkpoint(
            id="ftckpt_1",
            created_at=checkpoints[0].created_at,
            fine_tuned_model_checkpoint="my-model-v2",  # not the ft:... form
            fine_tuning_job_id="ftjob-x",
            metrics=checkpoints[0].metrics,
            step_number=10,
        )
    ]
    plain = make_profile("ftjob-x", own_names, seed=1, created_at=0)
    assert plain.fine_tuned_model.startswith("ft:gpt-4o-mini-2024-07-18:fake-org:demo:")


# -- finished jobs over loopback --------------------------------------------------------


async def test_a_finished_job_is_a_plausible_succeeded_job(
    fake: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """add_job serves a succeeded job created before its first checkpoint, done after its last."""
    checkpoints = fake.add_job("ftjob-done", count=5)
    job = await _job(http, fake, "ftjob-done")
    assert job["id"] == "ftjob-done"
    assert job["object"] == "fine_tuning.job"
    assert job["status"] == "succeeded"
    assert job["error"] is None
    assert job["estimated_finish"] is None
    assert job["created_at"] < min(c.created_at.timestamp() for c in checkpoints)
    assert job["finished_at"] > max(c.created_at.timestamp() for c in checkpoints)
    assert job["fine_tuned_model"].startswith("ft:gpt-4o-mini-2024-07-18:fake-org:demo:")
    assert job["trained_tokens"] > 0
    async with FakeAPIServer() as again, aiohttp.ClientSession() as other:
        again.add_job("ftjob-done", count=5)
        assert await _job(other, again, "ftjob-done") == job  # seeded, never the real time


async def test_an_empty_finished_job_is_served_too(
    fake: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """A job added with no checkpoints is still a succeeded job, with times in order."""
    fake.add_job("ftjob-empty", [])
    job = await _job(http, fake, "ftjob-empty")
    assert job["status"] == "succeeded"
    assert job["created_at"] < job["finished_at"]


@pytest.mark.parametrize("path", ["/fine_tuning/jobs/ftjob-nope", "/fine_tuning/jobs/%20"])
async def test_an_unknown_job_is_the_api_s_404(
    fake: FakeAPIServer, http: aiohttp.ClientSession, path: str
) -> None:
    """Retrieving a job the fake does not serve is the same 404 as listing its checkpoints."""
    status, headers, body = await _get(http, fake, path)
    assert status == 404
    ERROR_SCHEMA.validate(body)
    assert body["error"]["code"] == "fine_tuning_job_not_found"
    assert body["error"]["param"] == "fine_tuning_job_id"
    assert headers["x-request-id"].startswith("req_fake_")


@pytest.mark.parametrize("job_id", ["ftjob-{braces}", "ftjob a/b", "ftjob-ключ", "ftjob-%41"])
async def test_any_job_id_can_be_retrieved(
    fake: FakeAPIServer, http: aiohttp.ClientSession, job_id: str
) -> None:
    """Job ids with braces, spaces, slashes, non-ASCII or "%" reach their job, as one segment."""
    fake.add_job(job_id, count=1)
    url = URL(fake.base_url + "/fine_tuning/jobs/" + quote(job_id, safe=""), encoded=True)
    async with http.get(url, headers={"Authorization": f"Bearer {fake.api_key}"}) as answer:
        assert answer.status == 200
        assert (await answer.json())["id"] == job_id
    assert fake.requests[-1].fine_tuning_job_id == job_id


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(segment=st.binary(min_size=1, max_size=20), query=st.binary(max_size=40))
async def test_no_job_request_makes_the_fake_answer_500(
    fake_api: FakeAPIServer, segment: bytes, query: bytes
) -> None:
    """Whatever a job id or a query holds, the job endpoints answer a page, a job or a 4xx."""
    printable_segment = bytes(0x21 + b % 0x5E for b in segment).replace(b"/", b"_")
    printable_query = bytes(0x21 + b % 0x5E for b in query)
    key = f"Authorization: Bearer {fake_api.api_key}".encode()
    for target in (
        b"/v1/fine_tuning/jobs?" + printable_query,
        b"/v1/fine_tuning/jobs/" + printable_segment + b"?" + printable_query,
    ):
        status, body = await _raw_get(fake_api, target, key)
        assert status < 500
        if status == 200:
            answer = json.loads(body)
            if "data" in answer:
                _check_jobs_page(answer)
            else:
                _check_job(answer)
        else:
            ERROR_SCHEMA.validate(json.loads(body))


# -- the list of jobs -------------------------------------------------------------------


async def test_jobs_page_newest_first_with_an_exclusive_cursor(
    fake: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """Pages of jobs are newest first, ``after`` a job id, exclusive, with no page ids."""
    for number in range(7):
        fake.add_job(f"ftjob-{number}", count=2)
    # All created in the same second: the one added later is the newer.
    expected = [f"ftjob-{number}" for number in reversed(range(7))]
    walked: list[str] = []
    after: dict[str, str] = {}
    pages = []
    while True:
        status, headers, page = await _get(http, fake, "/fine_tuning/jobs", limit="3", **after)
        assert status == 200
        assert "x-request-id" in headers
        _check_jobs_page(page)
        pages.append(len(page["data"]))
        walked += [job["id"] for job in page["data"]]
        if not page["has_more"]:
            break
        after = {"after": page["data"][-1]["id"]}
    assert pages == [3, 3, 1]
    assert walked == expected
    (request,) = [r for r in fake.requests if r.query == {"limit": "3"}]
    assert request.raw_path == "/v1/fine_tuning/jobs"
    assert request.fine_tuning_job_id is None


async def test_jobs_are_ordered_by_creation(
    fake: FakeAPIServer, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """Newest first by ``created_at``: a running job created now before older finished ones."""
    fake_clock.advance(100_000_000)  # the fake's "now" is after the synthetic jobs' dates
    fake.add_running_job(RUNNING, count=2)
    fake.add_job("ftjob-old", count=2)
    _, _, page = await _get(http, fake, "/fine_tuning/jobs")
    assert [job["id"] for job in page["data"]] == [RUNNING, "ftjob-old"]
    created = [job["created_at"] for job in page["data"]]
    assert created == sorted(created, reverse=True)
    assert created[0] == int(fake_clock.time())  # dated by the clock's time()


async def test_jobs_limit_defaults_to_20(fake: FakeAPIServer, http: aiohttp.ClientSession) -> None:
    """Without ``limit`` a page holds 20 jobs, as the API's."""
    for number in range(DEFAULT_JOBS_LIMIT + 3):
        fake.add_job(f"ftjob-{number:02d}", count=0)
    _, _, first = await _get(http, fake, "/fine_tuning/jobs")
    assert len(first["data"]) == DEFAULT_JOBS_LIMIT == 20
    assert first["has_more"] is True
    _, _, rest = await _get(http, fake, "/fine_tuning/jobs", after=first["data"][-1]["id"])
    assert [job["id"] for job in rest["data"]] == ["ftjob-02", "ftjob-01", "ftjob-00"]
    assert rest["has_more"] is False


async def test_no_jobs_is_one_empty_page(fake: FakeAPIServer, http: aiohttp.ClientSession) -> None:
    """A fake with no job answers an empty page."""
    status, _, page = await _get(http, fake, "/fine_tuning/jobs")
    assert status == 200
    _check_jobs_page(page)
    assert page == {"object": "list", "data": [], "has_more": False}


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"after": "ftjob-unknown"}, "after"),
    ],
)
async def test_bad_jobs_queries_are_the_api_s_400(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession, query: dict[str, str], param: str
) -> None:
    """A bad ``limit`` or an unknown ``after`` is a 400 naming it, as for checkpoints."""
    status, _, body = await _get(http, fake_api, "/fine_tuning/jobs", **query)
    assert status == 400
    ERROR_SCHEMA.validate(body)
    assert body["error"]["param"] == param
    assert body["error"]["type"] == "invalid_request_error"


async def test_a_huge_limit_is_every_job(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """A ``limit`` over int()'s digit limit reads as "all of them", as for checkpoints."""
    status, _, page = await _get(http, fake_api, "/fine_tuning/jobs", limit="9" * 5000)
    assert status == 200
    assert [job["id"] for job in page["data"]] == ["ftjob-abc123"]


# -- running jobs over loopback ---------------------------------------------------------


async def test_a_running_job_moves_on_with_the_clock(
    fake: FakeAPIServer, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """Statuses and checkpoints change only when the clock moves, and agree on each answer."""
    checkpoints = fake.add_running_job(RUNNING, count=4, timeline=TIMELINE)
    ids = [c.id for c in checkpoints]  # newest first
    seen = []
    for advance in [0, 2, 3, 5, 5, 5, 4.5, 0.5, 100]:
        fake_clock.advance(advance)
        job = await _job(http, fake, RUNNING)
        listed = await _checkpoint_ids(http, fake, RUNNING)
        assert listed == ids[len(ids) - len(listed) :]  # the oldest ones, newest first
        (in_list,) = (await _get(http, fake, "/fine_tuning/jobs"))[2]["data"]
        assert in_list == job
        seen.append((job["status"], len(listed)))
    assert seen == [
        ("validating_files", 0),
        ("queued", 0),
        ("running", 0),
        ("running", 1),
        ("running", 2),
        ("running", 3),
        ("running", 3),
        ("succeeded", 4),
        ("succeeded", 4),
    ]
    job = await _job(http, fake, RUNNING)
    assert job["finished_at"] == job["created_at"] + 25
    assert job["fine_tuned_model"] is not None
    assert job["trained_tokens"] > 0


async def test_a_running_job_has_an_estimated_finish(
    fake: FakeAPIServer, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """While running, ``estimated_finish`` is when its timeline ends; before, nothing."""
    fake.add_running_job(RUNNING, count=4, timeline=TIMELINE)
    queued = await _job(http, fake, RUNNING)
    assert queued["estimated_finish"] is None
    assert queued["finished_at"] is None
    fake_clock.advance(12)
    running = await _job(http, fake, RUNNING)
    assert running["estimated_finish"] == running["created_at"] + 25
    assert running["finished_at"] is None
    assert running["fine_tuned_model"] is None


async def test_synthetic_checkpoints_are_dated_when_made(
    fake: FakeAPIServer, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """Each made-up checkpoint of a running job is dated when the timeline makes it."""
    checkpoints = fake.add_running_job(RUNNING, count=3, timeline=TIMELINE)
    created = int(fake_clock.time())
    assert [int(c.created_at.timestamp()) - created for c in checkpoints] == [20, 15, 10]
    assert {c.fine_tuning_job_id for c in checkpoints} == {RUNNING}


async def test_a_running_job_pages_only_what_exists(
    fake: FakeAPIServer, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """Paging a running job sees its checkpoints so far; a cursor not made yet is a 400."""
    checkpoints = fake.add_running_job(
        RUNNING, count=10, timeline=JobTimeline(validating_files=0, queued=0, checkpoint_every=1)
    )
    ids = [c.id for c in checkpoints]
    fake_clock.advance(5)  # 5 of 10 made: ids[5:]
    assert await _checkpoint_ids(http, fake, RUNNING, limit="2") == ids[5:7]
    assert await _checkpoint_ids(http, fake, RUNNING, limit="2", after=ids[6]) == ids[7:9]
    assert await _checkpoint_ids(http, fake, RUNNING, after=ids[8]) == ids[9:]
    status, _, body = await _get(
        http, fake, f"/fine_tuning/jobs/{RUNNING}/checkpoints", after=ids[4]
    )
    assert status == 400
    ERROR_SCHEMA.validate(body)
    assert body["error"]["param"] == "after"
    _, _, page = await _get(http, fake, f"/fine_tuning/jobs/{RUNNING}/checkpoints", limit="5")
    assert page["first_id"] == ids[5]
    assert page["last_id"] == ids[9]
    assert not page["has_more"]


async def test_own_checkpoints_appear_oldest_first_as_given(
    fake: FakeAPIServer, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """Checkpoints passed to add_running_job are served unchanged, the oldest made first."""
    own = synthetic_checkpoints(RUNNING, 3, seed=9)
    assert fake.add_running_job(RUNNING, own, timeline=TIMELINE) == own
    fake_clock.advance(TIMELINE.running_from + 2 * TIMELINE.checkpoint_every)
    listed = await _checkpoint_ids(http, fake, RUNNING)
    assert listed == [c.id for c in own[1:]]


async def test_a_failed_job_carries_its_error(
    fake: FakeAPIServer, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """A job whose timeline fails ends ``failed`` with the error, its checkpoints kept."""
    timeline = JobTimeline(
        validating_files=1,
        queued=1,
        checkpoint_every=2,
        outcome="failed",
        error_code="invalid_training_file",
        error_message="The training file has 3 lines of invalid JSON.",
        error_param="training_file",
    )
    fake.add_running_job(RUNNING, count=2, timeline=timeline)
    fake_clock.advance(timeline.duration(2) - 0.5)
    running = await _job(http, fake, RUNNING)
    assert running["status"] == "running"
    assert running["error"] is None
    fake_clock.advance(0.5)
    failed = await _job(http, fake, RUNNING)
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "invalid_training_file",
        "message": "The training file has 3 lines of invalid JSON.",
        "param": "training_file",
    }
    assert failed["finished_at"] == failed["created_at"] + 6
    assert failed["fine_tuned_model"] is None
    assert failed["trained_tokens"] is None
    assert len(await _checkpoint_ids(http, fake, RUNNING)) == 2


async def test_a_cancelled_job_ends_cancelled(
    fake: FakeAPIServer, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """A job whose timeline is cancelled ends ``cancelled``, with no error and no model."""
    fake.add_running_job(RUNNING, count=1, timeline=JobTimeline(outcome="cancelled"))
    fake_clock.advance(60)
    job = await _job(http, fake, RUNNING)
    assert (job["status"], job["error"], job["fine_tuned_model"]) == ("cancelled", None, None)


async def test_adding_a_running_job_again_starts_it_over(
    fake: FakeAPIServer, fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """A job added again replaces the old one, its clock started again."""
    fake.add_running_job(RUNNING, count=1, timeline=TIMELINE)
    fake_clock.advance(60)
    assert (await _job(http, fake, RUNNING))["status"] == "succeeded"
    fake.add_running_job(RUNNING, count=1, timeline=TIMELINE)
    assert (await _job(http, fake, RUNNING))["status"] == "validating_files"
    assert fake.job_ids == [RUNNING]


async def test_the_real_clock_is_the_default(http: aiohttp.ClientSession) -> None:
    """Without a clock the fake reads real time, and dates a running job with the real time."""
    before = int(time.time())
    async with FakeAPIServer() as fake:
        fake.add_running_job(RUNNING, timeline=JobTimeline(validating_files=3600))
        job = await _job(http, fake, RUNNING)
    assert job["status"] == "validating_files"
    assert before <= job["created_at"] <= int(time.time())


async def test_a_clock_with_only_monotonic_is_enough(http: aiohttp.ClientSession) -> None:
    """Any object with ``monotonic()`` drives the fake; the real time then dates jobs."""

    class Ticks:
        now = 0.0

        def monotonic(self) -> float:
            return self.now

    ticks = Ticks()
    before = int(time.time())
    async with FakeAPIServer(clock=ticks) as fake:
        fake.add_running_job(RUNNING, count=2, timeline=TIMELINE)
        ticks.now = 10
        job = await _job(http, fake, RUNNING)
    assert job["status"] == "running"
    assert before <= job["created_at"] <= int(time.time())


async def test_a_client_s_retry_waits_move_a_shared_clock() -> None:
    """With one FakeClock for client and fake, a Retry-After lets the job make progress."""
    clock = FakeClock()
    async with FakeAPIServer(clock=clock) as shared:
        checkpoints = shared.add_running_job(
            RUNNING, count=6, timeline=JobTimeline(validating_files=0, queued=0)
        )
        shared.inject(Fault(status=429, retry_after=11))
        async with AsyncClient(api_key=shared.api_key, base_url=shared.base_url, clock=clock) as c:
            listed = await c.checkpoints.list(RUNNING).to_list()
    assert clock.sleeps == [11.0]
    assert listed == checkpoints[4:]  # 2 made in the 11 s the client waited


async def test_this_library_lists_a_running_job(fake: FakeAPIServer, fake_clock: FakeClock) -> None:
    """The library's pager walks the checkpoints a running job has so far, newest first."""
    checkpoints = fake.add_running_job(RUNNING, count=7, timeline=TIMELINE)
    fake_clock.advance(TIMELINE.running_from + 5 * TIMELINE.checkpoint_every)
    async with AsyncClient(api_key=fake.api_key, base_url=fake.base_url, clock=fake_clock) as c:
        pager: AsyncCheckpointPager = c.checkpoints.list(RUNNING, limit=2)
        assert await pager.to_list() == checkpoints[2:]
        with pytest.raises(NotFoundError):
            await c.checkpoints.list("ftjob-nope").to_list()


# -- the official SDK reads the fake ----------------------------------------------------


async def test_the_official_sdk_reads_jobs_and_checkpoints(
    fake: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """openai.AsyncOpenAI retrieves and lists jobs, and lists a running job's checkpoints."""
    openai = pytest.importorskip("openai")
    for number in range(5):
        fake.add_job(f"ftjob-{number}", count=3)
    checkpoints = fake.add_running_job(RUNNING, count=4, timeline=TIMELINE)
    sdk = openai.AsyncOpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0)
    try:
        job = await sdk.fine_tuning.jobs.retrieve("ftjob-3")
        assert (job.id, job.status, job.object) == ("ftjob-3", "succeeded", "fine_tuning.job")
        assert job.hyperparameters.n_epochs in {2, 3, 4}
        assert job.method is not None
        assert job.method.type == "supervised"
        # The SDK pages by the last job's id, 2 at a time.
        listed = [j.id async for j in sdk.fine_tuning.jobs.list(limit=2)]
        assert listed == ["ftjob-4", "ftjob-3", "ftjob-2", "ftjob-1", "ftjob-0", RUNNING]
        fake_clock.advance(TIMELINE.running_from + 2 * TIMELINE.checkpoint_every)
        running = await sdk.fine_tuning.jobs.retrieve(RUNNING)
        assert running.status == "running"
        assert running.estimated_finish == running.created_at + 25
        made = [cp.id async for cp in sdk.fine_tuning.jobs.checkpoints.list(RUNNING, limit=1)]
        assert made == [c.id for c in checkpoints[2:]]
        with pytest.raises(openai.NotFoundError):
            await sdk.fine_tuning.jobs.retrieve("ftjob-nope")
    finally:
        await sdk.close()
    assert {r.raw_path for r in fake.requests} >= {
        "/v1/fine_tuning/jobs",
        "/v1/fine_tuning/jobs/ftjob-3",
        f"/v1/fine_tuning/jobs/{RUNNING}/checkpoints",
    }


# -- faults and the request log ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/fine_tuning/jobs", "/fine_tuning/jobs/ftjob-abc123"])
@pytest.mark.parametrize("status", [429, 500, 503])
async def test_injected_statuses_apply_to_job_endpoints(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession, path: str, status: int
) -> None:
    """An injected status answers a job request with the API's error and the retry headers."""
    fake_api.inject(Fault(status=status, retry_after=3, should_retry=True))
    got, headers, body = await _get(http, fake_api, path)
    assert got == status
    ERROR_SCHEMA.validate(body)
    assert (headers["Retry-After"], headers["x-should-retry"]) == ("3", "true")
    assert (await _get(http, fake_api, path))[0] == 200  # used up


async def test_body_faults_apply_to_job_endpoints(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """Truncated, non-JSON, padded and chunked answers reach the job endpoints too."""
    url = f"{fake_api.base_url}/fine_tuning/jobs/ftjob-abc123"
    headers = {"Authorization": f"Bearer {fake_api.api_key}"}
    fake_api.inject(Fault(truncate_body=True))
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.get(url, headers=headers) as answer:
            await answer.read()
    fake_api.inject(Fault(non_json_body=True), Fault(pad_body=1000, chunked=True))
    async with http.get(url, headers=headers) as answer:
        assert answer.content_type == "text/html"
    async with http.get(url, headers=headers) as answer:
        assert answer.headers["Transfer-Encoding"] == "chunked"
        body = await answer.read()
    assert body.endswith(b" " * 1000)
    _check_job(json.loads(body))


async def test_a_repeated_cursor_fault_repeats_a_jobs_page(
    fake: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """``repeat_cursor`` answers the page that ends at ``after``, so the cursor comes back."""
    for number in range(6):
        fake.add_job(f"ftjob-{number}", count=0)
    _, _, first = await _get(http, fake, "/fine_tuning/jobs", limit="3")
    fake.inject(Fault(repeat_cursor=True))
    _, _, again = await _get(
        http, fake, "/fine_tuning/jobs", limit="3", after=first["data"][-1]["id"]
    )
    assert again == first


async def test_random_faults_hit_job_endpoints(http: aiohttp.ClientSession) -> None:
    """``fault_rate`` draws faults for job requests as for checkpoint requests."""
    async with FakeAPIServer(fault_rate=1.0, random_faults=[Fault(status=502)]) as fake:
        fake.add_job("ftjob-a", count=1)
        statuses = [(await _get(http, fake, path))[0] for path in ("/fine_tuning/jobs",) * 3]
    assert statuses == [502, 502, 502]


async def test_job_requests_are_logged_without_secrets(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """Each job request is logged: path, job id (none for the list), query, no key."""
    await _get(http, fake_api, "/fine_tuning/jobs/ftjob-abc123")
    await _get(http, fake_api, "/fine_tuning/jobs", limit="4")
    retrieve, listing = fake_api.requests
    assert (retrieve.raw_path, retrieve.fine_tuning_job_id) == (
        "/v1/fine_tuning/jobs/ftjob-abc123",
        "ftjob-abc123",
    )
    assert (listing.raw_path, listing.fine_tuning_job_id, listing.query) == (
        "/v1/fine_tuning/jobs",
        None,
        {"limit": "4"},
    )
    for request in fake_api.requests:
        assert request.authorized
        assert request.credential == "bearer"
        assert fake_api.api_key not in repr(request)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/fine_tuning/jobs"),
        ("DELETE", "/v1/fine_tuning/jobs/ftjob-abc123"),
        ("GET", "/v1/fine_tuning/jobs/"),
        ("GET", "/v1/fine_tuning/jobs/ftjob-abc123/events"),
        ("GET", "/fine_tuning/jobs"),
    ],
)
async def test_other_job_paths_and_methods_are_logged_404s(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    """What the fake does not serve on the job paths is the API's "Invalid URL" 404."""
    url = fake_api.base_url.removesuffix("/v1") + path
    headers = {"Authorization": f"Bearer {fake_api.api_key}"}
    async with http.request(method, url, headers=headers) as answer:
        assert answer.status == 404
        body = await answer.json()
    ERROR_SCHEMA.validate(body)
    assert body["error"]["message"] == f"Invalid URL ({method} {path})"
    assert len(fake_api.requests) == 1


async def test_job_requests_need_the_key(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """Without the right bearer token the job endpoints answer the API's 401."""
    for path in ("/fine_tuning/jobs", "/fine_tuning/jobs/ftjob-abc123"):
        async with http.get(
            fake_api.base_url + path, headers={"Authorization": "Bearer sk-wrong"}
        ) as answer:
            assert answer.status == 401
            ERROR_SCHEMA.validate(await answer.json())


# -- the Azure flavour ------------------------------------------------------------------


@pytest.fixture
async def azure(fake_clock: FakeClock) -> AsyncIterator[FakeAPIServer]:
    """An Azure-flavoured fake on the fake clock, serving no job yet."""
    async with FakeAPIServer(flavor="azure", clock=fake_clock) as server:
        yield server


async def _azure_get(
    http: aiohttp.ClientSession, fake: FakeAPIServer, path: str, **query: str
) -> tuple[int, Any]:
    async with http.get(
        fake.base_url + path, params=query, headers={"api-key": fake.api_key}
    ) as answer:
        assert "apim-request-id" in answer.headers
        assert "x-request-id" not in answer.headers
        return answer.status, await answer.json()


@pytest.mark.parametrize(
    ("prefix", "version"), [("", {"api-version": DATED}), ("/v1", {})], ids=["dated", "v1"]
)
async def test_azure_serves_jobs_on_both_apis(
    azure: FakeAPIServer,
    fake_clock: FakeClock,
    http: aiohttp.ClientSession,
    prefix: str,
    version: dict[str, str],
) -> None:
    """Both Azure APIs retrieve and list jobs, spec-valid, a running one moving on."""
    azure.add_job("ftjob-done", count=2)
    azure.add_running_job(RUNNING, count=2, timeline=TIMELINE)
    status, job = await _azure_get(http, azure, f"{prefix}/fine_tuning/jobs/{RUNNING}", **version)
    assert status == 200
    _check_job(job)
    assert job["status"] == "validating_files"
    fake_clock.advance(TIMELINE.duration(2))
    status, page = await _azure_get(http, azure, f"{prefix}/fine_tuning/jobs", **version, limit="1")
    assert status == 200
    _check_jobs_page(page)
    assert [j["id"] for j in page["data"]] == ["ftjob-done"]
    assert page["has_more"]
    _, rest = await _azure_get(
        http, azure, f"{prefix}/fine_tuning/jobs", **version, after="ftjob-done"
    )
    assert [(j["id"], j["status"]) for j in rest["data"]] == [(RUNNING, "succeeded")]
    assert {r.raw_path for r in azure.requests} == {
        f"/openai{prefix}/fine_tuning/jobs/{RUNNING}",
        f"/openai{prefix}/fine_tuning/jobs",
    }


@pytest.mark.parametrize(
    ("path", "query", "status", "inner_code"),
    [
        ("/fine_tuning/jobs", {}, 400, "MissingApiVersion"),
        ("/fine_tuning/jobs/ftjob-abc123", {"api-version": "v1"}, 400, "UnsupportedApiVersion"),
        ("/v1/fine_tuning/jobs", {"api-version": DATED}, 400, "UnsupportedApiVersion"),
        ("/fine_tuning/jobs/ftjob-nope", {"api-version": DATED}, 404, "FineTuningJobNotFound"),
        ("/v1/fine_tuning/jobs/ftjob-nope", {}, 404, "FineTuningJobNotFound"),
        ("/v1/fine_tuning/jobs", {"limit": "0"}, 400, "InvalidLimit"),
        ("/fine_tuning/jobs", {"api-version": DATED, "after": "ftjob-x"}, 400, "InvalidCursor"),
    ],
)
async def test_azure_job_errors_are_azure_shaped(
    http: aiohttp.ClientSession,
    path: str,
    query: dict[str, str],
    status: int,
    inner_code: str,
) -> None:
    """api-version rules, unknown jobs and bad paging answer in Azure's error shape."""
    async with FakeAPIServer(flavor="azure") as azure:
        azure.add_job("ftjob-abc123", count=1)
        got, body = await _azure_get(http, azure, path, **query)
    assert got == status
    AZURE_ERROR_SCHEMA.validate(body)
    assert body["error"]["inner_error"]["code"] == inner_code


async def test_azure_faults_apply_to_job_endpoints(
    azure: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """An injected status on a job request answers in Azure's shape."""
    azure.inject(Fault(status=429, retry_after=1))
    status, body = await _azure_get(http, azure, "/v1/fine_tuning/jobs")
    assert status == 429
    AZURE_ERROR_SCHEMA.validate(body)
    assert body["error"]["inner_error"]["code"] == "RateLimitExceeded"


async def test_a_running_job_s_checkpoints_in_both_orders(
    fake_clock: FakeClock, http: aiohttp.ClientSession
) -> None:
    """Made checkpoints list newest first, or oldest first on the dated API when asked."""
    async with FakeAPIServer(flavor="azure", azure_oldest_first=True, clock=fake_clock) as azure:
        checkpoints = azure.add_running_job(RUNNING, count=6, timeline=TIMELINE)
        made = [c.id for c in checkpoints[3:]]  # newest first
        fake_clock.advance(TIMELINE.running_from + 3 * TIMELINE.checkpoint_every)
        path = f"/fine_tuning/jobs/{RUNNING}/checkpoints"
        _, v1 = await _azure_get(http, azure, "/v1" + path)
        _, dated = await _azure_get(http, azure, path, **{"api-version": DATED, "limit": "2"})
        _, rest = await _azure_get(
            http, azure, path, **{"api-version": DATED, "after": dated["data"][-1]["id"]}
        )
    assert [item["id"] for item in v1["data"]] == made
    oldest_first = [item["id"] for item in dated["data"] + rest["data"]]
    assert oldest_first == made[::-1]
    assert dated["has_more"]
    assert not rest["has_more"]


async def test_the_official_azure_sdk_reads_jobs(
    azure: FakeAPIServer, fake_clock: FakeClock
) -> None:
    """openai.AsyncAzureOpenAI retrieves and lists jobs of the Azure flavour."""
    openai = pytest.importorskip("openai")
    azure.add_running_job(RUNNING, count=2, timeline=TIMELINE)
    fake_clock.advance(TIMELINE.running_from)
    sdk = openai.AsyncAzureOpenAI(
        azure_endpoint=azure.azure_endpoint,
        api_version=DATED,
        api_key=azure.api_key,
        max_retries=0,
    )
    try:
        job = await sdk.fine_tuning.jobs.retrieve(RUNNING)
        listed = [j.id async for j in sdk.fine_tuning.jobs.list()]
    finally:
        await sdk.close()
    assert (job.status, listed) == ("running", [RUNNING])
    assert azure.requests[0].query == {"api-version": DATED}


# -- the pytest plugin ------------------------------------------------------------------


async def test_the_plugin_clock_moves_the_plugin_fake(
    fine_tune_ckpt_fake: FakeAPIServer,
    fine_tune_ckpt_clock: FakeClock,
    fine_tune_ckpt_client: AsyncClient,
) -> None:
    """The plugin's fake runs on the plugin's clock: advancing it moves running jobs on."""
    checkpoints = fine_tune_ckpt_fake.add_running_job(RUNNING, count=3, timeline=TIMELINE)
    assert await fine_tune_ckpt_client.checkpoints.list(RUNNING).to_list() == []
    fine_tune_ckpt_clock.advance(TIMELINE.duration(3))
    assert await fine_tune_ckpt_client.checkpoints.list(RUNNING).to_list() == checkpoints
