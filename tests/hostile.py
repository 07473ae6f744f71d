"""A loopback HTTP server that answers with whatever bytes a test scripts.

The fake API only ever sends well-formed HTTP; a hostile or broken server does not. This
one reads each request's head, records it, and writes the raw answer a test chose for
that request: malformed headers, bodies that lie about their encoding, redirect chains.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType

import attrs

__all__ = ["RawRequest", "RawServer", "http_answer"]


@attrs.frozen
class RawRequest:
    """One request as it arrived: its request line and headers (names lower-cased)."""

    target: str
    headers: dict[str, str]


def http_answer(
    status: int = 200,
    body: bytes = b"",
    *,
    headers: dict[str, str] | None = None,
    reason: str = "Whatever",
    content_length: bool = True,
) -> bytes:
    """Build a raw HTTP/1.1 answer; ``headers`` are written exactly as given."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    all_headers = {"Connection": "close", **(headers or {})}
    if content_length and "Content-Length" not in all_headers:
        all_headers["Content-Length"] = str(len(body))
    lines.extend(f"{name}: {value}" for name, value in all_headers.items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


Script = Callable[[RawRequest], bytes | None]


class RawServer:
    """``async with RawServer(script) as server:``; ``script(request)`` gives the bytes to send.

    ``None`` from the script closes the connection without an answer.
    """

    def __init__(self, script: Script) -> None:
        self._script = script
        self.requests: list[RawRequest] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def base_url(self) -> str:
        """The URL to pass as ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> RawServer:
        """Start listening on a free loopback port."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop listening and end every open connection."""
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                target = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                request = RawRequest(target, headers)
                self.requests.append(request)
                answer = self._script(request)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower().split(b"\r\n\r\n")[0]:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._handlers.discard(task)
