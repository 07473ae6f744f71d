"""The built-in fake API: faithful to the spec, seeded, scriptable, and observable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml
from multidict import CIMultiDictProxy

from fine_tune_ckpt import AsyncClient
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault, synthetic_checkpoints

SPEC = yaml.safe_load(
    (Path(__file__).parent / "fixtures/spec/checkpoints.openapi.yaml").read_text()
)
OPERATION = SPEC["paths"]["/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"]["get"]
JOB = "ftjob-abc123"


def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    """A validator for one component schema, resolving the spec's internal $refs."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": SPEC["components"]}
    return jsonschema.Draft202012Validator(schema)


PAGE_SCHEMA = _validator("ListFineTuningJobCheckpointsResponse")
ERROR_SCHEMA = _validator("ErrorResponse")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A bare aiohttp session, to see exactly what the fake sends."""
    async with aiohttp.ClientSession() as session:
        yield session


async def _get(
    http: aiohttp.ClientSession,
    fake: FakeAPIServer,
    job: str = JOB,
    *,
    key: str | None = None,
    **query: str,
) -> tuple[int, CIMultiDictProxy[str], Any]:
    headers = {"Authorization": f"Bearer {fake.api_key if key is None else key}"}
    if key == "":
        headers = {}
    url = f"{fake.base_url}/fine_tuning/jobs/{job}/checkpoints"
    async with http.get(url, params=query, headers=headers) as answer:
        return answer.status, answer.headers, await answer.json()


async def test_pages_validate_against_the_spec(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """Every page of a walk validates against ListFineTuningJobCheckpointsResponse."""
    fake_api.add_job(JOB, count=23)
    after: str | None = None
    pages = 0
    while True:
        query = {"limit": "7"} if after is None else {"limit": "7", "after": after}
        status, headers, body = await _get(http, fake_api, **query)
        assert status == 200
        assert headers["x-request-id"].startswith("req_")
        PAGE_SCHEMA.validate(body)
        for item in body["data"]:
            assert set(item) >= set(
                SPEC["components"]["schemas"]["FineTuningJobCheckpoint"]["required"]
            )
        pages += 1
        if not body["has_more"]:
            break
        after = body["last_id"]
    assert pages == 4


async def test_paging_semantics(fake_api: FakeAPIServer, http: aiohttp.ClientSession) -> None:
    """Newest first, ``after`` exclusive, ``limit`` defaulting to 10, ids of the page."""
    expected = fake_api.add_job(JOB, count=15)
    _, _, first = await _get(http, fake_api)
    assert [item["id"] for item in first["data"]] == [c.id for c in expected[:10]]
    assert first["first_id"] == expected[0].id
    assert first["last_id"] == expected[9].id
    assert first["has_more"] is True
    steps = [item["step_number"] for item in first["data"]]
    assert steps == sorted(steps, reverse=True)
    _, _, second = await _get(http, fake_api, after=expected[9].id)
    assert [item["id"] for item in second["data"]] == [c.id for c in expected[10:]]
    assert second["has_more"] is False


async def test_empty_job_page(fake_api: FakeAPIServer, http: aiohttp.ClientSession) -> None:
    """A job with no checkpoints answers an empty page with null ids."""
    fake_api.add_job("ftjob-empty", [])
    status, _, body = await _get(http, fake_api, "ftjob-empty")
    assert status == 200
    PAGE_SCHEMA.validate(body)
    assert body == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


@pytest.mark.parametrize(
    ("job", "key", "query", "status", "param"),
    [
        (JOB, "", {}, 401, None),
        (JOB, "sk-wrong", {}, 401, None),
        ("ftjob-missing", None, {}, 404, "fine_tuning_job_id"),
        (JOB, None, {"limit": "0"}, 400, "limit"),
        (JOB, None, {"limit": "ten"}, 400, "limit"),
        (JOB, None, {"after": "ftckpt_unknown"}, 400, "after"),
    ],
)
async def test_errors_are_shaped_as_the_api_s(
    fake_api: FakeAPIServer,
    http: aiohttp.ClientSession,
    job: str,
    key: str | None,
    query: dict[str, str],
    status: int,
    param: str | None,
) -> None:
    """Each refusal has the API's status and ``{"error": {...}}`` body."""
    got, headers, body = await _get(http, fake_api, job, key=key, **query)
    assert got == status
    ERROR_SCHEMA.validate(body)
    assert body["error"]["param"] == param
    assert "x-request-id" in headers


async def test_empty_api_key_accepts_any_bearer_token(http: aiohttp.ClientSession) -> None:
    """``api_key=""`` accepts any bearer token, but still not a missing one."""
    async with FakeAPIServer(api_key="") as fake:
        fake.add_job(JOB, count=1)
        assert (await _get(http, fake, key="anything"))[0] == 200
        assert (await _get(http, fake, key=""))[0] == 401


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_injected_statuses_carry_retry_headers(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession, status: int
) -> None:
    """An injected status answers with the API's error shape and the asked-for headers."""
    fake_api.inject(Fault(status=status, retry_after=3, retry_after_ms=1500, should_retry=False))
    got, headers, body = await _get(http, fake_api)
    assert got == status
    ERROR_SCHEMA.validate(body)
    assert headers["Retry-After"] == "3"
    assert headers["retry-after-ms"] == "1500"
    assert headers["x-should-retry"] == "false"
    assert fake_api.pending_faults == 0


