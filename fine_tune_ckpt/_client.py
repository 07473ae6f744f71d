"""``AsyncClient`` and ``AsyncAzureClient``: configuration, the shared transport, resources.

Both build the same client; they differ only in the backend (``_backends``) they choose:
where requests go and how they authenticate.
"""

from __future__ import annotations

import os
import platform
import re
import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

import aiohttp
from yarl import URL

from ._args import (
    check_bool,
    check_non_negative_int,
    check_optional_rate,
    check_optional_seconds,
    check_positive_int,
)
from ._backends import Backend, Credential, TokenProvider, azure_base_url, check_header_value
from ._clock import Clock, SystemClock
from ._errors import FineTuneCkptError
from ._jobs import AsyncJobsResource
from ._options import (
    NOT_GIVEN,
    PAGING_PARAMETERS,
    NotGiven,
    check_headers,
    check_query,
    is_sensitive,
)
from ._proxies import ProxyRules, check_proxy_url
from ._resource import AsyncCheckpointsResource
from ._transport import DEFAULT_MAX_CONNECTIONS, Lane, Pool, Transport
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "AsyncAzureClient",
    "AsyncClient",
]

#: The API's address when neither ``base_url`` nor ``OPENAI_BASE_URL`` says otherwise.
DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: Retries after the first attempt, as in the official SDK: three attempts in all.
DEFAULT_MAX_RETRIES = 2
#: Seconds one attempt may take, from connecting to the last byte of the body.
DEFAULT_TIMEOUT = 60.0

_USER_AGENT = (
    f"fine-tune-ckpt/{__version__} "
    f"(Python {platform.python_version()}; aiohttp {aiohttp.__version__})"
)

#: A dated Azure API version.
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
#: What a host may be made of once yarl has encoded it (RFC 3986 reg-name or IP literal).
_HOST = re.compile(r"^[A-Za-z0-9._~%!$&'()*+,;=:-]+$")


#: What _configure builds: a with_options copy builds its own instead of sharing these.
_BUILT_ATTRIBUTES = frozenset(
    {
        "_settings",
        "_proxy_rules",
        "_backend",
        "_transport",
        "checkpoints",
        "jobs",
        "base_url",
        "timeout",
        "deadline",
        "max_retries",
        "max_connections",
    }
)


