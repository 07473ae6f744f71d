"""The wire edge: JSON bodies to records and records back to JSON-ready dicts.

A private cattrs converter defines the conversion in both directions. It is strict about
types (a string is never silently turned into a number, nor a number into a string) but
takes what can be read without loss: an integral float such as ``1e3`` where an integer is
expected, and a UTF-8 byte order mark. Fields it does not know are kept in each record's
``extra`` and given back by ``to_wire``, so the client keeps working as the API grows and
re-served JSON loses nothing.

Parsing is the hot path of a listing, so a valid page first goes through a hand-specialised
function that checks exactly what the converter checks: column by column when every item
has the usual shape, item by item otherwise. Anything it refuses goes through the
converter, which says what is wrong, by JSON path. Property tests hold the three to the
same answers.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args, get_origin

import attrs
import orjson

if TYPE_CHECKING:
    import cattrs

from ._errors import APIResponseValidationError
from ._metadata import ResponseInfo
from ._models import (
    CHECKPOINT_KEYS,
    JOB_ERROR_KEYS,
    JOB_KEYS,
    JOB_PAGE_KEYS,
    METRICS_KEYS,
    NO_EXTRA,
    PAGE_KEYS,
    Checkpoint,
    CheckpointBuilder,
    CheckpointMetrics,
    CheckpointMetricsBuilder,
    CheckpointPage,
    FineTuningJob,
    FineTuningJobError,
    FineTuningJobPage,
    thaw_json,
)
from ._models import unknown_fields as _unknown
from ._tracing import PageTrace

__all__ = [
    "RawPage",
    "parse_page",
    "structure_job",
    "structure_job_page",
    "structure_page",
    "to_wire",
]

#: A page of broken items would otherwise make a message thousands of lines long.
_MAX_PROBLEMS_LISTED = 10

_LITERAL: Any = Literal  # typed as Any: mypy cannot compare special forms

Record = (
    Checkpoint
    | CheckpointMetrics
    | CheckpointPage
    | FineTuningJob
    | FineTuningJobError
    | FineTuningJobPage
)
_RECORDS = (
    Checkpoint,
    CheckpointMetrics,
    CheckpointPage,
    FineTuningJob,
    FineTuningJobError,
    FineTuningJobPage,
)


def _strict_str(value: object, _: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _strict_int(value: object, _: object) -> int:
    if isinstance(value, float):
        return _integral(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


#: Every integer up to this size is exactly a float; past it, a float may be a neighbour.
_EXACT_IN_A_FLOAT = 2**53


def _integral(value: float) -> int:
    """The integer a float such as ``1721764807.0`` or ``1e3`` stands for, read without loss.

    JSON has one number type and some encoders write every number as a float; orjson also
    reads ``1e3`` as a float. A fraction would have to be rounded, so it stays an error.
    So does a float past 2**53: orjson reads integers beyond 64 bits as floats, and the
    integer sent may not be the one the float holds.
    """
    if not value.is_integer():  # JSON has no NaN or infinity, and both are refused here
        raise ValueError(f"expected an integer, got {value!r}")
    if abs(value) > _EXACT_IN_A_FLOAT:
        raise ValueError(f"expected an integer, got {value!r}, too large to read exactly")
    return int(value)


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


def _object_of(
    structure: Callable[[Any, Any], Any], known: frozenset[str]
) -> Callable[[Any, Any], Any]:
    """Wrap a generated hook: refuse anything but a JSON object by name, keep unknown fields."""

    def hook(value: Any, type_: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        record = structure(value, type_)
        extra = _unknown(value, known)
        # Evolved after structuring: the generated hook must never read a wire key that
        # happens to be called "extra" into the record's own field.
        return record if extra is NO_EXTRA else attrs.evolve(record, extra=extra)

    return hook


def _with_extra(unstructure: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    """Wrap a generated hook so that the unknown fields go back after the known ones."""

    def hook(record: Any) -> dict[str, Any]:
        wire = unstructure(record)
        if record.extra:
            wire.update(thaw_json(record.extra))
        return wire

    return hook


def _list_only(items_hook: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """Wrap a page's ``data`` hook so that anything but a JSON array is refused.

    The default hook accepts any iterable; a string or an object here is a broken page.
    """

    def hook(value: object, type_: Any) -> Any:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return items_hook(value, type_)

    return hook


def _make_converter() -> cattrs.Converter:
    # Imported here: cattrs is needed for error reports and to_wire, not to parse a valid
    # page, and importing it eagerly would cost every program that imports this package.
    import cattrs
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

    converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_number)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook(datetime, _unix_time)
    converter.register_structure_hook_func(_is_literal, _one_of)
    converter.register_unstructure_hook(datetime, lambda moment: int(moment.timestamp()))

    # Generated hooks would take a list or string for an object ('step' in "steps").
    # "extra" is never a wire key: the wrapping hooks fill and empty it.
    no_extra = override(omit=True)
    for record, known in ((CheckpointMetrics, METRICS_KEYS), (Checkpoint, CHECKPOINT_KEYS)):
        converter.register_structure_hook(
            record,
            _object_of(make_dict_structure_fn(record, converter, extra=no_extra), known),
        )
    _items = _list_only(converter.get_structure_hook(tuple[Checkpoint, ...]))
    converter.register_structure_hook(
        CheckpointPage,
        _object_of(
            make_dict_structure_fn(
                CheckpointPage,
                converter,
                data=override(struct_hook=_items),
                extra=no_extra,
                response=no_extra,
            ),
            PAGE_KEYS,
        ),
    )
    # The API leaves out the metrics it did not measure; so do we, for an exact round trip.
    converter.register_unstructure_hook(
        CheckpointMetrics,
        _with_extra(
            make_dict_unstructure_fn(
                CheckpointMetrics, converter, _cattrs_omit_if_default=True, extra=no_extra
            )
        ),
    )
    converter.register_unstructure_hook(
        Checkpoint,
        _with_extra(make_dict_unstructure_fn(Checkpoint, converter, extra=no_extra)),
    )
    converter.register_unstructure_hook(
        CheckpointPage,
        _with_extra(
            make_dict_unstructure_fn(
                CheckpointPage,
                converter,
                data=override(unstruct_hook=_list_of),
                extra=no_extra,
                response=no_extra,
            )
        ),
    )
    _register_jobs(converter)
    return converter


def _json_object(value: object, _: object) -> object:
    """Pass a JSON object through as sent (the record freezes it), refusing anything else."""
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _json_object_or_none(value: object, _: object) -> object:
    return None if value is None else _json_object(value, _)


def _json_objects_or_none(value: object, _: object) -> object:
    if value is None:
        return None
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    for item in value:
        _json_object(item, _)
    return value


def _strings(value: object, _: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return tuple(_strict_str(item, None) for item in value)


def _string_values_or_none(value: object, _: object) -> object:
    if value is None:
        return None
    _json_object(value, _)
    assert isinstance(value, dict)  # noqa: S101 - checked just above, for mypy
    for inner in value.values():
        _strict_str(inner, None)
    return value


def _register_jobs(converter: cattrs.Converter) -> None:
    """The job records: structured by the converter alone (a job page is small)."""
    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

    no_extra = override(omit=True)
    converter.register_structure_hook(
        FineTuningJobError,
        _object_of(
            make_dict_structure_fn(FineTuningJobError, converter, extra=no_extra), JOB_ERROR_KEYS
        ),
    )
    converter.register_structure_hook(
        FineTuningJob,
        _object_of(
            make_dict_structure_fn(
                FineTuningJob,
                converter,
                hyperparameters=override(struct_hook=_json_object),
                result_files=override(struct_hook=_strings),
                integrations=override(struct_hook=_json_objects_or_none),
                method=override(struct_hook=_json_object_or_none),
                metadata=override(struct_hook=_string_values_or_none),
                extra=no_extra,
                response=no_extra,
            ),
            JOB_KEYS,
        ),
    )
    _jobs = _list_only(converter.get_structure_hook(tuple[FineTuningJob, ...]))
    converter.register_structure_hook(
        FineTuningJobPage,
        _object_of(
            make_dict_structure_fn(
                FineTuningJobPage,
                converter,
                data=override(struct_hook=_jobs),
                extra=no_extra,
                response=no_extra,
            ),
            JOB_PAGE_KEYS,
        ),
    )
    converter.register_unstructure_hook(
        FineTuningJobError,
        _with_extra(make_dict_unstructure_fn(FineTuningJobError, converter, extra=no_extra)),
    )
    # Left out when None, as the API leaves them out; the others it always sends.
    optional = override(omit_if_default=True, unstruct_hook=thaw_json)
    converter.register_unstructure_hook(
        FineTuningJob,
        _with_extra(
            make_dict_unstructure_fn(
                FineTuningJob,
                converter,
                hyperparameters=override(unstruct_hook=thaw_json),
                integrations=optional,
                method=optional,
                metadata=optional,
                estimated_finish=override(omit_if_default=True),
                result_files=override(unstruct_hook=list),
                extra=no_extra,
                response=no_extra,
            )
        ),
    )
    converter.register_unstructure_hook(
        FineTuningJobPage,
        _with_extra(
            make_dict_unstructure_fn(
                FineTuningJobPage,
                converter,
                data=override(unstruct_hook=lambda jobs: [converter.unstructure(j) for j in jobs]),
                extra=no_extra,
                response=no_extra,
            )
        ),
    )


def _list_of(items: tuple[Checkpoint, ...]) -> list[dict[str, Any]]:
    return [_unstructure_checkpoint(item) for item in items]


@functools.cache
def _converter() -> cattrs.Converter:
    """The converter, built on first use.

    A valid page never needs it, and generating its code at import time would slow down
    every program that imports the package.
    """
    return _make_converter()


def _structure_page(value: Any, type_: Any) -> CheckpointPage:
    """The converter's reading of a page: the slow path, and the fast one's reference."""
    return _converter().structure(value, CheckpointPage)


def _unstructure_checkpoint(checkpoint: Checkpoint) -> dict[str, Any]:
    return _converter().unstructure(checkpoint)  # type: ignore[no-any-return]


_NUMBER_OR_NONE = frozenset({int, float, type(None)})
_CHECKPOINT_OBJECT = "fine_tuning.job.checkpoint"
_METRIC_COUNT = len(METRICS_KEYS)
_CHECKPOINT_KEY_COUNT = len(CHECKPOINT_KEYS)
# Bound once: looking the classmethod up for every item costs a fifth of the call.
_from_timestamp = datetime.fromtimestamp


def _fast_checkpoint(item: Any) -> Checkpoint:
    """Structure one checkpoint, checking what the converter checks; raise on anything else.

    Written out field by field because it runs for every item of every page; the property
    test that compares it with the converter catches a field added to one and not the other.
    """
    wire_metrics = item["metrics"]
    if type(wire_metrics) is not dict:
        raise TypeError("metrics")
    metrics: tuple[Any, ...] | None = None
    if len(wire_metrics) >= _METRIC_COUNT:
        # The usual case. Subscripts are quicker than get(), and when all seven succeed
        # they also prove that any further key is unknown: none, on seven keys.
        try:
            metrics = (
                wire_metrics["step"],
                wire_metrics["train_loss"],
                wire_metrics["train_mean_token_accuracy"],
                wire_metrics["valid_loss"],
                wire_metrics["valid_mean_token_accuracy"],
                wire_metrics["full_valid_loss"],
                wire_metrics["full_valid_mean_token_accuracy"],
            )
        except KeyError:
            pass  # some metric is absent: read them as below
        else:
            metrics_extra = (
                NO_EXTRA
                if len(wire_metrics) == _METRIC_COUNT
                else _unknown(wire_metrics, METRICS_KEYS)
            )
    if metrics is None:
        get = wire_metrics.get
        metrics = (
            get("step"),
            get("train_loss"),
            get("train_mean_token_accuracy"),
            get("valid_loss"),
            get("valid_mean_token_accuracy"),
            get("full_valid_loss"),
            get("full_valid_mean_token_accuracy"),
        )
        # Counting is cheaper than comparing key sets: each metric read is one key unless
        # it was absent (or null: then _unknown finds nothing, which is right too).
        metrics_extra = (
            NO_EXTRA
            if len(wire_metrics) + metrics.count(None) == _METRIC_COUNT
            else _unknown(wire_metrics, METRICS_KEYS)
        )
    checkpoint_id = item["id"]
    created_at = item["created_at"]
    model = item["fine_tuned_model_checkpoint"]
    job_id = item["fine_tuning_job_id"]
    step_number = item["step_number"]
    # type() is, not isinstance: bool is an int subclass and must be refused.
    if (
        not _NUMBER_OR_NONE.issuperset(map(type, metrics))
        or type(checkpoint_id) is not str
        or type(created_at) is not int
        or type(model) is not str
        or type(job_id) is not str
        or type(step_number) is not int
        or item.get("object", _CHECKPOINT_OBJECT) != _CHECKPOINT_OBJECT
    ):
        if type(created_at) is float or type(step_number) is float:
            # Checked here, off the common path: an integral float is read as its integer
            # (a fraction raises) and the item is checked again with the integers.
            return _fast_checkpoint(
                {
                    **item,
                    "created_at": _integral(created_at)
                    if type(created_at) is float
                    else created_at,
                    "step_number": _integral(step_number)
                    if type(step_number) is float
                    else step_number,
                }
            )
        raise TypeError("checkpoint")
    checkpoint_metrics = (
        CheckpointMetrics(*metrics)
        if metrics_extra is NO_EXTRA
        else CheckpointMetrics(*metrics, extra=metrics_extra)
    )
    # Likewise: the six keys read above, "object", and nothing else means none is unknown.
    if len(item) == _CHECKPOINT_KEY_COUNT and "object" in item:
        return Checkpoint(
            checkpoint_id,
            _from_timestamp(created_at, UTC),
            model,
            job_id,
            checkpoint_metrics,
            step_number,
        )
    return Checkpoint(
        checkpoint_id,
        _from_timestamp(created_at, UTC),
        model,
        job_id,
        checkpoint_metrics,
        step_number,
        extra=_unknown(item, CHECKPOINT_KEYS),
    )


#: The metrics in the order the page loop below unpacks them.
_METRIC_NAMES = (
    "step",
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
)


def _fast_checkpoints(data: list[Any]) -> tuple[Checkpoint, ...]:
    """Structure a page's items: the usual shape right here, any other by ``_fast_checkpoint``.

    Either way, exactly what the converter accepts, as it reads it; anything else raises.
    The usual shape: every field present, each of the type the record takes
    (``created_at`` and ``step_number`` integers, not integral floats; metrics numbers or
    null, any of them absent), unknown fields or not. Its records are made by builders (see
    ``CheckpointBuilder``): no ``__init__``, no frozen ``__setattr__``.

    One loop with the checks written out, as this runs for every item of every walk: a
    call per item, or the checks done column by column over the page, cost more.
    """
    checkpoints: list[Checkpoint] = []
    append = checkpoints.append
    for item in data:
        try:
            checkpoint_id = item["id"]
            created_at = item["created_at"]
            model = item["fine_tuned_model_checkpoint"]
            job_id = item["fine_tuning_job_id"]
            step_number = item["step_number"]
            kind = item["object"]
            wire_metrics = item["metrics"]
            try:
                step = wire_metrics["step"]
                train_loss = wire_metrics["train_loss"]
                train_accuracy = wire_metrics["train_mean_token_accuracy"]
                valid_loss = wire_metrics["valid_loss"]
                valid_accuracy = wire_metrics["valid_mean_token_accuracy"]
                full_valid_loss = wire_metrics["full_valid_loss"]
                full_valid_accuracy = wire_metrics["full_valid_mean_token_accuracy"]
            except KeyError:  # the API sends only the metrics it measured: None for the others
                (
                    step,
                    train_loss,
                    train_accuracy,
                    valid_loss,
                    valid_accuracy,
                    full_valid_loss,
                    full_valid_accuracy,
                ) = map(wire_metrics.get, _METRIC_NAMES)
                metrics_extra = _unknown(wire_metrics, METRICS_KEYS)
            else:
                # Seven keys read, so any beyond seven is unknown: counting beats a set.
                metrics_extra = (
                    NO_EXTRA
                    if len(wire_metrics) == _METRIC_COUNT
                    else _unknown(wire_metrics, METRICS_KEYS)
                )
        except (KeyError, TypeError):  # a field absent, or not an object where one belongs
            append(_fast_checkpoint(item))
            continue
        # Decoded JSON can be read by names only where it is an object: both are dicts.
        # type() is, not isinstance: bool is an int subclass and must be refused.
        if not (
            type(checkpoint_id) is str
            and type(created_at) is int
            and type(model) is str
            and type(job_id) is str
            and type(step_number) is int
            and kind == _CHECKPOINT_OBJECT
            and (
                # The metrics as the API sends them, checked the quickest way first.
                (
                    type(step) is int
                    and type(train_loss) is float
                    and type(train_accuracy) is float
                    and type(valid_loss) is float
                    and type(valid_accuracy) is float
                    and type(full_valid_loss) is float
                    and type(full_valid_accuracy) is float
                )
                or _NUMBER_OR_NONE.issuperset(
                    map(
                        type,
                        (
                            step,
                            train_loss,
                            train_accuracy,
                            valid_loss,
                            valid_accuracy,
                            full_valid_loss,
                            full_valid_accuracy,
                        ),
                    )
                )
            )
        ):
            append(_fast_checkpoint(item))  # an integral float to read, or an error to raise
            continue
        # Typed Any: to mypy these are frozen records, and assignment is their builders' point.
        metrics: Any = CheckpointMetricsBuilder()
        metrics.step = step
        metrics.train_loss = train_loss
        metrics.train_mean_token_accuracy = train_accuracy
        metrics.valid_loss = valid_loss
        metrics.valid_mean_token_accuracy = valid_accuracy
        metrics.full_valid_loss = full_valid_loss
        metrics.full_valid_mean_token_accuracy = full_valid_accuracy
        metrics.extra = metrics_extra
        metrics.__class__ = CheckpointMetrics
        checkpoint: Any = CheckpointBuilder()
        checkpoint.id = checkpoint_id
        checkpoint.created_at = _from_timestamp(created_at, UTC)
        checkpoint.fine_tuned_model_checkpoint = model
        checkpoint.fine_tuning_job_id = job_id
        checkpoint.metrics = metrics
        checkpoint.step_number = step_number
        checkpoint.object = _CHECKPOINT_OBJECT
        checkpoint.extra = (
            NO_EXTRA if len(item) == _CHECKPOINT_KEY_COUNT else _unknown(item, CHECKPOINT_KEYS)
        )
        checkpoint.__class__ = Checkpoint
        append(checkpoint)
    return tuple(checkpoints)


def _fast_page(decoded: dict[str, Any], response: ResponseInfo | None = None) -> CheckpointPage:
    """Structure a page the quick way; any exception sends it to the converter instead."""
    data = decoded["data"]
    has_more = decoded["has_more"]
    first_id = decoded.get("first_id")
    last_id = decoded.get("last_id")
    if (
        type(data) is not list
        or type(has_more) is not bool
        or (first_id is not None and type(first_id) is not str)
        or (last_id is not None and type(last_id) is not str)
        or decoded.get("object", "list") != "list"
    ):
        raise TypeError("page")
    return CheckpointPage(
        _fast_checkpoints(data),
        has_more,
        first_id,
        last_id,
        extra=_unknown(decoded, PAGE_KEYS),
        response=response,
    )


#: How far from the end of a body the cursor is looked for before decoding.
_PEEK_TAIL = 1024
_HAS_MORE_TRUE = re.compile(rb'"has_more"\s*:\s*true')
_LAST_ID = re.compile(rb'"last_id"\s*:\s*"([^"\\]*)"')


@attrs.frozen
class RawPage:
    """A 2xx answer as received: its body not yet decoded, checked or turned into records."""

    body: bytes
    status_code: int = 200
    request_id: str | None = None
    #: What an error about this page must never show (the credentials that fetched it).
    secrets: tuple[str, ...] = attrs.field(default=(), repr=False)
    #: What is known of the answer beyond its body, handed on to the page.
    response: ResponseInfo | None = attrs.field(default=None, repr=False, eq=False)
    #: The page's OpenTelemetry span, ended once the page is turned into records.
    trace: PageTrace | None = attrs.field(default=None, repr=False, eq=False)

    def peek_cursor(self) -> str | None:
        """Guess the next page's cursor from the raw bytes, or ``None``.

        The API ends a page with ``"last_id": "...", "has_more": true``: reading those from
        the tail lets the next request start before this page is decoded. Only a guess:
        the pager checks it against the real rule once the page is structured.
        """
        tail = self.body[-_PEEK_TAIL:]
        if _HAS_MORE_TRUE.search(tail) is None:
            return None
        found = _LAST_ID.findall(tail)
        return found[-1].decode("utf-8", errors="replace") if found else None


_UTF8_BOM = b"\xef\xbb\xbf"


#: Where the NUL bytes fall among the first four of JSON text in UTF-16 or UTF-32: JSON
#: starts with two ASCII characters (RFC 4627, section 3). True marks a NUL.
_NULS_OF: dict[tuple[bool, ...], str] = {
    (True, True, True, False): "UTF-32",
    (False, True, True, True): "UTF-32",
    (True, False, True, False): "UTF-16",
    (False, True, False, True): "UTF-16",
}


def _foreign_encoding(body: bytes) -> str | None:
    """Name the encoding a body that is not UTF-8 JSON seems to be in, or ``None``."""
    if body.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32"
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "UTF-16"
    # Exact patterns only: a gzip body (1f 8b 08 00) has a NUL too, and is not UTF-16.
    return _NULS_OF.get(tuple(byte == 0 for byte in body[:4]))


def _decode(raw: RawPage, expected: str) -> dict[str, Any]:
    """Decode a 2xx answer's body; raise APIResponseValidationError unless a JSON object."""
    body: bytes | memoryview = raw.body
    if raw.body.startswith(_UTF8_BOM):
        # Some servers and proxies put a byte order mark before UTF-8. It carries no data
        # and RFC 8259 lets a parser ignore it, but orjson refuses it. A view, not a copy.
        body = memoryview(raw.body)[len(_UTF8_BOM) :]
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        decoded = _decode_slowly(body)
        if decoded is not _NOT_JSON:
            return _object_or_refuse(decoded, raw, expected)
        preview = raw.body[:200].decode("utf-8", errors="replace")
        encoding = _foreign_encoding(raw.body)
        # Never decoded as that encoding: guessing wrong would mis-read the data silently.
        reason = f"looks like {encoding}, not UTF-8; {exc}" if encoding else str(exc)
        raise APIResponseValidationError(
            f"The API answered {raw.status_code} with a body that is not JSON ({reason}): "
            f"{preview!r}",
            status_code=raw.status_code,
            body=preview,
            request_id=raw.request_id,
        ) from None
    return _object_or_refuse(decoded, raw, expected)