async def test_faults_are_used_in_order_one_per_request(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """Injected faults apply to the next requests in order, then answers are normal."""
    fake_api.inject(Fault(status=500), Fault(status=429))
    statuses = [(await _get(http, fake_api))[0] for _ in range(3)]
    assert statuses == [500, 429, 200]
    fake_api.inject(Fault(status=500))
    fake_api.clear_faults()
    assert (await _get(http, fake_api))[0] == 200


async def test_random_faults_are_seeded(fake_api: FakeAPIServer) -> None:
    """The same fault seed gives the same faults on the same requests."""

    async def statuses(seed: int) -> list[int]:
        async with (
            FakeAPIServer(
                fault_rate=0.5, fault_seed=seed, random_faults=[Fault(status=503)]
            ) as fake,
            aiohttp.ClientSession() as session,
        ):
            fake.add_job(JOB, count=1)
            return [(await _get(session, fake))[0] for _ in range(20)]

    first = await statuses(7)
    assert first == await statuses(7)
    assert first != await statuses(8)
    assert set(first) == {200, 503}


def test_fault_rate_is_checked() -> None:
    """A fault rate outside [0, 1] is refused."""
    with pytest.raises(ValueError, match="fault_rate"):
        FakeAPIServer(fault_rate=1.5)


async def test_random_faults_are_survived_by_the_client() -> None:
    """Under a 30 % fault rate the client still yields every checkpoint once, in order."""
    async with FakeAPIServer(fault_rate=0.3, fault_seed=3) as fake:
        expected = fake.add_job(JOB, count=200)
        async with AsyncClient(
            api_key=fake.api_key, base_url=fake.base_url, clock=FakeClock(), max_retries=10
        ) as client:
            assert await client.checkpoints.list(JOB, limit=10).to_list() == expected


def test_synthetic_data_is_realistic_and_seeded() -> None:
    """Synthetic checkpoints are newest first, named as real ones, and repeatable."""
    checkpoints = synthetic_checkpoints("ftjob-x", 50, seed=1)
    assert checkpoints == synthetic_checkpoints("ftjob-x", 50, seed=1)
    assert checkpoints != synthetic_checkpoints("ftjob-x", 50, seed=2)
    steps = [c.step_number for c in checkpoints]
    assert steps == sorted(steps, reverse=True)
    newest, oldest = checkpoints[0], checkpoints[-1]
    assert newest.created_at > oldest.created_at
    assert newest.fine_tuned_model_checkpoint.startswith("ft:gpt-4o-mini-2024-07-18:fake-org:")
    assert newest.fine_tuned_model_checkpoint.endswith(f":ckpt-step-{newest.step_number}")
    assert newest.metrics.full_valid_loss is not None
    assert oldest.metrics.full_valid_loss is not None
    assert newest.metrics.full_valid_loss < oldest.metrics.full_valid_loss
    assert len({c.id for c in checkpoints}) == 50


def test_base_url_before_start_is_an_error() -> None:
    """Asking a stopped fake for its URL says it is not running."""
    with pytest.raises(RuntimeError, match="not running"):
        _ = FakeAPIServer().base_url


async def test_request_log(fake_api: FakeAPIServer, http: aiohttp.ClientSession) -> None:
    """The log keeps method, raw path, query and headers, minus the secret ones."""
    await _get(http, fake_api, limit="3")
    (request,) = fake_api.requests
    assert request.method == "GET"
    assert request.raw_path == f"/v1/fine_tuning/jobs/{JOB}/checkpoints"
    assert request.query == {"limit": "3"}
    assert request.authorized
    assert all(name.lower() != "authorization" for name in request.headers)


async def test_plugin_fixtures_are_available(
    fine_tune_ckpt_client: AsyncClient,
    fine_tune_ckpt_fake: FakeAPIServer,
    fine_tune_ckpt_clock: FakeClock,
) -> None:
    """The pytest plugin's fixtures give a client bound to a running fake."""
    fine_tune_ckpt_fake.inject(Fault(status=429, retry_after=4))
    items = await fine_tune_ckpt_client.checkpoints.list("ftjob-abc123").to_list()
    assert len(items) == 25
    assert fine_tune_ckpt_clock.sleeps == [4.0]


def test_plugin_works_in_strict_asyncio_mode(pytester: pytest.Pytester) -> None:
    """A user's suite in pytest-asyncio strict mode can use the fixtures as they are."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_listing(fine_tune_ckpt_client):
            items = await fine_tune_ckpt_client.checkpoints.list("ftjob-abc123").to_list()
            assert len(items) == 25
        """
    )
    result = pytester.runpytest_subprocess(
        "-o",
        "asyncio_mode=strict",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-W",
        "error",
    )
    result.assert_outcomes(passed=1)
