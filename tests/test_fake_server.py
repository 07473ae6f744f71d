"""The built-in fake API: faithful to the spec, seeded, scriptable, and observable."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDictProxy

from fine_tune_ckpt import AsyncClient
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock, Fault, synthetic_checkpoints

SPEC = yaml.safe_load(
    (Path(__file__).parent / "fixtures/spec/checkpoints.openapi.yaml").read_text()
)
OPERATION = SPEC["paths"]["/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"]["get"]
JOB = "ftjob-abc123"


def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    """A validator for one component schema, resolving the spec's internal $refs."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": SPEC["components"]}
    return jsonschema.Draft202012Validator(schema)


PAGE_SCHEMA = _validator("ListFineTuningJobCheckpointsResponse")
ERROR_SCHEMA = _validator("ErrorResponse")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A bare aiohttp session, to see exactly what the fake sends."""
    async with aiohttp.ClientSession() as session:
        yield session


async def _get(
    http: aiohttp.ClientSession,
    fake: FakeAPIServer,
    job: str = JOB,
    *,
    key: str | None = None,
    **query: str,
) -> tuple[int, CIMultiDictProxy[str], Any]:
    headers = {"Authorization": f"Bearer {fake.api_key if key is None else key}"}
    if key == "":
        headers = {}
    url = f"{fake.base_url}/fine_tuning/jobs/{job}/checkpoints"
    async with http.get(url, params=query, headers=headers) as answer:
        return answer.status, answer.headers, await answer.json()


async def test_pages_validate_against_the_spec(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """Every page of a walk validates against ListFineTuningJobCheckpointsResponse."""
    fake_api.add_job(JOB, count=23)
    after: str | None = None
    pages = 0
    while True:
        query = {"limit": "7"} if after is None else {"limit": "7", "after": after}
        status, headers, body = await _get(http, fake_api, **query)
        assert status == 200
        assert headers["x-request-id"].startswith("req_")
        PAGE_SCHEMA.validate(body)
        for item in body["data"]:
            assert set(item) >= set(
                SPEC["components"]["schemas"]["FineTuningJobCheckpoint"]["required"]
            )
        pages += 1
        if not body["has_more"]:
            break
        after = body["last_id"]
    assert pages == 4


async def test_paging_semantics(fake_api: FakeAPIServer, http: aiohttp.ClientSession) -> None:
    """Newest first, ``after`` exclusive, ``limit`` defaulting to 10, ids of the page."""
    expected = fake_api.add_job(JOB, count=15)
    _, _, first = await _get(http, fake_api)
    assert [item["id"] for item in first["data"]] == [c.id for c in expected[:10]]
    assert first["first_id"] == expected[0].id
    assert first["last_id"] == expected[9].id
    assert first["has_more"] is True
    steps = [item["step_number"] for item in first["data"]]
    assert steps == sorted(steps, reverse=True)
    _, _, second = await _get(http, fake_api, after=expected[9].id)
    assert [item["id"] for item in second["data"]] == [c.id for c in expected[10:]]
    assert second["has_more"] is False


async def test_empty_job_page(fake_api: FakeAPIServer, http: aiohttp.ClientSession) -> None:
    """A job with no checkpoints answers an empty page with null ids."""
    fake_api.add_job("ftjob-empty", [])
    status, _, body = await _get(http, fake_api, "ftjob-empty")
    assert status == 200
    PAGE_SCHEMA.validate(body)
    assert body == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


@pytest.mark.parametrize(
    ("job", "key", "query", "status", "param"),
    [
        (JOB, "", {}, 401, None),
        (JOB, "sk-wrong", {}, 401, None),
        ("ftjob-missing", None, {}, 404, "fine_tuning_job_id"),
        (JOB, None, {"limit": "0"}, 400, "limit"),
        (JOB, None, {"limit": "ten"}, 400, "limit"),
        (JOB, None, {"after": "ftckpt_unknown"}, 400, "after"),
    ],
)
async def test_errors_are_shaped_as_the_api_s(
    fake_api: FakeAPIServer,
    http: aiohttp.ClientSession,
    job: str,
    key: str | None,
    query: dict[str, str],
    status: int,
    param: str | None,
) -> None:
    """Each refusal has the API's status and ``{"error": {...}}`` body."""
    got, headers, body = await _get(http, fake_api, job, key=key, **query)
    assert got == status
    ERROR_SCHEMA.validate(body)
    assert body["error"]["param"] == param
    assert "x-request-id" in headers


