"""The body cap counts decoded bytes: no Content-Encoding lets an answer outgrow memory."""

from __future__ import annotations

import functools
import gzip
import json
import tracemalloc
import zlib
from collections.abc import Callable

import pytest

from fine_tune_ckpt import (
    APIResponseValidationError,
    APIStatusError,
    AsyncClient,
    AuthenticationError,
    InternalServerError,
)
from fine_tune_ckpt._transport import MAX_BODY_BYTES
from fine_tune_ckpt.testing import FakeClock

from .conftest import load_fixture
from .hostile import RawRequest, RawServer, http_answer

KEY = "sk-cap-test-key"
PAGE_JSON = load_fixture("page_spec_example.json")
PAGE = json.dumps(PAGE_JSON).encode()
MIB = 1024 * 1024


def _deflate(data: bytes) -> bytes:
    return zlib.compress(data, 9)


def _raw_deflate(data: bytes) -> bytes:
    # Some servers send RFC 1951 data without the zlib header; aiohttp accepts it.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _brotli(data: bytes) -> bytes:
    brotli = pytest.importorskip("brotli")
    return brotli.compress(data, quality=1)  # type: ignore[no-any-return]


def _zstd(data: bytes) -> bytes:
    zstd = pytest.importorskip("backports.zstd")
    return zstd.compress(data)  # type: ignore[no-any-return]


def _gzip_members(data: bytes) -> bytes:
    # Concatenated gzip members are one valid gzip stream: aiohttp decodes them all.
    half = len(data) // 2
    return gzip.compress(data[:half], 9) + gzip.compress(data[half:], 9)


ENCODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", lambda data: gzip.compress(data, 9)),
    "gzip members": ("gzip", _gzip_members),
    "deflate": ("deflate", _deflate),
    "raw deflate": ("deflate", _raw_deflate),
    "br": ("br", _brotli),
    "zstd": ("zstd", _zstd),
}


def _bomb(inflated: int) -> bytes:
    """Valid JSON that inflates to ``inflated`` bytes: a page padded with spaces."""
    return PAGE + b" " * (inflated - len(PAGE))


@functools.cache
def _compressed_bomb(name: str) -> bytes:
    """The encoded form of a page inflating just past the cap; made once per encoding."""
    _, compress = ENCODINGS[name]
    return compress(_bomb(MAX_BODY_BYTES + MIB))


def _serve(body: bytes, encoding: str, *, chunked: bool) -> Callable[[RawRequest], bytes]:
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
        size = f"{len(body):x}".encode()
        payload = size + b"\r\n" + body + b"\r\n0\r\n\r\n"
        answer = http_answer(200, payload, headers=headers, content_length=False)
    else:
        answer = http_answer(200, body, headers=headers)
    return lambda request: answer


async def _first_page(server: RawServer) -> int:
    async with AsyncClient(
        api_key=KEY, base_url=server.base_url, clock=FakeClock(), max_retries=0
    ) as client:
        page = await client.checkpoints.list("ftjob-abc123")
    return len(page.data)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("name", list(ENCODINGS))
async def test_an_encoded_page_within_the_cap_is_read(name: str, chunked: bool) -> None:
    """A normal page in any encoding aiohttp decodes is read as usual."""
    encoding, compress = ENCODINGS[name]
    async with RawServer(_serve(compress(PAGE), encoding, chunked=chunked)) as server:
        assert await _first_page(server) == len(PAGE_JSON["data"])


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("name", list(ENCODINGS))
async def test_an_encoded_body_past_the_cap_is_refused(name: str, chunked: bool) -> None:
    """A small encoded body that inflates past the cap is refused, whatever the encoding."""
    encoding, _ = ENCODINGS[name]
    body = _compressed_bomb(name)
    assert len(body) < MAX_BODY_BYTES // 100  # the wire size says nothing
    async with RawServer(_serve(body, encoding, chunked=chunked)) as server:
        with pytest.raises(APIResponseValidationError, match="larger than") as caught:
            await _first_page(server)
        assert len(server.requests) == 1  # a hostile answer is not retried
    assert caught.value.status_code == 200


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, AuthenticationError), (500, InternalServerError), (418, APIStatusError)],
)
async def test_an_error_answer_past_the_cap_keeps_its_status(
    status: int, error: type[APIStatusError]
) -> None:
    """A bomb sent with an error status is that status's error, its body left unread."""
    body = _compressed_bomb("gzip")
    headers = {"Content-Encoding": "gzip"}
    async with RawServer(lambda request: http_answer(status, body, headers=headers)) as server:
        with pytest.raises(error, match="larger than") as caught:
            await _first_page(server)
    assert caught.value.status_code == status
    assert caught.value.body is None


@pytest.mark.parametrize("encoding", ["x-gzip", "compress", "gzip, gzip", "GZIP2"])
async def test_an_encoding_aiohttp_does_not_decode_is_a_clear_error(encoding: str) -> None:
    """An answer in an encoding aiohttp leaves alone is an APIResponseValidationError."""
    body = gzip.compress(PAGE)
    async with RawServer(_serve(body, encoding, chunked=False)) as server:
        with pytest.raises(APIResponseValidationError, match="not JSON"):
            await _first_page(server)


async def test_a_decompression_bomb_keeps_memory_near_the_cap() -> None:
    """A 200 KiB gzip body inflating to 200 MiB is refused with memory near the cap."""
    body = gzip.compress(_bomb(200 * MIB), 9)
    assert len(body) < 400 * 1024
    async with RawServer(_serve(body, "gzip", chunked=False)) as server:
        tracemalloc.start()
        try:
            with pytest.raises(APIResponseValidationError, match="larger than"):
                await _first_page(server)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < MAX_BODY_BYTES + 16 * MIB, f"peak {peak / MIB:.0f} MiB"


async def test_an_identity_body_past_the_cap_without_length_is_refused() -> None:
    """A plain body with no Content-Length is counted as it arrives and refused."""
    body = _bomb(MAX_BODY_BYTES + MIB)
    answer = http_answer(200, body, content_length=False)  # ends when the connection closes
    async with RawServer(lambda request: answer) as server:
        with pytest.raises(APIResponseValidationError, match="larger than"):
            await _first_page(server)


async def test_an_announced_length_past_the_cap_is_refused_before_reading() -> None:
    """A Content-Length past the cap is refused without reading the body."""
    head = http_answer(200, b"", headers={"Content-Length": str(MAX_BODY_BYTES + 1)})
    async with RawServer(lambda request: head + PAGE) as server:
        with pytest.raises(APIResponseValidationError, match="larger than"):
            await _first_page(server)
