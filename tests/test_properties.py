"""Properties over many generated cases (hypothesis): paging slices and wire round trips."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fine_tune_ckpt import (
    AsyncCheckpointPager,
    Checkpoint,
    CheckpointMetrics,
    CheckpointPage,
    to_wire,
)
from fine_tune_ckpt._models import CHECKPOINT_KEYS, METRICS_KEYS, PAGE_KEYS
from fine_tune_ckpt._wire import parse_page
from fine_tune_ckpt.testing import FakeAPIServer, FakeClock

from .test_paging import Pages


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(min_value=0, max_value=60),
    limit=st.integers(min_value=1, max_value=15),
    start=st.integers(min_value=-1, max_value=59),
    max_items=st.one_of(st.none(), st.integers(min_value=1, max_value=70)),
)
async def test_pager_yields_exactly_the_slice_with_no_extra_pages(
    total: int, limit: int, start: int, max_items: int | None
) -> None:
    """Any size, page size, start and cap: the exact slice, from the fewest pages."""
    api = Pages(total=total, limit=limit)
    after = api.items[start].id if 0 <= start < total else None
    first = start + 1 if after is not None else 0
    pager = api.pager(after=after, max_items=max_items)
    got = [checkpoint.id async for checkpoint in pager]
    remaining = total - first
    wanted = remaining if max_items is None else min(max_items, remaining)
    assert got == [item.id for item in api.items[first : first + wanted]]
    # Pages needed: enough to cover the items wanted; when the walk ran to the end it also
    # reads the page that says has_more=false (that is the same page unless empty).
    if max_items is not None and max_items < remaining:
        needed = math.ceil(max_items / limit)
    else:
        needed = max(1, math.ceil(remaining / limit))
    assert len(api.calls) == needed


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    total=st.integers(min_value=0, max_value=30),
    limit=st.integers(min_value=1, max_value=12),
    max_items=st.one_of(st.none(), st.integers(min_value=1, max_value=35)),
)
async def test_full_stack_slice_over_loopback(
    total: int, limit: int, max_items: int | None
) -> None:
    """The same property through the real client and the fake over loopback."""
    from fine_tune_ckpt import AsyncClient

    async with FakeAPIServer() as fake:
        expected = fake.add_job("ftjob-p", count=total)
        async with AsyncClient(
            api_key=fake.api_key, base_url=fake.base_url, clock=FakeClock()
        ) as client:
            got = await client.checkpoints.list(
                "ftjob-p", limit=limit, max_items=max_items
            ).to_list()
        wanted = total if max_items is None else min(total, max_items)
        assert got == expected[:wanted]
        if max_items is not None and max_items < total:
            assert len(fake.requests) == math.ceil(max_items / limit)
        else:
            assert len(fake.requests) == max(1, math.ceil(total / limit))


_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_number = st.one_of(_finite, st.integers(min_value=-(2**53), max_value=2**53))
_metric_names = [field.name for field in attrs.fields(CheckpointMetrics)]
#: Any JSON value a server may send in a field this version does not know. Integers stay
#: within 64 bits: orjson reads larger ones as floats, which no client can give back.
_any_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        _finite,
        st.text(max_size=5),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=8,
)


def _unknown_fields(known: frozenset[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Fields a record does not know (including one called "extra"), with any JSON values."""
    names = st.one_of(st.just("extra"), st.text(max_size=8)).filter(lambda k: k not in known)
    return st.dictionaries(names, _any_json, max_size=3)


@st.composite
def wire_checkpoints(draw: st.DrawFn, *, unknown: bool = False) -> dict[str, Any]:
    """A checkpoint as the API sends it, with any subset of metrics, and unknown fields."""
    metrics = draw(st.dictionaries(st.sampled_from(_metric_names), _number))
    item = {
        "id": draw(st.text(min_size=1, max_size=30)),
        "created_at": draw(st.integers(min_value=0, max_value=4_102_444_800)),
        "fine_tuned_model_checkpoint": draw(st.text(max_size=60)),
        "fine_tuning_job_id": draw(st.text(min_size=1, max_size=20)),
        "metrics": metrics,
        "step_number": draw(st.integers(min_value=0, max_value=10**9)),
        "object": "fine_tuning.job.checkpoint",
    }
    if unknown:
        # Unknown keys may come first, last or between: JSON objects have no order.
        item = {**draw(_unknown_fields(CHECKPOINT_KEYS)), **item}
        metrics.update(draw(_unknown_fields(METRICS_KEYS)))
    return item