class AsyncClient:
    """An async client for the fine-tuning checkpoints API.

    Use it as ``async with AsyncClient() as client:`` or call :meth:`aclose` when done.
    Every argument is optional and keyword-only:

    - ``api_key``: else ``OPENAI_API_KEY``; one of them is required. A function returning
      the key (or an awaitable of it) instead of a string is called before every attempt,
      retries included: for keys or tokens that change over time.
    - ``base_url``: else ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``.
    - ``organization`` / ``project``: else ``OPENAI_ORG_ID`` / ``OPENAI_PROJECT_ID``;
      sent as ``OpenAI-Organization`` / ``OpenAI-Project`` when set.
    - ``default_headers`` / ``default_query``: sent with every request of every page (a
      gateway's own headers, or a query its URL needs; ``after`` and ``limit`` belong to
      each listing and are refused here). Both go only to the API's origin,
      and values under names such as ``*key*``, ``*token*`` or ``*auth*`` are kept out of
      errors like the key.
    - ``proxy``: an ``http://`` or ``https://`` proxy for every request. Without it, the
      client's own session follows ``HTTP_PROXY``/``HTTPS_PROXY``/``ALL_PROXY``/
      ``NO_PROXY`` as the official SDK does (loopback is never proxied); HTTPS goes
      through a ``CONNECT`` tunnel. A password in it never shows in an error.

    - ``timeout``: seconds per attempt (``None``: no limit).
    - ``deadline``: seconds for one request including all its retries and waits
      (``None``: only ``timeout`` and ``max_retries`` bound it).
    - ``max_retries``: retries after the first attempt (``0`` turns retries off).
    - ``max_connections``: the most connections the client's own session opens at once
      (default 1,000, as the official SDK). Requests past it wait for a free connection;
      that wait counts toward ``deadline``, never toward ``timeout``.
    - ``pacing``: on by default, shared with ``with_options`` copies. A 429's
      ``retry-after-ms``/``Retry-After`` holds back every request of the client until it
      has passed; ``x-ratelimit-remaining-requests`` running low spreads the next starts
      over ``x-ratelimit-reset-requests``; the number of requests in flight starts at 10,
      grows while more are waiting and halves on 429s and 5xx. ``False`` turns it off.
    - ``max_requests_per_second``: a cap (``None``: none). Requests start at least
      ``1/N`` s apart, never more than ``N`` in any one-second window when ``N`` is whole.
      Waiting for pacing counts toward ``deadline``, like waiting for a connection.
    - ``session``: an ``aiohttp.ClientSession`` to borrow (e.g. one shared by a web app);
      it is used and never closed, and must belong to the event loop that uses the
      client, be open, have no ``auth=`` (the client sends its own ``Authorization``) and
      decompress answers (aiohttp's default). Without one the client makes its own in the
      running event loop on first use, and a new one in each later loop (each
      ``asyncio.run()``); :meth:`aclose` closes it, and so does the end of its loop.
    - ``ssl_context``: TLS settings, e.g. a context trusting a corporate CA. Certificates
      are always verified; there is no switch to turn that off.
    - ``clock``: what retries use to wait and to measure the deadline; tests pass a fake
      one (``fine_tune_ckpt.testing.FakeClock``) so backoff takes no real time.

    The key, organization and project lose surrounding whitespace (a key read from a
    secret file ends with a line break); one holding a control or non-ASCII character
    inside is a ``ValueError`` naming the setting, never showing its value.

    The environment is read here, in the constructor, never at import.
    """

    def __init__(
        self,
        *,
        api_key: str | TokenProvider | None = None,
        base_url: str | URL | None = None,
        organization: str | None = None,
        project: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        deadline: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_requests_per_second: float | None = None,
        pacing: bool = True,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str | int] | None = None,
        proxy: str | URL | None = None,
        session: aiohttp.ClientSession | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Configure the client; no connection is made until the first request."""
        credential = _key_credential(
            "api_key", api_key, "OPENAI_API_KEY", header="Authorization", prefix="Bearer "
        )
        if credential is None:
            raise FineTuneCkptError(
                "No API key: pass api_key=... to AsyncClient or set the OPENAI_API_KEY "
                "environment variable"
            )
        base, base_query = _check_base_url(
            _setting("base_url", base_url, "OPENAI_BASE_URL") or DEFAULT_BASE_URL
        )
        self.organization = _credential("organization", organization, "OPENAI_ORG_ID")
        self.project = _credential("project", project, "OPENAI_PROJECT_ID")
        fixed = _account_headers(self.organization, self.project)
        self._configure(
            base_url=base,
            query=base_query,
            credential=credential,
            fixed_credentials=fixed,
            timeout=timeout,
            deadline=deadline,
            max_retries=max_retries,
            max_connections=max_connections,
            max_requests_per_second=max_requests_per_second,
            pacing=pacing,
            default_headers=default_headers,
            default_query=default_query,
            proxy=proxy,
            session=session,
            ssl_context=ssl_context,
            clock=clock,
        )

    def _configure(
        self,
        *,
        base_url: URL,
        query: Mapping[str, str],
        credential: Credential,
        fixed_credentials: Mapping[str, str],
        timeout: float | None,
        deadline: float | None,
        max_retries: int,
        max_connections: int,
        max_requests_per_second: float | None,
        pacing: bool,
        default_headers: Mapping[str, str] | None,
        default_query: Mapping[str, str | int] | None,
        proxy: str | URL | None,
        session: aiohttp.ClientSession | None,
        ssl_context: ssl.SSLContext | None,
        clock: Clock | None,
        reserved_query: frozenset[str] = frozenset(),
        pool: Pool | None = None,
        proxy_rules: ProxyRules | None = None,
        lane: Lane | None = None,
    ) -> None:
        """Check what every client shares, then build its backend, transport and resources.

        ``pool``, ``proxy_rules`` and ``lane`` come from the client a ``with_options`` copy
        is made of; a copy's ``max_requests_per_second`` is a cap of its own on top.
        """
        # Kept, as given, for with_options: a copy is configured the same way, over them.
        self._settings: dict[str, Any] = {
            "base_url": base_url,
            "query": query,
            "credential": credential,
            "fixed_credentials": fixed_credentials,
            "timeout": timeout,
            "deadline": deadline,
            "max_retries": max_retries,
            "max_connections": max_connections,
            "max_requests_per_second": max_requests_per_second,
            "pacing": pacing,
            "default_headers": default_headers,
            "default_query": default_query,
            "proxy": proxy,
            "session": session,
            "ssl_context": ssl_context,
            "clock": clock,
            "reserved_query": reserved_query,
        }
        #: The base URL endpoint paths are appended to.
        self.base_url: URL = base_url
        self.timeout = check_optional_seconds("timeout", timeout)
        self.deadline = check_optional_seconds("deadline", deadline)
        self.max_retries = check_non_negative_int("max_retries", max_retries)
        self.max_connections = check_positive_int("max_connections", max_connections)
        rate = check_optional_rate("max_requests_per_second", max_requests_per_second)
        check_bool("pacing", pacing)
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(
                f"ssl_context must be an ssl.SSLContext or None, not {type(ssl_context).__name__}"
            )
        if session is not None:
            _check_lent_session(session)
        headers = check_headers("default_headers", default_headers)
        extra_query = check_query("default_query", default_query, reserved=reserved_query)
        explicit_proxy = None if proxy is None else check_proxy_url(proxy, source="proxy")
        # A lent session is configured by its owner: only an explicit proxy applies to it.
        if proxy_rules is not None:
            proxies = proxy_rules  # a copy's: the environment as its original read it
        elif session is not None:
            proxies = ProxyRules(explicit=explicit_proxy)
        else:
            proxies = ProxyRules.from_environment(os.environ, explicit=explicit_proxy)
        self._proxy_rules = proxies

        secret_headers = {name: value for name, value in headers.items() if is_sensitive(name)}
        origin_headers = {name: value for name, value in headers.items() if not is_sensitive(name)}
        credentials = {**fixed_credentials, **secret_headers}
        if credential.provider is None:
            assert credential.value is not None  # noqa: S101 - fixed when there is no provider
            credentials = {credential.header: credential.prefix + credential.value, **credentials}
        secrets = [value for name, value in extra_query.items() if is_sensitive(name)]
        secrets += [value for name, value in query.items() if is_sensitive(name)]

        self._backend = Backend(
            base_url=base_url,
            query=tuple({**query, **extra_query}.items()),
            provider_credential=credential if credential.provider is not None else None,
            reserved_query=reserved_query,
        )
        self._transport = Transport(
            headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
            credentials=credentials,
            origin_headers=origin_headers,
            credential=self._backend.provider_credential,
            extra_secrets=tuple(secrets) + proxies.secrets(),
            proxies=proxies,
            max_connections=self.max_connections,
            timeout=self.timeout,
            deadline=self.deadline,
            max_retries=self.max_retries,
            session=session,
            ssl_context=ssl_context,
            clock=clock if clock is not None else SystemClock(),
            pool=pool,
            pacing=pacing,
            max_requests_per_second=rate,
            lane=lane,
        )
        #: The job reads: ``client.jobs.retrieve(job_id)`` and ``client.jobs.list()``.
        self.jobs = AsyncJobsResource(self._transport, self._backend)
        #: The checkpoints endpoint: ``client.checkpoints.list(job_id)`` and
        #: ``client.checkpoints.watch(job_id)``.
        self.checkpoints = AsyncCheckpointsResource(
            self._transport,
            self._backend,
            retrieve_job=self.jobs.retrieve,
            clock=clock if clock is not None else SystemClock(),
        )

    def with_options(
        self,
        *,
        timeout: float | NotGiven | None = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str | int] | None = None,
        max_requests_per_second: float | None = None,
    ) -> Self:
        """A client like this one with some settings changed, sharing its connections.

        Named as in the official SDK. ``default_headers`` and ``default_query`` are added
        to this client's. The copy shares this client's session and connection pool:
        closing the copy leaves them open; closing this client closes them for both.
        It shares the pacing too: a 429 met by either holds back both, and the copy's
        requests count toward this client's ``max_requests_per_second``;
        ``max_requests_per_second`` here adds a cap for the copy's own requests.
        """
        settings = dict(self._settings)
        # The copy's own cap, on top of this client's lane (which holds this client's).
        settings["max_requests_per_second"] = max_requests_per_second
        for name, value in (("timeout", timeout), ("deadline", deadline)):
            if not isinstance(value, NotGiven):
                settings[name] = value
        if not isinstance(max_retries, NotGiven):
            settings["max_retries"] = max_retries
        if default_headers is not None:
            settings["default_headers"] = {
                **(settings["default_headers"] or {}),
                **check_headers("default_headers", default_headers),
            }
        if default_query is not None:
            settings["default_query"] = {**(settings["default_query"] or {}), **default_query}
        copy = object.__new__(type(self))
        copy.__dict__.update(
            {key: value for key, value in vars(self).items() if key not in _BUILT_ATTRIBUTES}
        )
        copy._configure(
            **settings,
            pool=self._transport.pool,
            proxy_rules=self._proxy_rules,
            lane=self._transport.lane,
        )
        return copy

    def __repr__(self) -> str:
        """Show the configuration, never the API key."""
        return (
            f"{type(self).__name__}(base_url={str(self.base_url)!r}, timeout={self.timeout!r}, "
            f"deadline={self.deadline!r}, max_retries={self.max_retries!r})"
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called; a closed client sends nothing more."""
        return self._transport.closed

    async def aclose(self) -> None:
        """Close the client's own session; a lent session is left open. Safe to repeat."""
        await self._transport.aclose()

    async def __aenter__(self) -> Self:
        """Return the client itself."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the client, as :meth:`aclose` does."""
        await self.aclose()


