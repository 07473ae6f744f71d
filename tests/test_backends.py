"""Token providers and gateway settings: what each request carries, page after page."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from fine_tune_ckpt import APITimeoutError, AsyncClient, AuthenticationError, FineTuneCkptError
from fine_tune_ckpt.testing import FakeClock

from .test_secret_chains import leaks

JOB = "ftjob-abc123"


class Recorder:
    """A loopback API of 3 pages of 2 checkpoints that records what each request carried.

    It can fail the first requests with a status, and echoes what it was sent.
    """

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], dict[str, str]]] = []
        self.fail_first: list[int] = []
        self.accept: Callable[[dict[str, str]], bool] = lambda headers: True

    async def handle(self, request: web.Request) -> web.Response:
        headers = dict(request.headers)
        self.seen.append((headers, dict(request.query)))
        if self.fail_first:
            status = self.fail_first.pop(0)
            return web.json_response(
                {"error": {"message": f"echo {headers}", "code": "x"}}, status=status
            )
        if not self.accept(headers):
            return web.json_response({"error": {"message": f"bad {headers}"}}, status=401)
        ids = ["ftckpt_6", "ftckpt_5", "ftckpt_4", "ftckpt_3", "ftckpt_2", "ftckpt_1"]
        after = request.query.get("after")
        start = 0 if after is None else ids.index(after) + 1
        chunk = ids[start : start + 2]
        data = [
            {
                "object": "fine_tuning.job.checkpoint",
                "id": checkpoint_id,
                "created_at": 1721764867,
                "fine_tuned_model_checkpoint": f"ft:m:o::x:ckpt-step-{checkpoint_id[-1]}",
                "fine_tuning_job_id": request.match_info["job"],
                "metrics": {"step": 1.0},
                "step_number": int(checkpoint_id[-1]),
            }
            for checkpoint_id in chunk
        ]
        page = {
            "object": "list",
            "data": data,
            "first_id": chunk[0],
            "last_id": chunk[-1],
            "has_more": start + 2 < len(ids),
        }
        return web.Response(body=json.dumps(page), content_type="application/json")


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    """A running Recorder and the base URL to reach it."""
    server = Recorder()
    app = web.Application()
    app.router.add_get("/v1/fine_tuning/jobs/{job}/checkpoints", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield server, f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


def _client(base_url: str, **options: Any) -> AsyncClient:
    options.setdefault("api_key", "sk-fixed")
    return AsyncClient(base_url=base_url, clock=FakeClock(), **options)


# -- token providers ---------------------------------------------------------------------


def _counting_provider(prefix: str) -> tuple[Callable[[], str], list[str]]:
    given: list[str] = []

    def provider() -> str:
        given.append(f"{prefix}-{len(given) + 1}")
        return given[-1]

    return provider, given


async def test_a_sync_provider_is_called_before_every_attempt(
    recorder: tuple[Recorder, str],
) -> None:
    """Each attempt, retries included, carries the provider's newest token."""
    server, base_url = recorder
    server.fail_first = [503, 429]
    provider, given = _counting_provider("tok")
    async with _client(base_url, api_key=provider) as client:
        items = await client.checkpoints.list(JOB, limit=2).to_list()
    assert len(items) == 6
    sent = [headers["Authorization"] for headers, _ in server.seen]
    assert sent == [f"Bearer {token}" for token in given]
    assert len(given) == 5  # two failed attempts, then three pages


async def test_an_async_provider_is_awaited(recorder: tuple[Recorder, str]) -> None:
    """A provider returning an awaitable is awaited before each attempt."""
    server, base_url = recorder
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return f"async-token-{calls}"

    async with _client(base_url, api_key=provider) as client:
        await client.checkpoints.list(JOB).to_list()
    assert [headers["Authorization"] for headers, _ in server.seen] == [
        "Bearer async-token-1",
        "Bearer async-token-2",
        "Bearer async-token-3",
    ]


async def test_an_expired_token_is_replaced_on_the_retry(
    recorder: tuple[Recorder, str],
) -> None:
    """A rotating token: the attempt after a retryable failure uses the new one."""
    server, base_url = recorder
    server.accept = lambda headers: headers["Authorization"] != "Bearer tok-1"
    server.fail_first = [503]  # tok-1 fails; the retry must not reuse it
    provider, _ = _counting_provider("tok")
    async with _client(base_url, api_key=provider) as client:
        page = await client.checkpoints.list(JOB)
    assert len(page.data) == 2


