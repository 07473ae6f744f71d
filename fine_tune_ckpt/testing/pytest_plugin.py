"""pytest fixtures for testing code that uses fine_tune_ckpt, loaded automatically.

- ``fine_tune_ckpt_fake``: a running :class:`FakeAPIServer` serving ``ftjob-abc123``
  (25 synthetic checkpoints); add jobs and inject faults on it.
- ``fine_tune_ckpt_clock``: the :class:`FakeClock` the client fixture retries with.
- ``fine_tune_ckpt_client``: an :class:`AsyncClient` bound to the fake, retrying without
  real waits, closed after the test.

The async fixtures need pytest-asyncio; without it this plugin defines nothing, so
installing fine_tune_ckpt never breaks a test suite that does not use them.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator

import pytest

from .._client import AsyncClient
from ._clock import FakeClock
from ._server import FakeAPIServer

#: The job the fake fixture serves from the start.
DEMO_JOB_ID = "ftjob-abc123"

if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def fine_tune_ckpt_fake() -> AsyncIterator[FakeAPIServer]:
        """A running fake API on 127.0.0.1 serving ``ftjob-abc123``."""
        async with FakeAPIServer() as fake:
            fake.add_job(DEMO_JOB_ID, count=25)
            yield fake

    @pytest.fixture
    def fine_tune_ckpt_clock() -> FakeClock:
        """The fake clock ``fine_tune_ckpt_client`` waits on; its ``sleeps`` list the waits."""
        return FakeClock()

    @pytest_asyncio.fixture
    async def fine_tune_ckpt_client(
        fine_tune_ckpt_fake: FakeAPIServer, fine_tune_ckpt_clock: FakeClock
    ) -> AsyncIterator[AsyncClient]:
        """An AsyncClient bound to ``fine_tune_ckpt_fake``, retrying without real waits."""
        async with AsyncClient(
            api_key=fine_tune_ckpt_fake.api_key,
            base_url=fine_tune_ckpt_fake.base_url,
            clock=fine_tune_ckpt_clock,
        ) as client:
            yield client
