"""The forward-proxy test helper: tunnels HTTPS, forwards HTTP, authenticates, refuses."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from urllib.parse import quote

import aiohttp
import pytest
import trustme

from fine_tune_ckpt.testing import FakeAPIServer, Fault

from .proxy import ForwardProxy
from .test_fake_server import needs_ipv6

JOB = "ftjob-abc123"
USER = "proxy-user"
PASSWORD = "proxy-pass:word"  # noqa: S105 a made-up password, with a colon on purpose
NON_ASCII = "pässwörd"  # one latin-1 can encode too, to tell the two encodings apart


@pytest.fixture(scope="module")
def certificate_authority() -> trustme.CA:
    """A throwaway certificate authority for loopback TLS."""
    return trustme.CA()


@pytest.fixture
def client_ssl(certificate_authority: trustme.CA) -> ssl.SSLContext:
    """A client TLS context that trusts the throwaway CA."""
    context = ssl.create_default_context()
    certificate_authority.configure_trust(context)
    return context


@pytest.fixture
async def tls_fake(certificate_authority: trustme.CA) -> AsyncIterator[FakeAPIServer]:
    """The fake over HTTPS with a certificate for 127.0.0.1 from the throwaway CA."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("127.0.0.1").configure_cert(server_context)
    async with FakeAPIServer(ssl_context=server_context) as fake:
        fake.add_job(JOB, count=12)
        yield fake


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    """A running proxy without authentication."""
    async with ForwardProxy() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A bare aiohttp session."""
    async with aiohttp.ClientSession() as session:
        yield session


def _url(fake: FakeAPIServer) -> str:
    return f"{fake.base_url}/fine_tuning/jobs/{JOB}/checkpoints"


def _auth(fake: FakeAPIServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake.api_key}"}


async def _open(proxy: ForwardProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A fresh raw connection to the proxy."""
    return await asyncio.open_connection("127.0.0.1", int(proxy.url.rsplit(":", 1)[1]))


async def _raw_exchange(proxy: ForwardProxy, request: bytes) -> bytes:
    """Send ``request`` to the proxy on a fresh connection; return all it answers."""
    reader, writer = await _open(proxy)
    try:
        writer.write(request)
        return await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()


# -- plain HTTP -------------------------------------------------------------------------


async def test_url_is_loopback(proxy: ForwardProxy) -> None:
    """The proxy listens on 127.0.0.1 at a port of its own."""
    assert proxy.url.startswith("http://127.0.0.1:")
    assert int(proxy.url.rsplit(":", 1)[1]) > 0


def test_url_before_start_is_an_error() -> None:
    """A proxy not entered yet has no URL."""
    with pytest.raises(RuntimeError, match="not running"):
        _ = ForwardProxy().url