BAD_ANSWERS: list[tuple[str, Callable[[], Any], str]] = [
    ("empty", lambda: "", "empty"),
    ("blank", lambda: "  \n", "empty"),
    ("none", lambda: None, "NoneType"),
    ("int", lambda: 12345, "int"),
    ("bytes", lambda: b"sk-bytes-secret", "bytes"),
    ("inner newline", lambda: "sk-line\nbreak-secret", "control character"),
    ("non-ASCII", lambda: "sk-\u200bzero-width-secret", "non-ASCII"),
]


@pytest.mark.parametrize(("name", "provider", "fragment"), BAD_ANSWERS)
async def test_a_bad_provider_answer_is_a_clear_error_that_never_echoes_it(
    recorder: tuple[Recorder, str], name: str, provider: Callable[[], Any], fragment: str
) -> None:
    """Empty, non-string or unsendable answers raise FineTuneCkptError before any request."""
    server, base_url = recorder
    async with _client(base_url, api_key=provider) as client:
        with pytest.raises(FineTuneCkptError, match=fragment) as caught:
            await client.checkpoints.list(JOB)
    assert server.seen == []
    assert "secret" not in str(caught.value)
    assert caught.value.resume_after is None


async def test_an_awaitable_of_a_bad_answer_is_refused(recorder: tuple[Recorder, str]) -> None:
    """An async provider's non-string answer is refused the same way."""
    _, base_url = recorder

    async def provider() -> Any:
        return 42

    async with _client(base_url, api_key=provider) as client:
        with pytest.raises(FineTuneCkptError, match="must return a str"):
            await client.checkpoints.list(JOB)


async def test_a_failing_provider_is_a_library_error_with_its_cause(
    recorder: tuple[Recorder, str],
) -> None:
    """A provider that raises gives a FineTuneCkptError whose cause is its exception."""
    _, base_url = recorder

    def provider() -> str:
        raise PermissionError("no login")

    async with _client(base_url, api_key=provider) as client:
        with pytest.raises(FineTuneCkptError, match="provider failed") as caught:
            await client.checkpoints.list(JOB)
    assert isinstance(caught.value.__cause__, PermissionError)


async def test_provided_tokens_never_show_in_errors(recorder: tuple[Recorder, str]) -> None:
    """A server echoing a provided token back has it redacted, like a fixed key."""
    server, base_url = recorder
    server.accept = lambda headers: False  # 401 quoting every header back
    async with _client(base_url, api_key=lambda: "sk-provided-token-SECRET") as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.checkpoints.list(JOB)
    assert "sk-provided-token-SECRET" not in repr(caught.value.body)
    assert "sk-provided-token-SECRET" not in str(caught.value)


def test_a_provider_must_be_callable() -> None:
    """Anything but a string or a function is a TypeError naming api_key."""
    with pytest.raises(TypeError, match="api_key"):
        AsyncClient(api_key=12345)  # type: ignore[arg-type]


# -- gateways --------------------------------------------------------------------------


async def test_default_headers_and_query_go_with_every_page(
    recorder: tuple[Recorder, str],
) -> None:
    """Gateway headers and query parameters ride on every page, merged with the cursor."""
    server, base_url = recorder
    async with _client(
        base_url,
        default_headers={"x-portkey-provider": "openai", "x-portkey-api-key": "pk-secret"},
        default_query={"gateway": "eu", "version": 2},
    ) as client:
        await client.checkpoints.list(JOB, limit=2).to_list()
    assert len(server.seen) == 3
    for headers, query in server.seen:
        assert headers["x-portkey-provider"] == "openai"
        assert headers["x-portkey-api-key"] == "pk-secret"
        assert query["gateway"] == "eu"
        assert query["version"] == "2"
        assert query["limit"] == "2"
    assert [query.get("after") for _, query in server.seen] == [None, "ftckpt_5", "ftckpt_3"]


async def test_a_base_url_query_is_kept_on_every_page(recorder: tuple[Recorder, str]) -> None:
    """A base URL that carries a query keeps it on every page; default_query adds to it."""
    server, base_url = recorder
    async with _client(f"{base_url}?route=a&keep=1", default_query={"route": "b"}) as client:
        await client.checkpoints.list(JOB, limit=2).to_list()
    assert [query["route"] for _, query in server.seen] == ["b", "b", "b"]
    assert all(query["keep"] == "1" for _, query in server.seen)


