"""Client configuration: environment, validation, session ownership, secrets in repr."""

from __future__ import annotations

import aiohttp
import pytest

from fine_tune_ckpt import DEFAULT_BASE_URL, AsyncClient, FineTuneCkptError
from fine_tune_ckpt.testing import FakeAPIServer


def _session_of(client: AsyncClient) -> aiohttp.ClientSession | None:
    """The session the client holds right now (read only, for ownership checks)."""
    return client._transport._session


def test_api_key_is_required_and_the_error_names_the_env_var() -> None:
    """With no key anywhere, the error names OPENAI_API_KEY."""
    with pytest.raises(FineTuneCkptError, match="OPENAI_API_KEY"):
        AsyncClient()


def test_empty_env_key_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty OPENAI_API_KEY is no key."""
    monkeypatch.setenv("OPENAI_API_KEY", "")
    with pytest.raises(FineTuneCkptError, match="OPENAI_API_KEY"):
        AsyncClient()


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """OPENAI_BASE_URL, OPENAI_ORG_ID and OPENAI_PROJECT_ID are read in the constructor."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-env")
    client = AsyncClient()
    assert str(client.base_url) == "http://127.0.0.1:9/v1"
    assert client.organization == "org-env"
    assert client.project == "proj-env"


def test_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit arguments override environment variables."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    client = AsyncClient(api_key="sk-arg", base_url="http://127.0.0.1:10/x", organization="o")
    assert str(client.base_url) == "http://127.0.0.1:10/x"
    assert client.organization == "o"


def test_defaults() -> None:
    """The defaults match the official SDK's where it has one."""
    client = AsyncClient(api_key="sk-x")
    assert str(client.base_url) == DEFAULT_BASE_URL
    assert client.max_retries == 2
    assert client.timeout == 60.0
    assert client.deadline is None


