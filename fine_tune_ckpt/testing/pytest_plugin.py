"""pytest fixtures for testing code that uses fine_tune_ckpt, loaded automatically.

- ``fine_tune_ckpt_fake``: a running :class:`FakeAPIServer` serving ``ftjob-abc123``
  (25 synthetic checkpoints); add jobs and inject faults on it.
- ``fine_tune_ckpt_clock``: the :class:`FakeClock` the client fixture retries with, and
  the fake's clock: advancing it moves the fake's running jobs on.
- ``fine_tune_ckpt_client``: an :class:`AsyncClient` bound to the fake, retrying without
  real waits, closed after the test.

The async fixtures need pytest-asyncio; without it this plugin defines nothing, so
installing fine_tune_ckpt never breaks a test suite that does not use them. In strict
mode, mark the tests that use them ``@pytest.mark.asyncio``. They run in the event loop
``asyncio_default_fixture_loop_scope`` names (the function's loop when unset); a test
running in another loop (``@pytest.mark.asyncio(loop_scope="module")``) could not reach
the fake, so it fails at once, saying which setting to change, instead of hanging.
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

    @pytest.fixture
    def fine_tune_ckpt_clock() -> FakeClock:
        """The fake clock ``fine_tune_ckpt_client`` waits on; its ``sleeps`` list the waits.

        It is also the fake's clock: advancing it moves the fake's running jobs on.
        """
        return FakeClock()

    @pytest_asyncio.fixture
    async def fine_tune_ckpt_fake(
        request: pytest.FixtureRequest, fine_tune_ckpt_clock: FakeClock
    ) -> AsyncIterator[FakeAPIServer]:
        """A running fake API on 127.0.0.1 serving ``ftjob-abc123``, on the fake clock."""
        _check_loop_scopes(request)
        async with FakeAPIServer(clock=fine_tune_ckpt_clock) as fake:
            fake.add_job(DEMO_JOB_ID, count=25)
            yield fake

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


def _check_loop_scopes(request: pytest.FixtureRequest) -> None:
    """Fail the test now if it runs in another event loop than these fixtures.

    pytest-asyncio would run the fixtures in their own loop, idle while the test runs in
    its loop: the fake would never answer and the test would hang until the client's
    timeout. When a setting cannot be read (another pytest-asyncio), nothing is checked.
    """
    try:
        fixture_scope = request.config.getini("asyncio_default_fixture_loop_scope")
        default_test_scope = request.config.getini("asyncio_default_test_loop_scope")
    except ValueError:  # an option this pytest-asyncio does not define
        return
    if not fixture_scope or fixture_scope == "fixture-scope":
        fixture_scope = "function"  # the scope of these fixtures
    marker = request.node.get_closest_marker("asyncio")
    kwargs = marker.kwargs if marker is not None else {}
    test_scope = kwargs.get("loop_scope") or kwargs.get("scope") or default_test_scope
    if not isinstance(test_scope, str) or test_scope == fixture_scope:
        return
    pytest.fail(
        f"{request.node.nodeid} runs in the {test_scope}-scoped event loop, but the "
        f"fine_tune_ckpt fixtures run in the {fixture_scope}-scoped one, where the fake "
        f'could not answer it. Set asyncio_default_fixture_loop_scope = "{test_scope}" '
        "in the pytest configuration, or run this test in the "
        f"{fixture_scope}-scoped loop.",
        pytrace=False,
    )
