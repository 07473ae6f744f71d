"""Per-call options and the checks shared by client-wide and per-call headers and query.

A call's options are one small frozen value merged over the client's in one place
(:meth:`CallOptions.limits`), never re-plumbed argument by argument through every layer.
``NOT_GIVEN`` tells "use the client's value" apart from ``None`` ("no limit"), as in the
official SDK.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

import attrs

from ._args import check_non_negative_int, check_optional_seconds
from ._backends import check_header_value

__all__ = [
    "NOT_GIVEN",
    "CallOptions",
    "Limits",
    "NotGiven",
    "check_headers",
    "check_query",
    "is_sensitive",
]


class NotGiven:
    """The type of :data:`NOT_GIVEN`: an option left to the client's setting."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        """Return the one instance."""
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> Literal[False]:
        """Falsy, as "nothing given"."""
        return False

    def __repr__(self) -> str:
        """Name it as the official SDK does."""
        return "NOT_GIVEN"


#: An option left to the client's own setting (``None`` means "no limit" instead).
NOT_GIVEN: Final = NotGiven()

#: Header and query names whose values are treated as secrets (never in an error).
_SENSITIVE_NAME = re.compile(
    r"auth|key|token|secret|passw|pwd|signature|cookie|credential|session|jwt|bearer"
    # Short ones only as whole words: "sig" (Azure SAS, OpenTelemetry's list), "sas".
    r"|(?:^|[-_.])(?:sig|sas)(?:$|[-_.])",
    re.IGNORECASE,
)
#: Query parameters the pager owns: a fixed value would break paging.
PAGING_PARAMETERS = frozenset({"after", "limit"})
#: Headers that frame the request on the wire: set by hand, they corrupt the connection.
_FRAMING_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-authorization",
        "proxy-connection",
    }
)
#: Headers the client builds from its own settings.
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "api-key", "openai-organization", "openai-project"}
)
#: What an HTTP header name may be made of (RFC 9110 "token").
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def is_sensitive(name: str) -> bool:
    """Whether a header or query parameter of this name carries a secret."""
    return _SENSITIVE_NAME.search(name) is not None


def check_headers(setting: str, headers: object) -> dict[str, str]:
    """Return ``headers`` if every one can be sent as given, else raise naming ``setting``."""
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise TypeError(f"{setting} must be a mapping, not {type(headers).__name__}")
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ValueError(f"{setting} has an invalid header name {name!r}")
        if name.lower() in _FRAMING_HEADERS:
            raise ValueError(f"{setting} must not set {name!r}: aiohttp frames each request itself")
        if name.lower() in _CREDENTIAL_HEADERS:
            raise ValueError(
                f"{setting} must not set {name!r}: pass the credential as api_key=, "
                "organization= or project= (or the Azure client's settings)"
            )
        if not isinstance(value, str):
            raise TypeError(f"{setting}[{name!r}] must be a str, not {type(value).__name__}")
        checked[name] = check_header_value(name, value.strip(), source=f"{setting}[{name!r}]")
    return checked


def check_query(
    setting: str, query: object, *, reserved: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Return ``query`` as strings if it can be sent, else raise naming ``setting``.

    ``after`` and ``limit`` belong to each listing, and ``reserved`` names more (Azure's
    ``api-version``): none may be set here.
    """
    if query is None:
        return {}
    if not isinstance(query, Mapping):
        raise TypeError(f"{setting} must be a mapping, not {type(query).__name__}")
    checked: dict[str, str] = {}
    for name, value in query.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{setting} has an invalid parameter name {name!r}")
        if name.lower() in PAGING_PARAMETERS:
            raise ValueError(
                f"{setting} must not set {name!r}: it belongs to each listing "
                f"(client.checkpoints.list(..., {name}=...))"
            )
        if name.lower() in reserved:
            raise ValueError(f"{setting} must not set {name!r}: the client's settings say it")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError(f"{setting}[{name!r}] must be a str or int, not {type(value).__name__}")
        checked[name] = str(value)
    return checked


@attrs.frozen
class Limits:
    """The time and retry bounds one request runs under."""

    #: Seconds per attempt (``None``: no limit).
    timeout: float | None
    #: Seconds for the whole request, retries and waits included (``None``: no limit).
    deadline: float | None
    #: Retries after the first attempt.
    max_retries: int


@attrs.frozen
class CallOptions:
    """What one call overrides of its client's settings; every page of the walk uses it."""

    #: Seconds per attempt for this call (``None``: no limit).
    timeout: float | NotGiven | None = NOT_GIVEN
    #: Seconds for each request of this call, retries and waits included.
    deadline: float | NotGiven | None = NOT_GIVEN
    #: Retries after the first attempt, for each request of this call.
    max_retries: int | NotGiven = NOT_GIVEN
    #: Headers added to every request of this call (over the client's).
    extra_headers: Mapping[str, str] = attrs.field(factory=dict)
    #: Query parameters added to every request of this call (over the client's).
    extra_query: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def checked(
        cls,
        *,
        timeout: object = NOT_GIVEN,
        deadline: object = NOT_GIVEN,
        max_retries: object = NOT_GIVEN,
        extra_headers: object = None,
        extra_query: object = None,
        reserved_query: frozenset[str] = frozenset(),
    ) -> CallOptions:
        """Check a call's options before anything is sent; raise naming the bad one."""
        return cls(
            timeout=timeout
            if isinstance(timeout, NotGiven)
            else check_optional_seconds("timeout", timeout),
            deadline=deadline
            if isinstance(deadline, NotGiven)
            else check_optional_seconds("deadline", deadline),
            max_retries=max_retries
            if isinstance(max_retries, NotGiven)
            else check_non_negative_int("max_retries", max_retries),
            extra_headers=check_headers("extra_headers", extra_headers),
            extra_query=check_query("extra_query", extra_query, reserved=reserved_query),
        )

    def limits(self, client: Limits) -> Limits:
        """The bounds of a request: this call's where given, else the client's."""
        return Limits(
            timeout=client.timeout if isinstance(self.timeout, NotGiven) else self.timeout,
            deadline=client.deadline if isinstance(self.deadline, NotGiven) else self.deadline,
            max_retries=client.max_retries
            if isinstance(self.max_retries, NotGiven)
            else self.max_retries,
        )
