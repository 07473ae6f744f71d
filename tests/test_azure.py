"""AsyncAzureClient: URLs, api-version, credentials and answers, against the Azure fake."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fine_tune_ckpt import (
    AsyncAzureClient,
    AsyncClient,
    AuthenticationError,
    FineTuneCkptError,
    NotFoundError,
    RateLimitError,
)
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault

JOB = "ftjob-azure"
DATED = "2024-10-21"


@pytest.fixture
async def azure() -> AsyncIterator[FakeAPIServer]:
    """An Azure-flavoured fake serving one job of 25 checkpoints."""
    async with FakeAPIServer(flavor="azure") as fake:
        fake.add_job(JOB, count=25)
        yield fake


def _client(fake: FakeAPIServer, **options: Any) -> AsyncAzureClient:
    options.setdefault("azure_endpoint", fake.azure_endpoint)
    if not {"api_key", "azure_ad_token", "azure_ad_token_provider"} & options.keys():
        options["api_key"] = fake.api_key
    options.setdefault("api_version", DATED)
    return AsyncAzureClient(clock=FakeClock(), **options)


async def test_a_dated_version_pages_under_openai_with_api_version_kept(
    azure: FakeAPIServer,
) -> None:
    """Every page goes to /openai/... with the same api-version and the api-key header."""
    async with _client(azure) as client:
        items = await client.checkpoints.list(JOB, limit=10).to_list()
    assert len(items) == 25
    assert len(azure.requests) == 3
    for request in azure.requests:
        assert request.raw_path == f"/openai/fine_tuning/jobs/{JOB}/checkpoints"
        assert request.query["api-version"] == DATED
        assert request.credential == "api-key"
        assert "authorization" not in {name.lower() for name in request.header_names}
    assert [request.query.get("after") for request in azure.requests][1:] == [
        items[9].id,
        items[19].id,
    ]


async def test_v1_pages_under_openai_v1_without_api_version(azure: FakeAPIServer) -> None:
    """api_version="v1" uses the GA path and sends no api-version at all."""
    async with _client(azure, api_version="v1") as client:
        assert len(await client.checkpoints.list(JOB).to_list()) == 25
    for request in azure.requests:
        assert request.raw_path == f"/openai/v1/fine_tuning/jobs/{JOB}/checkpoints"
        assert "api-version" not in request.query


async def test_preview_pages_under_openai_v1_with_api_version_preview(
    azure: FakeAPIServer,
) -> None:
    """api_version="preview" uses the v1 path with api-version=preview on every page."""
    async with _client(azure, api_version="preview") as client:
        assert len(await client.checkpoints.list(JOB).to_list()) == 25
    for request in azure.requests:
        assert request.raw_path == f"/openai/v1/fine_tuning/jobs/{JOB}/checkpoints"
        assert request.query["api-version"] == "preview"


async def test_a_token_is_sent_as_bearer_and_wins_over_a_key(azure: FakeAPIServer) -> None:
    """An Entra ID token goes as Authorization: Bearer; api-key is not sent beside it."""
    azure.azure_ad_tokens.add("entra-token-1")
    async with _client(azure, azure_ad_token="entra-token-1") as client:  # noqa: S106
        await client.checkpoints.list(JOB)
    (request,) = azure.requests
    assert request.credential == "bearer"
    assert "api-key" not in {name.lower() for name in request.header_names}


async def test_a_token_provider_is_asked_before_every_attempt(azure: FakeAPIServer) -> None:
    """azure_ad_token_provider (async here) is called per attempt, retries included."""
    tokens = iter(["tok-a", "tok-b", "tok-c", "tok-d", "tok-e"])
    azure.azure_ad_tokens.update({"tok-a", "tok-b", "tok-c", "tok-d", "tok-e"})
    asked = 0

    async def provider() -> str:
        nonlocal asked
        asked += 1
        await asyncio.sleep(0)
        return next(tokens)

    azure.inject(Fault(status=429, retry_after=1))
    async with _client(azure, azure_ad_token_provider=provider) as client:
        assert len(await client.checkpoints.list(JOB, limit=10).to_list()) == 25
    assert asked == 4  # one 429, then three pages
    assert all(request.credential == "bearer" for request in azure.requests[1:])


async def test_answers_carry_apim_request_id_and_azure_errors_map(azure: FakeAPIServer) -> None:
    """Azure's error shape maps to the same classes; the request id is apim-request-id."""
    async with _client(azure, max_retries=0) as client:
        with pytest.raises(NotFoundError) as missing:
            await client.checkpoints.list("ftjob-nope")
        azure.inject(Fault(status=429))
        with pytest.raises(RateLimitError) as limited:
            await client.checkpoints.list(JOB)
    assert missing.value.request_id == azure.requests[0].request_id
    assert missing.value.code is not None
    assert missing.value.message.startswith("Error code: 404 - ")
    assert limited.value.request_id == azure.requests[1].request_id