@st.composite
def wire_pages(draw: st.DrawFn) -> dict[str, Any]:
    """A valid page as the API sends it, with unknown fields anywhere."""
    items = draw(st.lists(wire_checkpoints(unknown=True), max_size=5))
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": draw(st.booleans()),
        **draw(_unknown_fields(PAGE_KEYS)),
    }


@settings(max_examples=300, deadline=None)
@given(page=wire_pages())
def test_wire_to_record_to_wire_is_the_identity(page: dict[str, Any]) -> None:
    """Any valid page survives JSON -> records -> JSON unchanged, unknown fields included."""
    body = json.dumps(page).encode()
    parsed = parse_page(body)
    wire = to_wire(parsed)
    assert wire == page
    assert json.dumps(wire, sort_keys=True) == json.dumps(page, sort_keys=True)
    assert parse_page(b"\xef\xbb\xbf" + body) == parsed


@settings(max_examples=200, deadline=None)
@given(page=wire_pages())
def test_records_of_equal_pages_are_equal_and_hash_alike(page: dict[str, Any]) -> None:
    """Two parses of one page are equal records with equal hashes, whatever is unknown."""
    body = json.dumps(page).encode()
    first, second = parse_page(body), parse_page(body)
    assert first == second
    assert hash(first) == hash(second)
    assert {first, *first.data} == {second, *second.data}


def _as_float_text(value: int, spelling: int) -> str:
    """``value`` written as JSON a float-minded encoder may send: ``2000.0``, ``2e3``..."""
    digits = str(value).rstrip("0") or "0"
    zeros = len(str(value)) - len(digits)
    spellings = [f"{value}.0", f"{value}e0", f"{value}.000E+0", f"{digits}e{zeros}"]
    return spellings[spelling % len(spellings)]


@settings(max_examples=200, deadline=None)
@given(page=wire_pages(), data=st.data())
def test_integral_floats_read_as_the_integers_they_are(
    page: dict[str, Any], data: st.DataObject
) -> None:
    """``created_at`` or ``step_number`` written as ``1e3`` or ``1000.0`` reads as 1000."""
    spelled = json.loads(json.dumps(page))
    replacements = {}
    for index, item in enumerate(spelled["data"]):
        for key in ("created_at", "step_number"):
            spelling = data.draw(st.one_of(st.none(), st.integers(0, 3)), label=f"{index}.{key}")
            if spelling is not None:
                placeholder = f"<{index}.{key}>"
                replacements[f'"{placeholder}"'] = _as_float_text(item[key], spelling)
                item[key] = placeholder
    body = json.dumps(spelled)
    for placeholder, text in replacements.items():
        body = body.replace(placeholder, text)
    parsed = parse_page(body.encode())
    assert parsed == parse_page(json.dumps(page).encode())
    assert to_wire(parsed) == page


@settings(max_examples=100, deadline=None)
@given(
    seconds=st.integers(min_value=0, max_value=4_102_444_800),
    metrics=st.builds(
        CheckpointMetrics,
        full_valid_loss=st.one_of(st.none(), _finite),
        extra=_unknown_fields(METRICS_KEYS),
    ),
    extra=_unknown_fields(CHECKPOINT_KEYS),
    page_extra=_unknown_fields(PAGE_KEYS),
)
def test_record_to_wire_to_record_is_the_identity(
    seconds: int, metrics: CheckpointMetrics, extra: dict[str, Any], page_extra: dict[str, Any]
) -> None:
    """A record built in code, unknown fields included, survives records -> JSON -> records."""
    checkpoint = Checkpoint(
        id="ftckpt_x",
        created_at=datetime.fromtimestamp(seconds, UTC),
        fine_tuned_model_checkpoint="ft:m:o:s:x:ckpt-step-1",
        fine_tuning_job_id="ftjob-1",
        metrics=metrics,
        step_number=1,
        extra=extra,
    )
    page = CheckpointPage(data=(checkpoint,), has_more=False, extra=page_extra)
    assert parse_page(json.dumps(to_wire(page)).encode()) == page


def test_pages_helper_is_the_in_memory_api() -> None:
    """The in-memory API used above pages as the real one does."""
    api = Pages(total=3, limit=2)
    assert isinstance(api.pager(), AsyncCheckpointPager)


