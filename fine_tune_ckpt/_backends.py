"""Where requests go and how they authenticate: OpenAI, Azure OpenAI and gateways.

A backend is a small value chosen at construction. It builds each request's URL (the
service's base path, plus a query it always carries, such as Azure's ``api-version`` or
a gateway's ``default_query``) and, before every attempt, the headers that carry its
credential. A credential is a fixed string or a *provider*: a function returning the
current key or token, or an awaitable of it, called before every attempt, retries
included, so a token that expires within the hour is always fresh (caching is the
provider's job, as azure-identity's ``get_bearer_token_provider`` does).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping

import attrs
from yarl import URL

from ._errors import FineTuneCkptError
from ._redact import scrub_chain, secrets_of

__all__ = [
    "AZURE_V1_VERSIONS",
    "Backend",
    "Credential",
    "TokenProvider",
    "azure_base_url",
    "check_header_value",
]

#: A function giving the current key or token, directly or as an awaitable.
TokenProvider = Callable[[], str | Awaitable[str]]

#: Azure API versions served on the GA ``/openai/v1`` path rather than the dated one.
AZURE_V1_VERSIONS = frozenset({"v1", "preview"})


def check_header_value(name: str, value: str, *, source: str | None = None) -> str:
    """Return ``value`` if it can travel in a header unchanged, else raise ``ValueError``.

    Keys, tokens and ids are printable ASCII. A control character (line break, tab, NUL,
    DEL) would break the header; anything outside ASCII (a zero-width space, a surrogate
    from undecodable bytes) would be mangled on the wire, so the server would see another
    value than the one configured. The message names the setting, never the value.
    """
    for position, character in enumerate(value):
        if " " <= character <= "~":
            continue
        kind = "a control character" if character.isascii() else "a non-ASCII character"
        raise ValueError(
            f"{source or name} holds {kind} (U+{ord(character):04X}) at position {position}; "
            "check where it was read from"
        )
    return value


@attrs.define(eq=False)
class Credential:
    """One header carrying a secret: a fixed value, or one asked of a provider each time."""

    #: The header's name, e.g. ``Authorization`` or ``api-key``.
    header: str
    #: What goes before the secret, e.g. ``"Bearer "``.
    prefix: str
    #: The secret itself when fixed.
    value: str | None = attrs.field(default=None, repr=False)
    #: The function that gives the secret when it changes over time.
    provider: TokenProvider | None = attrs.field(default=None, repr=False)
    #: The setting's name, for error messages (e.g. ``api_key``).
    name: str = "api_key"
    #: The provider's latest answer: kept out of the provider's own later failures.
    _last: str | None = attrs.field(default=None, init=False, repr=False)

    async def current(self) -> str:
        """The header's value now: the fixed secret, or the provider's latest answer."""
        if self.provider is None:
            assert self.value is not None  # noqa: S101 - one of the two, by construction
            return self.prefix + self.value
        failure: Exception | None = None
        try:
            answer: object = self.provider()
            if inspect.isawaitable(answer):
                answer = await answer
        except Exception as exc:  # the provider's own failure, e.g. no Azure login
            failure = exc
        if failure is not None:
            # Raised here, outside the except clause, so no raw context is kept: the
            # provider's message may quote the token it gave before, sent already.
            secrets = secrets_of([self._last]) if self._last else ()
            error = FineTuneCkptError(f"The {self.name} provider failed: {type(failure).__name__}")
            raise error from scrub_chain(failure, secrets)
        if not isinstance(answer, str):
            if inspect.iscoroutine(answer):
                answer.close()  # a nested coroutine, never to be awaited: no warning for it
            raise FineTuneCkptError(
                f"The {self.name} provider must return a str (or an awaitable of one), "
                f"not {type(answer).__name__}"
            )
        token = answer.strip()
        if not token:
            raise FineTuneCkptError(f"The {self.name} provider returned an empty value")
        try:
            check_header_value(self.name, token, source=f"The {self.name} provider's value")
        except ValueError as exc:
            raise FineTuneCkptError(str(exc)) from None
        self._last = token
        return self.prefix + token


@attrs.frozen
class Backend:
    """The service requests go to: its base URL, a fixed query and a changing credential."""

    #: The service's base URL, without a trailing slash; endpoint paths are appended.
    base_url: URL
    #: Query parameters every request carries (``api-version``, a gateway's own).
    query: tuple[tuple[str, str], ...]
    #: The credential asked of a provider before every attempt, if any.
    provider_credential: Credential | None = attrs.field(default=None, repr=False)
    #: Query parameters the backend's settings own (Azure's ``api-version``): no call's
    #: ``extra_query`` may set them.
    reserved_query: frozenset[str] = frozenset()

    def url(self, path: str, query: Mapping[str, str | int] | None = None) -> URL:
        """The URL of ``path`` (already percent-encoded) with the fixed query and ``query``.

        The page's own parameters (``after``, ``limit``) win over a fixed one of the same
        name, so a gateway's ``default_query`` cannot break paging.
        """
        merged: dict[str, str | int] = dict(self.query)
        if query:
            merged.update(query)
        url = self.endpoint(path)
        return url.with_query(merged) if merged else url

    def endpoint(self, path: str) -> URL:
        """The URL of ``path`` (already percent-encoded), without any query.

        A listing builds it once and adds each page's query to it, see :meth:`url`.
        """
        return URL(f"{self.base_url}{path}", encoded=True)


def azure_base_url(endpoint: URL, api_version: str) -> tuple[URL, tuple[tuple[str, str], ...]]:
    """The base URL and fixed query of an Azure OpenAI resource for ``api_version``.

    A dated version (``2024-10-21``) is served under ``/openai`` with ``api-version`` on
    every request; ``v1`` under ``/openai/v1`` with none; ``preview`` under ``/openai/v1``
    with ``api-version=preview``.
    """
    root = endpoint.with_path(endpoint.raw_path.rstrip("/"), encoded=True)
    if api_version in AZURE_V1_VERSIONS:
        base = URL(f"{root}/openai/v1", encoded=True)
        query = () if api_version == "v1" else (("api-version", api_version),)
        return base, query
    return URL(f"{root}/openai", encoded=True), (("api-version", api_version),)