def _object_or_refuse(decoded: Any, raw: RawPage, expected: str) -> dict[str, Any]:
    if not isinstance(decoded, dict):
        raise APIResponseValidationError(
            "The API answered with JSON that is not an object: "
            f"expected {expected}, got {type(decoded).__name__} @ $",
            status_code=raw.status_code,
            body=decoded,
            request_id=raw.request_id,
        )
    return decoded


_NOT_JSON: Any = object()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode_slowly(body: bytes | memoryview) -> Any:
    """The standard library's reading of a body orjson refused, or ``_NOT_JSON``.

    orjson refuses integers too long for a double (``1e400`` written out); the standard
    library reads them exactly, so an unknown field holding one does not sink the page. It
    is given UTF-8 text only (it would guess UTF-16 from bytes) and no NaN or Infinity.
    """
    try:
        text = bytes(body).decode("utf-8")
        return json.loads(text, parse_constant=_refuse_constant)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return _NOT_JSON


def structure_page(raw: RawPage) -> CheckpointPage:
    """Decode an answer and turn it into a page, or raise APIResponseValidationError.

    The error says what is wrong: not JSON, or each problem by JSON path.
    """
    decoded = _decode(raw, "a list page")
    try:
        return _fast_page(decoded, raw.response)
    except Exception:  # noqa: S110 - the converter below explains what was wrong
        pass
    return _structured(decoded, raw, CheckpointPage, "checkpoint page")