async def test_empty_api_key_accepts_any_bearer_token(http: aiohttp.ClientSession) -> None:
    """``api_key=""`` accepts any bearer token, but still not a missing one."""
    async with FakeAPIServer(api_key="") as fake:
        fake.add_job(JOB, count=1)
        assert (await _get(http, fake, key="anything"))[0] == 200
        assert (await _get(http, fake, key=""))[0] == 401


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_injected_statuses_carry_retry_headers(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession, status: int
) -> None:
    """An injected status answers with the API's error shape and the asked-for headers."""
    fake_api.inject(Fault(status=status, retry_after=3, retry_after_ms=1500, should_retry=False))
    got, headers, body = await _get(http, fake_api)
    assert got == status
    ERROR_SCHEMA.validate(body)
    assert headers["Retry-After"] == "3"
    assert headers["retry-after-ms"] == "1500"
    assert headers["x-should-retry"] == "false"
    assert fake_api.pending_faults == 0


async def test_faults_are_used_in_order_one_per_request(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession
) -> None:
    """Injected faults apply to the next requests in order, then answers are normal."""
    fake_api.inject(Fault(status=500), Fault(status=429))
    statuses = [(await _get(http, fake_api))[0] for _ in range(3)]
    assert statuses == [500, 429, 200]
    fake_api.inject(Fault(status=500))
    fake_api.clear_faults()
    assert (await _get(http, fake_api))[0] == 200


async def test_random_faults_are_seeded(fake_api: FakeAPIServer) -> None:
    """The same fault seed gives the same faults on the same requests."""

    async def statuses(seed: int) -> list[int]:
        async with (
            FakeAPIServer(
                fault_rate=0.5, fault_seed=seed, random_faults=[Fault(status=503)]
            ) as fake,
            aiohttp.ClientSession() as session,
        ):
            fake.add_job(JOB, count=1)
            return [(await _get(session, fake))[0] for _ in range(20)]

    first = await statuses(7)
    assert first == await statuses(7)
    assert first != await statuses(8)
    assert set(first) == {200, 503}


def test_fault_rate_is_checked() -> None:
    """A fault rate outside [0, 1] is refused."""
    with pytest.raises(ValueError, match="fault_rate"):
        FakeAPIServer(fault_rate=1.5)


async def test_random_faults_are_survived_by_the_client() -> None:
    """Under a 30 % fault rate the client still yields every checkpoint once, in order."""
    async with FakeAPIServer(fault_rate=0.3, fault_seed=3) as fake:
        expected = fake.add_job(JOB, count=200)
        async with AsyncClient(
            api_key=fake.api_key, base_url=fake.base_url, clock=FakeClock(), max_retries=10
        ) as client:
            assert await client.checkpoints.list(JOB, limit=10).to_list() == expected


def test_synthetic_data_is_realistic_and_seeded() -> None:
    """Synthetic checkpoints are newest first, named as real ones, and repeatable."""
    checkpoints = synthetic_checkpoints("ftjob-x", 50, seed=1)
    assert checkpoints == synthetic_checkpoints("ftjob-x", 50, seed=1)
    assert checkpoints != synthetic_checkpoints("ftjob-x", 50, seed=2)
    steps = [c.step_number for c in checkpoints]
    assert steps == sorted(steps, reverse=True)
    newest, oldest = checkpoints[0], checkpoints[-1]
    assert newest.created_at > oldest.created_at
    assert newest.fine_tuned_model_checkpoint.startswith("ft:gpt-4o-mini-2024-07-18:fake-org:")
    assert newest.fine_tuned_model_checkpoint.endswith(f":ckpt-step-{newest.step_number}")
    assert newest.metrics.full_valid_loss is not None
    assert oldest.metrics.full_valid_loss is not None
    assert newest.metrics.full_valid_loss < oldest.metrics.full_valid_loss
    assert len({c.id for c in checkpoints}) == 50


def test_base_url_before_start_is_an_error() -> None:
    """Asking a stopped fake for its URL says it is not running."""
    with pytest.raises(RuntimeError, match="not running"):
        _ = FakeAPIServer().base_url


async def test_request_log(fake_api: FakeAPIServer, http: aiohttp.ClientSession) -> None:
    """The log keeps method, raw path, query and headers, minus the secret ones."""
    await _get(http, fake_api, limit="3")
    (request,) = fake_api.requests
    assert request.method == "GET"
    assert request.raw_path == f"/v1/fine_tuning/jobs/{JOB}/checkpoints"
    assert request.query == {"limit": "3"}
    assert request.authorized
    assert all(name.lower() != "authorization" for name in request.headers)


