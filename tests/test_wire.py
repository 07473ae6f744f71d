"""The wire edge: JSON bodies to records, validation errors, and records back to JSON."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from fine_tune_ckpt import (
    APIResponseValidationError,
    Checkpoint,
    CheckpointMetrics,
    CheckpointPage,
    to_wire,
)
from fine_tune_ckpt._models import (
    METRICS_KEYS,
    CheckpointBuilder,
    CheckpointMetricsBuilder,
)
from fine_tune_ckpt._wire import parse_page
from fine_tune_ckpt.testing import FakeAPIServer

from .conftest import FIXTURES, load_fixture


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


def _page_with(**changes: Any) -> dict[str, Any]:
    page: dict[str, Any] = load_fixture("page_spec_example.json")
    page.update(changes)
    return page


def _problem(body: bytes) -> str:
    with pytest.raises(APIResponseValidationError) as caught:
        parse_page(body, status_code=200, request_id="req_1")
    assert caught.value.status_code == 200
    assert caught.value.request_id == "req_1"
    return caught.value.message


def test_spec_example_parses_into_records() -> None:
    """The spec's own example page becomes a page of two typed checkpoints."""
    page = parse_page(_body(load_fixture("page_spec_example.json")))
    assert page.has_more is True
    assert page.first_id == "ftckpt_zc4Q7MP6XxulcVzj4MZdwsAB"
    assert page.last_id == "ftckpt_enQCFmOTGj3syEpYVhBRLTSy"
    first = page.data[0]
    assert first.id == "ftckpt_zc4Q7MP6XxulcVzj4MZdwsAB"
    assert first.step_number == 2000
    assert first.fine_tuning_job_id == "ftjob-abc123"
    assert first.metrics == CheckpointMetrics(
        full_valid_loss=0.134, full_valid_mean_token_accuracy=0.874
    )


def test_created_at_is_an_aware_utc_datetime() -> None:
    """``created_at`` arrives as Unix seconds and becomes an aware UTC datetime."""
    page = parse_page(_body(load_fixture("page_spec_example.json")))
    assert page.data[0].created_at == datetime(2024, 7, 23, 20, 1, 7, tzinfo=UTC)
    assert page.data[0].created_at.tzinfo is UTC


def test_next_after_is_the_last_item_id_while_has_more() -> None:
    """The next page's cursor is the last item's id, and there is none on the last page."""
    page = parse_page(_body(load_fixture("page_spec_example.json")))
    assert page.next_after == "ftckpt_enQCFmOTGj3syEpYVhBRLTSy"
    last = parse_page(_body(_page_with(has_more=False)))
    assert last.next_after is None


def _with_unknown_fields() -> dict[str, Any]:
    """The spec example with fields this version does not know, at every level."""
    raw = _page_with(new_top_level={"x": 1})
    raw["data"][0]["brand_new_field"] = [1, {"deep": [2, 3]}]
    raw["data"][0]["metrics"]["new_metric"] = 0.5
    raw["data"][1]["extra"] = "a key that happens to be called extra"
    return raw


def test_unknown_fields_are_kept_at_every_level() -> None:
    """Fields the API adds later never break parsing and land in each record's ``extra``."""
    page = parse_page(_body(_with_unknown_fields()))
    assert page.data[0].id == "ftckpt_zc4Q7MP6XxulcVzj4MZdwsAB"
    assert page.extra == {"new_top_level": {"x": 1}}
    assert page.data[0].extra == {"brand_new_field": (1, {"deep": (2, 3)})}
    assert page.data[0].metrics.extra == {"new_metric": 0.5}
    assert page.data[0].metrics.full_valid_loss == 0.134
    assert page.data[1].extra == {"extra": "a key that happens to be called extra"}
    assert page.data[1].metrics.extra == {}


def test_to_wire_gives_unknown_fields_back_at_every_level() -> None:
    """Re-served JSON is the API's own, unknown fields included, as the SDK's model_dump."""
    raw = _with_unknown_fields()
    page = parse_page(_body(raw))
    assert to_wire(page) == raw
    assert to_wire(page.data[0]) == raw["data"][0]
    assert to_wire(page.data[0].metrics) == raw["data"][0]["metrics"]
    # Plain dicts and lists again, ready for any JSON encoder.
    assert type(to_wire(page.data[0])["brand_new_field"][1]) is dict
    assert json.loads(json.dumps(to_wire(page))) == raw


