"""Redirects: followed by our own rules, credentials kept to their origin, loops refused."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict
from yarl import URL

from fine_tune_ckpt import APIStatusError, AsyncClient, AuthenticationError
from fine_tune_ckpt._redirects import MAX_REDIRECTS, redirect_target, same_origin
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault

from .conftest import load_fixture
from .hostile import RawRequest, RawServer, http_answer

KEY = "sk-redirect-key"
ORG = "org-redirect"
PROJECT = "proj_redirect"
PAGE = json.dumps(load_fixture("page_spec_example.json")).encode()
HERE = URL("https://api.test/v1/fine_tuning/jobs/j/checkpoints")


def _location(value: str) -> CIMultiDict[str]:
    return CIMultiDict(Location=value)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_every_redirect_status_is_followed(status: int) -> None:
    """Each redirect status with a Location leads to that Location."""
    target = redirect_target(HERE, status, _location("/v2/x"), visited={HERE})
    assert target == URL("https://api.test/v2/x")


@pytest.mark.parametrize("status", [200, 300, 304, 305, 400, 500])
def test_other_statuses_are_answers(status: int) -> None:
    """A status that is not a redirect is the answer, even with a Location."""
    assert redirect_target(HERE, status, _location("/x"), visited={HERE}) is None


def test_a_redirect_without_location_is_the_answer() -> None:
    """A 302 with no Location cannot be followed: it is the answer."""
    assert redirect_target(HERE, 302, CIMultiDict(), visited={HERE}) is None


@pytest.mark.parametrize(
    "location",
    ["ftp://api.test/x", "file:///etc/passwd", "javascript:alert(1)", "data:,x", "mailto:a@b"],
)
def test_non_http_targets_are_refused(location: str) -> None:
    """A redirect to anything but http(s) is an APIStatusError."""
    with pytest.raises(APIStatusError, match="non-HTTP") as caught:
        redirect_target(HERE, 302, _location(location), visited={HERE})
    assert caught.value.status_code == 302


@pytest.mark.parametrize("cycle", [1, 2, 3, 7])
def test_a_loop_of_any_length_is_refused(cycle: int) -> None:
    """Coming back to any URL already asked is a loop, however long the cycle."""
    urls = [HERE.with_path(f"/hop/{n}") for n in range(cycle)]
    visited = {HERE}
    current = HERE
    for url in urls:
        assert redirect_target(current, 307, _location(str(url)), visited=visited) == url
        visited.add(url)
        current = url
    with pytest.raises(APIStatusError, match="loop"):
        redirect_target(current, 307, _location(str(urls[0])), visited=visited)


def test_too_many_distinct_redirects_are_refused() -> None:
    """More than MAX_REDIRECTS hops are refused even without a loop."""
    visited = {HERE.with_path(f"/hop/{n}") for n in range(MAX_REDIRECTS + 1)}
    with pytest.raises(APIStatusError, match="more than"):
        redirect_target(HERE, 302, _location("/new"), visited=visited)


@pytest.mark.parametrize(
    "location", ["http://user@api.test/x", "https://u:p@api.test/x", "//u:p@evil.test/x"]
)
def test_a_target_holding_credentials_is_refused(location: str) -> None:
    """A Location with user info is refused: aiohttp would send it as Basic credentials."""
    with pytest.raises(APIStatusError, match="credentials") as caught:
        redirect_target(HERE, 302, _location(location), visited={HERE})
    assert "u:p" not in str(caught.value)


def test_a_fragment_is_dropped_and_relative_paths_resolve() -> None:
    """A relative Location resolves against the URL asked; a fragment is never sent."""
    target = redirect_target(HERE, 302, _location("../other#frag"), visited={HERE})
    assert target == URL("https://api.test/v1/fine_tuning/jobs/other")


def test_origins_compare_scheme_host_and_port() -> None:
    """Same origin means same scheme, host and port, default ports included."""
    assert same_origin(URL("https://API.test/a"), URL("https://api.test:443/b"))
    assert not same_origin(URL("http://api.test/a"), URL("https://api.test/a"))
    assert not same_origin(URL("https://api.test:8443/a"), URL("https://api.test/a"))
    assert not same_origin(URL("https://evil.test/a"), URL("https://api.test/a"))


# -- over loopback ---------------------------------------------------------------------


def _client(base_url: str, **options: object) -> AsyncClient:
    return AsyncClient(
        api_key=KEY,
        organization=ORG,
        project=PROJECT,
        base_url=base_url,
        clock=FakeClock(),
        **options,  # type: ignore[arg-type]
    )


async def test_cross_origin_redirects_drop_every_credential() -> None:
    """Key, organization and project never reach another origin."""
    async with FakeAPIServer(api_key="") as other, FakeAPIServer(api_key=KEY) as api:
        other.add_job("ftjob-abc123", count=3)
        api.add_job("ftjob-abc123", count=3)
        # localhost vs 127.0.0.1: another origin on the same machine.
        target = f"http://localhost:{other.port}/v1/fine_tuning/jobs/ftjob-abc123/checkpoints"
        api.inject(Fault(redirect_to=target))
        async with _client(api.base_url, max_retries=0) as client:
            with pytest.raises(AuthenticationError):  # the other origin wants a key of its own
                await client.checkpoints.list("ftjob-abc123")
        (arrived,) = other.requests
        sent = {name.lower() for name in arrived.headers}
        assert not {"authorization", "openai-organization", "openai-project"} & sent


async def test_same_origin_redirects_keep_the_credentials() -> None:
    """A redirect within the API's origin still authenticates."""
    async with FakeAPIServer(api_key=KEY) as api:
        api.add_job("ftjob-abc123", count=3)
        api.add_job("ftjob-moved", count=2)
        api.inject(Fault(redirect_to=f"{api.base_url}/fine_tuning/jobs/ftjob-moved/checkpoints"))
        async with _client(api.base_url) as client:
            page = await client.checkpoints.list("ftjob-abc123")
        assert len(page.data) == 2
        assert all(request.authorized for request in api.requests)