async def test_plugin_fixtures_are_available(
    fine_tune_ckpt_client: AsyncClient,
    fine_tune_ckpt_fake: FakeAPIServer,
    fine_tune_ckpt_clock: FakeClock,
) -> None:
    """The pytest plugin's fixtures give a client bound to a running fake."""
    fine_tune_ckpt_fake.inject(Fault(status=429, retry_after=4))
    items = await fine_tune_ckpt_client.checkpoints.list("ftjob-abc123").to_list()
    assert len(items) == 25
    assert fine_tune_ckpt_clock.sleeps == [4.0]


def test_plugin_works_in_strict_asyncio_mode(pytester: pytest.Pytester) -> None:
    """A user's suite in pytest-asyncio strict mode can use the fixtures as they are."""
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.asyncio
        async def test_listing(fine_tune_ckpt_client):
            items = await fine_tune_ckpt_client.checkpoints.list("ftjob-abc123").to_list()
            assert len(items) == 25
        """
    )
    result = pytester.runpytest_subprocess(
        "-o",
        "asyncio_mode=strict",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-W",
        "error",
    )
    result.assert_outcomes(passed=1)


_LOOP_SCOPED_TESTS = """
import pytest

LISTING = "ftjob-abc123"


@pytest.mark.asyncio
async def test_function_loop(fine_tune_ckpt_client):
    assert len(await fine_tune_ckpt_client.checkpoints.list(LISTING).to_list()) == 25


@pytest.mark.asyncio(loop_scope="module")
async def test_module_loop(fine_tune_ckpt_client):
    assert len(await fine_tune_ckpt_client.checkpoints.list(LISTING).to_list()) == 25
"""


@pytest.mark.parametrize(
    ("fixture_loop", "passing", "refused"),
    [
        ("function", "test_function_loop", "test_module_loop"),
        ("module", "test_module_loop", "test_function_loop"),
    ],
)
def test_a_test_in_another_loop_than_the_fixtures_fails_at_once(
    pytester: pytest.Pytester, fixture_loop: str, passing: str, refused: str
) -> None:
    """A test whose event loop is not the fixtures' fails fast, naming the setting to change."""
    pytester.makepyfile(_LOOP_SCOPED_TESTS)
    result = pytester.runpytest_subprocess(
        "-rA",
        "-o",
        "asyncio_mode=strict",
        "-o",
        f"asyncio_default_fixture_loop_scope={fixture_loop}",
        "-W",
        "error",
        timeout=60,  # without the check the refused test would hang for minutes
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"PASSED *::{passing}"])
    result.stdout.fnmatch_lines([f"ERROR *::{refused}*"])
    assert "Set asyncio_default_fixture_loop_scope =" in result.stdout.str()


# -- malformed requests: a 4xx in the API's shape, logged, never a 500 ------------------


async def _raw_get(fake: FakeAPIServer, target: bytes, *header_lines: bytes) -> tuple[int, bytes]:
    """Send one hand-made GET (bytes no HTTP client would send); return status and body."""
    reader, writer = await asyncio.open_connection(fake.host, fake.port)
    try:
        head = b"GET " + target + b" HTTP/1.1\r\nHost: fake\r\nConnection: close\r\n"
        writer.write(head + b"".join(line + b"\r\n" for line in header_lines) + b"\r\n")
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


_PATH = f"/v1/fine_tuning/jobs/{JOB}/checkpoints".encode()

MALFORMED_AUTHORIZATION = {
    "non-ASCII token (UTF-8)": "Bearer sk-clé-ключ".encode(),
    "latin-1 byte in the token": b"Bearer sk-cl\xe9",
    "invalid UTF-8": b"Bearer \xff\xfe\xc3",
    "C1 control character (UTF-8)": b"Bearer sk-a\xc2\x85b",
    "no Bearer scheme": b"sk-abc",
    "other scheme": b"Basic dXNlcjpwYXNz",
    "empty value": b"",
    "scheme only": b"Bearer",
    "blank token": b"Bearer    ",
    "tab inside the token": b"Bearer sk-a\tb",
    "long token": b"Bearer " + b"x" * 4000,
}


