"""The client through a forward proxy on loopback: explicit, from the environment, HTTPS."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trustme

from fine_tune_ckpt import APIConnectionError, APIStatusError, AsyncClient
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock

from .proxy import ForwardProxy
from .test_secret_chains import leaks

JOB = "ftjob-abc123"
NAME = "api.proxied.test"  # not loopback to the client, so environment proxies apply


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture
async def tls_fake(authority: trustme.CA) -> AsyncIterator[FakeAPIServer]:
    """The fake over HTTPS, with a certificate for both 127.0.0.1 and NAME."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", NAME).configure_cert(context)
    async with FakeAPIServer(ssl_context=context) as fake:
        fake.add_job(JOB, count=12)
        yield fake


def _trusting(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    return context


async def test_an_explicit_proxy_carries_plain_http(fake_api: FakeAPIServer) -> None:
    """proxy= sends every page through the proxy, in absolute form for http://."""
    async with ForwardProxy() as proxy:
        async with AsyncClient(
            api_key=fake_api.api_key, base_url=fake_api.base_url, proxy=proxy.url
        ) as client:
            items = await client.checkpoints.list("ftjob-abc123").to_list()
        assert len(items) == 25
        assert len(proxy.seen) == 3
        assert all(
            seen.method == "GET" and seen.target.startswith("http://") for seen in proxy.seen
        )


async def test_https_goes_through_a_connect_tunnel(
    tls_fake: FakeAPIServer, authority: trustme.CA
) -> None:
    """Over HTTPS the proxy sees only CONNECT: never the key, never a page in clear."""
    async with ForwardProxy() as proxy:
        async with AsyncClient(
            api_key=tls_fake.api_key,
            base_url=tls_fake.base_url,
            proxy=proxy.url,
            ssl_context=_trusting(authority),
        ) as client:
            assert len(await client.checkpoints.list(JOB).to_list()) == 12
        assert proxy.seen
        assert all(seen.method == "CONNECT" for seen in proxy.seen)
        assert not any(seen.authorization_visible for seen in proxy.seen)
    assert all(request.authorized for request in tls_fake.requests)


async def test_the_environment_proxy_is_used_for_https(
    tls_fake: FakeAPIServer, authority: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS_PROXY from the environment carries the client's own session, via CONNECT."""
    async with ForwardProxy(hosts={NAME: "127.0.0.1"}) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        async with AsyncClient(
            api_key=tls_fake.api_key,
            base_url=f"https://{NAME}:{tls_fake.port}/v1",
            ssl_context=_trusting(authority),
            clock=FakeClock(),
        ) as client:
            assert len(await client.checkpoints.list(JOB).to_list()) == 12
        assert proxy.seen[0].target == f"{NAME}:{tls_fake.port}"
        assert all(seen.method == "CONNECT" for seen in proxy.seen)


async def test_no_proxy_sends_the_request_direct(
    monkeypatch: pytest.MonkeyPatch, fake_api: FakeAPIServer
) -> None:
    """A host listed in NO_PROXY is reached directly, the proxy never asked."""
    async with ForwardProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with AsyncClient(api_key=fake_api.api_key, base_url=fake_api.base_url) as client:
            await client.checkpoints.list("ftjob-abc123")
        assert proxy.seen == []


async def test_proxy_credentials_work_and_never_show_in_errors(fake_api: FakeAPIServer) -> None:
    """A proxy asking for Basic auth gets it from the URL; a wrong password stays secret.

    For an http:// target the proxy's 407 is the answer: an APIStatusError, not retried.
    """
    async with ForwardProxy(username="squid", password="proxy-SECRET-1") as proxy:  # noqa: S106
        port = proxy.url.rsplit(":", 1)[1]
        good = f"http://squid:proxy-SECRET-1@127.0.0.1:{port}"
        async with AsyncClient(
            api_key=fake_api.api_key, base_url=fake_api.base_url, proxy=good
        ) as client:
            assert (await client.checkpoints.list("ftjob-abc123")).data
        bad = f"http://squid:wrong-SECRET-2@127.0.0.1:{port}"
        async with AsyncClient(
            api_key=fake_api.api_key, base_url=fake_api.base_url, proxy=bad, max_retries=0
        ) as client:
            with pytest.raises(APIStatusError) as caught:
                await client.checkpoints.list("ftjob-abc123")
        assert caught.value.status_code == 407
    assert leaks(caught.value, ("wrong-SECRET-2",)) == []


async def test_an_https_proxy_refusal_never_shows_the_password(
    tls_fake: FakeAPIServer, authority: trustme.CA
) -> None:
    """A CONNECT refused for bad proxy credentials is an error free of the password."""
    async with ForwardProxy(username="squid", password="right-one") as proxy:  # noqa: S106
        port = proxy.url.rsplit(":", 1)[1]
        async with AsyncClient(
            api_key=tls_fake.api_key,
            base_url=tls_fake.base_url,
            proxy=f"http://squid:wrong-SECRET-3@127.0.0.1:{port}",
            ssl_context=_trusting(authority),
            max_retries=0,
        ) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.checkpoints.list(JOB)
    assert leaks(caught.value, ("wrong-SECRET-3",)) == []
