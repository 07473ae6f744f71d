"""What an answer says about itself: rate limits, processing time, request id, attempts.

Pure functions over a response's headers. Nothing here does I/O, and nothing raises on
what a server sends: a header that is absent or unreadable becomes ``None``, because
this information is advisory and must never turn a good answer into an error.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = [
    "RateLimit",
    "ResponseInfo",
    "parse_go_duration",
    "processing_ms_from_headers",
    "rate_limit_from_headers",
    "request_budget_from_headers",
    "response_info",
]

# The longest header value read; longer text is refused unread, so work stays bounded
# whatever a server or proxy sends. Real values are a few characters long.
_MAX_TEXT_LENGTH = 64

# Go's time.Duration is an int64 of nanoseconds; longer durations overflow there, so a
# Go server cannot have meant them.
_MAX_DURATION_SECONDS = (2**63 - 1) / 1e9

# Counts past int64 are garbage from no real server; the cap also keeps int() cheap.
_MAX_COUNT = 2**63 - 1
_MAX_COUNT_DIGITS = len(str(_MAX_COUNT))

# HTTP's optional whitespace around a field value (RFC 9110, section 5.6.3). Not
# str.strip(): that would also accept Unicode spaces no HTTP stack sends.
_OWS = " \t"

_DIGITS = frozenset("0123456789")

# Each Go unit as (multiplier, divisor) of seconds: dividing by 1000 rather than
# multiplying by 0.001 keeps "250ms" exactly 0.25.
_UNITS: dict[str, tuple[float, float]] = {
    "ns": (1.0, 1e9),
    "us": (1.0, 1e6),
    "\u00b5s": (1.0, 1e6),  # MICRO SIGN, what Go's String() writes
    "\u03bcs": (1.0, 1e6),  # GREEK SMALL LETTER MU, which Go's parser also accepts
    "ms": (1.0, 1e3),
    "s": (1.0, 1.0),
    "m": (60.0, 1.0),
    "h": (3600.0, 1.0),
}

_LIMIT_REQUESTS = "x-ratelimit-limit-requests"
_REMAINING_REQUESTS = "x-ratelimit-remaining-requests"
_RESET_REQUESTS = "x-ratelimit-reset-requests"
_LIMIT_TOKENS = "x-ratelimit-limit-tokens"
_REMAINING_TOKENS = "x-ratelimit-remaining-tokens"
_RESET_TOKENS = "x-ratelimit-reset-tokens"
_PROCESSING_MS = "openai-processing-ms"

_REQUEST_BUDGET_HEADERS = (_LIMIT_REQUESTS, _REMAINING_REQUESTS, _RESET_REQUESTS)

_RATE_LIMIT_HEADERS = (
    _LIMIT_REQUESTS,
    _REMAINING_REQUESTS,
    _RESET_REQUESTS,
    _LIMIT_TOKENS,
    _REMAINING_TOKENS,
    _RESET_TOKENS,
)


@attrs.frozen
class RateLimit:
    """The rate-limit state an answer reported, from its ``x-ratelimit-*`` headers.

    Each field is ``None`` when its header was absent or unreadable.
    """

    #: Requests allowed in the window (``x-ratelimit-limit-requests``).
    limit_requests: int | None
    #: Requests left in the window (``x-ratelimit-remaining-requests``).
    remaining_requests: int | None
    #: Seconds until the request budget is restored (``x-ratelimit-reset-requests``).
    reset_requests: float | None
    #: Tokens allowed in the window (``x-ratelimit-limit-tokens``).
    limit_tokens: int | None
    #: Tokens left in the window (``x-ratelimit-remaining-tokens``).
    remaining_tokens: int | None
    #: Seconds until the token budget is restored (``x-ratelimit-reset-tokens``).
    reset_tokens: float | None


def _frozen_headers(headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
    """``headers`` read-only and case-insensitive: a copy, unless already a read-only view.

    aiohttp hands every answer's headers over as a ``CIMultiDictProxy`` it never changes
    again; copying them for each page would cost more than the rest of this record.
    """
    if type(headers) is CIMultiDictProxy:
        return headers
    return CIMultiDictProxy(CIMultiDict(headers))


@attrs.frozen
class ResponseInfo:
    """What is known about one answer of the API beyond its body.

    Built by :func:`response_info`. ``headers`` is read-only: the answer's own read-only
    headers as aiohttp gave them, or a private copy of any other mapping.
    """

    #: The HTTP status of the final attempt.
    status_code: int
    #: The answer's request id (``x-request-id``, or Azure's ``apim-request-id``).
    request_id: str | None
    #: All the final answer's headers; read-only, names looked up case-insensitively.
    # hash=False: a CIMultiDictProxy is unhashable, yet the record should stay hashable.
    headers: CIMultiDictProxy[str] = attrs.field(converter=_frozen_headers, hash=False)
    #: Attempts it took: 1 when the first attempt was final, more after retries.
    attempts: int
    #: Seconds from the first attempt to the final answer, retries and waits included.
    elapsed: float

    # Read from the headers when first asked, not for every page: most callers never look,
    # and reading them costs more than the rest of this record.
    @functools.cached_property
    def rate_limit(self) -> RateLimit:
        """The rate-limit state the answer reported (each field ``None`` when absent)."""
        return rate_limit_from_headers(self.headers)

    @functools.cached_property
    def processing_ms(self) -> int | None:
        """Milliseconds the server says it spent (``openai-processing-ms``), if it said."""
        return processing_ms_from_headers(self.headers)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle and copy by value: the read-only header view itself cannot be pickled."""
        return (
            _rebuild_response_info,
            (
                self.status_code,
                self.request_id,
                tuple(self.headers.items()),
                self.attempts,
                self.elapsed,
            ),
        )


