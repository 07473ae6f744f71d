"""A forward HTTP proxy on 127.0.0.1 for tests: CONNECT tunnels and absolute-form requests.

``async with ForwardProxy() as proxy:`` listens on a free loopback port at ``proxy.url``.
It tunnels ``CONNECT host:port`` byte for byte (so it sees HTTPS traffic only encrypted),
and forwards plain requests in absolute form (``GET http://host:port/path HTTP/1.1``) as
they are, relaying the answer back byte for byte: a fault of the target (a dropped
connection, a truncated body) reaches the client as it happened. ``proxy.seen`` records
each request the proxy received. It is a test helper, so it stays small and safe:

- it connects to loopback addresses only, and refuses any other target with a 403;
- it serves one request per connection (every answer says ``Connection: close``), a
  bounded number of connections at once, with bounded heads and bodies;
- leaving the ``async with`` closes every connection and re-raises the first unexpected
  error a connection handler met, so a bug in the proxy fails the test that used it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import secrets
import socket
from types import TracebackType
from urllib.parse import urlsplit

import attrs

__all__ = ["ForwardProxy", "ProxiedRequest"]

# Headers meant for the next hop only: a proxy does not pass them on (RFC 9110, 7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_REASONS = {
    200: "Connection Established",
    400: "Bad Request",
    403: "Forbidden",
    407: "Proxy Authentication Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_MAX_PORT = 65535


@attrs.define
class ProxiedRequest:
    """One request the proxy received, as the proxy saw it (header values left out)."""

    #: ``CONNECT`` for a tunnel, else the forwarded request's method.
    method: str
    #: The request target: ``host:port`` for CONNECT, the absolute URL otherwise.
    target: str
    #: The names of the headers the proxy could read, in the order they came.
    header_names: tuple[str, ...]
    #: Whether an ``Authorization`` header was readable by the proxy (never, for HTTPS).
    authorization_visible: bool
    #: What the client got: the proxy's own status (200 once a tunnel is open, or a
    #: refusal), or the target's for a forwarded request; ``None`` until known.
    status: int | None = None
    #: Bytes relayed through a CONNECT tunnel so far, both ways together.
    tunnelled_bytes: int = 0


class _Refusal(Exception):
    """The proxy answers the request itself with ``status`` and closes."""

    def __init__(self, status: int, extra_headers: tuple[str, ...] = ()) -> None:
        super().__init__(status)
        self.status = status
        self.extra_headers = extra_headers


class ForwardProxy:
    """A forward proxy on 127.0.0.1 that tunnels CONNECT and forwards absolute-form HTTP.

    With ``username`` and ``password`` it requires ``Proxy-Authorization: Basic ...``
    and answers 407 with ``Proxy-Authenticate`` otherwise. ``seen`` lists the requests
    received, oldest first.
    """

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        max_connections: int = 32,
        max_head_bytes: int = 64 * 1024,
        max_body_bytes: int = 1024 * 1024,
        timeout: float = 10.0,
        hosts: dict[str, str] | None = None,
    ) -> None:
        """Prepare the proxy; it listens only once entered.

        ``timeout`` bounds reading a request head and connecting to a target: a guard
        against a test that hangs, not a wait any passing test reaches.
        """
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self._expected_authorization: bytes | None = None
        if username is not None and password is not None:
            pair = f"{username}:{password}".encode()
            self._expected_authorization = b"Basic " + base64.b64encode(pair)
        self._max_connections = max_connections
        self._max_head_bytes = max_head_bytes
        self._max_body_bytes = max_body_bytes
        self._timeout = timeout
        # Names the proxy resolves itself, to loopback only: a client may then ask for a
        # name that is not loopback to it (so its environment proxy applies) and still
        # reach a local server.
        self._hosts = {
            name.lower(): address
            for name, address in (hosts or {}).items()
            if ipaddress.ip_address(address).is_loopback
        }
        #: Every request received, oldest first.
        self.seen: list[ProxiedRequest] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._errors: list[BaseException] = []

    @property
    def url(self) -> str:
        """The proxy's URL, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("The proxy is not running; enter it first")
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> ForwardProxy:
        """Start listening on a free loopback port."""
        # The reader's limit bounds a request head: readuntil() refuses a longer one.
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, limit=self._max_head_bytes
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close every connection and stop; re-raise a handler's unexpected error."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        if self._errors and exc is None:
            raise self._errors[0]

    # -- one connection ---------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # start_server runs each connection in a task
        self._handlers.add(task)
        try:
            if len(self._handlers) > self._max_connections:
                await self._refuse(reader, writer, 503)
                return
            await self._one_request(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # a peer hung up: nothing to answer
        except Exception as error:  # a bug of the proxy: fail the test on exit
            self._errors.append(error)
        finally:
            self._handlers.discard(task)
            await _close(writer)

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            await self._refuse(reader, writer, 431)
            return
        except asyncio.IncompleteReadError as error:
            if error.partial:  # a head cut short; an idle connection closing is normal
                await self._refuse(reader, writer, 400)
            return
        except TimeoutError:
            await self._refuse(reader, writer, 400)
            return
        method, target, headers = _parse_head(head)
        record = ProxiedRequest(
            method=method,
            target=target,
            header_names=tuple(name for name, _ in headers),
            authorization_visible=any(name.lower() == "authorization" for name, _ in headers),
        )
        self.seen.append(record)
        if not method or not target:
            record.status = 400
            await self._refuse(reader, writer, 400)
            return
        try:
            self._check_proxy_authorization(headers)
            if method == "CONNECT":
                await self._tunnel(record, reader, writer)
            else:
                await self._forward(record, method, headers, reader, writer)
        except _Refusal as refusal:
            record.status = refusal.status
            await self._refuse(reader, writer, refusal.status, refusal.extra_headers)

    async def _refuse(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        extra_headers: tuple[str, ...] = (),
    ) -> None:
        """Answer ``status`` and end the connection without destroying the answer.

        Closing a socket whose input was not all read makes the kernel send a reset,
        which can discard the answer before the client reads it (a client that sent a
        body, or a head over the limit). So: answer, half-close, and read what the
        client already sent until it closes, within bounds.
        """
        await _answer(writer, status, extra_headers)
        if writer.can_write_eof():
            writer.write_eof()
        discarded = 0
        with contextlib.suppress(OSError, TimeoutError):
            # A bound, not a wait: a client closes as soon as it reads the answer.
            async with asyncio.timeout(self._timeout):
                while chunk := await reader.read(64 * 1024):
                    discarded += len(chunk)
                    if discarded > self._max_body_bytes:
                        break

    def _check_proxy_authorization(self, headers: list[tuple[str, str]]) -> None:
        if self._expected_authorization is None:
            return
        given = [value for name, value in headers if name.lower() == "proxy-authorization"]
        scheme, _, credentials = (given[0] if len(given) == 1 else "").partition(" ")
        sent = b"Basic " + credentials.strip().encode("latin-1", "replace")
        if scheme.lower() != "basic" or not secrets.compare_digest(
            sent, self._expected_authorization
        ):
            raise _Refusal(407, ('Proxy-Authenticate: Basic realm="test proxy"',))

    # -- CONNECT ----------------------------------------------------------------------

    async def _tunnel(
        self,
        record: ProxiedRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        host, port = _split_authority(record.target)
        upstream_reader, upstream_writer = await self._connect(host, port)
        try:
            record.status = 200
            await _answer(writer, 200, close=False)
            pumps = [
                asyncio.create_task(_pump(reader, upstream_writer, record)),
                asyncio.create_task(_pump(upstream_reader, writer, record)),
            ]
            try:
                # Either side closing ends the tunnel: a test needs no half-closed state.
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            await _close(upstream_writer)

    # -- absolute-form requests -------------------------------------------------------

    async def _forward(
        self,
        record: ProxiedRequest,
        method: str,
        headers: list[tuple[str, str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        try:  # urlsplit and .port refuse a malformed IPv6 literal or port with ValueError
            parts = urlsplit(record.target)
            port = parts.port or 80
        except ValueError:
            raise _Refusal(400) from None
        if parts.scheme != "http" or not parts.hostname:
            raise _Refusal(400)  # origin form, or a scheme a plain proxy cannot speak
        names = {name.lower() for name, _ in headers}
        if "transfer-encoding" in names:
            raise _Refusal(501)  # no test sends a chunked request body
        body = await self._read_body(headers, reader)
        upstream_reader, upstream_writer = await self._connect(parts.hostname, port)
        try:
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            lines = [f"{method} {path} HTTP/1.1"]
            if "host" not in names:
                lines.append(f"Host: {parts.netloc}")
            lines += [
                f"{name}: {value}" for name, value in headers if name.lower() not in _HOP_BY_HOP
            ]
            lines.append("Connection: close")
            upstream_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await upstream_writer.drain()
            try:
                answer_head = await upstream_reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                raise _Refusal(502) from None
            status_line, answer_headers = _split_answer_head(answer_head)
            try:
                record.status = int(status_line.split()[1])
            except (IndexError, ValueError):
                raise _Refusal(502) from None
            # One request per connection: the client must not reuse this one.
            kept = [line for line in answer_headers if not _is_hop_by_hop_line(line)]
            out = "\r\n".join([status_line, *kept, "Connection: close"]) + "\r\n\r\n"
            writer.write(out.encode("latin-1"))
            await _pump(upstream_reader, writer, None)
        finally:
            await _close(upstream_writer)

    async def _read_body(
        self, headers: list[tuple[str, str]], reader: asyncio.StreamReader
    ) -> bytes:
        lengths = {value.strip() for name, value in headers if name.lower() == "content-length"}
        if not lengths:
            return b""
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise _Refusal(400)
        length = int(next(iter(lengths)))
        if length > self._max_body_bytes:
            raise _Refusal(413)
        return await reader.readexactly(length)

    # -- targets ----------------------------------------------------------------------

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connect to ``host``:``port`` if it is on loopback; refuse anything else."""
        address = self._hosts.get(host.lower()) or await _loopback_address(host, port)
        if address is None:
            raise _Refusal(403)
        try:
            async with asyncio.timeout(self._timeout):
                return await asyncio.open_connection(address, port)
        except TimeoutError:
            raise _Refusal(504) from None
        except OSError:
            raise _Refusal(502) from None


async def _loopback_address(host: str, port: int) -> str | None:
    """The loopback address to connect to for ``host``, or ``None`` when it is not one.

    Only IP literals and ``localhost`` are considered: no other name is even resolved,
    so a test never sends a DNS query. ``localhost`` is used only if every address it
    resolves to is loopback, and the connection goes to an address that was checked.
    """
    if not 0 < port <= _MAX_PORT:
        return None
    try:
        return host if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        pass
    if host.lower() != "localhost":
        return None
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        return None
    return addresses[0]


def _split_authority(target: str) -> tuple[str, int]:
    """``host`` and ``port`` of a CONNECT target (``[v6]:port`` or ``host:port``)."""
    if target.startswith("["):
        host, bracket, rest = target[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise _Refusal(400)
        raw_port = rest[1:]
    else:
        host, colon, raw_port = target.rpartition(":")
        if not colon:
            raise _Refusal(400)
    if not host or not raw_port.isascii() or not raw_port.isdigit():
        raise _Refusal(400)
    return host, int(raw_port)


def _parse_head(head: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    """Method, target and headers of a request head; empty method or target if malformed."""
    # latin-1 maps every byte to one character, so any head decodes and re-encodes as is.
    request_line, *lines = head.decode("latin-1").split("\r\n")
    parts = request_line.split(" ")
    method, target = (parts[0], parts[1]) if len(parts) == 3 else ("", "")
    headers = []
    for line in lines:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            return "", "", []
        headers.append((name.strip(), value.strip()))
    return method, target, headers


def _split_answer_head(head: bytes) -> tuple[str, list[str]]:
    status_line, *lines = head.decode("latin-1").split("\r\n")
    return status_line, [line for line in lines if line]


def _is_hop_by_hop_line(line: str) -> bool:
    return line.partition(":")[0].strip().lower() in _HOP_BY_HOP - {"transfer-encoding"}


async def _pump(
    source: asyncio.StreamReader, sink: asyncio.StreamWriter, record: ProxiedRequest | None
) -> None:
    """Copy ``source`` to ``sink`` until ``source`` ends, counting into ``record``."""
    while chunk := await source.read(64 * 1024):
        if record is not None:
            record.tunnelled_bytes += len(chunk)
        sink.write(chunk)
        await sink.drain()


async def _answer(
    writer: asyncio.StreamWriter,
    status: int,
    extra_headers: tuple[str, ...] = (),
    *,
    close: bool = True,
) -> None:
    """The proxy's own answer: a status line, a few headers, no body."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", *extra_headers]
    if close:
        lines += ["Content-Length: 0", "Connection: close"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    with contextlib.suppress(OSError):
        await writer.drain()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
