"""Keeping secrets out of the exceptions this library raises, as pure functions.

aiohttp's exceptions carry the request they failed on: ``ClientResponseError`` (and so
``TooManyRedirects``, ``ContentTypeError`` and the parser errors it wraps) holds
``request_info`` with every request header, ``Authorization`` included, and ``history``
holds earlier responses with theirs. Chained as ``__cause__``, they would put the API key
into ``repr(error.__cause__)``, tracebacks and error trackers. Before a failure becomes a
cause of ours, :func:`scrub_chain` rebuilds every link of its chain that mentions a secret:
the same exception type where it can be rebuilt, with the same status and message, and
the secret headers' values replaced; a plain stand-in naming the original type otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

__all__ = [
    "REDACTED",
    "RedactedError",
    "mentions_secret",
    "redacted_text",
    "redacted_value",
    "scrub_chain",
    "scrub_error",
    "secrets_of",
    "without_user_info",
]

#: What a secret is replaced with.
REDACTED = "<redacted>"


class RedactedError(Exception):
    """Stands in for an exception that could not be rebuilt without a secret.

    Its message names the original type and keeps its text with every secret replaced.
    """


def without_user_info(url: URL) -> URL:
    """``url`` for messages and spans: never with user info, which could hold a secret."""
    return url.with_user(None) if url.user is not None or url.password is not None else url


def secrets_of(header_values: Iterable[str]) -> tuple[str, ...]:
    """The strings that must never appear in an error: each value and its credential part.

    ``"Bearer sk-abc"`` yields both itself and ``"sk-abc"``, so an error quoting only the
    key is caught as well as one quoting the whole header.
    """
    found: list[str] = []
    for value in header_values:
        if not value:
            continue
        found.append(value)
        scheme, _, credential = value.partition(" ")
        if credential and scheme.isalpha():
            found.append(credential.strip())
    return tuple(secret for secret in found if secret)


def mentions_secret(exc: BaseException, secrets: tuple[str, ...]) -> bool:
    """Tell whether ``exc`` shows a secret in its text, its arguments or its attributes."""
    if not secrets:
        return False
    texts = [_safe_repr(exc), _safe_str(exc), _safe_repr(exc.args)]
    attributes = getattr(exc, "__dict__", {})
    texts.extend(_safe_repr(value) for value in attributes.values())
    # ClientResponseError's request_info repr shows its headers; history holds responses
    # whose repr does not, though each has a request_info of its own.
    for response in getattr(exc, "history", ()) or ():
        texts.append(_safe_repr(getattr(response, "request_info", None)))
    return any(secret in text for secret in secrets for text in texts)


def scrub_chain(exc: BaseException, secrets: tuple[str, ...]) -> BaseException:
    """Return ``exc`` with every link of its ``__cause__``/``__context__`` chain free of secrets.

    Links that show no secret are kept as they are (their tracebacks included); a link
    that does is replaced by a rebuilt copy. The result may be ``exc`` itself.
    """
    return _scrub(exc, secrets, {})


def _scrub(
    exc: BaseException, secrets: tuple[str, ...], done: dict[int, BaseException]
) -> BaseException:
    known = done.get(id(exc))
    if known is not None:  # chains can loop: each exception is handled once
        return known
    clean = _rebuilt(exc, secrets) if mentions_secret(exc, secrets) else exc
    done[id(exc)] = clean
    cause, context = exc.__cause__, exc.__context__
    clean.__cause__ = None if cause is None else _scrub(cause, secrets, done)
    clean.__context__ = None if context is None else _scrub(context, secrets, done)
    clean.__suppress_context__ = exc.__suppress_context__
    return clean


def scrub_error(exc: BaseException, secrets: tuple[str, ...]) -> None:
    """Replace, in place, every secret in ``exc``'s arguments and attributes.

    For our own errors built from what a server sent: a server may echo the request's
    ``Authorization`` in an error body, a header or a page it sends back. The exceptions
    ``exc`` was raised from are scrubbed as by :func:`scrub_chain`.
    """
    if not secrets:
        return
    if mentions_secret(exc, secrets):
        exc.args = tuple(redacted_value(argument, secrets) for argument in exc.args)
        for name, value in list(vars(exc).items()):
            setattr(exc, name, redacted_value(value, secrets))
    # What it was raised from (a cattrs report quoting the bad values, say) too.
    if exc.__cause__ is not None:
        exc.__cause__ = scrub_chain(exc.__cause__, secrets)
    if exc.__context__ is not None:
        exc.__context__ = scrub_chain(exc.__context__, secrets)


def redacted_value(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` (a string, JSON-like data or headers) with every secret replaced."""
    if isinstance(value, str):
        return redacted_text(value, secrets)
    if isinstance(value, bytes):
        for secret in sorted(secrets, key=len, reverse=True):
            value = value.replace(secret.encode(), REDACTED.encode())
        return value
    if isinstance(value, CIMultiDictProxy | CIMultiDict):
        headers = CIMultiDict(
            (redacted_text(name, secrets), redacted_text(item, secrets))
            for name, item in value.items()
        )
        return CIMultiDictProxy(headers)
    if isinstance(value, dict):
        return {
            redacted_text(key, secrets) if isinstance(key, str) else key: redacted_value(
                item, secrets
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return type(value)(redacted_value(item, secrets) for item in value)
    return value


def _rebuilt(exc: BaseException, secrets: tuple[str, ...]) -> BaseException:
    """A copy of ``exc`` without secrets: same type when possible, else a stand-in."""
    if isinstance(exc, aiohttp.ClientResponseError):
        try:
            copy = type(exc)(
                _redacted_request_info(exc.request_info, secrets),
                (),  # earlier responses: each carries its request's headers
                status=exc.status,
                message=redacted_text(exc.message, secrets),
                headers=exc.headers,
            )
        except Exception:  # noqa: S110 - a subclass with another signature: use a stand-in
            pass
        else:
            if not mentions_secret(copy, secrets):
                copy.__traceback__ = exc.__traceback__
                return copy
    stand_in = RedactedError(
        f"{type(exc).__module__}.{type(exc).__qualname__}: {redacted_text(_safe_str(exc), secrets)}"
    )
    stand_in.__traceback__ = exc.__traceback__
    return stand_in


def _redacted_request_info(
    info: aiohttp.RequestInfo, secrets: tuple[str, ...]
) -> aiohttp.RequestInfo:
    headers = CIMultiDict(
        (redacted_text(name, secrets), redacted_text(value, secrets))
        for name, value in info.headers.items()
    )
    return aiohttp.RequestInfo(info.url, info.method, CIMultiDictProxy(headers), info.real_url)


def redacted_text(text: Any, secrets: tuple[str, ...]) -> str:
    """``str(text)`` with every secret replaced by :data:`REDACTED`."""
    result = str(text)
    # Longest first: "Bearer sk-abc" must go whole, not leave "Bearer <redacted>" half-done.
    for secret in sorted(secrets, key=len, reverse=True):
        result = result.replace(secret, REDACTED)
    return result


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not hide the original failure
        return ""


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return ""