async def test_a_wrong_key_is_an_authentication_error(azure: FakeAPIServer) -> None:
    """A key Azure refuses is AuthenticationError, never retried, key not in the error."""
    async with _client(azure, api_key="wrong-azure-key-SECRET") as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.checkpoints.list(JOB)
    assert "wrong-azure-key-SECRET" not in str(caught.value)
    assert len(azure.requests) == 1


@pytest.mark.parametrize("limit", [1, 7, 10, 100])
async def test_oldest_first_pages_without_first_and_last_id_walk_whole(limit: int) -> None:
    """Dated-API pages listed oldest first, with no first_id/last_id, still page by last id."""
    async with FakeAPIServer(flavor="azure", azure_oldest_first=True) as fake:
        fake.add_job(JOB, count=23)
        async with _client(fake) as client:
            pages = [page async for page in client.checkpoints.list(JOB, limit=limit).pages()]
    items = [item for page in pages for item in page.data]
    assert len(items) == 23
    assert len({item.id for item in items}) == 23
    assert [item.step_number for item in items] == sorted(item.step_number for item in items)
    assert all(page.first_id is None and page.last_id is None for page in pages)


def test_settings_come_from_the_azure_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """AZURE_OPENAI_ENDPOINT, OPENAI_API_VERSION and AZURE_OPENAI_API_KEY fill the gaps."""
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/")
    monkeypatch.setenv("OPENAI_API_VERSION", DATED)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key\n")
    client = AsyncAzureClient()
    assert str(client.base_url) == "https://res.openai.azure.com/openai"
    assert client.api_version == DATED
    assert client._transport._headers["api-key"] == "env-key"


def test_an_environment_token_wins_over_an_environment_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With both in the environment, the Entra ID token is used, as in the official SDK."""
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "env-token")
    client = AsyncAzureClient(azure_endpoint="https://res.openai.azure.com", api_version="v1")
    assert client._transport._headers["Authorization"] == "Bearer env-token"
    assert "api-key" not in client._transport._headers


def test_an_explicit_key_is_not_overridden_by_an_environment_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Explicit credentials choose: the environment is read only when none is given."""
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "env-token")
    client = AsyncAzureClient(
        azure_endpoint="https://res.openai.azure.com", api_version="v1", api_key="mine"
    )
    assert client._transport._headers["api-key"] == "mine"
    assert "Authorization" not in client._transport._headers


