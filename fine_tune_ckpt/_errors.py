"""The exceptions this library raises, and the pure mapping from an HTTP answer to one.

The hierarchy (names as in the official OpenAI SDK, so ``except`` clauses carry over)::

    FineTuneCkptError
    └── APIError
        ├── APIStatusError                 non-2xx answer
        │   ├── BadRequestError            400
        │   ├── AuthenticationError        401
        │   ├── PermissionDeniedError      403
        │   ├── NotFoundError              404
        │   ├── ConflictError              409
        │   ├── UnprocessableEntityError   422
        │   ├── RateLimitError             429
        │   └── InternalServerError        >= 500
        ├── APIConnectionError             no answer (refused, reset, truncated body)
        │   └── APITimeoutError            no answer in time
        ├── APIResponseValidationError     2xx answer that is not a valid page
        └── PaginationError                pages that cannot be followed (repeated cursor)

Every error raised while paging carries ``resume_after``: pass it as ``after=`` to a new
listing to continue with no gap and no duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from ._metadata import RateLimit, rate_limit_from_headers

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "ConflictError",
    "FineTuneCkptError",
    "InternalServerError",
    "NotFoundError",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
    "error_for_status",
    "request_id_of",
]


class FineTuneCkptError(Exception):
    """Base class of every exception this library raises on purpose.

    ``resume_after`` is set on errors raised while paging: the cursor (``after``) from which
    a new listing continues exactly where the failed one stopped. ``None`` there means
    "from the start of the listing you asked for".
    """

    resume_after: str | None = None


class APIError(FineTuneCkptError):
    """A request to the API failed; ``message`` says why.

    ``body`` is the decoded JSON of the answer (or its text when it is not JSON, or
    ``None`` when there was no answer). ``code``, ``type`` and ``param`` come from the
    API's ``{"error": {...}}`` object when it sent one. ``request_id`` is the answer's
    ``x-request-id`` header (Azure's ``apim-request-id`` when that is absent): quote it
    when you report a problem to the provider.
    """

    message: str
    body: object | None
    request_id: str | None
    code: str | None
    type: str | None
    param: str | None

    def __init__(
        self,
        message: str,
        *,
        body: object | None = None,
        request_id: str | None = None,
    ) -> None:
        """Create the error; the API's error object, if ``body`` holds one, fills the rest."""
        super().__init__(message)
        self.message = message
        self.body = body
        self.request_id = request_id
        details = _error_object(body)
        self.code = _optional_str(details.get("code"))
        self.type = _optional_str(details.get("type"))
        self.param = _optional_str(details.get("param"))


class APIStatusError(APIError):
    """The API answered with a status that is not 2xx; ``status_code`` is that status."""

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object | None = None,
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Create the error; ``headers`` are the answer's, kept for the retry rules."""
        super().__init__(message, body=body, request_id=request_id)
        self.status_code = status_code
        # Case-insensitive, as HTTP header names are: "Retry-After" is "retry-after".
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict(headers or {}))

    @property
    def rate_limit(self) -> RateLimit:
        """The rate-limit state the answer reported (each field ``None`` when absent)."""
        return rate_limit_from_headers(self.headers)


class BadRequestError(APIStatusError):
    """400: the API rejected the request's parameters (for example an unknown ``after``)."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not read this job."""


class NotFoundError(APIStatusError):
    """404: no fine-tuning job with that id is visible to this key."""


class ConflictError(APIStatusError):
    """409: the API reported a conflicting concurrent change."""


class UnprocessableEntityError(APIStatusError):
    """422: the API understood the request but cannot process it."""


class RateLimitError(APIStatusError):
    """429: too many requests; retried automatically, raised once retries are spent."""


class InternalServerError(APIStatusError):
    """A 5xx answer: the API failed; retried automatically, raised once retries are spent."""


class APIConnectionError(APIError):
    """No usable answer arrived: connection refused or reset, or the body was cut short."""


class APITimeoutError(APIConnectionError):
    """No answer arrived within the per-attempt timeout or the overall deadline."""


class APIResponseValidationError(APIError):
    """A 2xx answer whose body is not a valid checkpoint page; the message lists each problem.

    ``status_code`` is the answer's status.
    """

    status_code: int

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object | None = None,
        request_id: str | None = None,
    ) -> None:
        """Create the error for a 2xx answer of status ``status_code``."""
        super().__init__(message, body=body, request_id=request_id)
        self.status_code = status_code


class ClientClosedError(FineTuneCkptError, RuntimeError):
    """The client (or the one a ``with_options`` copy shares its pool with) is closed.

    A ``RuntimeError``, as ever, and a library error too, so a walk stopped by it carries
    ``resume_after`` like any other.
    """

    def __init__(self) -> None:
        """Say what happened and what to do."""
        super().__init__("This AsyncClient is closed; create a new one to send requests")


class PaginationError(APIError):
    """The pages cannot be followed safely, e.g. the server repeated a cursor.

    Following them would loop forever or skip items, so the listing stops here instead.
    """


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_for_status(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
) -> APIStatusError:
    """Build the exception for a non-2xx answer from its status, raw body and headers."""
    decoded = _decode_error_body(body)
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = InternalServerError if status >= 500 else APIStatusError
    api_message = _optional_str(_error_object(decoded).get("message"))
    message = f"Error code: {status}"
    if api_message:
        message = f"{message} - {api_message}"
    return cls(
        message,
        status_code=status,
        body=decoded,
        request_id=request_id_of(headers),
        headers=headers,
    )


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The answer's request id: ``x-request-id``, else Azure's ``apim-request-id``."""
    return headers.get("x-request-id") or headers.get("apim-request-id")


def _decode_error_body(body: bytes) -> object | None:
    """Decode an error body as JSON, else as text; an HTML error page stays readable."""
    body = body.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, as on pages
    if not body:
        return None
    try:
        decoded: object = orjson.loads(body)
    except orjson.JSONDecodeError:  # also raised for invalid UTF-8
        return body.decode("utf-8", errors="replace")
    return decoded


def _error_object(body: object | None) -> Mapping[str, Any]:
    """Return the API's ``{"error": {...}}`` object, or an empty mapping."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            return inner
    return {}


def _optional_str(value: object) -> str | None:
    """Keep ``value`` if it is a string; the API sometimes sends numbers or nulls."""
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)