async def test_a_secret_gateway_header_never_shows_in_errors(
    recorder: tuple[Recorder, str],
) -> None:
    """A default header named like a key is redacted from errors, as the API key is."""
    server, base_url = recorder
    server.accept = lambda headers: False
    async with _client(base_url, default_headers={"x-gateway-token": "gw-SECRET-123"}) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.checkpoints.list(JOB)
    assert "gw-SECRET-123" not in str(caught.value)
    assert "gw-SECRET-123" not in repr(caught.value.body)


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        ({"default_headers": ["x"]}, TypeError, "default_headers"),
        ({"default_headers": {"bad name": "x"}}, ValueError, "header name"),
        ({"default_headers": {"x-a": 5}}, TypeError, "x-a"),
        ({"default_headers": {"x-a": "line\nbreak"}}, ValueError, "x-a"),
        ({"default_headers": {"Content-Length": "5"}}, ValueError, "Content-Length"),
        ({"default_headers": {"transfer-encoding": "chunked"}}, ValueError, "transfer"),
        ({"default_headers": {"Host": "evil.example"}}, ValueError, "Host"),
        ({"default_headers": {"Connection": "close"}}, ValueError, "Connection"),
        ({"default_headers": {"Authorization": "Bearer x"}}, ValueError, "api_key="),
        ({"default_headers": {"api-key": "x"}}, ValueError, "api_key="),
        ({"default_headers": {"OpenAI-Organization": "x"}}, ValueError, "organization="),
        ({"default_query": "a=b"}, TypeError, "default_query"),
        ({"default_query": {"a": True}}, TypeError, "'a'"),
        ({"default_query": {"a": 1.5}}, TypeError, "'a'"),
        ({"default_query": {"": "x"}}, ValueError, "name"),
        ({"default_query": {"after": "x"}}, ValueError, "after"),
        ({"default_query": {"limit": 5}}, ValueError, "limit"),
        ({"proxy": "socks5://127.0.0.1:1080"}, ValueError, "SOCKS"),
        ({"proxy": 8080}, TypeError, "proxy"),
    ],
)
def test_bad_gateway_settings_fail_at_construction(
    options: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    """Each bad header, query or proxy setting names itself before any request."""
    with pytest.raises(error, match=fragment):
        AsyncClient(api_key="sk-x", **options)


async def test_the_deadline_bounds_a_provider_that_hangs(recorder: tuple[Recorder, str]) -> None:
    """A provider that never answers is cut off by the deadline, nothing sent."""
    server, base_url = recorder
    never = asyncio.Event()

    async def hanging() -> str:
        await never.wait()
        return "unreachable"

    async with AsyncClient(api_key=hanging, base_url=base_url, deadline=0.1) as client:
        with pytest.raises(APITimeoutError, match="provider"):
            await asyncio.wait_for(client.checkpoints.list(JOB).to_list(), timeout=5)
    assert server.seen == []


async def test_a_nested_coroutine_is_refused_without_a_warning(
    recorder: tuple[Recorder, str],
) -> None:
    """An async provider returning a coroutine (a forgotten await) is refused and closed."""
    _, base_url = recorder

    async def inner() -> str:
        return "never awaited"

    async def provider() -> Any:
        return inner()  # the mistake: no await

    async with _client(base_url, api_key=provider) as client:
        with pytest.raises(FineTuneCkptError, match="coroutine"):
            await client.checkpoints.list(JOB)
    gc.collect()  # an unclosed coroutine would warn here, and warnings are errors


async def test_a_provider_failure_quoting_its_last_token_is_scrubbed(
    recorder: tuple[Recorder, str],
) -> None:
    """A provider that fails while quoting the token it gave before has it redacted."""
    _, base_url = recorder
    calls = 0
    token = "sk-rotating-TOKEN-1"  # noqa: S105 - a made-up token

    def provider() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            return token
        raise RuntimeError(f"refresh failed for token {token}")

    async with _client(base_url, api_key=provider) as client:
        with pytest.raises(FineTuneCkptError, match="provider failed") as caught:
            await client.checkpoints.list(JOB, limit=2).to_list()
    assert leaks(caught.value, ("sk-rotating-TOKEN-1",)) == []
    assert caught.value.resume_after == "ftckpt_5"