def test_an_unknown_field_in_place_of_object_is_kept() -> None:
    """An item without ``object`` but with one unknown field has the usual key count."""
    raw = _page_with()
    del raw["data"][0]["object"]
    raw["data"][0]["usage"] = 1
    page = parse_page(_body(raw))
    assert page.data[0].extra == {"usage": 1}
    assert page.data[0].object == "fine_tuning.job.checkpoint"


def test_unknown_fields_survive_the_converter_path_too() -> None:
    """A page the fast parser refuses is read by the converter, which keeps them the same."""
    from fine_tune_ckpt._wire import _fast_page, _structure_page

    raw = _with_unknown_fields()
    raw["data"][0]["metrics"]["step"] = True  # refused by both, so the converter reports it
    with pytest.raises(TypeError):
        _fast_page(raw)
    del raw["data"][0]["metrics"]["step"]
    assert _structure_page(raw, CheckpointPage) == _fast_page(raw)
    assert _structure_page(raw, CheckpointPage).data[0].extra == {
        "brand_new_field": (1, {"deep": (2, 3)})
    }


def test_unknown_fields_are_read_only() -> None:
    """Neither ``extra`` nor anything inside it can be changed."""
    page = parse_page(_body(_with_unknown_fields()))
    extra: Any = page.data[0].extra
    with pytest.raises(TypeError):
        extra["brand_new_field"] = 1
    with pytest.raises(TypeError):
        extra["brand_new_field"][1]["deep"] = 1
    with pytest.raises(AttributeError):
        extra.append(1)
    with pytest.raises(AttributeError):
        extra._items = {}
    with pytest.raises(AttributeError):
        page.data[0].extra = {}  # type: ignore[misc]


def test_records_with_unknown_fields_compare_and_hash() -> None:
    """Equal data makes equal records with equal hashes, nested unknown values included."""
    first = parse_page(_body(_with_unknown_fields()))
    second = parse_page(_body(_with_unknown_fields()))
    assert first == second
    assert hash(first) == hash(second)
    assert hash(first.data[0]) == hash(second.data[0])
    assert len({first.data[0], second.data[0], first.data[1]}) == 2
    other = _with_unknown_fields()
    other["data"][0]["brand_new_field"][1]["deep"] = [2, 4]
    assert parse_page(_body(other)) != first
    assert parse_page(_body(_page_with())) != first
    assert first.data[0].extra == {"brand_new_field": (1, {"deep": (2, 3)})}
    assert first.data[0].extra != {"brand_new_field": (1, {"deep": (2, 4)})}


def test_records_with_unknown_fields_pickle_copy_and_evolve() -> None:
    """Unknown fields are kept through pickle, deep copies and ``attrs.evolve``."""
    page = parse_page(_body(_with_unknown_fields()))
    assert pickle.loads(pickle.dumps(page)) == page  # noqa: S301 - our own bytes
    plain = pickle.loads(pickle.dumps(page.data[1].metrics))  # noqa: S301 - our own bytes
    assert plain.extra is page.data[1].metrics.extra  # the shared empty one stays shared
    assert copy.deepcopy(page) == page
    changed = attrs.evolve(page.data[0], step_number=7)
    assert changed.extra == page.data[0].extra
    assert to_wire(changed)["brand_new_field"] == [1, {"deep": [2, 3]}]


@pytest.mark.parametrize("unknown", [False, True])
def test_parsed_records_are_the_records_their_init_makes(unknown: bool) -> None:
    """Records the parser builds field by field equal, hash, pickle and evolve as made by hand."""
    raw = _with_unknown_fields() if unknown else _page_with()
    for parsed in parse_page(_body(raw)).data:
        assert type(parsed) is Checkpoint
        assert type(parsed.metrics) is CheckpointMetrics
        metrics = CheckpointMetrics(**attrs.asdict(parsed.metrics, recurse=False))
        made = Checkpoint(**{**attrs.asdict(parsed, recurse=False), "metrics": metrics})
        assert parsed == made
        assert hash(parsed) == hash(made)
        assert repr(parsed) == repr(made)  # every field set: repr reads them all
        assert pickle.loads(pickle.dumps(parsed)) == made  # noqa: S301 - our own bytes
        assert copy.deepcopy(parsed) == made
        assert attrs.evolve(parsed, step_number=1) == attrs.evolve(made, step_number=1)
        with pytest.raises(AttributeError):
            parsed.metrics.step = 1  # type: ignore[misc]


