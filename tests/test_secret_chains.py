"""No exception the library raises carries a credential anywhere in its chain.

Every error path is driven over loopback by a server scripted to fail in that way, and
the error is walked whole: ``__cause__`` and ``__context__`` links, arguments, attributes
(into headers, request info and JSON bodies) and the formatted traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import traceback
import types
from collections.abc import Callable, Mapping

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from fine_tune_ckpt import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncClient,
    FineTuneCkptError,
)
from fine_tune_ckpt._redact import RedactedError
from fine_tune_ckpt.testing import FakeClock

from .conftest import load_fixture
from .hostile import RawRequest, RawServer, http_answer

KEY = "sk-proj-chain-0123456789-SECRET"
ORG = "org-chain-ORGSECRET"
PROJECT = "proj_chain_PROJSECRET"
SECRETS = (KEY, ORG, PROJECT)
PAGE = json.dumps(load_fixture("page_spec_example.json")).encode()

# Types whose insides are not the error's to carry: walking them only costs time.
_OPAQUE = (
    asyncio.AbstractEventLoop,
    aiohttp.ClientSession,
    type,
    types.FunctionType,
    types.MethodType,
    types.ModuleType,
)


def leaks(error: BaseException, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    """Every place in ``error``'s whole chain where a secret shows, as readable paths."""
    found: list[str] = []
    seen: set[int] = set()

    def check(text: str, path: str) -> None:
        if any(secret in text for secret in secrets):
            found.append(path)

    def walk(value: object, path: str, depth: int) -> None:
        if id(value) in seen or depth > 8 or isinstance(value, _OPAQUE):
            return
        seen.add(id(value))
        if isinstance(value, str):
            check(value, path)
            return
        if isinstance(value, bytes | bytearray):
            check(bytes(value).decode("latin-1"), path)
            return
        if value is None or isinstance(value, int | float):
            return
        with contextlib.suppress(Exception):  # a broken repr shows nothing
            check(repr(value), f"repr({path})")
        if isinstance(value, Mapping):
            for key, item in list(value.items()):
                walk(key, f"{path}.keys()", depth + 1)
                walk(item, f"{path}[{key!r}]", depth + 1)
        elif isinstance(value, list | tuple | set | frozenset):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]", depth + 1)
        if isinstance(value, BaseException):
            check(str(value), f"str({path})")
            walk(value.args, f"{path}.args", depth + 1)
            walk(value.__cause__, f"{path}.__cause__", depth + 1)
            walk(value.__context__, f"{path}.__context__", depth + 1)
            for name in ("exceptions",):
                walk(getattr(value, name, None), f"{path}.{name}", depth + 1)
        for name, item in list(getattr(value, "__dict__", {}).items()):
            walk(item, f"{path}.{name}", depth + 1)
        for name in getattr(type(value), "__slots__", ()):
            walk(getattr(value, name, None), f"{path}.{name}", depth + 1)

    walk(error, "error", 0)
    check("".join(traceback.format_exception(error)), "format_exception(error)")
    return found


def test_the_walker_finds_a_key_deep_in_a_chain() -> None:
    """The checker itself finds a key hidden in a cause's request headers."""
    info = aiohttp.RequestInfo(
        URL("http://x/"),
        "GET",
        CIMultiDictProxy(CIMultiDict(Authorization=KEY)),
    )
    error = FineTuneCkptError("outer")
    error.__context__ = aiohttp.ClientResponseError(info, (), status=400, message="bad")
    assert leaks(error)


def _always(answer: bytes | None) -> Callable[[RawRequest], bytes | None]:
    return lambda request: answer


def _redirects(path_for: Callable[[int], str]) -> Callable[[RawRequest], bytes]:
    counter = iter(range(10_000))
    return lambda request: http_answer(302, headers={"Location": path_for(next(counter))})


def _echo(status: int) -> Callable[[RawRequest], bytes]:
    """A server that echoes what it was sent in its body and headers."""

    def answer(request: RawRequest) -> bytes:
        body = json.dumps({"error": {"message": f"you sent {request.headers}"}}).encode()
        echoed = {f"X-Echo-{name}": value for name, value in request.headers.items()}
        return http_answer(status, body, headers=echoed)

    return answer


GIANT_HEADER = "X-Big: " + "a" * 20_000

