"""The mapping from an HTTP answer to this library's exceptions."""

from __future__ import annotations

import json

import pytest

import fine_tune_ckpt as ftc
from fine_tune_ckpt._errors import error_for_status

from .conftest import load_fixture


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ftc.BadRequestError),
        (401, ftc.AuthenticationError),
        (403, ftc.PermissionDeniedError),
        (404, ftc.NotFoundError),
        (409, ftc.ConflictError),
        (422, ftc.UnprocessableEntityError),
        (429, ftc.RateLimitError),
        (500, ftc.InternalServerError),
        (502, ftc.InternalServerError),
        (599, ftc.InternalServerError),
        (402, ftc.APIStatusError),
        (418, ftc.APIStatusError),
    ],
)
def test_each_status_maps_to_its_class(status: int, cls: type[ftc.APIStatusError]) -> None:
    """Each status gets the class of the official SDK's name, all APIStatusError."""
    error = error_for_status(status, b"", {})
    assert type(error) is cls
    assert isinstance(error, ftc.APIStatusError)
    assert isinstance(error, ftc.APIError)
    assert isinstance(error, ftc.FineTuneCkptError)
    assert error.status_code == status


def test_api_error_object_fills_the_fields() -> None:
    """``message``, ``code``, ``type``, ``param``, ``body`` and ``request_id`` are filled."""
    body = load_fixture("error_rate_limit.json")
    error = error_for_status(429, json.dumps(body).encode(), {"x-request-id": "req_42"})
    assert error.message == "Error code: 429 - Rate limit reached for requests"
    assert str(error) == error.message
    assert error.code == "rate_limit_exceeded"
    assert error.type == "requests"
    assert error.param is None
    assert error.body == body
    assert error.request_id == "req_42"


def test_html_error_page_stays_readable() -> None:
    """A proxy's HTML error page is kept as text in ``body``."""
    error = error_for_status(502, b"<html>Bad Gateway</html>", {})
    assert error.body == "<html>Bad Gateway</html>"
    assert error.code is None
    assert error.message == "Error code: 502"


def test_empty_error_body() -> None:
    """An empty error body gives ``body=None`` and a message with the status."""
    error = error_for_status(503, b"", {})
    assert error.body is None
    assert error.message == "Error code: 503"


def test_non_string_error_fields_are_turned_into_text() -> None:
    """An API that sends a numeric code still gives a string ``code``."""
    body = json.dumps({"error": {"message": "x", "code": 7, "type": None}}).encode()
    error = error_for_status(400, body, {})
    assert error.code == "7"
    assert error.type is None


def test_connection_and_timeout_errors_are_api_errors() -> None:
    """``APITimeoutError`` is an ``APIConnectionError`` is an ``APIError``."""
    assert issubclass(ftc.APITimeoutError, ftc.APIConnectionError)
    assert issubclass(ftc.APIConnectionError, ftc.APIError)
    assert issubclass(ftc.APIResponseValidationError, ftc.APIError)
    assert issubclass(ftc.PaginationError, ftc.APIError)


def test_resume_after_defaults_to_none() -> None:
    """An error not raised while paging has no cursor to resume from."""
    assert ftc.APIConnectionError("x").resume_after is None


def test_an_error_body_with_a_byte_order_mark_is_still_read() -> None:
    """A UTF-8 BOM before an error body does not hide the API's code and message."""
    from fine_tune_ckpt._errors import error_for_status

    body = b'\xef\xbb\xbf{"error": {"message": "No such job", "code": "not_found"}}'
    error = error_for_status(404, body, {})
    assert error.code == "not_found"
    assert "No such job" in error.message
