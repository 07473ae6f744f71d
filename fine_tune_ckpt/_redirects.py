"""The redirect rules, as pure functions: where a 3xx answer leads, and what goes there.

The transport follows redirects itself instead of letting aiohttp do it, so that:

- credentials (``Authorization``, ``OpenAI-Organization``, ``OpenAI-Project``) are sent
  only to the origin the request was meant for, never to another scheme, host or port;
- a redirect loop, a redirect to a non-HTTP URL or an endless chain is a clear
  :class:`APIStatusError` at once: none of them is transient, so none is retried.
"""

from __future__ import annotations

from collections.abc import Mapping

from yarl import URL

from ._errors import APIStatusError
from ._redact import without_user_info

__all__ = ["MAX_REDIRECTS", "REDIRECT_STATUSES", "redirect_target", "same_origin"]

#: The most redirects one attempt follows, as aiohttp's and browsers' defaults.
MAX_REDIRECTS = 10
#: Answers that point elsewhere with ``Location``; for a GET they all mean "GET there".
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def redirect_target(
    url: URL,
    status: int,
    headers: Mapping[str, str],
    *,
    visited: set[URL],
    request_id: str | None = None,
) -> URL | None:
    """Return where a ``status`` answer to ``url`` sends the request, or ``None``.

    ``None`` means the answer is not a redirect to follow (not a redirect status, or no
    ``Location``): it is the answer. ``visited`` holds the URLs this attempt has asked
    already (``url`` included); a target among them is a loop. Raises
    :class:`APIStatusError` for a loop, a non-HTTP target, an unreadable ``Location`` or
    more than :data:`MAX_REDIRECTS` redirects.
    """
    location = headers.get("Location")
    if status not in REDIRECT_STATUSES or location is None:
        return None

    def refuse(reason: str) -> APIStatusError:
        return APIStatusError(
            f"Error code: {status} - {reason}",
            status_code=status,
            request_id=request_id,
            headers=headers,
        )

    try:
        target = url.join(URL(location.strip()))
    except ValueError:
        raise refuse("the API redirected to an unreadable Location") from None
    if target.scheme not in {"http", "https"} or not target.host:
        raise refuse(
            f"the API redirected to a non-HTTP URL {str(without_user_info(target))!r}; not followed"
        )
    if target.user is not None or target.password is not None:
        # aiohttp would send them as Basic credentials (or refuse with a bare ValueError).
        raise refuse("the API redirected to a URL holding credentials; not followed")
    target = target.with_fragment(None)
    if target in visited:
        raise refuse(
            f"redirect loop: {str(without_user_info(target))!r} was already asked in this request"
        )
    if len(visited) > MAX_REDIRECTS:
        raise refuse(f"more than {MAX_REDIRECTS} redirects; not followed")
    return target


def same_origin(url: URL, origin: URL) -> bool:
    """Tell whether ``url`` is on ``origin`` (same scheme, host and port)."""
    return url.scheme == origin.scheme and url.host == origin.host and url.port == origin.port