@pytest.mark.parametrize(
    ("locations", "message"),
    [
        (["/v1/a", "/v1/b"], "loop"),
        (["/v1/a"], "loop"),
        (["ftp://127.0.0.1/x"], "non-HTTP"),
        ([f"/v1/hop{n}" for n in range(40)], "more than"),
    ],
    ids=["two-cycle", "self", "ftp", "endless"],
)
async def test_redirects_that_cannot_end_are_not_retried(
    locations: list[str], message: str
) -> None:
    """A loop, a non-HTTP target or an endless chain fails at once, with no retry."""
    counter = iter(range(1000))

    def answer(request: RawRequest) -> bytes:
        return http_answer(302, headers={"Location": locations[next(counter) % len(locations)]})

    async with RawServer(answer) as server, _client(server.base_url, max_retries=5) as client:
        with pytest.raises(APIStatusError, match=message) as caught:
            await client.checkpoints.list("ftjob-abc123")
    assert caught.value.status_code == 302
    assert len(server.requests) <= MAX_REDIRECTS + 1  # one attempt's worth, not six


async def test_a_redirect_back_to_the_origin_authenticates_again() -> None:
    """Credentials dropped on another origin are sent again once back on the API's own."""
    async with FakeAPIServer(api_key=KEY) as api:
        api.add_job("ftjob-abc123", count=3)
        home = f"{api.base_url}/fine_tuning/jobs/ftjob-abc123/checkpoints?limit=2"

        def bounce(request: RawRequest) -> bytes:
            return http_answer(302, headers={"Location": home})

        async with RawServer(bounce) as elsewhere:
            api.inject(Fault(redirect_to=elsewhere.url("/bounce")))
            async with _client(api.base_url) as client:
                page = await client.checkpoints.list("ftjob-abc123")
        assert len(page.data) == 2
        assert "authorization" not in elsewhere.requests[0].headers
        assert "openai-organization" not in elsewhere.requests[0].headers


async def test_a_cross_origin_401_is_an_authentication_error() -> None:
    """Where a redirect leads to an origin that wants a key, the 401 surfaces as such."""
    async with FakeAPIServer(api_key="other-key") as other, FakeAPIServer(api_key=KEY) as api:
        other.add_job("ftjob-abc123", count=3)
        target = f"http://localhost:{other.port}/v1/fine_tuning/jobs/ftjob-abc123/checkpoints"
        api.inject(Fault(redirect_to=target))
        async with _client(api.base_url, max_retries=0) as client:
            with pytest.raises(AuthenticationError):
                await client.checkpoints.list("ftjob-abc123")