def test_base_url_is_used_as_given() -> None:
    """base_url instead of azure_endpoint: used as is, api-version still added."""
    client = AsyncAzureClient(
        base_url="https://gw.example/azure/openai/", api_version=DATED, api_key="k"
    )
    assert str(client.base_url) == "https://gw.example/azure/openai"
    assert dict(client._backend.query) == {"api-version": DATED}
    assert isinstance(client, AsyncClient)


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ({"api_version": None}, FineTuneCkptError, "OPENAI_API_VERSION"),
        ({"azure_endpoint": None}, FineTuneCkptError, "AZURE_OPENAI_ENDPOINT"),
        ({"api_key": None}, FineTuneCkptError, "AZURE_OPENAI_API_KEY"),
        ({"base_url": "https://x.example/openai"}, ValueError, "not both"),
        ({"azure_endpoint": "ftp://res"}, ValueError, "azure_endpoint"),
        ({"api_version": "2024\n10"}, ValueError, "api_version"),
        (
            {"api_key": None, "azure_ad_token_provider": "not callable"},
            TypeError,
            "azure_ad_token_provider",
        ),
        ({"azure_ad_token": "t"}, ValueError, "mutually exclusive"),
        ({"azure_ad_token_provider": lambda: "t"}, ValueError, "mutually exclusive"),
        ({"api_version": "v2"}, ValueError, "api_version"),
        ({"api_version": "latest"}, ValueError, "api_version"),
        ({"api_version": "../x"}, ValueError, "api_version"),
        ({"api_version": "2024-10-21x"}, ValueError, "api_version"),
        ({"default_query": {"api-version": "2020-01-01"}}, ValueError, "api-version"),
        ({"azure_deployment": 5}, TypeError, "azure_deployment"),
        ({"api_key": "k\x00ey"}, ValueError, "api_key"),
    ],
)
def test_bad_azure_settings_fail_at_construction(
    options: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    """Each missing or bad Azure setting is named before any request."""
    settings: dict[str, Any] = {
        "azure_endpoint": "https://res.openai.azure.com",
        "api_version": DATED,
        "api_key": "k",
        **options,
    }
    with pytest.raises(error, match=fragment):
        AsyncAzureClient(**settings)


# -- side by side with the official SDK ---------------------------------------------------


async def test_the_request_matches_the_official_sdk(azure: FakeAPIServer) -> None:
    """For a dated version, path, query and auth header equal openai.AsyncAzureOpenAI's."""
    openai = pytest.importorskip("openai")
    official = openai.AsyncAzureOpenAI(
        azure_endpoint=azure.azure_endpoint,
        api_version=DATED,
        api_key=azure.api_key,
        max_retries=0,
    )
    try:
        await official.fine_tuning.jobs.checkpoints.list(JOB, after="ftckpt-x", limit=5)
    except Exception:  # noqa: S110 - only the request it sent matters here
        pass
    finally:
        await official.close()
    async with _client(azure, max_retries=0) as client:
        pager = client.checkpoints.list(JOB, after="ftckpt-x", limit=5)
        with contextlib.suppress(FineTuneCkptError):  # only the request matters
            await pager
    theirs, ours = azure.requests
    assert ours.raw_path == theirs.raw_path
    assert dict(ours.query) == dict(theirs.query)
    assert ours.credential == theirs.credential == "api-key"
    assert {"api-key"} <= {name.lower() for name in ours.header_names}


async def test_the_token_request_matches_the_official_sdk(azure: FakeAPIServer) -> None:
    """With an Entra ID token provider, both send the same bearer request."""
    openai = pytest.importorskip("openai")
    azure.azure_ad_tokens.add("entra-side-by-side")
    official = openai.AsyncAzureOpenAI(
        azure_endpoint=azure.azure_endpoint,
        api_version=DATED,
        azure_ad_token_provider=lambda: "entra-side-by-side",
        max_retries=0,
    )
    try:
        await official.fine_tuning.jobs.checkpoints.list(JOB)
    finally:
        await official.close()
    async with _client(azure, azure_ad_token_provider=lambda: "entra-side-by-side") as client:
        await client.checkpoints.list(JOB)
    theirs, ours = azure.requests
    assert (ours.raw_path, dict(ours.query), ours.credential) == (
        theirs.raw_path,
        dict(theirs.query),
        theirs.credential,
    )
    assert ours.credential == "bearer"


@pytest.mark.parametrize(("given", "path"), [("V1", "/openai/v1/"), ("PREVIEW", "/openai/v1/")])
def test_v1_and_preview_are_read_in_any_case(given: str, path: str) -> None:
    """The v1 and preview versions are read in any case, never as a dated version."""
    client = AsyncAzureClient(azure_endpoint="https://r.example", api_version=given, api_key="k")
    assert f"{client._backend.base_url}/".endswith(path)
    assert client.api_version == given.lower()


def test_api_version_is_set_by_the_setting_never_the_url() -> None:
    """An api-version in base_url or azure_endpoint is replaced by api_version."""
    by_base = AsyncAzureClient(
        base_url="https://gw.example/openai?api-version=2020-01-01&x=1",
        api_version=DATED,
        api_key="k",
    )
    assert dict(by_base._backend.query) == {"x": "1", "api-version": DATED}
    by_endpoint = AsyncAzureClient(
        azure_endpoint="https://r.example?api-version=2020-01-01", api_version="v1", api_key="k"
    )
    assert dict(by_endpoint._backend.query) == {}


async def test_a_deployment_changes_nothing_for_fine_tuning(azure: FakeAPIServer) -> None:
    """azure_deployment is accepted, as by AsyncAzureOpenAI, and the request is the same."""
    async with _client(azure, azure_deployment="gpt-4o-mini") as client:
        assert client.azure_deployment == "gpt-4o-mini"
        await client.checkpoints.list(JOB)
    assert azure.requests[0].raw_path == f"/openai/fine_tuning/jobs/{JOB}/checkpoints"
