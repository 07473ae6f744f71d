"""Per-call control: a walk's own timeouts, retries, headers and query; with_options copies."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from fine_tune_ckpt import (
    NOT_GIVEN,
    APITimeoutError,
    AsyncClient,
    InternalServerError,
)
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault

from .test_secret_chains import leaks

JOB = "ftjob-abc123"


def _closed(session: aiohttp.ClientSession) -> bool:
    return session.closed


def _client(fake: FakeAPIServer, **options: Any) -> AsyncClient:
    return AsyncClient(api_key=fake.api_key, base_url=fake.base_url, clock=FakeClock(), **options)


async def test_extra_headers_and_query_ride_on_every_page(fake_api: FakeAPIServer) -> None:
    """A call's extra headers and query go with each of its pages, not with other calls."""
    async with _client(fake_api, default_headers={"x-team": "a"}) as client:
        await client.checkpoints.list(
            JOB, limit=10, extra_headers={"x-trace": "t1", "x-team": "b"}, extra_query={"q": 1}
        ).to_list()
        await client.checkpoints.list(JOB, max_items=1)
    walked, other = fake_api.requests[:3], fake_api.requests[3]
    for request in walked:
        assert request.headers["x-trace"] == "t1"
        assert request.headers["x-team"] == "b"
        assert request.query["q"] == "1"
        assert request.query["limit"] == "10"
    assert "x-trace" not in other.headers
    assert other.headers["x-team"] == "a"
    assert "q" not in other.query


async def test_a_calls_max_retries_overrides_the_clients(fake_api: FakeAPIServer) -> None:
    """max_retries=0 on one call: a 503 is raised at once; the client's default still retries."""
    fake_api.inject(Fault(status=503), Fault(status=503))
    async with _client(fake_api, max_retries=5) as client:
        with pytest.raises(InternalServerError):
            await client.checkpoints.list(JOB, max_retries=0)
        assert len(fake_api.requests) == 1
        page = await client.checkpoints.list(JOB)  # one 503 left, then success
    assert page.data
    assert len(fake_api.requests) == 3