@pytest.mark.parametrize(
    "value", MALFORMED_AUTHORIZATION.values(), ids=list(MALFORMED_AUTHORIZATION)
)
async def test_malformed_authorization_is_a_logged_401(
    fake_api: FakeAPIServer, value: bytes
) -> None:
    """Any malformed Authorization header gets the API's 401 body and is logged, not 500."""
    status, body = await _raw_get(fake_api, _PATH, b"Authorization: " + value)
    assert status == 401
    error = json.loads(body)
    ERROR_SCHEMA.validate(error)
    assert error["error"]["code"] == "invalid_api_key"
    (request,) = fake_api.requests
    assert not request.authorized
    assert request.fine_tuning_job_id == JOB
    assert all(name.lower() != "authorization" for name in request.headers)
    token = value.removeprefix(b"Bearer").strip().decode(errors="replace")
    if token:
        assert token not in repr(request)


async def test_missing_authorization_is_a_logged_401(fake_api: FakeAPIServer) -> None:
    """A request with no Authorization header at all is a logged 401 as well."""
    status, body = await _raw_get(fake_api, _PATH)
    assert status == 401
    ERROR_SCHEMA.validate(json.loads(body))
    assert [request.authorized for request in fake_api.requests] == [False]


@pytest.mark.parametrize("accepted", ["sk-clé-ключ", ""])
async def test_non_ascii_keys_compare_without_error(accepted: str) -> None:
    """A non-ASCII key (or any-key mode) is matched exactly: its token passes, others 401."""
    async with FakeAPIServer(api_key=accepted) as fake:
        fake.add_job(JOB, count=2)
        good, _ = await _raw_get(fake, _PATH, "Authorization: Bearer sk-clé-ключ".encode())
        bad, _ = await _raw_get(fake, _PATH, "Authorization: Bearer sk-clé-ключX".encode())
        latin1, _ = await _raw_get(fake, _PATH, b"Authorization: Bearer sk-cl\xe9-x")
    assert good == 200
    assert (bad, latin1) == ((200, 200) if accepted == "" else (401, 401))


async def test_a_key_no_request_can_carry_is_compared_without_error() -> None:
    """A configured key with a lone surrogate (no bytes encode it) refuses all, never 500."""
    async with FakeAPIServer(api_key="sk-\ud800") as fake:
        fake.add_job(JOB, count=1)
        for token in (b"sk-\xed\xa0\x80", b"sk-?", b"sk-\xff"):
            assert (await _raw_get(fake, _PATH, b"Authorization: Bearer " + token))[0] == 401
        assert len(fake.requests) == 3


@pytest.mark.parametrize(
    ("query", "param"),
    [
        (b"limit=%C2%B2", "limit"),  # "2" superscript: str.isdigit() says yes, int() says no
        (b"limit=%EF%BC%93", "limit"),  # a fullwidth 3
        (b"limit=" + b"9" * 5000, None),  # over int()'s 4300-digit limit: every item
        (b"limit=" + b"0" * 5000, "limit"),
        (b"limit=%ff", "limit"),
        (b"after=%ff%00", "after"),
    ],
    ids=["superscript", "fullwidth", "huge", "zeros", "bad-utf8", "bad-after"],
)
async def test_odd_query_values_are_answered_not_crashed_on(
    fake_api: FakeAPIServer, query: bytes, param: str | None
) -> None:
    """Query values int() or UTF-8 refuse give the API's 400 naming them, or a page."""
    key = f"Authorization: Bearer {fake_api.api_key}".encode()
    status, body = await _raw_get(fake_api, _PATH + b"?" + query, key)
    answer = json.loads(body)
    if param is None:
        assert status == 200
        assert len(answer["data"]) == 25
    else:
        assert status == 400
        ERROR_SCHEMA.validate(answer)
        assert answer["error"]["param"] == param
    assert len(fake_api.requests) == 1


