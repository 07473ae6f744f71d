"""Bad servers, secrets and transport safety: clear errors, no leaks of the key."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme
from aioresponses import aioresponses

from fine_tune_ckpt import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    AsyncClient,
    AuthenticationError,
    InternalServerError,
    PaginationError,
)
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault

from .conftest import load_fixture

KEY = "sk-live-0123456789abcdef-secret"
BASE = "https://api.test/v1"
URL = f"{BASE}/fine_tuning/jobs/ftjob-abc123/checkpoints"
PAGE = load_fixture("page_spec_example.json")


def _page(**changes: Any) -> dict[str, Any]:
    return {**PAGE, **changes}


def _item(**changes: Any) -> dict[str, Any]:
    return {**PAGE["data"][0], **changes}


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


BAD_ANSWERS: list[tuple[str, dict[str, Any], type[APIError], str]] = [
    ("non-JSON 200", {"body": "hello"}, APIResponseValidationError, "not JSON"),
    (
        "HTML 502 page",
        {"status": 502, "body": "<html><h1>502 Bad Gateway</h1></html>"},
        InternalServerError,
        "502",
    ),
    ("empty 200 body", {"body": ""}, APIResponseValidationError, "not JSON"),
    ("data not a list", {"payload": _page(data={"x": 1})}, APIResponseValidationError, "$.data"),
    (
        "missing has_more",
        {"payload": _without(PAGE, "has_more")},
        APIResponseValidationError,
        "$.has_more",
    ),
    (
        "item without id",
        {"payload": _page(data=[_without(PAGE["data"][0], "id")])},
        APIResponseValidationError,
        "$.data[0].id",
    ),
    (
        "wrong item object",
        {"payload": _page(data=[_item(object="fine_tuning.job")])},
        APIResponseValidationError,
        "$.data[0].object",
    ),
    (
        "wrong page object",
        {"payload": _page(object="page")},
        APIResponseValidationError,
        "$.object",
    ),
    ("JSON array", {"payload": [1, 2]}, APIResponseValidationError, "not an object"),
    ("JSON null", {"body": "null"}, APIResponseValidationError, "not an object"),
    (
        "has_more with no items",
        {"payload": _page(data=[], has_more=True)},
        PaginationError,
        "no items",
    ),
]


@pytest.mark.parametrize(
    ("answer", "error", "fragment"),
    [case[1:] for case in BAD_ANSWERS],
    ids=[case[0] for case in BAD_ANSWERS],
)
async def test_bad_answers_give_one_clear_error(
    mock_http: aioresponses, answer: dict[str, Any], error: type[APIError], fragment: str
) -> None:
    """Each kind of bad answer raises one library error naming the problem, never a hang."""
    mock_http.get(URL, repeat=True, **answer)
    async with AsyncClient(api_key=KEY, base_url=BASE, clock=FakeClock()) as client:
        with pytest.raises(error) as caught:
            await client.checkpoints.list("ftjob-abc123").to_list()
    assert fragment in str(caught.value)
    assert KEY not in str(caught.value)


async def test_huge_announced_body_is_refused_over_loopback(fake_api: FakeAPIServer) -> None:
    """A body announced larger than the cap is refused from its Content-Length."""
    fake_api.inject(Fault(pad_body=33 * 1024 * 1024))
    async with AsyncClient(
        api_key=fake_api.api_key, base_url=fake_api.base_url, clock=FakeClock()
    ) as client:
        with pytest.raises(APIResponseValidationError, match="larger than"):
            await client.checkpoints.list("ftjob-abc123")
    assert len(fake_api.requests) == 1


async def test_huge_chunked_body_is_refused_while_reading(fake_api: FakeAPIServer) -> None:
    """A body of no announced length is refused once it passes the cap."""
    fake_api.inject(Fault(pad_body=33 * 1024 * 1024, chunked=True))
    async with AsyncClient(
        api_key=fake_api.api_key, base_url=fake_api.base_url, clock=FakeClock()
    ) as client:
        with pytest.raises(APIResponseValidationError, match="larger than"):
            await client.checkpoints.list("ftjob-abc123")


async def test_chunked_body_within_the_cap_is_fine(fake_api: FakeAPIServer) -> None:
    """A normal page sent in chunks parses as usual."""
    fake_api.inject(Fault(chunked=True))
    async with AsyncClient(
        api_key=fake_api.api_key, base_url=fake_api.base_url, clock=FakeClock()
    ) as client:
        assert len((await client.checkpoints.list("ftjob-abc123")).data) == 10


async def test_padded_body_within_the_cap_is_fine(fake_api: FakeAPIServer) -> None:
    """Whitespace around valid JSON under the cap parses as usual."""
    fake_api.inject(Fault(pad_body=1024 * 1024))
    async with AsyncClient(
        api_key=fake_api.api_key, base_url=fake_api.base_url, clock=FakeClock()
    ) as client:
        assert len((await client.checkpoints.list("ftjob-abc123")).data) == 10


# -- secrets -----------------------------------------------------------------------


@pytest.fixture
def every_log_record(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every logger at DEBUG, aiohttp's and asyncio's included."""
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_the_key_never_appears_anywhere(
    every_log_record: pytest.LogCaptureFixture,
) -> None:
    """Not in reprs, log records at any level, exception messages, or the fake's log."""
    async with FakeAPIServer(api_key=KEY) as fake:
        fake.add_job("ftjob-abc123", count=12)
        fake.inject(Fault(status=429, retry_after=1), Fault(status=500), Fault(status=503))
        client = AsyncClient(api_key=KEY, base_url=fake.base_url, clock=FakeClock())
        pager = client.checkpoints.list("ftjob-abc123", limit=5)
        errors: list[BaseException] = []
        try:
            await pager.to_list()
        except APIError as error:
            errors.append(error)
        await pager.to_list()
        fake.inject(Fault(status=404))
        try:
            await pager
        except APIStatusError as error:
            errors.append(error)
        wrong = AsyncClient(api_key=KEY + "-wrong", base_url=fake.base_url)
        try:
            await wrong.checkpoints.list("ftjob-abc123")
        except AuthenticationError as error:
            errors.append(error)
        await wrong.aclose()
        texts = [repr(client), repr(pager), repr(client.checkpoints), repr(vars(client))]
        texts += [repr(vars(pager)), repr(fake.requests)]
        texts += [f"{e!r} {e} {vars(e)}" for e in errors]
        await client.aclose()
    assert len(errors) == 3
    assert every_log_record.records, "nothing was logged: the check would prove nothing"
    texts.append(every_log_record.text)
    texts += [str(record.__dict__) for record in every_log_record.records]
    for text in texts:
        assert KEY not in text