#: (server script, expected error type, text the message keeps about the cause)
PATHS: dict[str, tuple[Callable[[RawRequest], bytes | None], type[Exception], str]] = {
    "redirect loop": (_redirects(lambda n: ["/a", "/b"][n % 2]), APIStatusError, "loop"),
    "self redirect": (
        _always(http_answer(307, headers={"Location": "/v1/x"})),
        APIStatusError,
        "loop",
    ),
    "redirect to ftp": (
        _always(http_answer(302, headers={"Location": "ftp://127.0.0.1/x"})),
        APIStatusError,
        "non-HTTP",
    ),
    "endless redirects": (_redirects(lambda n: f"/hop{n}"), APIStatusError, "redirects"),
    "Location echoing the key to ftp": (
        lambda request: http_answer(
            302, headers={"Location": f"ftp://x/{request.headers['authorization']}"}
        ),
        APIStatusError,
        "non-HTTP",
    ),
    "Location echoing the key in a loop": (
        lambda request: http_answer(
            302, headers={"Location": f"/v1/x?k={request.headers['openai-project']}&o={ORG}"}
        ),
        APIStatusError,
        "loop",
    ),
    "unreadable Location echoing the key": (
        _always(http_answer(302, headers={"Location": f"http://[::1{KEY}/"})),
        APIStatusError,
        "unreadable",
    ),
    "Location with user info": (
        _always(http_answer(302, headers={"Location": f"http://{KEY}:{ORG}@127.0.0.1/x"})),
        APIStatusError,
        "credentials",
    ),
    "bad gzip": (
        _always(http_answer(200, b"not gzip at all", headers={"Content-Encoding": "gzip"})),
        APIConnectionError,
        "ClientPayloadError",
    ),
    "bad br": (
        _always(http_answer(200, b"not brotli", headers={"Content-Encoding": "br"})),
        APIConnectionError,
        "ClientPayloadError",
    ),
    "Content-Length abc": (
        _always(http_answer(200, PAGE, headers={"Content-Length": "abc"})),
        APIConnectionError,
        "ClientResponseError",
    ),
    "bad status line": (_always(b"HTTP/1.1 abc Nope\r\n\r\n"), APIConnectionError, "Error"),
    "huge header": (
        _always(f"HTTP/1.1 200 OK\r\n{GIANT_HEADER}\r\nContent-Length: 0\r\n\r\n".encode()),
        APIConnectionError,
        "Error",
    ),
    "bad chunk size": (
        _always(
            http_answer(
                200,
                b"zz\r\nxx\r\n0\r\n\r\n",
                headers={"Transfer-Encoding": "chunked"},
                content_length=False,
            )
        ),
        APIConnectionError,
        "Error",
    ),
    "length and chunked": (
        _always(http_answer(200, PAGE, headers={"Transfer-Encoding": "chunked"})),
        APIConnectionError,
        "Error",
    ),
    "truncated body": (
        _always(http_answer(200, PAGE, headers={"Content-Length": str(len(PAGE) + 50)})),
        APIConnectionError,
        "ClientPayloadError",
    ),
    "no answer": (_always(None), APIConnectionError, "ServerDisconnectedError"),
    "echoed 401": (_echo(401), APIStatusError, "401"),
    "echoed 500, retries spent": (_echo(500), APIStatusError, "500"),
    "key in a header name": (
        lambda request: http_answer(400, b"{}", headers={f"X-Echo-{KEY}": "1", f"X-{ORG}": "2"}),
        APIStatusError,
        "400",
    ),
    "echoed 200 non-JSON": (
        lambda request: http_answer(200, f"key {request.headers}".encode()),
        APIResponseValidationError,
        "not JSON",
    ),
    "echoed 200 bad page": (
        lambda request: http_answer(
            200,
            json.dumps(
                {"object": request.headers["authorization"], "data": [], "has_more": False}
            ).encode(),
        ),
        APIResponseValidationError,
        "$.object",
    ),
    "gzip bomb": (
        _always(
            http_answer(
                200,
                gzip.compress(PAGE + b" " * (33 * 1024 * 1024)),
                headers={"Content-Encoding": "gzip"},
            )
        ),
        APIResponseValidationError,
        "larger than",
    ),
}