# A tab is legal inside a header value: it is among the 401 cases above.
@pytest.mark.parametrize("byte", [*range(0x09), *range(0x0A, 0x20), 0x7F])
async def test_control_characters_in_headers_are_refused_with_400(
    fake_api: FakeAPIServer, byte: int
) -> None:
    """The HTTP parser refuses a header with a control character: a 400, never a 500."""
    header = b"Authorization: Bearer a" + bytes([byte]) + b"b"
    status, _ = await _raw_get(fake_api, _PATH, header)
    assert status == 400
    # The fake keeps serving after such a message.
    key = f"Authorization: Bearer {fake_api.api_key}".encode()
    assert (await _raw_get(fake_api, _PATH, key))[0] == 200


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    authorization=st.binary(max_size=60),
    query=st.binary(max_size=40),
    job=st.binary(min_size=1, max_size=20),
)
async def test_no_request_makes_the_fake_answer_500(
    fake_api: FakeAPIServer, authorization: bytes, query: bytes, job: bytes
) -> None:
    """Whatever bytes a request carries, the fake answers below 500; if it parsed, logged."""
    # CR and LF would end the header line: that is a different request, not a bad value.
    authorization = authorization.replace(b"\r", b"").replace(b"\n", b"")
    target = b"/v1/fine_tuning/jobs/" + bytes(0x21 + b % 0x5E for b in job) + b"/checkpoints"
    target += b"?" + bytes(0x21 + b % 0x5E for b in query)  # printable, but any meaning
    before = len(fake_api.requests)
    status, body = await _raw_get(fake_api, target, b"Authorization: " + authorization)
    assert status < 500
    logged = len(fake_api.requests) - before
    if logged:
        ERROR_SCHEMA.validate(json.loads(body))  # no valid key, so always an API error
    else:  # only a message aiohttp's parser refused is not logged
        assert status == 400
        assert any((b < 0x20 and b != 0x09) or b == 0x7F for b in authorization + target)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("GET", "/"),
        ("GET", f"/v1/fine_tuning/jobs/{JOB}/checkpoints/extra"),
        ("POST", f"/v1/fine_tuning/jobs/{JOB}/checkpoints"),
        ("DELETE", f"/v1/fine_tuning/jobs/{JOB}/checkpoints"),
    ],
)
async def test_other_paths_and_methods_are_logged_404s(
    fake_api: FakeAPIServer, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    """Any other path or method gets the API's "Invalid URL" 404 and is logged."""
    url = fake_api.base_url.removesuffix("/v1") + path
    headers = {"Authorization": f"Bearer {fake_api.api_key}"}
    async with http.request(method, url, headers=headers) as answer:
        assert answer.status == 404
        body = await answer.json()
    ERROR_SCHEMA.validate(body)
    assert body["error"]["message"] == f"Invalid URL ({method} {path})"
    (request,) = fake_api.requests
    assert (request.method, request.raw_path, request.fine_tuning_job_id) == (method, path, None)


@pytest.mark.parametrize("job", ["ftjob-{braces}", "ftjob a/b", "ftjob-ключ", "ftjob-%41"])
async def test_any_job_id_the_client_can_send_is_served(
    fake_api: FakeAPIServer, client: AsyncClient, job: str
) -> None:
    """Job ids with braces, spaces, slashes, non-ASCII or "%" reach their job."""
    expected = fake_api.add_job(job, count=3)
    assert await client.checkpoints.list(job).to_list() == expected
    assert fake_api.requests[-1].fine_tuning_job_id == job


# -- the address it listens on ----------------------------------------------------------


def _has_ipv6_loopback() -> bool:
    """Whether ::1 can be bound on this machine (containers often have no IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")


@needs_ipv6
@pytest.mark.parametrize("host", ["::1", "[::1]"])
async def test_ipv6_base_url_is_bracketed_and_works(host: str) -> None:
    """On ::1 the base URL brackets the address, and a client lists through it."""
    async with FakeAPIServer(host=host) as fake:
        expected = fake.add_job(JOB, count=12)
        assert fake.base_url == f"http://[::1]:{fake.port}/v1"
        async with AsyncClient(
            api_key=fake.api_key, base_url=fake.base_url, clock=FakeClock()
        ) as client:
            assert await client.checkpoints.list(JOB, limit=5).to_list() == expected


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("localhost", "localhost"),
        ("::1", "[::1]"),
        ("[::1]", "[::1]"),
        ("::", "[::]"),
        ("fe80::1%lo", "[fe80::1%25lo]"),
    ],
)
def test_url_host_brackets_ipv6_only(host: str, shown: str) -> None:
    """IPv6 literals are bracketed (zone id escaped) in URLs; names and IPv4 are not."""
    from fine_tune_ckpt.testing._server import url_host

    assert url_host(FakeAPIServer(host=host).host) == shown


@pytest.mark.parametrize("port", [-1, 65536])
def test_port_out_of_range_is_refused(port: int) -> None:
    """A port outside 0..65535 is refused when the fake is made, naming the argument."""
    with pytest.raises(ValueError, match="port must be within"):
        FakeAPIServer(port=port)


@pytest.mark.parametrize("host", ["", "  "])
def test_an_empty_host_is_refused(host: str) -> None:
    """An empty host would listen on every interface; it is refused by name."""
    with pytest.raises(ValueError, match="host"):
        FakeAPIServer(host=host)