def test_repr_never_shows_the_key() -> None:
    """The API key appears in no repr."""
    client = AsyncClient(api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(client)
    assert "sk-very-secret" not in repr(client.checkpoints.list("ftjob-1"))
    assert "sk-very-secret" not in repr(vars(client))


@pytest.mark.parametrize(
    ("options", "error", "names"),
    [
        ({"base_url": "api.openai.com/v1"}, ValueError, "base_url"),
        ({"base_url": "ftp://host/v1"}, ValueError, "base_url"),
        ({"base_url": "https:///v1"}, ValueError, "base_url"),
        ({"base_url": "https://h/v1#x"}, ValueError, "base_url"),
        ({"base_url": "http://exa mple.invalid/v1"}, ValueError, "base_url has a host"),
        ({"base_url": "http://a\x00b.invalid/v1"}, ValueError, "base_url has a host"),
        ({"base_url": "http://[::1/v1"}, ValueError, "base_url is not a valid URL"),
        ({"base_url": "http://h:99999/v1"}, ValueError, "base_url is not a valid URL"),
        ({"base_url": "https://h/v1?x=1&x=2"}, ValueError, "repeat"),
        ({"base_url": ""}, ValueError, "base_url"),
        ({"base_url": 5}, TypeError, "base_url"),
        ({"api_key": 5}, TypeError, "api_key"),
        ({"api_key": "  "}, ValueError, "api_key"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": float("nan")}, ValueError, "timeout"),
        ({"timeout": "10"}, TypeError, "timeout"),
        ({"timeout": True}, TypeError, "timeout"),
        ({"deadline": -5}, ValueError, "deadline"),
        ({"max_retries": -1}, ValueError, "max_retries"),
        ({"max_retries": 1.5}, TypeError, "max_retries"),
        ({"max_retries": True}, TypeError, "max_retries"),
        ({"session": object()}, TypeError, "session"),
        ({"organization": 3}, TypeError, "organization"),
        ({"max_connections": 0}, ValueError, "max_connections"),
        ({"max_connections": -3}, ValueError, "max_connections"),
        ({"max_connections": 2.5}, TypeError, "max_connections"),
        ({"max_connections": True}, TypeError, "max_connections"),
        ({"base_url": "https://user:pw@h/v1"}, ValueError, "user name or password"),
        ({"base_url": "https://h/v1#sk-pasted"}, ValueError, "fragment$"),
        ({"base_url": "sk-pasted/v1"}, ValueError, "scheme ''"),
    ],
)
def test_bad_options_raise_naming_the_option(
    options: dict[str, object], error: type[Exception], names: str
) -> None:
    """Each bad option raises at construction, naming the option."""
    options.setdefault("api_key", "sk-x")
    with pytest.raises(error, match=names):
        AsyncClient(**options)  # type: ignore[arg-type]


def test_timeout_none_means_no_limit() -> None:
    """``timeout=None`` is allowed."""
    assert AsyncClient(api_key="sk-x", timeout=None).timeout is None


async def test_owned_session_is_created_lazily_reused_and_closed(
    fake_api: FakeAPIServer,
) -> None:
    """The client makes one session on first use, reuses it, and closes it on aclose."""
    client = AsyncClient(api_key=fake_api.api_key, base_url=fake_api.base_url)
    assert _session_of(client) is None
    await client.checkpoints.list("ftjob-abc123")
    session = _session_of(client)
    assert session is not None
    await client.checkpoints.list("ftjob-abc123").to_list()
    assert _session_of(client) is session
    await client.aclose()
    assert session.closed
    await client.aclose()  # a second close is harmless


async def test_lent_session_is_used_and_left_open(fake_api: FakeAPIServer) -> None:
    """A session the caller lends serves the requests and stays open after aclose."""
    async with aiohttp.ClientSession() as session:
        async with AsyncClient(
            api_key=fake_api.api_key, base_url=fake_api.base_url, session=session
        ) as client:
            items = await client.checkpoints.list("ftjob-abc123").to_list()
        assert len(items) == 25
        assert not session.closed
        async with session.get(fake_api.base_url + "/fine_tuning/jobs/x/checkpoints") as answer:
            assert answer.status == 401  # still usable by its owner


async def test_lent_session_with_raise_for_status_still_maps_errors(
    fake_api: FakeAPIServer,
) -> None:
    """A lent session that raises for status does not change our error mapping."""
    from fine_tune_ckpt import NotFoundError

    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        AsyncClient(api_key=fake_api.api_key, base_url=fake_api.base_url, session=session) as c,
    ):
        with pytest.raises(NotFoundError):
            await c.checkpoints.list("ftjob-unknown")


SECRET = "sk-line-break-secret"  # noqa: S105 - a made-up key
CONTROL_CHARACTERS = ["\n", "\r", "\r\n", "\x00", "\t", "\x7f", "\x85", "\u2028", "\x1b"]
# Not controls, but mangled on the wire: the server would see another value.
NON_ASCII = ["\udcff", "\u200b", "\u200e", "\ufeff", "\u00e9", "\u00a0"]


@pytest.mark.parametrize("name", ["api_key", "organization", "project"])
@pytest.mark.parametrize(
    "padding", [" ", "\n", "\r\n", "\t", " \n\n", "\u2028", "\ufeff", "\ufeff \n", "\u00a0"]
)
def test_settings_lose_surrounding_whitespace(name: str, padding: str) -> None:
    """A key, organization or project read with a line break around it is trimmed."""
    options = {"api_key": "sk-x", name: f"{padding}{SECRET}{padding}"}
    client = AsyncClient(**options)  # type: ignore[arg-type]
    assert client._transport._headers[_HEADER_OF[name]].endswith(SECRET)


_HEADER_OF = {
    "api_key": "Authorization",
    "organization": "OpenAI-Organization",
    "project": "OpenAI-Project",
}
_ENV_OF = {
    "api_key": "OPENAI_API_KEY",
    "organization": "OPENAI_ORG_ID",
    "project": "OPENAI_PROJECT_ID",
}


@pytest.mark.parametrize("name", ["api_key", "organization", "project"])
def test_environment_settings_lose_surrounding_whitespace(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key with a trailing line break, as read from a secret file, works."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv(_ENV_OF[name], f"{SECRET}\n")
    client = AsyncClient()
    assert client._transport._headers[_HEADER_OF[name]].endswith(SECRET)


@pytest.mark.parametrize("character", CONTROL_CHARACTERS + NON_ASCII)
@pytest.mark.parametrize("name", ["api_key", "organization", "project"])
def test_an_inner_control_character_is_refused_without_echoing(name: str, character: str) -> None:
    """A control character inside a credential is a ValueError naming it, never showing it."""
    options = {"api_key": "sk-x", name: f"{SECRET}{character}more"}
    with pytest.raises(ValueError, match=name) as caught:
        AsyncClient(**options)  # type: ignore[arg-type]
    assert SECRET not in str(caught.value)
    assert "more" not in str(caught.value)


@pytest.mark.parametrize("name", ["api_key", "organization", "project"])
def test_an_inner_control_character_from_the_environment_names_the_variable(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error for a bad environment value names the variable it came from."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv(_ENV_OF[name], f"{SECRET}\nsecond-line")
    with pytest.raises(ValueError, match=_ENV_OF[name]) as caught:
        AsyncClient()
    assert SECRET not in str(caught.value)


async def test_a_trimmed_key_from_the_environment_is_accepted_by_the_api(
    fake_api: FakeAPIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over loopback, a key with a trailing line break authenticates as the bare key."""
    monkeypatch.setenv("OPENAI_API_KEY", f"{fake_api.api_key}\n")
    async with AsyncClient(base_url=fake_api.base_url) as client:
        page = await client.checkpoints.list("ftjob-abc123")
    assert page.data


def test_max_connections_defaults_to_the_official_sdks_pool() -> None:
    """The pool allows 1,000 connections unless told otherwise, as the official SDK."""
    assert AsyncClient(api_key="sk-x").max_connections == 1000
    assert AsyncClient(api_key="sk-x", max_connections=7).max_connections == 7