def test_the_page_loop_fills_in_every_field() -> None:
    """Records made by the page's own loop have every field set, as ``__init__`` would."""
    from fine_tune_ckpt._wire import _fast_checkpoints

    item = {
        "object": "fine_tuning.job.checkpoint",
        "id": "ftckpt_1",
        "created_at": 1_700_000_000,
        "fine_tuned_model_checkpoint": "ft:m:ckpt-step-1",
        "fine_tuning_job_id": "ftjob-1",
        "metrics": dict.fromkeys(METRICS_KEYS, 1.5) | {"step": 1},
        "step_number": 1,
    }
    (checkpoint,) = _fast_checkpoints([item])
    for record in (checkpoint, checkpoint.metrics):
        unset = [f.name for f in attrs.fields(type(record)) if not hasattr(record, f.name)]
        assert unset == []
    assert to_wire(checkpoint) == item


def test_builders_add_nothing_to_their_records() -> None:
    """A builder has its record's layout, so that once filled in it can become the record."""
    for builder, record in [
        (CheckpointBuilder, Checkpoint),
        (CheckpointMetricsBuilder, CheckpointMetrics),
    ]:
        assert builder.__mro__[1] is record
        assert builder.__basicsize__ == record.__basicsize__
        assert not hasattr(object.__new__(builder), "__dict__")


def test_unknown_fields_of_a_handmade_record_are_frozen_and_given_back() -> None:
    """``extra`` given as plain dicts and lists is frozen, and ``to_wire`` adds it back."""
    source: dict[str, Any] = {"tags": ["a", "b"], "origin": {"region": "eu"}}
    metrics = CheckpointMetrics(valid_loss=0.5, extra=source)
    source["tags"].append("c")  # the record took a copy
    assert metrics.extra == {"tags": ("a", "b"), "origin": {"region": "eu"}}
    assert to_wire(metrics) == {"valid_loss": 0.5, "tags": ["a", "b"], "origin": {"region": "eu"}}
    assert CheckpointMetrics(extra={}).extra == {}
    assert hash(metrics) == hash(CheckpointMetrics(valid_loss=0.5, extra=metrics.extra))


@pytest.mark.parametrize(
    ("extra", "error", "expected"),
    [
        ({"valid_loss": 1.0}, ValueError, "valid_loss"),
        ([("a", 1)], TypeError, "mapping"),
        ({1: "a"}, TypeError, "keys are strings"),
        ({"a": {1, 2}}, TypeError, "not a JSON value: set"),
        ({"a": float("nan")}, TypeError, "finite"),
    ],
)
def test_unknown_fields_that_are_not_unknown_or_not_json_are_refused(
    extra: Any, error: type[Exception], expected: str
) -> None:
    """A handmade ``extra`` must hold JSON under names the record does not already have."""
    with pytest.raises(error, match=expected):
        CheckpointMetrics(extra=extra)


async def test_unknown_fields_of_served_checkpoints_reach_the_client(
    fake_api: FakeAPIServer, client: Any
) -> None:
    """Over loopback, a checkpoint's unknown fields arrive and re-serve unchanged."""
    served = [
        Checkpoint(
            id="ftckpt_1",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            fine_tuned_model_checkpoint="ft:base:org:sfx:abc:ckpt-step-1",
            fine_tuning_job_id="ftjob-x",
            metrics=CheckpointMetrics(step=1, extra={"new_metric": 0.25}),
            step_number=1,
            extra={"usage": {"tokens": 12}},
        )
    ]
    fake_api.add_job("ftjob-x", served)
    got = await client.checkpoints.list("ftjob-x").to_list()
    assert got == served
    assert to_wire(got[0])["usage"] == {"tokens": 12}
    assert to_wire(got[0])["metrics"]["new_metric"] == 0.25