async def test_plain_http_is_forwarded_in_the_clear(
    proxy: ForwardProxy, fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """An http:// request goes through in absolute form; the proxy sees its headers."""
    url = _url(fake_api) + "?limit=4"
    async with http.get(url, proxy=proxy.url, headers=_auth(fake_api)) as answer:
        assert answer.status == 200
        assert answer.headers["x-request-id"].startswith("req_")
        body = await answer.json()
    assert len(body["data"]) == 4
    (seen,) = proxy.seen
    assert (seen.method, seen.target, seen.status) == ("GET", url, 200)
    assert seen.authorization_visible
    assert "Authorization" in seen.header_names
    assert seen.tunnelled_bytes == 0
    (arrived,) = fake_api.requests
    assert arrived.authorized
    assert arrived.query == {"limit": "4"}
    assert arrived.raw_path == f"/v1/fine_tuning/jobs/{JOB}/checkpoints"


async def test_each_plain_request_is_seen(
    proxy: ForwardProxy, fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """One connection per request: every request of a walk reaches the proxy and the fake."""
    for after in (None, *[c.id for c in fake_api.add_job(JOB, count=9)[2:7:2]]):
        query = {"limit": "2"} if after is None else {"limit": "2", "after": after}
        async with http.get(
            _url(fake_api), params=query, proxy=proxy.url, headers=_auth(fake_api)
        ) as answer:
            assert answer.status == 200
            assert answer.headers["Connection"] == "close"
    assert [seen.status for seen in proxy.seen] == [200] * 4
    assert len(fake_api.requests) == 4


async def test_target_faults_reach_the_client_as_they_happened(
    proxy: ForwardProxy, fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """A truncated body is relayed truncated, and an error status as it was sent."""
    fake_api.inject(Fault(truncate_body=True), Fault(status=429, retry_after=3))
    async with http.get(_url(fake_api), proxy=proxy.url, headers=_auth(fake_api)) as answer:
        with pytest.raises(aiohttp.ClientPayloadError):
            await answer.read()
    async with http.get(_url(fake_api), proxy=proxy.url, headers=_auth(fake_api)) as answer:
        assert answer.status == 429
        assert answer.headers["Retry-After"] == "3"
        assert (await answer.json())["error"]["code"] == "rate_limit_exceeded"


# -- HTTPS through CONNECT --------------------------------------------------------------


async def test_https_goes_only_through_connect(
    proxy: ForwardProxy,
    tls_fake: FakeAPIServer,
    client_ssl: ssl.SSLContext,
    http: aiohttp.ClientSession,
) -> None:
    """HTTPS is tunnelled: the proxy sees CONNECT and bytes, never the Authorization."""
    for _ in range(3):
        async with http.get(
            _url(tls_fake), proxy=proxy.url, headers=_auth(tls_fake), ssl=client_ssl
        ) as answer:
            assert answer.status == 200
            assert len((await answer.json())["data"]) == 10
    assert proxy.seen
    assert {seen.method for seen in proxy.seen} == {"CONNECT"}
    assert {seen.target for seen in proxy.seen} == {f"127.0.0.1:{tls_fake.port}"}
    assert not any(seen.authorization_visible for seen in proxy.seen)
    assert all(seen.status == 200 for seen in proxy.seen)
    assert sum(seen.tunnelled_bytes for seen in proxy.seen) > 3 * 1000  # three pages
    assert [request.authorized for request in tls_fake.requests] == [True] * 3


async def test_https_certificate_is_still_checked_through_the_tunnel(
    proxy: ForwardProxy, tls_fake: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """The tunnel is end to end: the client still refuses a certificate it does not trust."""
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await http.get(_url(tls_fake), proxy=proxy.url, headers=_auth(tls_fake))
    assert [seen.method for seen in proxy.seen] == ["CONNECT"]
    assert tls_fake.requests == []


@needs_ipv6
async def test_connect_to_an_ipv6_target(proxy: ForwardProxy) -> None:
    """A bracketed IPv6 CONNECT target on ::1 is tunnelled."""
    async with FakeAPIServer(host="::1") as fake:
        target = f"[::1]:{fake.port}"
        reader, writer = await _open(proxy)
        try:
            writer.write(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
        finally:
            writer.close()
            await writer.wait_closed()
    assert proxy.seen[0].target == target


# -- proxy authentication ---------------------------------------------------------------


@pytest.fixture
async def auth_proxy() -> AsyncIterator[ForwardProxy]:
    """A running proxy that requires Basic credentials."""
    async with ForwardProxy(username=USER, password=PASSWORD) as running:
        yield running


def _with_userinfo(proxy: ForwardProxy, username: str, password: str) -> str:
    """The proxy's URL with credentials in it, as a client configured by URL uses it."""
    return proxy.url.replace("//", f"//{quote(username)}:{quote(password)}@")


async def test_plain_request_without_credentials_gets_407(
    auth_proxy: ForwardProxy, fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """Without (or with wrong) Proxy-Authorization the answer is 407 with a challenge."""
    for proxy_url in (auth_proxy.url, _with_userinfo(auth_proxy, USER, "wrong")):
        async with http.get(_url(fake_api), proxy=proxy_url, headers=_auth(fake_api)) as answer:
            assert answer.status == 407
            assert answer.headers["Proxy-Authenticate"].startswith("Basic ")
    assert [seen.status for seen in auth_proxy.seen] == [407, 407]
    assert fake_api.requests == []


async def test_connect_without_credentials_gets_407(
    auth_proxy: ForwardProxy,
    tls_fake: FakeAPIServer,
    client_ssl: ssl.SSLContext,
    http: aiohttp.ClientSession,
) -> None:
    """A CONNECT without credentials is refused with 407 before any tunnel opens."""
    with pytest.raises(aiohttp.ClientHttpProxyError) as caught:
        await http.get(_url(tls_fake), proxy=auth_proxy.url, ssl=client_ssl)
    assert caught.value.status == 407
    (seen,) = auth_proxy.seen
    assert (seen.method, seen.status, seen.tunnelled_bytes) == ("CONNECT", 407, 0)
    assert tls_fake.requests == []


async def test_credentials_let_both_kinds_through_and_stay_at_the_proxy(
    auth_proxy: ForwardProxy,
    fake_api: FakeAPIServer,
    tls_fake: FakeAPIServer,
    client_ssl: ssl.SSLContext,
    http: aiohttp.ClientSession,
) -> None:
    """With the right Basic credentials HTTP and HTTPS pass; the targets never see them."""
    with_userinfo = _with_userinfo(auth_proxy, USER, PASSWORD)
    async with http.get(_url(fake_api), proxy=with_userinfo, headers=_auth(fake_api)) as answer:
        assert answer.status == 200
    # aiohttp sends proxy_headers on the CONNECT only, never on a plain proxied request.
    credentials = {"Proxy-Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
    for proxy_url, proxy_headers in ((with_userinfo, None), (auth_proxy.url, credentials)):
        # A session per request: aiohttp would otherwise reuse the first tunnel.
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                _url(tls_fake),
                proxy=proxy_url,
                proxy_headers=proxy_headers,
                headers=_auth(tls_fake),
                ssl=client_ssl,
            ) as answer,
        ):
            assert answer.status == 200
    assert [(seen.method, seen.status) for seen in auth_proxy.seen] == [
        ("GET", 200),
        ("CONNECT", 200),
        ("CONNECT", 200),
    ]
    assert all("Proxy-Authorization" in seen.header_names for seen in auth_proxy.seen)
    for arrived in (*fake_api.requests, *tls_fake.requests):
        assert "proxy-authorization" not in {name.lower() for name in arrived.header_names}


async def test_non_ascii_password_is_utf_8(
    tls_fake: FakeAPIServer, client_ssl: ssl.SSLContext, http: aiohttp.ClientSession
) -> None:
    """A non-ASCII password is compared as UTF-8 (RFC 7617), as encode_basic_auth sends it."""
    async with ForwardProxy(username=USER, password=NON_ASCII) as proxy:
        good = {"Proxy-Authorization": aiohttp.encode_basic_auth(USER, NON_ASCII)}
        async with http.get(
            _url(tls_fake), proxy=proxy.url, proxy_headers=good, ssl=client_ssl
        ) as answer:
            assert answer.status == 401  # through the proxy; the fake wants its own key
        latin1 = {"Proxy-Authorization": aiohttp.encode_basic_auth(USER, NON_ASCII, "latin-1")}
        answer_bytes = await _raw_exchange(
            proxy,
            f"CONNECT 127.0.0.1:{tls_fake.port} HTTP/1.1\r\n"
            f"Proxy-Authorization: {latin1['Proxy-Authorization']}\r\n\r\n".encode(),
        )
    assert answer_bytes.startswith(b"HTTP/1.1 407 ")


def test_half_a_credential_is_refused() -> None:
    """A username without a password (or the reverse) is a ValueError."""
    with pytest.raises(ValueError, match="both"):
        ForwardProxy(username=USER)


# -- safety and bounds ------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "http://192.0.2.1/x",
        "http://10.0.0.1:8080/",
        "http://example.invalid/",
        "http://[2001:db8::1]/",
    ],
)
async def test_non_loopback_http_targets_are_refused(
    proxy: ForwardProxy, http: aiohttp.ClientSession, target: str
) -> None:
    """A plain request to anything but loopback is a 403, with no connection attempted."""
    async with http.get(target, proxy=proxy.url) as answer:
        assert answer.status == 403
    assert [seen.status for seen in proxy.seen] == [403]


@pytest.mark.parametrize(
    "target", ["192.0.2.1:443", "example.invalid:443", "[2001:db8::1]:443", "127.0.0.1:0"]
)
async def test_non_loopback_connect_targets_are_refused(proxy: ForwardProxy, target: str) -> None:
    """A CONNECT to anything but a loopback port is a 403, with no connection attempted."""
    answer = await _raw_exchange(
        proxy, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()
    )
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert proxy.seen[0].target == target


async def test_localhost_is_a_loopback_target(
    proxy: ForwardProxy, fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """The name localhost is allowed, since every address it resolves to is loopback."""
    url = _url(fake_api).replace("127.0.0.1", "localhost")
    async with http.get(url, proxy=proxy.url, headers=_auth(fake_api)) as answer:
        assert answer.status == 200


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # origin form: not a proxy request
        (b"GET https://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # needs CONNECT
        (b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n", 400),  # no port
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET http://127.0.0.1:1/ HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET http://[::1/ HTTP/1.1\r\n\r\n", 400),
        (b"GET http://127.0.0.1:99999/ HTTP/1.1\r\n\r\n", 400),
        (b"GET http://127.0.0.1:1/ HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"POST http://127.0.0.1:1/ HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413),
        (b"POST http://127.0.0.1:1/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: x\r\n\r\n", 502),  # nothing listens
    ],
    ids=[
        "origin-form",
        "https-absolute",
        "no-port",
        "garbage",
        "bad-header",
        "bad-ipv6",
        "bad-port",
        "huge-head",
        "huge-body",
        "chunked-body",
        "closed-port",
    ],
)
async def test_bad_requests_get_the_proxy_s_own_answer(
    proxy: ForwardProxy, request_bytes: bytes, status: int
) -> None:
    """A request the proxy cannot or will not forward gets a 4xx/5xx from it, then a close."""
    answer = await _raw_exchange(proxy, request_bytes)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Connection: close" in answer


async def test_connection_limit_answers_503() -> None:
    """Past max_connections, a new connection gets 503 while the others carry on."""
    async with ForwardProxy(max_connections=1) as proxy, FakeAPIServer() as fake:
        reader, writer = await _open(proxy)
        try:
            writer.write(f"CONNECT 127.0.0.1:{fake.port} HTTP/1.1\r\n\r\n".encode())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
            answer = await _raw_exchange(proxy, b"CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 503 ")
        finally:
            writer.close()
            await writer.wait_closed()


async def test_exit_closes_open_tunnels(fake_api: FakeAPIServer) -> None:
    """Leaving the proxy closes a tunnel still open: its client reads the end at once."""
    async with ForwardProxy() as proxy:
        reader, writer = await _open(proxy)
        writer.write(f"CONNECT 127.0.0.1:{fake_api.port} HTTP/1.1\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    try:
        assert await reader.read() == b""
    finally:
        writer.close()
        await writer.wait_closed()


async def test_tunnel_counts_bytes_both_ways(proxy: ForwardProxy, fake_api: FakeAPIServer) -> None:
    """Bytes sent through a tunnel, and the answer back, are counted on its record."""
    reader, writer = await _open(proxy)
    try:
        writer.write(f"CONNECT 127.0.0.1:{fake_api.port} HTTP/1.1\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        request = b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        writer.write(request)
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 401 ")
    (seen,) = proxy.seen
    assert seen.tunnelled_bytes == len(request) + len(answer)
    assert not seen.authorization_visible