def _rebuild_response_info(
    status_code: int,
    request_id: str | None,
    headers: tuple[tuple[str, str], ...],
    attempts: int,
    elapsed: float,
) -> ResponseInfo:
    return ResponseInfo(
        status_code, request_id, CIMultiDictProxy(CIMultiDict(headers)), attempts, elapsed
    )


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go-style duration such as ``"6m0s"`` or ``"250ms"``, else ``None``.

    Reads what OpenAI sends in ``x-ratelimit-reset-*``: one or more components, each a
    decimal number (``"1"``, ``"1.5"``, ``".5"``) followed by a unit out of ``h``, ``m``,
    ``s``, ``ms``, ``us``, ``µs`` and ``ns``. A bare number (``"12"``, ``"0.5"``), as some
    gateways send, is read as seconds. Surrounding spaces and tabs are ignored.

    ``None`` for anything else, never an exception: empty text, a sign (no reset lies
    in the past, so ``"-1s"`` and also ``"+1s"`` are refused), an unknown unit, a number
    without a unit after a component (``"1s1"``), exponents, ``nan`` and ``inf``, more
    than 64 characters, and durations too long for Go's int64
    nanoseconds (about 292 years).
    """
    if len(text) > _MAX_TEXT_LENGTH:
        return None
    text = text.strip(_OWS)
    length = len(text)
    if not length:
        return None
    parts: list[float] = []
    index = 0
    while index < length:
        start = index
        while index < length and text[index] in _DIGITS:
            index += 1
        if index < length and text[index] == ".":
            index += 1
            while index < length and text[index] in _DIGITS:
                index += 1
        number = text[start:index]
        if number in {"", "."}:
            return None
        unit_start = index
        while index < length and text[index] not in _DIGITS and text[index] != ".":
            index += 1
        unit = text[unit_start:index]
        if not unit:
            # A number without a unit is only allowed as the whole text ("1..5s" stops
            # its first number at the second dot, so the end must be checked too).
            if start or index < length:
                return None
            parts.append(float(number))
            break
        scale = _UNITS.get(unit)
        if scale is None:
            return None
        multiplier, divisor = scale
        parts.append(float(number) * multiplier / divisor)
    # fsum: "1h2m3.5s" should add up to exactly what the parts say.
    total = math.fsum(parts)
    if not total <= _MAX_DURATION_SECONDS:  # "not <=" also catches inf and nan
        return None
    return total


def rate_limit_from_headers(headers: Mapping[str, str]) -> RateLimit:
    """The :class:`RateLimit` in ``headers``; names are matched case-insensitively.

    ``headers`` is usually an aiohttp ``CIMultiDictProxy``, but any mapping works,
    a plain ``dict`` included. When a name occurs more than once (a multidict, or a dict
    holding both ``X-RateLimit-...`` and ``x-ratelimit-...``), the first value counts.
    Counts are plain decimal integers; an absent or unreadable header gives ``None``.
    """
    found = _find(headers, _RATE_LIMIT_HEADERS)
    return RateLimit(
        limit_requests=_parse_count(found.get(_LIMIT_REQUESTS)),
        remaining_requests=_parse_count(found.get(_REMAINING_REQUESTS)),
        reset_requests=_parse_duration(found.get(_RESET_REQUESTS)),
        limit_tokens=_parse_count(found.get(_LIMIT_TOKENS)),
        remaining_tokens=_parse_count(found.get(_REMAINING_TOKENS)),
        reset_tokens=_parse_duration(found.get(_RESET_TOKENS)),
    )


def request_budget_from_headers(
    headers: Mapping[str, str],
) -> tuple[int | None, float | None, int | None]:
    """``(remaining, reset, limit)`` of the request budget, read as :class:`RateLimit` reads them.

    Only the three ``x-ratelimit-*-requests`` headers: pacing reads them from every answer,
    and skipping the token headers and the record makes that two to three times cheaper.
    """
    found = _find(headers, _REQUEST_BUDGET_HEADERS)
    return (
        _parse_count(found.get(_REMAINING_REQUESTS)),
        _parse_duration(found.get(_RESET_REQUESTS)),
        _parse_count(found.get(_LIMIT_REQUESTS)),
    )


def processing_ms_from_headers(headers: Mapping[str, str]) -> int | None:
    """Whole milliseconds in ``openai-processing-ms``, or ``None`` if absent or unreadable.

    The header is an integer (``"123"``); the decimal form some servers send (``"123.4"``)
    is rounded down, to the whole milliseconds that certainly elapsed. Signs, exponents
    and anything else that is not plain decimal digits give ``None``.
    """
    raw = _find(headers, (_PROCESSING_MS,)).get(_PROCESSING_MS)
    if raw is None or len(raw) > _MAX_TEXT_LENGTH:
        return None
    whole, dot, fraction = raw.strip(_OWS).partition(".")
    if dot and not all(character in _DIGITS for character in fraction):
        return None
    return _parse_count(whole)


def response_info(
    status_code: int,
    headers: Mapping[str, str],
    *,
    request_id: str | None,
    attempts: int,
    elapsed: float,
) -> ResponseInfo:
    """Build the :class:`ResponseInfo` of an answer from its status and headers.

    ``headers`` is copied, so changing the mapping afterwards does not change the record.
    """
    return ResponseInfo(
        status_code=status_code,
        request_id=request_id,
        headers=_frozen_headers(headers),
        attempts=attempts,
        elapsed=elapsed,
    )


def _find(headers: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The first value of each of the lowercase ``names`` in ``headers``, by any case."""
    if isinstance(headers, CIMultiDictProxy | CIMultiDict):
        # Case-insensitive already: a lookup per name beats a pass over every header.
        return {name: value for name in names if (value := headers.get(name)) is not None}
    wanted = set(names)
    found: dict[str, str] = {}
    # One pass over the items works for every mapping, case-insensitive or not, and a
    # multidict yields its repeated names in order, so the first value wins everywhere.
    for key, value in headers.items():
        name = key.lower()
        if name in wanted and name not in found:
            found[name] = value
            if len(found) == len(wanted):
                break
    return found


def _parse_count(raw: str | None) -> int | None:
    """A non-negative decimal integer in ``raw``, or ``None``.

    Only ASCII digits count: ``str.isdigit`` also accepts "²", and ``int()`` accepts
    signs, underscores and non-ASCII digits, none of which a server means.
    """
    if raw is None or len(raw) > _MAX_TEXT_LENGTH:
        return None
    text = raw.strip(_OWS)
    if not text or not all(character in _DIGITS for character in text):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > _MAX_COUNT_DIGITS:
        return None
    count = int(digits)
    return count if count <= _MAX_COUNT else None


def _parse_duration(raw: str | None) -> float | None:
    """:func:`parse_go_duration` of ``raw``, or ``None`` when there is no header."""
    return None if raw is None else parse_go_duration(raw)