@pytest.mark.parametrize(
    ("created_at", "step_number"),
    [(b"1721764867.0", b"2000"), (b"1721764867", b"2e3"), (b"1.721764867e9", b"2000.0")],
)
def test_integral_floats_are_read_as_the_integers_they_are(
    created_at: bytes, step_number: bytes
) -> None:
    """``1721764867.0`` or ``2e3`` where an integer is expected loses nothing and is read."""
    raw = _page_with()
    assert (raw["data"][0]["created_at"], raw["data"][0]["step_number"]) == (1721764867, 2000)
    raw["data"][0].update(created_at="<created_at>", step_number="<step_number>")
    body = (
        _body(raw).replace(b'"<created_at>"', created_at).replace(b'"<step_number>"', step_number)
    )
    page = parse_page(body)
    assert page == parse_page(_body(_page_with()))
    assert type(page.data[0].step_number) is int
    assert to_wire(page) == _page_with()  # the integers again


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("step_number", 1.5, "expected an integer, got 1.5 @ $.data[0].step_number"),
        (
            "created_at",
            1721764807.25,
            "expected an integer, got 1721764807.25 @ $.data[0].created_at",
        ),
        ("step_number", True, "expected an integer, got bool @ $.data[0].step_number"),
        ("step_number", 2.0**64, "got 1.8446744073709552e+19, too large to read exactly @ $"),
    ],
)
def test_a_fraction_or_a_boolean_for_an_integer_stays_an_error(
    field: str, value: Any, expected: str
) -> None:
    """Reading a fraction (or a float past 2**53) as an integer could lose data: refused."""
    raw = _page_with()
    raw["data"][0][field] = value
    assert expected in _problem(_body(raw))


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    """A body that starts with a UTF-8 BOM reads as the same page without it."""
    body = _body(_with_unknown_fields())
    assert parse_page(b"\xef\xbb\xbf" + body) == parse_page(body)


@pytest.mark.parametrize(
    ("encoding", "named"),
    [
        ("utf-16", "UTF-16"),
        ("utf-16-le", "UTF-16"),
        ("utf-16-be", "UTF-16"),
        ("utf-32", "UTF-32"),
        ("utf-32-le", "UTF-32"),
    ],
)
def test_other_encodings_stay_a_clear_error(encoding: str, named: str) -> None:
    """A UTF-16 or UTF-32 body is never guessed at: the error says what it looks like."""
    body = json.dumps(_page_with()).encode(encoding)
    message = _problem(body)
    assert "not JSON" in message
    assert f"looks like {named}, not UTF-8" in message


def test_a_body_with_nul_bytes_is_not_called_utf16_unless_it_looks_so() -> None:
    """A compressed body (gzip starts 1f 8b 08 00) is not JSON, and no encoding is guessed."""
    message = _problem(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03")
    assert "not JSON" in message
    assert "looks like" not in message


def test_a_byte_order_mark_alone_or_twice_is_not_json() -> None:
    """Only one leading BOM is skipped; what follows must still be JSON."""
    assert "not JSON" in _problem(b"\xef\xbb\xbf")
    assert "not JSON" in _problem(b"\xef\xbb\xbf\xef\xbb\xbf{}")


def test_records_are_frozen() -> None:
    """Records cannot be changed after parsing."""
    page = parse_page(_body(load_fixture("page_spec_example.json")))
    with pytest.raises(AttributeError):
        page.data[0].id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "fixture",
    ["page_spec_example.json"],
)
def test_page_round_trips_to_identical_wire_json(fixture: str) -> None:
    """A page turned back into JSON is exactly the JSON it was parsed from."""
    raw = load_fixture(fixture)
    assert to_wire(parse_page(_body(raw))) == raw


def test_checkpoint_round_trips_with_every_metric_and_integer_values() -> None:
    """All seven metrics survive, and integers in metrics stay integers on the way back."""
    raw = load_fixture("checkpoint_all_metrics.json")
    page = parse_page(_body({"object": "list", "data": [raw], "has_more": False}))
    checkpoint = page.data[0]
    assert checkpoint.metrics.step == 88
    assert isinstance(checkpoint.metrics.step, int)
    assert to_wire(checkpoint) == raw
    assert json.dumps(to_wire(checkpoint), sort_keys=True) == json.dumps(raw, sort_keys=True)


def test_to_wire_leaves_out_absent_metrics() -> None:
    """Metrics the API did not send stay absent instead of becoming ``null``."""
    assert to_wire(CheckpointMetrics(valid_loss=0.5)) == {"valid_loss": 0.5}


def test_to_wire_rejects_other_objects() -> None:
    """``to_wire`` names what it takes when given something else."""
    with pytest.raises(TypeError, match="Checkpoint"):
        to_wire({"id": "x"})  # type: ignore[arg-type]


