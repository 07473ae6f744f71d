"""The fake's Azure OpenAI flavour: routes, api-version, credentials, errors and paging."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDictProxy

from fine_tune_ckpt.testing import FakeAPIServer, Fault

from .test_fake_server import PAGE_SCHEMA, SPEC, _raw_get, needs_ipv6

JOB = "ftjob-abc123"
DATED = "2024-10-21"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
ITEM_SCHEMA = jsonschema.Draft202012Validator(
    {"$ref": "#/components/schemas/FineTuningJobCheckpoint", "components": SPEC["components"]}
)
# Azure's error body: a code, a message and an inner code, and none of OpenAI's fields.
AZURE_ERROR_SCHEMA = jsonschema.Draft202012Validator(
    {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "inner_error"],
                "additionalProperties": False,
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "inner_error": {
                        "type": "object",
                        "required": ["code"],
                        "additionalProperties": False,
                        "properties": {"code": {"type": "string"}},
                    },
                },
            }
        },
    }
)


@pytest.fixture
async def azure() -> AsyncIterator[FakeAPIServer]:
    """A running Azure-flavoured fake serving ``ftjob-abc123`` (25 checkpoints)."""
    async with FakeAPIServer(flavor="azure") as fake:
        fake.add_job(JOB, count=25)
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A bare aiohttp session, to see exactly what the fake sends."""
    async with aiohttp.ClientSession() as session:
        yield session


def _url(fake: FakeAPIServer, *, v1: bool = False, job: str = JOB) -> str:
    return f"{fake.base_url}{'/v1' if v1 else ''}/fine_tuning/jobs/{job}/checkpoints"


async def _get(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    **query: str,
) -> tuple[int, CIMultiDictProxy[str], Any]:
    async with http.get(url, params=query, headers=headers) as answer:
        return answer.status, answer.headers, await answer.json()


def _key(fake: FakeAPIServer) -> dict[str, str]:
    return {"api-key": fake.api_key}


def _assert_azure_headers(headers: CIMultiDictProxy[str]) -> None:
    assert UUID.fullmatch(headers["apim-request-id"])
    assert "x-request-id" not in headers


def _assert_azure_error(body: Any, inner_code: str) -> None:
    AZURE_ERROR_SCHEMA.validate(body)
    assert body["error"]["inner_error"]["code"] == inner_code


async def _walk(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], **query: str
) -> list[dict[str, Any]]:
    """Every page of a walk by the last item's id, each checked as a 200 Azure answer."""
    pages: list[dict[str, Any]] = []
    after: dict[str, str] = {}
    while True:
        status, answer_headers, body = await _get(http, url, headers, **query, **after)
        assert status == 200
        _assert_azure_headers(answer_headers)
        PAGE_SCHEMA.validate(body)
        pages.append(body)
        if not body["has_more"]:
            return pages
        after = {"after": body["data"][-1]["id"]}


# -- addresses --------------------------------------------------------------------------


async def test_endpoint_and_base_url(azure: FakeAPIServer) -> None:
    """The endpoint is scheme, host and port only; the base URL adds ``/openai``."""
    assert azure.azure_endpoint == f"http://127.0.0.1:{azure.port}"
    assert azure.base_url == f"{azure.azure_endpoint}/openai"


@needs_ipv6
async def test_ipv6_endpoint_is_bracketed() -> None:
    """On ::1 the endpoint brackets the address, as the OpenAI flavour's base URL does."""
    async with FakeAPIServer(host="::1", flavor="azure") as fake:
        assert fake.azure_endpoint == f"http://[::1]:{fake.port}"


async def test_openai_flavour_has_no_azure_endpoint(fake_api: FakeAPIServer) -> None:
    """Asking the OpenAI flavour for an Azure endpoint is an error naming the flavour."""
    with pytest.raises(RuntimeError, match="flavor='azure'"):
        _ = fake_api.azure_endpoint