_json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=4)
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
_page_keys = ["object", "data", "first_id", "last_id", "has_more"]
_item_keys = [
    "object",
    "id",
    "created_at",
    "fine_tuned_model_checkpoint",
    "fine_tuning_job_id",
    "metrics",
    "step_number",
]


#: What a damaged integer may be: integral or not, small or past what a float holds exactly.
_near_integers = st.one_of(
    st.integers(min_value=0, max_value=4_102_444_800).map(float),
    st.sampled_from([1e3, 2.0**53, 2.0**53 + 2, 1e20, 0.5, -0.0, 1721764807.25]),
)


@st.composite
def damaged_pages(draw: st.DrawFn) -> dict[str, Any]:
    """A valid page with values replaced by arbitrary JSON or floats, keys removed or added."""
    items = draw(st.lists(wire_checkpoints(unknown=draw(st.booleans())), min_size=1, max_size=3))
    page: dict[str, Any] = {"object": "list", "data": items, "has_more": draw(st.booleans())}
    page["first_id"] = items[0]["id"]
    page["last_id"] = items[-1]["id"]
    page.update(draw(_unknown_fields(PAGE_KEYS)))
    for item in items:
        for key in ("created_at", "step_number"):
            if draw(st.booleans()):
                item[key] = draw(_near_integers)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        where = draw(st.sampled_from(["page", "item", "metric"]))
        target = page
        keys = _page_keys
        if where != "page":
            target = draw(st.sampled_from(items))
            keys = _item_keys
        if where == "metric":
            if not isinstance(target.get("metrics"), dict):
                continue
            target = target["metrics"]
            keys = _metric_names
        key = draw(st.sampled_from(keys))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(_json_values)
    return page


@settings(max_examples=800, deadline=None)
@given(page=damaged_pages())
def test_fast_parser_agrees_with_the_converter(page: dict[str, Any]) -> None:
    """The hot-path parser accepts exactly what the cattrs converter accepts, identically.

    Identically means equal records, unknown fields and integers read from floats included.
    """
    from fine_tune_ckpt._wire import _fast_page, _structure_page

    try:
        expected = _structure_page(page, CheckpointPage)
    except Exception:
        expected = None
    try:
        fast = _fast_page(page)
    except Exception:
        fast = None
    assert fast == expected
    if fast is not None and expected is not None:
        # Equal records could still hold 1 where the other holds True or 1.0: the JSON tells.
        assert json.dumps(to_wire(fast), sort_keys=True) == json.dumps(
            to_wire(expected), sort_keys=True
        )


@settings(max_examples=300, deadline=None)
@given(page=wire_pages())
def test_the_page_loop_agrees_with_the_item_parser(page: dict[str, Any]) -> None:
    """Items read by the page's own loop equal the records read item by item.

    Any subset of metrics and unknown fields at both levels included; and both agree with
    the converter.
    """
    from fine_tune_ckpt._wire import _fast_checkpoint, _fast_checkpoints, _structure_page

    records = _fast_checkpoints(page["data"])
    assert {(type(c), type(c.metrics)) for c in records} <= {(Checkpoint, CheckpointMetrics)}
    assert records == tuple(_fast_checkpoint(item) for item in page["data"])
    assert records == _structure_page(page, CheckpointPage).data
    assert [to_wire(checkpoint) for checkpoint in records] == page["data"]


@st.composite
def usual_checkpoints(draw: st.DrawFn) -> dict[str, Any]:
    """A checkpoint with any metrics, numbers or null, and any unknown fields."""
    item = draw(wire_checkpoints(unknown=True))
    for name in sorted(METRICS_KEYS):
        if draw(st.booleans()):
            item["metrics"][name] = draw(st.one_of(st.none(), _number))
    return item


@settings(max_examples=200, deadline=None)
@given(items=st.lists(usual_checkpoints(), max_size=5))
def test_the_usual_shape_never_leaves_the_page_loop(items: list[dict[str, Any]]) -> None:
    """Every item with all its fields is made in the loop, not item by item.

    Absent and null metrics, integer losses, float steps and unknown fields at both levels
    included: a real page of any of these keeps the quick path.
    """
    from fine_tune_ckpt import _wire

    expected = tuple(_wire._fast_checkpoint(item) for item in items)
    with mock.patch.object(_wire, "_fast_checkpoint", side_effect=AssertionError("slow path")):
        assert _wire._fast_checkpoints(items) == expected