def test_to_wire_of_a_handmade_checkpoint() -> None:
    """A checkpoint built in code serialises with ``object`` and integer ``created_at``."""
    checkpoint = Checkpoint(
        id="ftckpt_1",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        fine_tuned_model_checkpoint="ft:base:org:sfx:abc:ckpt-step-1",
        fine_tuning_job_id="ftjob-1",
        metrics=CheckpointMetrics(),
        step_number=1,
    )
    assert to_wire(checkpoint) == {
        "id": "ftckpt_1",
        "created_at": 1767225600,
        "fine_tuned_model_checkpoint": "ft:base:org:sfx:abc:ckpt-step-1",
        "fine_tuning_job_id": "ftjob-1",
        "metrics": {},
        "step_number": 1,
        "object": "fine_tuning.job.checkpoint",
    }
    page = CheckpointPage(data=(checkpoint,), has_more=False)
    assert to_wire(page)["data"] == [to_wire(checkpoint)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", "not JSON"),
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "not an object"),
        (_body(_page_with(data="abc")), "expected a list, got str @ $.data"),
        (_body(_page_with(data={"a": 1})), "expected a list, got dict @ $.data"),
        (_body(_page_with(object="lst")), "expected 'list', got 'lst' @ $.object"),
        (_body(_page_with(has_more="yes")), "expected a boolean, got str @ $.has_more"),
        (_body(_page_with(first_id=5)), "expected a string, got int @ $.first_id"),
    ],
)
def test_invalid_pages_raise_one_clear_error(body: bytes, expected: str) -> None:
    """Each kind of broken body gives an APIResponseValidationError saying what and where."""
    assert expected in _problem(body)


def test_missing_has_more_is_named_by_path() -> None:
    """A page without ``has_more`` names that field."""
    raw = _page_with()
    del raw["has_more"]
    assert "required field missing @ $.has_more" in _problem(_body(raw))


def test_bad_items_are_listed_by_path() -> None:
    """Every wrong field of every item is named by its JSON path."""
    raw = _page_with()
    raw["data"][0]["id"] = 3
    raw["data"][0]["created_at"] = True
    raw["data"][0]["step_number"] = "2000"
    del raw["data"][1]["id"]
    raw["data"][1]["object"] = "nope"
    message = _problem(_body(raw))
    assert "expected a string, got int @ $.data[0].id" in message
    assert "expected an integer, got bool @ $.data[0].created_at" in message
    assert "expected an integer, got str @ $.data[0].step_number" in message
    assert "required field missing @ $.data[1].id" in message
    assert "expected 'fine_tuning.job.checkpoint', got 'nope' @ $.data[1].object" in message


def test_a_long_list_of_problems_is_cut_short() -> None:
    """A page of hundreds of broken items gives a readable message, not thousands of lines."""
    message = _problem(_body({"object": "list", "data": [{}] * 100, "has_more": False}))
    assert "and 590 more" in message


def test_metrics_must_be_numbers() -> None:
    """A metric sent as a string is a validation error, not silently converted."""
    raw = _page_with()
    raw["data"][0]["metrics"]["full_valid_loss"] = "0.1"
    assert "expected a number, got str @ $.data[0].metrics.full_valid_loss" in _problem(_body(raw))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"data":[],"last_id":"ftckpt_9","has_more":true}', "ftckpt_9"),
        (b'{"data": [], "last_id" : "ftckpt_9", "has_more" : true}\n', "ftckpt_9"),
        (b'{"data":[],"last_id":"ftckpt_9","has_more":false}', None),
        (b'{"data":[],"has_more":true}', None),
        (b'{"data":[],"last_id":"a\\"b","has_more":true}', None),
        (b"<html>", None),
    ],
)
def test_early_cursor_guess_from_raw_bytes(body: bytes, expected: str | None) -> None:
    """The read-ahead's guess comes from the tail of the raw body, or not at all."""
    from fine_tune_ckpt._wire import RawPage

    assert RawPage(body).peek_cursor() == expected


def test_an_integer_too_long_for_orjson_is_kept_exactly() -> None:
    """An unknown field holding a 400-digit integer neither sinks the page nor changes."""
    import json as stdlib_json

    from fine_tune_ckpt import to_wire
    from fine_tune_ckpt._wire import parse_page

    page = stdlib_json.loads((FIXTURES / "page_spec_example.json").read_text())
    page["total_tokens_ever"] = 10**400
    parsed = parse_page(stdlib_json.dumps(page).encode())
    assert parsed.extra["total_tokens_ever"] == 10**400
    assert to_wire(parsed)["total_tokens_ever"] == 10**400


def test_the_slow_reader_refuses_nan_and_utf16() -> None:
    """The fallback reader takes neither NaN/Infinity nor a UTF-16 body."""
    from fine_tune_ckpt import APIResponseValidationError
    from fine_tune_ckpt._wire import parse_page

    for body in (b'{"data": [], "has_more": false, "x": NaN}', '{"data": []}'.encode("utf-16")):
        with pytest.raises(APIResponseValidationError, match="not JSON"):
            parse_page(body)
