"""Exercises the public API for ``mypy --strict`` only; it is never run."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, assert_type

import aiohttp

from fine_tune_ckpt import (
    NOT_GIVEN,
    APIError,
    APIStatusError,
    AsyncAzureClient,
    AsyncCheckpointPager,
    AsyncClient,
    Checkpoint,
    CheckpointMetrics,
    CheckpointPage,
    RateLimit,
    ResponseInfo,
    to_wire,
)
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault


async def usage(session: aiohttp.ClientSession) -> None:
    """Each public call, with the types users get back."""
    async with AsyncClient(api_key="sk", session=session, clock=FakeClock()) as client:
        pager = client.checkpoints.list("ftjob-1", after=None, limit=10, max_items=5)
        assert_type(pager, AsyncCheckpointPager)
        page = await pager
        assert_type(page, CheckpointPage)
        assert_type(page.next_after, str | None)
        async for checkpoint in pager:
            assert_type(checkpoint, Checkpoint)
            assert_type(checkpoint.created_at, datetime)
            assert_type(checkpoint.metrics, CheckpointMetrics)
            assert_type(checkpoint.metrics.full_valid_loss, float | None)
            assert_type(checkpoint.extra, Mapping[str, Any])
            assert_type(page.extra, Mapping[str, Any])
            assert_type(checkpoint.metrics.extra, Mapping[str, Any])
        async for each_page in pager.pages():
            assert_type(each_page, CheckpointPage)
        assert_type(await pager.to_list(), list[Checkpoint])
        assert_type(to_wire(page), dict[str, Any])
    try:
        pass
    except APIError as error:
        assert_type(error.resume_after, str | None)
        assert_type(error.request_id, str | None)
    async with FakeAPIServer(api_key="sk") as fake:
        fake.inject(Fault(status=429, retry_after=1))
        assert_type(fake.base_url, str)


async def newer_usage() -> None:
    """Backends, per-call control and response metadata, with the types users get back."""

    async def token() -> str:
        return "entra"

    azure = AsyncAzureClient(
        azure_endpoint="https://r.example", api_version="v1", azure_ad_token_provider=token
    )
    assert_type(await azure.__aenter__(), AsyncAzureClient)
    assert_type(azure.with_options(timeout=5), AsyncAzureClient)
    client = AsyncClient(
        api_key=lambda: "sk",
        default_headers={"x-gateway": "1"},
        default_query={"region": "eu"},
        proxy="http://proxy:3128",
    )
    copy = client.with_options(max_retries=0, default_headers={"x-more": "1"})
    assert_type(copy, AsyncClient)
    pager = copy.checkpoints.list(
        "ftjob-1", timeout=None, deadline=NOT_GIVEN, extra_headers={"x-trace": "t"}
    )
    page = await pager
    assert_type(page.response, ResponseInfo | None)
    assert_type(pager.last_response, ResponseInfo | None)
    if page.response is not None:
        assert_type(page.response.rate_limit, RateLimit)
        assert_type(page.response.rate_limit.reset_requests, float | None)
        assert_type(page.response.attempts, int)
    try:
        pass
    except APIStatusError as error:
        assert_type(error.rate_limit, RateLimit)


async def pacing_usage() -> None:
    """Pacing switches and caps, on both clients and on copies."""
    client = AsyncClient(api_key="sk", max_requests_per_second=5, pacing=True)
    assert_type(client.with_options(max_requests_per_second=0.5), AsyncClient)
    assert_type(client.with_options(max_requests_per_second=None), AsyncClient)
    azure = AsyncAzureClient(
        azure_endpoint="https://r.example",
        api_version="v1",
        api_key="k",
        pacing=False,
        max_requests_per_second=None,
    )
    assert_type(azure.with_options(max_requests_per_second=2), AsyncAzureClient)