def test_azure_endpoint_before_start_is_an_error() -> None:
    """A stopped Azure fake has no endpoint yet."""
    with pytest.raises(RuntimeError, match="not running"):
        _ = FakeAPIServer(flavor="azure").azure_endpoint


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"flavor": "Azure"}, "flavor must be"),
        ({"azure_oldest_first": True}, "azure_oldest_first needs"),
    ],
)
def test_bad_flavour_arguments_are_refused(arguments: dict[str, Any], message: str) -> None:
    """An unknown flavour, or an Azure option on the OpenAI flavour, is a ValueError."""
    with pytest.raises(ValueError, match=message):
        FakeAPIServer(**arguments)


# -- pages ------------------------------------------------------------------------------


async def test_dated_api_pages_have_no_first_or_last_id(
    azure: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """The dated API pages newest first, validating against the spec, without the ids."""
    expected = azure.add_job(JOB, count=23)
    pages = await _walk(http, _url(azure), _key(azure), **{"api-version": DATED, "limit": "7"})
    assert len(pages) == 4
    for page in pages:
        assert set(page) == {"object", "data", "has_more"}
        for item in page["data"]:
            ITEM_SCHEMA.validate(item)
    assert [item["id"] for page in pages for item in page["data"]] == [c.id for c in expected]


async def test_v1_api_pages_as_openai_does(
    azure: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """The v1 API's pages carry first_id and last_id, newest first, like OpenAI's."""
    expected = azure.add_job(JOB, count=12)
    pages = await _walk(http, _url(azure, v1=True), _key(azure), limit="5")
    assert [len(page["data"]) for page in pages] == [5, 5, 2]
    for page in pages:
        assert page["first_id"] == page["data"][0]["id"]
        assert page["last_id"] == page["data"][-1]["id"]
    assert [item["id"] for page in pages for item in page["data"]] == [c.id for c in expected]


async def test_oldest_first_option_reverses_only_the_dated_api() -> None:
    """With azure_oldest_first the dated API walks oldest first, and v1 stays newest first."""
    async with (
        FakeAPIServer(flavor="azure", azure_oldest_first=True) as fake,
        aiohttp.ClientSession() as http,
    ):
        expected = fake.add_job(JOB, count=11)
        query = {"api-version": DATED, "limit": "4"}
        dated = await _walk(http, _url(fake), _key(fake), **query)
        v1 = await _walk(http, _url(fake, v1=True), _key(fake), limit="4")
    assert [len(page["data"]) for page in dated] == [4, 4, 3]
    walked = [item["id"] for page in dated for item in page["data"]]
    assert walked == [c.id for c in reversed(expected)]
    steps = [item["step_number"] for page in dated for item in page["data"]]
    assert steps == sorted(steps)
    assert [item["id"] for page in v1 for item in page["data"]] == [c.id for c in expected]


async def test_empty_job_on_both_apis(azure: FakeAPIServer, http: aiohttp.ClientSession) -> None:
    """An empty job is one empty page: null ids on v1, no ids at all on the dated API."""
    azure.add_job("ftjob-empty", [])
    key = _key(azure)
    _, _, dated = await _get(http, _url(azure, job="ftjob-empty"), key, **{"api-version": DATED})
    _, _, v1 = await _get(http, _url(azure, v1=True, job="ftjob-empty"), key)
    assert dated == {"object": "list", "data": [], "has_more": False}
    assert v1 == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


# -- api-version ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("v1", "version"),
    [
        (False, "2024-10-21"),
        (False, "2025-04-01-preview"),
        (False, "2024-02-29"),
        (True, None),
        (True, "preview"),
    ],
)
async def test_accepted_api_versions(
    azure: FakeAPIServer, http: aiohttp.ClientSession, v1: bool, version: str | None
) -> None:
    """Dates (optionally -preview) on the dated API; none or "preview" on v1."""
    query = {} if version is None else {"api-version": version}
    status, _, _ = await _get(http, _url(azure, v1=v1), _key(azure), **query)
    assert status == 200
    assert azure.requests[-1].query == query


@pytest.mark.parametrize(
    ("v1", "version", "inner_code"),
    [
        (False, None, "MissingApiVersion"),
        (False, "", "UnsupportedApiVersion"),
        (False, "preview", "UnsupportedApiVersion"),
        (False, "v1", "UnsupportedApiVersion"),
        (False, "2024-10-21-Preview", "UnsupportedApiVersion"),
        (False, "2024-10-21-beta", "UnsupportedApiVersion"),
        (False, "2024-13-01", "UnsupportedApiVersion"),
        (False, "2023-02-29", "UnsupportedApiVersion"),
        (False, "2024-1-01", "UnsupportedApiVersion"),
        (False, "٢٠٢٤-10-21", "UnsupportedApiVersion"),  # Arabic-Indic digits
        (True, "2024-10-21", "UnsupportedApiVersion"),
        (True, "2025-04-01-preview", "UnsupportedApiVersion"),
        (True, "", "UnsupportedApiVersion"),
        (True, "latest", "UnsupportedApiVersion"),
    ],
)
async def test_refused_api_versions_are_azure_400s(
    azure: FakeAPIServer,
    http: aiohttp.ClientSession,
    v1: bool,
    version: str | None,
    inner_code: str,
) -> None:
    """Any other api-version, or none on the dated API, is a 400 in Azure's shape."""
    query = {} if version is None else {"api-version": version}
    status, headers, body = await _get(http, _url(azure, v1=v1), _key(azure), **query)
    assert status == 400
    _assert_azure_headers(headers)
    _assert_azure_error(body, inner_code)
    assert body["error"]["code"] == "BadRequest"


# -- credentials ------------------------------------------------------------------------

TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-entra-token"  # noqa: S105 a made-up token


@pytest.mark.parametrize(
    ("headers", "status", "credential", "inner_code"),
    [
        ({"api-key": "<key>"}, 200, "api-key", None),
        ({"Authorization": f"Bearer {TOKEN}"}, 200, "bearer", None),
        ({"Authorization": f"bearer  {TOKEN} "}, 200, "bearer", None),
        ({"Authorization": f"Bearer {TOKEN}", "api-key": "wrong"}, 200, "bearer", None),
        (
            {"Authorization": "Bearer not-a-token", "api-key": "<key>"},
            401,
            None,
            "InvalidBearerToken",
        ),
        (
            {"Authorization": "Basic dXNlcjpwYXNz", "api-key": "<key>"},
            401,
            None,
            "InvalidBearerToken",
        ),
        ({"Authorization": "Bearer <key>"}, 401, None, "InvalidBearerToken"),
        ({"api-key": "wrong"}, 401, None, "InvalidApiKey"),
        ({"api-key": ""}, 401, None, "InvalidApiKey"),
        ({}, 401, None, "MissingCredential"),
    ],
    ids=[
        "api-key",
        "bearer",
        "bearer-lowercase-spaced",
        "good-bearer-beats-bad-key",
        "bad-bearer-beats-good-key",
        "basic-beats-good-key",
        "api-key-as-bearer",
        "wrong-api-key",
        "empty-api-key",
        "nothing",
    ],
)
async def test_credentials(
    azure: FakeAPIServer,
    http: aiohttp.ClientSession,
    headers: dict[str, str],
    status: int,
    credential: str | None,
    inner_code: str | None,
) -> None:
    """An api-key or a known Entra token passes; when Authorization is sent, it decides."""
    azure.azure_ad_tokens.add(TOKEN)
    sent = {name: value.replace("<key>", azure.api_key) for name, value in headers.items()}
    got, answer_headers, body = await _get(http, _url(azure), sent, **{"api-version": DATED})
    assert got == status
    _assert_azure_headers(answer_headers)
    if inner_code is not None:
        _assert_azure_error(body, inner_code)
        assert body["error"]["code"] == "401"
    (request,) = azure.requests
    assert (request.authorized, request.credential) == (status == 200, credential)


async def test_no_bearer_token_passes_until_one_is_added(
    azure: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """``azure_ad_tokens`` starts empty, and a token added while running is accepted."""
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert azure.azure_ad_tokens == set()
    assert (await _get(http, _url(azure, v1=True), bearer))[0] == 401
    azure.azure_ad_tokens.add(TOKEN)
    assert (await _get(http, _url(azure, v1=True), bearer))[0] == 200


async def test_empty_api_key_accepts_any_key(http: aiohttp.ClientSession) -> None:
    """``api_key=""`` accepts any non-empty api-key header, as the OpenAI flavour any token."""
    async with FakeAPIServer(flavor="azure", api_key="") as fake:
        fake.add_job(JOB, count=1)
        url = _url(fake, v1=True)
        assert (await _get(http, url, {"api-key": "anything"}))[0] == 200
        assert (await _get(http, url, {"api-key": ""}))[0] == 401
        assert (await _get(http, url, {"Authorization": "Bearer anything"}))[0] == 401


async def test_log_shows_header_names_never_secret_values(
    azure: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """The log names every header sent and the credential kind, but keeps no secret value."""
    azure.azure_ad_tokens.add(TOKEN)
    headers = {"api-key": azure.api_key, "Authorization": f"Bearer {TOKEN}", "X-Trace": "t1"}
    await _get(http, _url(azure), headers, **{"api-version": DATED, "limit": "2"})
    (request,) = azure.requests
    assert request.raw_path == f"/openai/fine_tuning/jobs/{JOB}/checkpoints"
    assert request.fine_tuning_job_id == JOB
    assert request.query == {"api-version": DATED, "limit": "2"}
    assert {"api-key", "Authorization", "X-Trace"} <= set(request.header_names)
    assert request.headers["X-Trace"] == "t1"
    assert {name.lower() for name in request.headers}.isdisjoint({"api-key", "authorization"})
    assert request.credential == "bearer"
    assert UUID.fullmatch(request.request_id)
    assert azure.api_key not in repr(request)
    assert TOKEN not in repr(request)


async def test_openai_flavour_logs_credential_and_header_names(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """The OpenAI flavour fills the new log fields too, and ignores an api-key header."""
    url = f"{fake_api.base_url}/fine_tuning/jobs/{JOB}/checkpoints"
    assert (await _get(http, url, {"api-key": fake_api.api_key}))[0] == 401
    bearer = {"Authorization": f"Bearer {fake_api.api_key}"}
    status, headers, _ = await _get(http, url, bearer)
    assert status == 200
    assert headers["x-request-id"].startswith("req_")
    assert "apim-request-id" not in headers
    refused, accepted = fake_api.requests
    assert (refused.credential, accepted.credential) == (None, "bearer")
    assert "api-key" in refused.header_names
    assert "api-key" not in refused.headers
    assert fake_api.api_key not in repr(refused)


# -- refusals in Azure's shape ----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/v1/fine_tuning/jobs/{JOB}/checkpoints"),  # the OpenAI route
        ("GET", "/openai/deployments/gpt-4o/chat/completions"),
        ("GET", f"/openai/fine_tuning/jobs/{JOB}/checkpoints/extra"),
        ("GET", "/"),
        ("POST", f"/openai/fine_tuning/jobs/{JOB}/checkpoints"),
        ("DELETE", f"/openai/v1/fine_tuning/jobs/{JOB}/checkpoints"),
    ],
)
async def test_other_paths_and_methods_are_azure_404s(
    azure: FakeAPIServer, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    """Any other path or method gets Azure's "Resource not found" 404 and is logged."""
    url = f"{azure.azure_endpoint}{path}?api-version={DATED}"
    async with http.request(method, url, headers=_key(azure)) as answer:
        assert answer.status == 404
        _assert_azure_headers(answer.headers)
        _assert_azure_error(await answer.json(), "ResourceNotFound")
    (request,) = azure.requests
    assert (request.method, request.raw_path, request.fine_tuning_job_id) == (method, path, None)


async def test_credentials_are_checked_before_the_path(
    azure: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """An unknown path without a credential is a 401, not a 404: nothing leaks to strangers."""
    status, _, body = await _get(http, f"{azure.azure_endpoint}/nowhere", {})
    assert status == 401
    _assert_azure_error(body, "MissingCredential")


@pytest.mark.parametrize(
    ("job", "query", "status", "inner_code"),
    [
        ("ftjob-missing", {}, 404, "FineTuningJobNotFound"),
        (JOB, {"limit": "0"}, 400, "InvalidLimit"),
        (JOB, {"limit": "ten"}, 400, "InvalidLimit"),
        (JOB, {"after": "ftckpt_unknown"}, 400, "InvalidCursor"),
    ],
)
@pytest.mark.parametrize("v1", [False, True], ids=["dated", "v1"])
async def test_job_and_paging_errors_are_azure_shaped(
    azure: FakeAPIServer,
    http: aiohttp.ClientSession,
    v1: bool,
    job: str,
    query: dict[str, str],
    status: int,
    inner_code: str,
) -> None:
    """An unknown job is a 404 and a bad limit or cursor a 400, in Azure's shape."""
    version = {} if v1 else {"api-version": DATED}
    got, headers, body = await _get(
        http, _url(azure, v1=v1, job=job), _key(azure), **version, **query
    )
    assert got == status
    _assert_azure_headers(headers)
    _assert_azure_error(body, inner_code)


@pytest.mark.parametrize(
    ("fault", "code", "inner_code"),
    [
        (Fault(status=429, retry_after=2), "429", "RateLimitExceeded"),
        (Fault(status=500), "InternalServerError", "ServerError"),
        (Fault(status=503, retry_after_ms=250), "InternalServerError", "ServerError"),
        (Fault(status=403), "403", "Injected"),
    ],
)
async def test_injected_statuses_are_azure_shaped(
    azure: FakeAPIServer, http: aiohttp.ClientSession, fault: Fault, code: str, inner_code: str
) -> None:
    """An injected status answers in Azure's shape, with the fault's retry headers."""
    azure.inject(fault)
    status, headers, body = await _get(http, _url(azure, v1=True), _key(azure))
    assert status == fault.status
    _assert_azure_headers(headers)
    _assert_azure_error(body, inner_code)
    assert body["error"]["code"] == code
    if fault.retry_after is not None:
        assert headers["Retry-After"] == str(fault.retry_after)
    if fault.retry_after_ms is not None:
        assert headers["retry-after-ms"] == str(fault.retry_after_ms)
    # The fault is used up: the next request is served.
    assert (await _get(http, _url(azure, v1=True), _key(azure)))[0] == 200


async def test_other_faults_work_on_azure(
    azure: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """Connection faults, chunking and redirects behave as on the OpenAI flavour."""
    azure.inject(
        Fault(drop_connection=True),
        Fault(chunked=True),
        Fault(redirect_to=_url(azure, v1=True)),
    )
    # A raw connection, as aiohttp would retry the dropped request on its own.
    reader, writer = await asyncio.open_connection(azure.host, azure.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: fake\r\napi-key: x\r\n\r\n")
        assert await reader.read() == b""
    finally:
        writer.close()
        await writer.wait_closed()
    status, headers, body = await _get(http, _url(azure, v1=True), _key(azure))
    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked"
    PAGE_SCHEMA.validate(body)
    async with http.get(_url(azure), headers=_key(azure), allow_redirects=False) as answer:
        assert answer.status == 307
        _assert_azure_headers(answer.headers)
        assert answer.headers["Location"] == _url(azure, v1=True)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    api_key=st.binary(max_size=40),
    authorization=st.none() | st.binary(max_size=40),
    version=st.binary(max_size=24),
)
async def test_no_request_makes_the_azure_fake_answer_500(
    azure: FakeAPIServer, api_key: bytes, authorization: bytes | None, version: bytes
) -> None:
    """Whatever bytes the credentials and api-version hold, the answer is below 500."""
    # CR and LF would end the header line: that is a different request, not a bad value.
    lines = [b"api-key: " + api_key.replace(b"\r", b"").replace(b"\n", b"")]
    if authorization is not None:
        lines.append(b"Authorization: " + authorization.replace(b"\r", b"").replace(b"\n", b""))
    printable = bytes(0x21 + b % 0x5E for b in version)
    target = f"/openai/fine_tuning/jobs/{JOB}/checkpoints?api-version=".encode() + printable
    status, _ = await _raw_get(azure, target, *lines)
    assert status < 500
