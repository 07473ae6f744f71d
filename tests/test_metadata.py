"""The pure response metadata: Go durations, rate-limit headers, processing time, ResponseInfo."""

from __future__ import annotations

import math
import re
import time

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from fine_tune_ckpt._metadata import (
    RateLimit,
    ResponseInfo,
    parse_go_duration,
    processing_ms_from_headers,
    rate_limit_from_headers,
    response_info,
)

ALL_RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-reset-requests": "120ms",
    "x-ratelimit-limit-tokens": "30000",
    "x-ratelimit-remaining-tokens": "29900",
    "x-ratelimit-reset-tokens": "6m0s",
}

FULL_RATE_LIMIT = RateLimit(
    limit_requests=500,
    remaining_requests=499,
    reset_requests=0.12,
    limit_tokens=30000,
    remaining_tokens=29900,
    reset_tokens=360.0,
)

EMPTY_RATE_LIMIT = RateLimit(None, None, None, None, None, None)

# Which RateLimit field each header fills.
FIELD_OF = {
    "x-ratelimit-limit-requests": "limit_requests",
    "x-ratelimit-remaining-requests": "remaining_requests",
    "x-ratelimit-reset-requests": "reset_requests",
    "x-ratelimit-limit-tokens": "limit_tokens",
    "x-ratelimit-remaining-tokens": "remaining_tokens",
    "x-ratelimit-reset-tokens": "reset_tokens",
}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("250ms", 0.25),
        ("1h2m3.5s", 3723.5),
        ("20ms", 0.02),
        ("0s", 0.0),
        ("1.5s", 1.5),
        ("3m", 180.0),
        ("2h", 7200.0),
        ("7us", 7e-6),
        ("7\u00b5s", 7e-6),  # micro sign, as Go writes it
        ("7\u03bcs", 7e-6),  # Greek mu, which Go also reads
        ("300ns", 3e-7),
        ("1m30.25s", 90.25),
        ("1s500ms", 1.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("0", 0.0),
        ("12", 12.0),
        ("0.5", 0.5),
        (" 2s\t", 2.0),
        ("00001s", 1.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    """Each Go duration form, and a bare number, reads as its seconds."""
    assert parse_go_duration(text) == pytest.approx(seconds, rel=1e-12, abs=0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "-1s",
        "+1s",
        "-0s",
        "-12",
        "1x",
        "s",
        "ms",
        "1s1",
        "1h1",
        "1S",
        "1 s",
        "1s 2s",
        ".",
        ".s",
        "1..5s",
        "1.5.s",
        "1e3",
        "1e3s",
        "nan",
        "inf",
        "Infinity",
        "NaN",
        "0x10s",
        "1_000s",
        "\u0661s",  # ARABIC-INDIC DIGIT ONE: int() reads it, no server sends it
        "1\u00a0s",
        "9" * 20 + "h",  # past Go's int64 nanoseconds
        "3000000h",
        "1" * 65,  # over the length cap, though a plain number
        "1s" * 33,
    ],
)
def test_unreadable_durations(text: str) -> None:
    """Anything that is not a non-negative Go duration or bare number is ``None``."""
    assert parse_go_duration(text) is None


def test_the_length_cap_holds_for_huge_text() -> None:
    """Megabytes of text are refused at once, unread."""
    started = time.perf_counter()
    assert parse_go_duration("1" * 10_000_000 + "s") is None
    assert time.perf_counter() - started < 0.5


@given(
    hours=st.none() | st.integers(0, 100_000),
    minutes=st.none() | st.integers(0, 10_000),
    whole_seconds=st.none() | st.integers(0, 10_000),
    fraction=st.none() | st.text("0123456789", min_size=1, max_size=9),
    milliseconds=st.none() | st.integers(0, 100_000),
)
def test_a_built_duration_is_the_sum_of_its_parts(
    hours: int | None,
    minutes: int | None,
    whole_seconds: int | None,
    fraction: str | None,
    milliseconds: int | None,
) -> None:
    """A duration built from hours, minutes, seconds and milliseconds reads as their sum."""
    text = ""
    expected = 0.0
    if hours is not None:
        text += f"{hours}h"
        expected += hours * 3600
    if minutes is not None:
        text += f"{minutes}m"
        expected += minutes * 60
    if whole_seconds is not None:
        seconds = f"{whole_seconds}.{fraction}" if fraction else str(whole_seconds)
        text += f"{seconds}s"
        expected += float(seconds)
    if milliseconds is not None:
        text += f"{milliseconds}ms"
        expected += milliseconds / 1000
    parsed = parse_go_duration(text)
    if not text:
        assert parsed is None
    else:
        assert parsed is not None
        assert math.isclose(parsed, expected, rel_tol=1e-9)


@given(st.text() | st.text("0123456789.hmsunµμ+- \tex", max_size=80))
def test_parse_go_duration_never_raises(text: str) -> None:
    """Any text gives ``None`` or finite, non-negative seconds, never an exception."""
    parsed = parse_go_duration(text)
    assert parsed is None or (math.isfinite(parsed) and parsed >= 0)


# Go's duration grammar without the sign, or a bare number: a reference to check against.
_NUMBER = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
_GO_DURATION = re.compile(rf"(?:{_NUMBER}(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+|{_NUMBER}")


@given(st.text("0123456789.hmsnuµμ \t", max_size=70))
def test_only_the_go_grammar_is_accepted(text: str) -> None:
    """Whatever is read fits Go's duration grammar or is a bare number, and is short."""
    if parse_go_duration(text) is not None:
        assert len(text) <= 64
        assert _GO_DURATION.fullmatch(text.strip(" \t"))


def test_all_rate_limit_headers_are_read() -> None:
    """With every header present, every field is filled."""
    assert rate_limit_from_headers(ALL_RATE_LIMIT_HEADERS) == FULL_RATE_LIMIT


def test_no_rate_limit_headers_give_all_none() -> None:
    """Without the headers, every field is ``None``."""
    assert rate_limit_from_headers({}) == EMPTY_RATE_LIMIT
    assert rate_limit_from_headers({"content-type": "application/json"}) == EMPTY_RATE_LIMIT


BAD_COUNTS = ["", " ", "abc", "-1", "+5", "1.5", "1e3", "0x10", "True", "\u00b2", "9" * 40]
BAD_DURATIONS = ["", " ", "abc", "-1s", "+5s", "1x", "s", "1s1", "nan", "inf", "1" * 65]


@pytest.mark.parametrize(
    ("header", "bad"),
    [
        (header, bad)
        for header in FIELD_OF
        for bad in (BAD_DURATIONS if "-reset-" in header else BAD_COUNTS)
    ],
)
def test_one_unreadable_header_spoils_only_its_field(header: str, bad: str) -> None:
    """An unreadable header is ``None`` in its field while the others are still read."""
    got = rate_limit_from_headers({**ALL_RATE_LIMIT_HEADERS, header: bad})
    assert got == attrs.evolve(FULL_RATE_LIMIT, **{FIELD_OF[header]: None})


@pytest.mark.parametrize(
    ("raw", "count"),
    [
        ("0", 0),
        ("7", 7),
        (" 42 ", 42),
        ("\t42", 42),
        ("007", 7),
        (str(2**63 - 1), 2**63 - 1),
        (str(2**63), None),
        ("1" * 100, None),
        ("1,000", None),
        ("1_000", None),
        ("\u0661", None),  # ARABIC-INDIC DIGIT ONE
        ("\u00b2", None),  # SUPERSCRIPT TWO: str.isdigit() says yes
        ("-0", None),
    ],
)
def test_counts(raw: str, count: int | None) -> None:
    """Counts are plain ASCII decimal integers within int64, spaces around allowed."""
    got = rate_limit_from_headers({"x-ratelimit-remaining-tokens": raw})
    assert got.remaining_tokens == count


def test_plain_dict_names_are_case_insensitive() -> None:
    """A plain dict's names are matched whatever their case."""
    headers = {
        name.upper() if i % 2 else name.title(): value
        for i, (name, value) in enumerate(ALL_RATE_LIMIT_HEADERS.items())
    }
    assert rate_limit_from_headers(headers) == FULL_RATE_LIMIT


def test_multidict_proxy_names_are_case_insensitive() -> None:
    """A CIMultiDictProxy, as aiohttp gives, is read whatever the names' case."""
    headers = CIMultiDictProxy(
        CIMultiDict((name.upper(), value) for name, value in ALL_RATE_LIMIT_HEADERS.items())
    )
    assert rate_limit_from_headers(headers) == FULL_RATE_LIMIT


def test_the_first_of_repeated_names_counts() -> None:
    """When a name occurs twice, by case in a dict or repeated in a multidict, the first wins."""
    assert (
        rate_limit_from_headers(
            {"X-RateLimit-Limit-Tokens": "1", "x-ratelimit-limit-tokens": "2"}
        ).limit_tokens
        == 1
    )
    repeated = CIMultiDict([("x-ratelimit-limit-tokens", "3"), ("X-RATELIMIT-LIMIT-TOKENS", "4")])
    assert rate_limit_from_headers(CIMultiDictProxy(repeated)).limit_tokens == 3


@pytest.mark.parametrize(
    ("raw", "milliseconds"),
    [
        ("123", 123),
        ("0", 0),
        (" 123 ", 123),
        ("123.4", 123),
        ("123.9", 123),  # rounded down: whole milliseconds that certainly elapsed
        ("123.", 123),
        ("0.999", 0),
        ("", None),
        ("abc", None),
        ("-5", None),
        ("+5", None),
        ("-0.5", None),
        (".5", None),
        ("1.2.3", None),
        ("1e3", None),
        ("nan", None),
        ("inf", None),
        ("12ms", None),
        ("9" * 30, None),
        ("1." + "0" * 100, None),
    ],
)
def test_processing_ms(raw: str, milliseconds: int | None) -> None:
    """``openai-processing-ms`` reads as whole milliseconds, rounded down, else ``None``."""
    assert processing_ms_from_headers({"OpenAI-Processing-Ms": raw}) == milliseconds


def test_processing_ms_absent() -> None:
    """Without the header there is no processing time."""
    assert processing_ms_from_headers({}) is None
    assert processing_ms_from_headers(CIMultiDictProxy(CIMultiDict())) is None


def _info(headers: dict[str, str] | CIMultiDict[str]) -> ResponseInfo:
    return response_info(200, headers, request_id="req_1", attempts=2, elapsed=1.25)


def test_response_info_reads_everything() -> None:
    """``response_info`` fills every field from its arguments and the headers."""
    info = _info({**ALL_RATE_LIMIT_HEADERS, "openai-processing-ms": "88"})
    assert info.status_code == 200
    assert info.request_id == "req_1"
    assert info.attempts == 2
    assert info.elapsed == 1.25
    assert info.rate_limit == FULL_RATE_LIMIT
    assert info.processing_ms == 88
    assert info.headers["X-RATELIMIT-LIMIT-TOKENS"] == "30000"


def test_response_info_is_frozen() -> None:
    """A ResponseInfo's fields cannot be reassigned."""
    info = _info({})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        info.attempts = 3  # type: ignore[misc]


def test_response_info_headers_are_read_only() -> None:
    """The headers are a read-only CIMultiDictProxy."""
    info = _info({"a": "1"})
    assert isinstance(info.headers, CIMultiDictProxy)
    with pytest.raises(TypeError):
        info.headers["a"] = "2"  # type: ignore[index]


def test_response_info_headers_do_not_follow_the_input() -> None:
    """Changing the mapping given afterwards does not change the record."""
    source = CIMultiDict([("x-ratelimit-limit-tokens", "10"), ("x-extra", "1"), ("x-extra", "2")])
    info = _info(source)
    source["x-ratelimit-limit-tokens"] = "99"
    source.add("x-late", "yes")
    assert info.headers["x-ratelimit-limit-tokens"] == "10"
    assert info.headers.getall("x-extra") == ["1", "2"]
    assert "x-late" not in info.headers


def test_direct_construction_copies_the_headers_too() -> None:
    """Building ResponseInfo directly still stores a private read-only copy."""
    source = CIMultiDict([("a", "1")])
    info = ResponseInfo(200, None, source, 1, 0.0)
    source["a"] = "2"
    assert isinstance(info.headers, CIMultiDictProxy)
    assert info.headers["a"] == "1"


def test_response_info_is_hashable_and_compares_by_value() -> None:
    """Two records of the same answer are equal and hash alike despite the headers mapping."""
    first, second = _info({"a": "1"}), _info({"A": "1"})
    assert first == second
    assert hash(first) == hash(second)
    assert first != _info({"a": "2"})