@pytest.mark.parametrize("name", list(PATHS))
async def test_no_error_path_carries_a_credential(name: str) -> None:
    """Whatever fails, the raised error's whole chain is free of the key, org and project."""
    script, expected, fact = PATHS[name]
    async with (
        RawServer(script) as server,
        AsyncClient(
            api_key=KEY,
            organization=ORG,
            project=PROJECT,
            base_url=server.base_url,
            clock=FakeClock(),
        ) as client,
    ):
        with pytest.raises(expected) as caught:
            await client.checkpoints.list("ftjob-abc123").to_list()
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was sent
    assert leaks(caught.value) == []
    assert fact in str(caught.value)


async def test_the_cause_keeps_its_type_status_and_message() -> None:
    """A scrubbed aiohttp cause is still that aiohttp type, with its status and message."""
    answer = http_answer(200, PAGE, headers={"Content-Length": "abc"})
    async with (
        RawServer(_always(answer)) as server,
        AsyncClient(api_key=KEY, base_url=server.base_url, max_retries=0) as client,
    ):
        with pytest.raises(APIConnectionError) as caught:
            await client.checkpoints.list("ftjob-abc123")
    cause = caught.value.__cause__
    assert isinstance(cause, aiohttp.ClientResponseError)
    assert cause.status == 400
    assert cause.message
    assert "<redacted>" in repr(cause.request_info.headers)
    assert cause.history == ()


async def test_an_echoed_key_is_redacted_from_the_error_body_and_headers() -> None:
    """A 401 quoting the key back keeps its facts with the key replaced."""
    async with (
        RawServer(_echo(401)) as server,
        AsyncClient(api_key=KEY, base_url=server.base_url, max_retries=0) as client,
    ):
        with pytest.raises(APIStatusError) as caught:
            await client.checkpoints.list("ftjob-abc123")
    error = caught.value
    assert error.status_code == 401
    assert "<redacted>" in str(error.body)
    assert error.headers["X-Echo-authorization"] == "<redacted>"


def test_a_stand_in_names_the_type_it_replaced() -> None:
    """An exception that cannot be rebuilt is replaced by one naming its type, minus the key."""
    from fine_tune_ckpt._redact import scrub_chain

    clean = scrub_chain(OSError(f"cannot reach with {KEY}"), SECRETS)
    assert isinstance(clean, RedactedError)
    assert "builtins.OSError" in str(clean)
    assert KEY not in str(clean)
    assert leaks(clean) == []


def test_a_looping_chain_is_scrubbed_without_hanging() -> None:
    """A chain whose links point back at each other is scrubbed once per link."""
    from fine_tune_ckpt._redact import scrub_chain

    first, second = ValueError(KEY), ValueError("fine")
    first.__context__, second.__context__ = second, first
    clean = scrub_chain(first, SECRETS)
    assert leaks(clean) == []


async def test_a_refused_connection_carries_no_credential() -> None:
    """Connecting to a closed port fails with a chain free of the credentials."""
    async with RawServer(_always(None)) as server:
        base_url = server.base_url  # the port is closed once the server stops
    async with AsyncClient(
        api_key=KEY, organization=ORG, project=PROJECT, base_url=base_url, max_retries=0
    ) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.checkpoints.list("ftjob-abc123")
    assert leaks(caught.value) == []


async def test_a_timeout_carries_no_credential() -> None:
    """An answer that never comes times out with a chain free of the credentials."""
    async with (
        RawServer(_always(b"")) as server,  # reads the request, never answers
        AsyncClient(
            api_key=KEY,
            organization=ORG,
            project=PROJECT,
            base_url=server.base_url,
            timeout=0.2,
            max_retries=0,
        ) as client,
    ):
        with pytest.raises(APITimeoutError) as caught:
            await client.checkpoints.list("ftjob-abc123")
    assert leaks(caught.value) == []


async def test_a_lent_session_error_carries_no_credential() -> None:
    """A closed lent session's error names the problem and carries no credential."""
    session = aiohttp.ClientSession()
    client = AsyncClient(api_key=KEY, organization=ORG, project=PROJECT, session=session)
    await session.close()
    with pytest.raises(FineTuneCkptError) as caught:
        await client.checkpoints.list("ftjob-abc123")
    assert leaks(caught.value) == []