class AsyncAzureClient(AsyncClient):
    """A client for Azure OpenAI, named after the official SDK's ``AsyncAzureOpenAI``.

    Keyword-only, with every :class:`AsyncClient` option too (``timeout``, ``deadline``,
    ``max_retries``, ``default_headers``, ``proxy``, ``session``, ``clock``, ...):

    - ``azure_endpoint``: else ``AZURE_OPENAI_ENDPOINT``, e.g.
      ``https://my-resource.openai.azure.com``; or ``base_url`` instead (not both), used
      as given.
    - ``api_version``: else ``OPENAI_API_VERSION``; required. A dated version such as
      ``2024-10-21`` is served under ``/openai`` with ``api-version`` on every request;
      ``"v1"`` under ``/openai/v1`` with none; ``"preview"`` under ``/openai/v1`` with
      ``api-version=preview``.
    - ``api_key``: else ``AZURE_OPENAI_API_KEY``; sent as the ``api-key`` header. A
      function returning it (or an awaitable of it) is called before every attempt.
    - ``azure_ad_token`` (else ``AZURE_OPENAI_AD_TOKEN``) or ``azure_ad_token_provider``
      (a function returning a Microsoft Entra ID token, or an awaitable of it, such as
      azure-identity's ``get_bearer_token_provider``): sent as ``Authorization: Bearer``;
      a token wins over a key, as in the official SDK.

    Azure's answers name the request in ``apim-request-id``, which errors carry as
    ``request_id``; its error bodies map to the same error classes.
    """

    def __init__(
        self,
        *,
        azure_endpoint: str | URL | None = None,
        api_version: str | None = None,
        api_key: str | TokenProvider | None = None,
        azure_ad_token: str | None = None,
        azure_ad_token_provider: TokenProvider | None = None,
        azure_deployment: str | None = None,
        base_url: str | URL | None = None,
        organization: str | None = None,
        project: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        deadline: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_requests_per_second: float | None = None,
        pacing: bool = True,
        default_headers: Mapping[str, str] | None = None,
        default_query: Mapping[str, str | int] | None = None,
        proxy: str | URL | None = None,
        session: aiohttp.ClientSession | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Configure the client; no connection is made until the first request."""
        version = _setting("api_version", api_version, "OPENAI_API_VERSION")
        if version is None:
            raise FineTuneCkptError(
                "No API version: pass api_version=... to AsyncAzureClient (e.g. "
                '"2024-10-21" or "v1") or set the OPENAI_API_VERSION environment variable'
            )
        version = _check_api_version(version)
        if azure_deployment is not None and not isinstance(azure_deployment, str):
            raise TypeError(
                f"azure_deployment must be a str or None, not {type(azure_deployment).__name__}"
            )
        #: Accepted as ``AsyncAzureOpenAI`` does; fine-tuning is not deployment-scoped, so
        #: its requests are the same with or without it.
        self.azure_deployment = azure_deployment
        given = [api_key, azure_ad_token, azure_ad_token_provider]
        if sum(value is not None for value in given) > 1:
            raise ValueError(
                "api_key, azure_ad_token and azure_ad_token_provider are mutually exclusive; "
                "pass one of them, as with the official AsyncAzureOpenAI"
            )
        if azure_ad_token_provider is not None and not callable(azure_ad_token_provider):
            raise TypeError(
                "azure_ad_token_provider must be a function returning a token, not "
                f"{type(azure_ad_token_provider).__name__}"
            )
        # An explicit credential chooses; only when none is given is the environment read
        # (a token there wins over a key there), as in the official SDK.
        explicit = (api_key, azure_ad_token, azure_ad_token_provider) != (None, None, None)
        credential: Credential | None
        if azure_ad_token_provider is not None:
            credential = Credential(
                "Authorization",
                "Bearer ",
                provider=azure_ad_token_provider,
                name="azure_ad_token_provider",
            )
        else:
            credential = _key_credential(
                "azure_ad_token",
                azure_ad_token,
                "" if explicit else "AZURE_OPENAI_AD_TOKEN",
                header="Authorization",
                prefix="Bearer ",
            )
        if credential is None:
            credential = _key_credential(
                "api_key",
                api_key,
                "" if explicit else "AZURE_OPENAI_API_KEY",
                header="api-key",
                prefix="",
            )
        if credential is None:
            raise FineTuneCkptError(
                "No credentials: pass api_key=, azure_ad_token= or azure_ad_token_provider= "
                "to AsyncAzureClient, or set AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN"
            )

        endpoint = _setting("azure_endpoint", azure_endpoint, "AZURE_OPENAI_ENDPOINT")
        if base_url is not None and azure_endpoint is not None:
            raise ValueError("pass azure_endpoint or base_url to AsyncAzureClient, not both")
        if base_url is not None:
            base, query = _check_base_url(_setting("base_url", base_url, "") or "")
            query.pop("api-version", None)  # api_version says which, never the URL
            if version != "v1":
                query["api-version"] = version
        elif endpoint is not None:
            root, endpoint_query = _check_base_url(endpoint, name="azure_endpoint")
            endpoint_query.pop("api-version", None)  # api_version says which, never the URL
            base, fixed_query = azure_base_url(root, version)
            query = {**endpoint_query, **dict(fixed_query)}
        else:
            raise FineTuneCkptError(
                "No endpoint: pass azure_endpoint=... (or base_url=...) to AsyncAzureClient "
                "or set the AZURE_OPENAI_ENDPOINT environment variable"
            )
        #: The Azure API version every request names.
        self.api_version = version
        organization_id = _credential("organization", organization, "OPENAI_ORG_ID")
        project_id = _credential("project", project, "OPENAI_PROJECT_ID")
        self.organization = organization_id
        self.project = project_id
        fixed = _account_headers(organization_id, project_id)
        self._configure(
            base_url=base,
            query=query,
            credential=credential,
            fixed_credentials=fixed,
            timeout=timeout,
            deadline=deadline,
            max_retries=max_retries,
            max_connections=max_connections,
            max_requests_per_second=max_requests_per_second,
            pacing=pacing,
            default_headers=default_headers,
            default_query=default_query,
            proxy=proxy,
            session=session,
            ssl_context=ssl_context,
            clock=clock,
            reserved_query=frozenset({"api-version"}),
        )


def _setting(name: str, value: object, env_var: str) -> str | None:
    """The argument if given, else the environment variable, without surrounding whitespace.

    An empty or blank environment variable counts as unset; an empty or blank argument is
    a ``ValueError``.
    """
    if value is None:
        return (_trimmed(os.environ.get(env_var, "")) or None) if env_var else None
    if isinstance(value, URL):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str or None, not {type(value).__name__}")
    if not _trimmed(value):
        raise ValueError(f"{name} must not be empty or blank")
    return _trimmed(value)


def _trimmed(value: str) -> str:
    """``value`` without surrounding whitespace or byte-order marks (Windows editors add one)."""
    return value.strip().strip("\ufeff").strip()


def _credential(name: str, value: object, env_var: str) -> str | None:
    """A setting sent in a header: refused, without showing it, if it holds a control character.

    aiohttp would refuse it only at request time, with a message that names no setting.
    """
    setting = _setting(name, value, env_var)
    if setting is None:
        return None
    source = name if value is not None else f"{name} (from {env_var})"
    return check_header_value(name, setting, source=source)


def _check_lent_session(session: object) -> None:
    """Refuse, at construction, a lent session that could never carry our requests."""
    if not isinstance(session, aiohttp.ClientSession):
        raise TypeError(
            f"session must be an aiohttp.ClientSession or None, not {type(session).__name__}"
        )
    if session.closed:
        raise ValueError("session is closed; lend an open aiohttp.ClientSession")
    if session.auth is not None:
        raise ValueError(
            "session has auth= set, which fights the client's own Authorization header; "
            "lend a session without auth"
        )
    if not session.auto_decompress:
        raise ValueError(
            "session has auto_decompress=False, so compressed answers could not be read; "
            "lend a session that decompresses (aiohttp's default)"
        )


def _check_base_url(value: str, *, name: str = "base_url") -> tuple[URL, dict[str, str]]:
    """The base URL without a trailing slash, and the query it carries (kept on every page)."""
    try:
        url = URL(value)
        url.port  # noqa: B018 - yarl checks the port only when asked
    except ValueError as exc:  # yarl's own words name no setting
        raise ValueError(f"{name} is not a valid URL: {exc}") from None
    if url.user is not None or url.password is not None:
        # aiohttp would turn them into a second Authorization header and refuse to send.
        raise ValueError(f"{name} must not hold a user name or password")
    # The value is not echoed: a key pasted into it by mistake must not reach a log.
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(
            f"{name} must be an http:// or https:// URL with a host (scheme {url.scheme!r})"
        )
    if not _HOST.match(url.raw_host or ""):
        raise ValueError(f"{name} has a host with characters no host name may hold")
    if url.fragment:
        raise ValueError(f"{name} must not have a fragment")
    query = dict(url.query)
    if len(query) != len(url.query):
        raise ValueError(f"{name} must not repeat a query parameter")
    if PAGING_PARAMETERS & query.keys():
        raise ValueError(f"{name} must not set after or limit: they belong to each listing")
    # Trailing slashes would double up when the endpoint's path is appended.
    return url.with_query(None).with_path(url.raw_path.rstrip("/"), encoded=True), query


def _check_api_version(value: str) -> str:
    """An Azure API version: a date (``2024-10-21``, ``...-preview``), ``v1`` or ``preview``."""
    version = value.lower() if value.lower() in {"v1", "preview"} else value
    if version in {"v1", "preview"} or _API_VERSION.match(version):
        return version
    raise ValueError(
        "api_version must be a dated version such as '2024-10-21' (or '...-preview'), "
        f"'v1' or 'preview', got {value!r}"
    )


def _account_headers(organization: str | None, project: str | None) -> dict[str, str]:
    """The headers naming the organization and project, for those that are set."""
    headers: dict[str, str] = {}
    if organization:
        headers["OpenAI-Organization"] = organization
    if project:
        headers["OpenAI-Project"] = project
    return headers


def _key_credential(
    name: str, value: object, env_var: str, *, header: str, prefix: str
) -> Credential | None:
    """A key or token: a fixed string (argument or environment) or a provider function."""
    if value is not None and not isinstance(value, str | URL):
        if not callable(value):
            raise TypeError(
                f"{name} must be a str, a function returning one, or None, "
                f"not {type(value).__name__}"
            )
        return Credential(header, prefix, provider=value, name=name)
    fixed = _credential(name, value, env_var)
    return None if fixed is None else Credential(header, prefix, value=fixed, name=name)
