"""The wire edge: JSON bodies to records and records back to JSON-ready dicts.

One private cattrs converter does both directions. It is strict about types (a string is
never silently turned into a number, nor a number into a string) and lenient about fields
it does not know, so the client keeps working as the API grows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, get_args, get_origin

import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._errors import APIResponseValidationError
from ._models import Checkpoint, CheckpointMetrics, CheckpointPage

__all__ = ["parse_page", "to_wire"]

#: A page of broken items would otherwise make a message thousands of lines long.
_MAX_PROBLEMS_LISTED = 10

_LITERAL: Any = Literal  # typed as Any: mypy cannot compare special forms

Record = Checkpoint | CheckpointMetrics | CheckpointPage


def _strict_str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_int(value: object, _: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _strict_number(value: object, _: object) -> float:
    # Integers stay integers so that a record turns back into exactly the JSON it came from.
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return value


def _strict_bool(value: object, _: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected a boolean, got {type(value).__name__}")
    return value


def _one_of(value: object, type_: Any) -> object:
    choices = get_args(type_)
    if value not in choices:
        raise ValueError(f"expected {' or '.join(map(repr, choices))}, got {value!r}")
    return value


def _is_literal(type_: Any) -> bool:
    return get_origin(type_) is _LITERAL


def _unix_time(value: object, _: object) -> datetime:
    seconds = _strict_int(value, None)
    return datetime.fromtimestamp(seconds, UTC)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_number)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(datetime, _unix_time)
    converter.register_structure_hook_func(_is_literal, _one_of)
    converter.register_unstructure_hook(datetime, lambda moment: int(moment.timestamp()))

    items_hook = converter.get_structure_hook(tuple[Checkpoint, ...])

    def _items(value: object, type_: Any) -> tuple[Checkpoint, ...]:
        # The default hook accepts any iterable; a string or an object here is a broken page.
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return items_hook(value, type_)  # type: ignore[no-any-return]

    converter.register_structure_hook(
        CheckpointPage,
        make_dict_structure_fn(CheckpointPage, converter, data=override(struct_hook=_items)),
    )
    # The API leaves out the metrics it did not measure; so do we, for an exact round trip.
    converter.register_unstructure_hook(
        CheckpointMetrics,
        make_dict_unstructure_fn(CheckpointMetrics, converter, _cattrs_omit_if_default=True),
    )
    converter.register_unstructure_hook(
        CheckpointPage,
        make_dict_unstructure_fn(CheckpointPage, converter, data=override(unstruct_hook=_list_of)),
    )
    return converter


def _list_of(items: tuple[Checkpoint, ...]) -> list[dict[str, Any]]:
    return [_unstructure_checkpoint(item) for item in items]


_converter = _make_converter()
_structure_page: Callable[[Any, Any], CheckpointPage] = _converter.get_structure_hook(
    CheckpointPage
)
_unstructure_checkpoint: Callable[[Checkpoint], dict[str, Any]] = _converter.get_unstructure_hook(
    Checkpoint
)


def parse_page(
    body: bytes,
    *,
    status_code: int = 200,
    request_id: str | None = None,
) -> CheckpointPage:
    """Turn a 2xx answer's raw body into a :class:`CheckpointPage`.

    Raises :class:`APIResponseValidationError` listing every problem by JSON path when the
    body is not JSON or not a valid page.
    """
    try:
        decoded = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        preview = body[:200].decode("utf-8", errors="replace")
        raise APIResponseValidationError(
            f"The API answered {status_code} with a body that is not JSON ({exc}): {preview!r}",
            status_code=status_code,
            body=preview,
            request_id=request_id,
        ) from None
    if not isinstance(decoded, dict):
        raise APIResponseValidationError(
            "The API answered with JSON that is not an object: "
            f"expected a list page, got {type(decoded).__name__} @ $",
            status_code=status_code,
            body=decoded,
            request_id=request_id,
        )
    try:
        return _structure_page(decoded, CheckpointPage)
    except Exception as exc:
        problems = cattrs.transform_error(exc, path="$", format_exception=_describe)
        listed = "; ".join(problems[:_MAX_PROBLEMS_LISTED])
        if len(problems) > _MAX_PROBLEMS_LISTED:
            listed += f"; and {len(problems) - _MAX_PROBLEMS_LISTED} more"
        raise APIResponseValidationError(
            f"The API answered with an invalid checkpoint page: {listed}",
            status_code=status_code,
            body=decoded,
            request_id=request_id,
        ) from exc


def _describe(exc: BaseException, type_: Any) -> str:
    """Say what is wrong at one path, in words a reader of the API reference knows."""
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, TypeError | ValueError) and str(exc).startswith("expected"):
        return str(exc)  # raised by this module's own hooks, already worded
    return cattrs.v.format_exception(exc, type_)


def to_wire(record: Record) -> dict[str, Any]:
    """Turn a record back into exactly the JSON object the API sends for it.

    ``created_at`` becomes the integer Unix time again and metrics the API did not send
    stay absent, so ``json.dumps(to_wire(record))`` can be re-served as the API's own
    answer (NDJSON streams, FastAPI responses, caches).
    """
    if not isinstance(record, Checkpoint | CheckpointMetrics | CheckpointPage):
        raise TypeError(
            f"to_wire() takes a Checkpoint, CheckpointMetrics or CheckpointPage, "
            f"not {type(record).__name__}"
        )
    return _converter.unstructure(record)  # type: ignore[no-any-return]