# -- transport safety --------------------------------------------------------------


async def test_redirect_to_another_host_drops_the_authorization_header() -> None:
    """Following a redirect to another origin never carries the API key there."""
    async with FakeAPIServer(api_key="") as other, FakeAPIServer(api_key=KEY) as api:
        other.add_job("ftjob-abc123", count=3)
        api.add_job("ftjob-abc123", count=3)
        target = f"http://localhost:{other.port}/v1/fine_tuning/jobs/ftjob-abc123/checkpoints"
        api.inject(Fault(redirect_to=target))
        async with AsyncClient(api_key=KEY, base_url=api.base_url, clock=FakeClock()) as client:
            with pytest.raises(AuthenticationError):
                await client.checkpoints.list("ftjob-abc123")
        (arrived,) = other.requests
        assert not arrived.authorized
        assert all(name.lower() != "authorization" for name in arrived.headers)


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    """A throwaway certificate authority for loopback TLS."""
    return trustme.CA()


@pytest.fixture
async def tls_fake(certificate_authority: trustme.CA) -> AsyncIterator[FakeAPIServer]:
    """The fake over HTTPS with a certificate for 127.0.0.1 from the throwaway CA."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_context)
    async with FakeAPIServer(ssl_context=server_context) as fake:
        fake.add_job("ftjob-abc123", count=3)
        yield fake


async def test_tls_is_verified_by_default(tls_fake: FakeAPIServer) -> None:
    """A certificate the system does not trust is refused: verification is on by default."""
    assert tls_fake.base_url.startswith("https://")
    async with AsyncClient(
        api_key=tls_fake.api_key, base_url=tls_fake.base_url, clock=FakeClock(), max_retries=0
    ) as client:
        with pytest.raises(APIConnectionError, match=r"(?i)certificate"):
            await client.checkpoints.list("ftjob-abc123")
    assert tls_fake.requests == []


async def test_a_custom_ssl_context_is_used(
    tls_fake: FakeAPIServer, certificate_authority: trustme.CA
) -> None:
    """An ``ssl_context`` that trusts the CA lets the client in."""
    context = ssl.create_default_context()
    certificate_authority.configure_trust(context)
    async with AsyncClient(
        api_key=tls_fake.api_key, base_url=tls_fake.base_url, ssl_context=context
    ) as client:
        assert len(await client.checkpoints.list("ftjob-abc123").to_list()) == 3


def test_ssl_context_must_be_a_context() -> None:
    """Anything but an SSLContext (``False`` included) is refused."""
    with pytest.raises(TypeError, match="ssl_context"):
        AsyncClient(api_key=KEY, ssl_context=False)  # type: ignore[arg-type]
