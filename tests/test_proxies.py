"""Proxy selection: explicit, from the environment, NO_PROXY, loopback, credentials."""

from __future__ import annotations

import pytest
from yarl import URL

from fine_tune_ckpt import AsyncClient
from fine_tune_ckpt._proxies import ProxyRules

API = URL("https://api.openai.com/v1/fine_tuning/jobs/j/checkpoints")
PLAIN = URL("http://gateway.internal:8080/v1/x")


def _rules(**environ: str) -> ProxyRules:
    return ProxyRules.from_environment(environ, explicit=None)


def test_no_environment_means_no_proxy() -> None:
    """Without *_PROXY variables every request goes direct."""
    assert _rules().proxy_for(API) is None


def test_each_scheme_takes_its_own_variable() -> None:
    """HTTPS_PROXY serves https URLs, HTTP_PROXY http ones."""
    rules = _rules(HTTPS_PROXY="http://secure:3128", HTTP_PROXY="http://plain:3128")
    assert rules.proxy_for(API) == URL("http://secure:3128")
    assert rules.proxy_for(PLAIN) == URL("http://plain:3128")


def test_all_proxy_is_the_fallback() -> None:
    """ALL_PROXY serves any scheme without a variable of its own."""
    rules = _rules(ALL_PROXY="http://every:3128", HTTP_PROXY="http://plain:3128")
    assert rules.proxy_for(API) == URL("http://every:3128")
    assert rules.proxy_for(PLAIN) == URL("http://plain:3128")


def test_lower_case_wins() -> None:
    """https_proxy wins over HTTPS_PROXY, as in curl and urllib."""
    rules = _rules(https_proxy="http://lower:1", HTTPS_PROXY="http://upper:2")
    assert rules.proxy_for(API) == URL("http://lower:1")


@pytest.mark.parametrize(
    ("no_proxy", "url", "bypassed"),
    [
        ("*", API, True),
        ("api.openai.com", API, True),
        ("openai.com", API, True),
        (".openai.com", API, True),
        ("*.openai.com", API, True),
        ("OPENAI.COM", API, True),
        ("penai.com", API, False),
        ("other.com, openai.com", API, True),
        ("gateway.internal:8080", PLAIN, True),
        ("gateway.internal:9090", PLAIN, False),
        ("10.0.0.0/8", URL("http://10.1.2.3/v1"), True),
        ("10.0.0.0/8", URL("http://11.1.2.3/v1"), False),
        ("10.1.2.3", URL("http://10.1.2.3/v1"), True),
        ("[2001:db8::1]", URL("http://[2001:db8::1]/v1"), True),
        ("", API, False),
        (" , ", API, False),
    ],
)
def test_no_proxy_entries(no_proxy: str, url: URL, bypassed: bool) -> None:
    """NO_PROXY: '*', names covering their subdomains, ports, IPs and networks."""
    rules = _rules(ALL_PROXY="http://proxy:3128", NO_PROXY=no_proxy)
    assert (rules.proxy_for(url) is None) is bypassed


@pytest.mark.parametrize(
    "url",
    ["http://localhost:8080/v1", "http://127.0.0.1/v1", "http://127.9.9.9/v1", "http://[::1]/v1"],
)
def test_loopback_never_goes_through_an_environment_proxy(url: str) -> None:
    """A local fake API or sidecar is reached directly, whatever the environment says."""
    assert _rules(ALL_PROXY="http://proxy:3128").proxy_for(URL(url)) is None


def test_an_explicit_proxy_wins_over_everything() -> None:
    """proxy= applies to every request, loopback and NO_PROXY included."""
    rules = ProxyRules.from_environment(
        {"HTTPS_PROXY": "http://env:1", "NO_PROXY": "*"}, explicit=URL("http://mine:2")
    )
    assert rules.proxy_for(API) == URL("http://mine:2")
    assert rules.proxy_for(URL("http://127.0.0.1/v1")) == URL("http://mine:2")


def test_a_value_without_a_scheme_means_http() -> None:
    """HTTP_PROXY=proxy.corp:3128 is read as http://proxy.corp:3128, as curl and the SDK do."""
    assert _rules(HTTPS_PROXY="proxy.corp:3128").proxy_for(API) == URL("http://proxy.corp:3128")


def test_an_unusable_environment_proxy_fails_only_the_requests_it_would_carry() -> None:
    """A SOCKS ALL_PROXY stops no client; a request that would use it names the variable."""
    from fine_tune_ckpt import FineTuneCkptError

    rules = _rules(ALL_PROXY="socks5://user:pw-SECRET@127.0.0.1:1080", NO_PROXY="internal")
    assert rules.proxy_for(URL("http://127.0.0.1/v1")) is None  # loopback: direct
    assert rules.proxy_for(URL("https://svc.internal/v1")) is None  # NO_PROXY: direct
    with pytest.raises(FineTuneCkptError, match="ALL_PROXY") as caught:
        rules.proxy_for(API)
    assert "pw-SECRET" not in str(caught.value)
    assert _rules(ALL_PROXY="socks5://127.0.0.1:1080", HTTPS_PROXY="http://p:1").proxy_for(
        API
    ) == URL("http://p:1")


def test_a_client_builds_whatever_proxy_variables_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """Other tools' proxy variables (SOCKS, no scheme) never stop a client being made."""
    monkeypatch.setenv("ALL_PROXY", "socks5h://127.0.0.1:9050")
    monkeypatch.setenv("HTTP_PROXY", "proxy.corp:3128")
    AsyncClient(api_key="sk-x", base_url="http://127.0.0.1:9/v1")


def test_proxy_passwords_are_secrets() -> None:
    """A proxy's password, in every form aiohttp may show it, is kept out of errors."""
    rules = ProxyRules.from_environment({}, explicit=URL("http://user:pa%24%24word@proxy:3128"))
    secrets = rules.secrets()
    assert "pa$$word" in secrets
    assert "user:pa$$word" in secrets
    assert "dXNlcjpwYSQkd29yZA==" in secrets  # base64 of user:pa$$word, as in Basic auth


def test_the_client_reads_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's own session follows HTTPS_PROXY as set when it was made."""
    monkeypatch.setenv("HTTPS_PROXY", "http://corporate:3128")
    client = AsyncClient(api_key="sk-x")
    monkeypatch.setenv("HTTPS_PROXY", "http://changed:3128")
    assert client._transport._proxies.proxy_for(API) == URL("http://corporate:3128")


async def test_a_lent_session_ignores_environment_proxies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lent session is its owner's to configure: only an explicit proxy= applies."""
    import aiohttp

    monkeypatch.setenv("HTTPS_PROXY", "http://corporate:3128")
    async with aiohttp.ClientSession() as session:
        client = AsyncClient(api_key="sk-x", session=session)
        assert client._transport._proxies.proxy_for(API) is None
        explicit = AsyncClient(api_key="sk-x", session=session, proxy="http://mine:1")
        assert explicit._transport._proxies.proxy_for(API) == URL("http://mine:1")
