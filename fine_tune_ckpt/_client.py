"""``AsyncClient``: configuration, the shared transport, and the resources built on it."""

from __future__ import annotations

import os
import platform
import ssl
import unicodedata
from types import TracebackType

import aiohttp
from yarl import URL

from ._args import check_non_negative_int, check_optional_seconds, check_positive_int
from ._clock import Clock, SystemClock
from ._errors import FineTuneCkptError
from ._resource import AsyncCheckpointsResource
from ._transport import DEFAULT_MAX_CONNECTIONS, Transport
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
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


class AsyncClient:
    """An async client for the fine-tuning checkpoints API.

    Use it as ``async with AsyncClient() as client:`` or call :meth:`aclose` when done.
    Every argument is optional and keyword-only:

    - ``api_key``: else ``OPENAI_API_KEY``; one of them is required.
    - ``base_url``: else ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``.
    - ``organization`` / ``project``: else ``OPENAI_ORG_ID`` / ``OPENAI_PROJECT_ID``;
      sent as ``OpenAI-Organization`` / ``OpenAI-Project`` when set.

    - ``timeout``: seconds per attempt (``None``: no limit).
    - ``deadline``: seconds for one request including all its retries and waits
      (``None``: only ``timeout`` and ``max_retries`` bound it).
    - ``max_retries``: retries after the first attempt (``0`` turns retries off).
    - ``max_connections``: the most connections the client's own session opens at once
      (default 1,000, as the official SDK). Requests past it wait for a free connection;
      that wait counts toward ``deadline``, never toward ``timeout``.
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
        api_key: str | None = None,
        base_url: str | URL | None = None,
        organization: str | None = None,
        project: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        deadline: float | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        session: aiohttp.ClientSession | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Configure the client; no connection is made until the first request."""
        key = _credential("api_key", api_key, "OPENAI_API_KEY")
        if key is None:
            raise FineTuneCkptError(
                "No API key: pass api_key=... to AsyncClient or set the OPENAI_API_KEY "
                "environment variable"
            )
        self.base_url: URL = _check_base_url(
            _setting("base_url", base_url, "OPENAI_BASE_URL") or DEFAULT_BASE_URL
        )
        self.organization = _credential("organization", organization, "OPENAI_ORG_ID")
        self.project = _credential("project", project, "OPENAI_PROJECT_ID")
        self.timeout = check_optional_seconds("timeout", timeout)
        self.deadline = check_optional_seconds("deadline", deadline)
        self.max_retries = check_non_negative_int("max_retries", max_retries)
        self.max_connections = check_positive_int("max_connections", max_connections)
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise TypeError(
                f"ssl_context must be an ssl.SSLContext or None, not {type(ssl_context).__name__}"
            )
        if session is not None:
            _check_lent_session(session)

        credentials = {"Authorization": f"Bearer {key}"}
        if self.organization:
            credentials["OpenAI-Organization"] = self.organization
        if self.project:
            credentials["OpenAI-Project"] = self.project
        self._transport = Transport(
            headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
            credentials=credentials,
            max_connections=self.max_connections,
            timeout=self.timeout,
            deadline=self.deadline,
            max_retries=self.max_retries,
            session=session,
            ssl_context=ssl_context,
            clock=clock if clock is not None else SystemClock(),
        )
        #: The checkpoints endpoint: ``client.checkpoints.list(job_id)``.
        self.checkpoints = AsyncCheckpointsResource(self._transport, self.base_url)

    def __repr__(self) -> str:
        """Show the configuration, never the API key."""
        return (
            f"AsyncClient(base_url={str(self.base_url)!r}, timeout={self.timeout!r}, "
            f"deadline={self.deadline!r}, max_retries={self.max_retries!r})"
        )

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called; a closed client sends nothing more."""
        return self._transport.closed

    async def aclose(self) -> None:
        """Close the client's own session; a lent session is left open. Safe to repeat."""
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncClient:
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


def _setting(name: str, value: object, env_var: str) -> str | None:
    """The argument if given, else the environment variable, without surrounding whitespace.

    An empty or blank environment variable counts as unset; an empty or blank argument is
    a ``ValueError``.
    """
    if value is None:
        return _trimmed(os.environ.get(env_var, "")) or None
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
    for position, character in enumerate(setting):
        # Keys, organization and project ids are printable ASCII. A control character
        # (line break, tab, NUL, DEL) would break the header; anything else outside ASCII
        # (a zero-width space, a surrogate from undecodable bytes) would be mangled on the
        # wire, so the server would see another value than the one configured.
        if " " <= character <= "~":
            continue
        kind = "a control character" if character.isascii() else "a non-ASCII character"
        if unicodedata.category(character) in {"Cc", "Zl", "Zp"}:
            kind = "a control character"
        source = name if value is not None else f"{name} (from {env_var})"
        raise ValueError(
            f"{source} holds {kind} (U+{ord(character):04X}) at position {position}; "
            "check where it was read from"
        )
    return setting


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


def _check_base_url(value: str) -> URL:
    url = URL(value)
    if url.user is not None or url.password is not None:
        # aiohttp would turn them into a second Authorization header and refuse to send.
        raise ValueError("base_url must not hold a user name or password")
    # The value is not echoed: a key pasted into it by mistake must not reach a log.
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(
            f"base_url must be an http:// or https:// URL with a host (scheme {url.scheme!r})"
        )
    if url.query_string or url.fragment:
        raise ValueError("base_url must not have a query or fragment")
    # Trailing slashes would double up when the endpoint's path is appended.
    return url.with_path(url.raw_path.rstrip("/"), encoded=True)
