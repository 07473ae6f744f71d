"""Shared fixtures: a running fake API, a client bound to it, aioresponses, leak checks."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from aioresponses import core as aioresponses_core

from fine_tune_ckpt import AsyncClient
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock

pytest_plugins = ["pytester"]

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> Any:
    """Read a JSON body from tests/fixtures."""
    return json.loads((FIXTURES / name).read_text())


class _NoStreamWriter:
    output_size = 0


class _CompatClientResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without aiohttp 3.14's ``stream_writer``.

    Upstream issue pnuckowski/aioresponses#289 (fix not released): supply a stand-in.
    """

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _NoStreamWriter())
        super().__init__(method, url, **kwargs)


_NEEDS_SHIM = "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters


@pytest.fixture
def mock_http(monkeypatch: pytest.MonkeyPatch) -> Iterator[aioresponses]:
    """Intercept aiohttp requests: nothing leaves the process."""
    if _NEEDS_SHIM:
        monkeypatch.setattr(aioresponses_core, "ClientResponse", _CompatClientResponse)
    with aioresponses() as mocked:
        yield mocked


@pytest.fixture(autouse=True)
def _no_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see no OPENAI_*, AZURE_OPENAI_* or proxy settings from the machine running them."""
    for name in (
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_API_VERSION",
        "AZURE_OPENAI_ENDPOINT",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_AD_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    for scheme in ("http", "https", "all", "no"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves a task running behind it."""
    yield
    current = asyncio.current_task()
    leaked: list[asyncio.Task[object]] = []
    for _ in range(20):  # cancelled tasks need a few loop turns to finish
        await asyncio.sleep(0)
        leaked = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
        if not leaked:
            break
    assert not leaked, f"tasks left running: {leaked}"


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock whose sleeps take no real time; the fake's running jobs move on it too."""
    return FakeClock()


@pytest.fixture
async def fake_api(fake_clock: FakeClock) -> AsyncIterator[FakeAPIServer]:
    """A running fake API on loopback, serving job ``ftjob-abc123`` (25 checkpoints)."""
    async with FakeAPIServer(clock=fake_clock) as fake:
        fake.add_job("ftjob-abc123", count=25)
        yield fake


@pytest.fixture
async def client(fake_api: FakeAPIServer, fake_clock: FakeClock) -> AsyncIterator[AsyncClient]:
    """A client bound to ``fake_api`` that retries without real waits."""
    async with AsyncClient(
        api_key=fake_api.api_key, base_url=fake_api.base_url, clock=fake_clock
    ) as bound:
        yield bound


@pytest.fixture
def fake_api_env(fake_api: FakeAPIServer, monkeypatch: pytest.MonkeyPatch) -> FakeAPIServer:
    """``fake_api``, named in OPENAI_API_KEY and OPENAI_BASE_URL as a user's settings would."""
    monkeypatch.setenv("OPENAI_API_KEY", fake_api.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_api.base_url)
    return fake_api


@pytest.fixture
def closed_port_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENAI_BASE_URL at a closed loopback port, for tests that run ``main`` in this thread.

    The fake cannot answer while its loop is not running: a request sent by mistake fails
    at once instead of hanging. Named as a test's argument, it is set after fixtures a
    module applies with ``usefixtures`` (such as ``fake_api_env``), so it wins.
    """
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