async def test_a_calls_timeout_overrides_the_clients(fake_api: FakeAPIServer) -> None:
    """A call's timeout bounds each of its attempts; None there means no limit."""
    fake_api.inject(Fault(delay=0.3))
    async with _client(fake_api, timeout=5, max_retries=0) as client:
        with pytest.raises(APITimeoutError):
            await client.checkpoints.list(JOB, timeout=0.05)
        fake_api.inject(Fault(delay=0.1))
        async with _client(fake_api, timeout=0.01, max_retries=0) as strict:
            assert (await strict.checkpoints.list(JOB, timeout=None)).data


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": "5"}, TypeError, "timeout"),
        ({"deadline": -1}, ValueError, "deadline"),
        ({"max_retries": -1}, ValueError, "max_retries"),
        ({"max_retries": True}, TypeError, "max_retries"),
        ({"extra_headers": {"Host": "x"}}, ValueError, "extra_headers"),
        ({"extra_headers": {"Authorization": "x"}}, ValueError, "extra_headers"),
        ({"extra_headers": {"x-a": "b\nc"}}, ValueError, "extra_headers"),
        ({"extra_query": {"after": "x"}}, ValueError, "extra_query"),
        ({"extra_query": {"a": 1.5}}, TypeError, "extra_query"),
    ],
)
async def test_bad_call_options_fail_before_anything_is_sent(
    fake_api: FakeAPIServer, options: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    """Each bad per-call option raises at list(), naming itself, with nothing sent."""
    async with _client(fake_api) as client:
        with pytest.raises(error, match=fragment):
            client.checkpoints.list(JOB, **options)
    assert fake_api.requests == []


async def test_not_given_means_the_clients_setting(fake_api: FakeAPIServer) -> None:
    """NOT_GIVEN leaves the client's value; it is what the defaults are."""
    async with _client(fake_api) as client:
        page = await client.checkpoints.list(JOB, timeout=NOT_GIVEN, max_retries=NOT_GIVEN)
    assert page.data
    assert repr(NOT_GIVEN) == "NOT_GIVEN"
    assert not NOT_GIVEN


async def test_with_options_shares_the_pool_and_only_the_original_closes_it(
    fake_api: FakeAPIServer,
) -> None:
    """A copy uses the same session; closing it keeps the pool, closing the original ends it."""
    client = _client(fake_api, max_retries=4)
    copy = client.with_options(timeout=7, max_retries=0, default_headers={"x-copy": "1"})
    assert (copy.timeout, copy.max_retries) == (7, 0)
    assert (client.timeout, client.max_retries) == (60.0, 4)
    await client.checkpoints.list(JOB)
    await copy.checkpoints.list(JOB)
    assert copy._transport._session is client._transport._session
    assert "x-copy" in fake_api.requests[1].headers
    assert "x-copy" not in fake_api.requests[0].headers
    await copy.aclose()
    assert copy.closed
    assert not client.closed
    session = client._transport._session
    assert session is not None
    assert not session.closed
    await client.checkpoints.list(JOB)  # still works
    await client.aclose()
    assert _closed(session)
    assert copy.closed
    with pytest.raises(RuntimeError, match="closed"):
        await copy.checkpoints.list(JOB)


async def test_with_options_keeps_everything_else(fake_api: FakeAPIServer) -> None:
    """The copy keeps the key, base URL, organization and default headers it did not change."""
    async with _client(fake_api, organization="org-x", default_headers={"x-a": "1"}) as client:
        copy = client.with_options(default_headers={"x-b": "2"})
        await copy.checkpoints.list(JOB)
    (request,) = fake_api.requests
    assert request.authorized
    assert request.headers["OpenAI-Organization"] == "org-x"
    assert (request.headers["x-a"], request.headers["x-b"]) == ("1", "2")
    assert copy.organization == "org-x"


async def test_secret_looking_extras_never_show_in_errors(fake_api: FakeAPIServer) -> None:
    """A call's extra header or query value under a secret-looking name is redacted."""
    fake_api.inject(Fault(delay=0.3))
    async with _client(fake_api, max_retries=0) as client:
        with pytest.raises(APITimeoutError) as caught:
            await client.checkpoints.list(
                JOB,
                timeout=0.05,
                extra_query={"api_key": "q-SECRET-1"},
                extra_headers={"x-gateway-token": "h-SECRET-2"},
            )
    assert leaks(caught.value, ("q-SECRET-1", "h-SECRET-2")) == []


@pytest.mark.parametrize("value", [10**400, -(10**400)])
async def test_a_huge_integer_timeout_is_a_value_error(fake_api: FakeAPIServer, value: int) -> None:
    """An int too large for a float is refused like any bad number, naming the argument."""
    async with _client(fake_api) as client:
        with pytest.raises(ValueError, match="timeout"):
            client.checkpoints.list(JOB, timeout=value)
        with pytest.raises(ValueError, match="deadline"):
            client.with_options(deadline=value)
    with pytest.raises(ValueError, match="timeout"):
        AsyncClient(api_key="sk-x", timeout=value)


async def test_a_copy_stopped_by_its_originals_close_can_resume(fake_api: FakeAPIServer) -> None:
    """Closing the original mid-walk stops the copy with a RuntimeError that has resume_after."""
    from fine_tune_ckpt import FineTuneCkptError

    client = _client(fake_api)
    copy = client.with_options(timeout=5)
    seen = []
    with pytest.raises(RuntimeError, match="closed") as caught:
        async for checkpoint in copy.checkpoints.list(JOB, limit=10, max_items=25):
            seen.append(checkpoint.id)
            if len(seen) == 10:
                await client.aclose()
    assert isinstance(caught.value, FineTuneCkptError)
    assert caught.value.resume_after == seen[-1]


async def test_reserved_query_names_are_refused_in_any_case() -> None:
    """Azure's api-version cannot come back in another case through extra_query."""
    from fine_tune_ckpt import AsyncAzureClient

    client = AsyncAzureClient(azure_endpoint="https://r.example", api_version="v1", api_key="k")
    for name in ("API-VERSION", "Api-Version", "After", "LIMIT"):
        with pytest.raises(ValueError, match="must not set"):
            client.checkpoints.list(JOB, extra_query={name: "x"})
