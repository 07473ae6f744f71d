"""Which proxy a request goes through, as pure rules.

As the official SDK does, the client's own session honours ``HTTP_PROXY``,
``HTTPS_PROXY``, ``ALL_PROXY`` and ``NO_PROXY`` (either case; lower case wins), read once
when the client is made; ``proxy=`` names one explicitly and wins over the environment.
A variable's value without a scheme means ``http://``; one that cannot be used (SOCKS)
is an error only for a request that would go through it. Requests to loopback
(``localhost``, ``127.0.0.0/8``, ``::1``) never go through an environment proxy, as in
Go's ``ProxyFromEnvironment``: a local fake API or sidecar is never meant to be reached
through a corporate proxy. HTTPS goes through a proxy as a
``CONNECT`` tunnel, so the proxy sees neither the key nor the answers.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping

import attrs
from yarl import URL

from ._errors import FineTuneCkptError

__all__ = ["ProxyRules", "check_proxy_url"]

_SCHEMES = ("http", "https", "all")


def check_proxy_url(value: object, *, source: str) -> URL:
    """Return ``value`` as a proxy URL aiohttp can use, or raise naming ``source``.

    A value without a scheme (``proxy.corp:3128``) means ``http://``, as curl and the
    official SDK read it. The message never shows the URL: it may hold a password.
    """
    if not isinstance(value, str | URL):
        raise TypeError(f"{source} must be a str or None, not {type(value).__name__}")
    text = str(value).strip()
    if "://" not in text:
        text = f"http://{text}"
    try:
        url = URL(text)
        url.port  # noqa: B018 - yarl checks the port only when asked
    except ValueError:
        raise ValueError(f"{source} is not a valid proxy URL") from None
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(
            f"{source} must be an http:// or https:// proxy URL with a host "
            f"(scheme {url.scheme!r}; SOCKS proxies are not supported)"
        )
    return url


@attrs.frozen
class ProxyRules:
    """The proxy of each request: an explicit one, else the environment's, else none."""

    #: ``proxy=``: every request goes through it.
    explicit: URL | None = None
    #: The environment's proxies by URL scheme (``http``, ``https``, ``all``); a string
    #: instead of a URL says why that variable's value cannot be used.
    by_scheme: Mapping[str, URL | str] = attrs.field(factory=dict)
    #: The environment's ``NO_PROXY`` list, as written.
    no_proxy: str = ""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], *, explicit: URL | None) -> ProxyRules:
        """Read ``*_PROXY`` variables from ``environ`` (lower case first, as curl does)."""
        by_scheme: dict[str, URL | str] = {}
        for scheme in _SCHEMES:
            name = f"{scheme}_proxy"
            value = environ.get(name) or environ.get(name.upper())
            if value and value.strip():
                # An unusable value (a SOCKS proxy, say) only matters to a request that
                # would go through it: other tools' variables must not stop the client.
                try:
                    by_scheme[scheme] = check_proxy_url(
                        value, source=f"The {name.upper()} variable"
                    )
                except ValueError as exc:
                    by_scheme[scheme] = str(exc)
        no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
        return cls(explicit=explicit, by_scheme=by_scheme, no_proxy=no_proxy)

    def proxy_for(self, url: URL) -> URL | None:
        """The proxy to send a request for ``url`` through, or ``None`` to go direct."""
        if self.explicit is not None:
            return self.explicit
        if not self.by_scheme or url.host is None or _is_loopback(url.host):
            return None
        proxy = self.by_scheme.get(url.scheme) or self.by_scheme.get("all")
        if proxy is None:
            return None
        if self.no_proxy and _bypassed(url, self.no_proxy):
            return None
        if isinstance(proxy, str):
            raise FineTuneCkptError(f"{proxy}; this request would go through it")
        return proxy

    def secrets(self) -> tuple[str, ...]:
        """What of the proxies' user info must never show in an error."""
        found: list[str] = []
        for proxy in (self.explicit, *self.by_scheme.values()):
            if not isinstance(proxy, URL) or proxy.password is None:
                continue
            user_pass = f"{proxy.user or ''}:{proxy.password}"
            found += [proxy.password, user_pass, base64.b64encode(user_pass.encode()).decode()]
            found += [proxy.raw_password or "", f"{proxy.raw_user or ''}:{proxy.raw_password}"]
        return tuple(secret for secret in found if len(secret) >= 3)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bypassed(url: URL, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts ``url``: curl's and httpx's rules.

    Entries are comma separated: ``*`` (everything), a host name that also covers its
    subdomains (``example.com``, ``.example.com`` and ``*.example.com`` alike), an IP
    address or network (``10.0.0.0/8``), each with an optional ``:port``.
    """
    host = (url.host or "").lower().rstrip(".")
    for raw_entry in no_proxy.split(","):
        entry = raw_entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry, port = _split_port(entry)
        if port is not None and port != url.port:
            continue
        if _host_matches(host, entry):
            return True
    return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [::1]:8080
        address, _, rest = entry[1:].partition("]")
        port = rest.removeprefix(":")
        return address, int(port) if port.isdigit() else None
    name, colon, port = entry.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        return name, int(port)
    return entry, None


def _host_matches(host: str, entry: str) -> bool:
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        name = entry.removeprefix("*").removeprefix(".").rstrip(".")
        return bool(name) and (host == name or host.endswith("." + name))
    try:
        return ipaddress.ip_address(host.strip("[]")) in network
    except ValueError:
        return False