def structure_job_page(raw: RawPage) -> FineTuningJobPage:
    """Decode an answer of ``GET /fine_tuning/jobs`` into a page of jobs (see structure_page)."""
    return _structured(_decode(raw, "a list page"), raw, FineTuningJobPage, "page of jobs")


def structure_job(raw: RawPage) -> FineTuningJob:
    """Decode an answer of ``GET /fine_tuning/jobs/{id}`` into a job (see structure_page)."""
    return _structured(_decode(raw, "a job"), raw, FineTuningJob, "fine-tuning job")


_Structured = TypeVar("_Structured", CheckpointPage, FineTuningJobPage, FineTuningJob)


def _structured(
    decoded: dict[str, Any], raw: RawPage, record: type[_Structured], what: str
) -> _Structured:
    try:
        structured: _Structured = _converter().structure(decoded, record)
    except Exception as exc:
        import cattrs

        problems = cattrs.transform_error(exc, path="$", format_exception=_describe)
        listed = "; ".join(problems[:_MAX_PROBLEMS_LISTED])
        if len(problems) > _MAX_PROBLEMS_LISTED:
            listed += f"; and {len(problems) - _MAX_PROBLEMS_LISTED} more"
        raise APIResponseValidationError(
            f"The API answered with an invalid {what}: {listed}",
            status_code=raw.status_code,
            body=decoded,
            request_id=raw.request_id,
        ) from exc
    if raw.response is None:
        return structured
    return attrs.evolve(structured, response=raw.response)


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
    return structure_page(RawPage(body, status_code, request_id))


def _describe(exc: BaseException, type_: Any) -> str:
    """Say what is wrong at one path, in words a reader of the API reference knows."""
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, TypeError | ValueError) and str(exc).startswith("expected"):
        return str(exc)  # raised by this module's own hooks, already worded
    import cattrs.v

    return cattrs.v.format_exception(exc, type_)


def to_wire(record: Record) -> dict[str, Any]:
    """Turn a record back into exactly the JSON object the API sends for it.

    ``created_at`` becomes the integer Unix time again and metrics the API did not send
    stay absent, so ``json.dumps(to_wire(record))`` can be re-served as the API's own
    answer (NDJSON streams, FastAPI responses, caches).
    """
    if not isinstance(record, _RECORDS):
        raise TypeError(
            "to_wire() takes a Checkpoint, CheckpointMetrics, CheckpointPage, FineTuningJob, "
            f"FineTuningJobError or FineTuningJobPage, not {type(record).__name__}"
        )
    return _converter().unstructure(record)  # type: ignore[no-any-return]
