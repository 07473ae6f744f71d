"""Properties over many generated cases (hypothesis): paging slices and wire round trips."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

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
_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
_extra = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(lambda k: k not in {"id", "object"}),
    _json_scalar,
    max_size=3,
)


@st.composite
def wire_checkpoints(draw: st.DrawFn) -> dict[str, Any]:
    """A checkpoint as the API sends it, with any subset of metrics."""
    metrics = draw(st.dictionaries(st.sampled_from(_metric_names), _number))
    return {
        "id": draw(st.text(min_size=1, max_size=30)),
        "created_at": draw(st.integers(min_value=0, max_value=4_102_444_800)),
        "fine_tuned_model_checkpoint": draw(st.text(max_size=60)),
        "fine_tuning_job_id": draw(st.text(min_size=1, max_size=20)),
        "metrics": metrics,
        "step_number": draw(st.integers(min_value=0, max_value=10**9)),
        "object": "fine_tuning.job.checkpoint",
    }


@settings(max_examples=200, deadline=None)
@given(items=st.lists(wire_checkpoints(), max_size=5), has_more=st.booleans())
def test_wire_to_record_to_wire_is_the_identity(
    items: list[dict[str, Any]], has_more: bool
) -> None:
    """Any valid page survives JSON -> records -> JSON unchanged, numbers included."""
    page = {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }
    wire = to_wire(parse_page(json.dumps(page).encode()))
    assert wire == page
    assert json.dumps(wire, sort_keys=True) == json.dumps(page, sort_keys=True)


@settings(max_examples=200, deadline=None)
@given(item=wire_checkpoints(), extra=_extra, metric_extra=_extra)
def test_unknown_fields_never_break_parsing(
    item: dict[str, Any], extra: dict[str, Any], metric_extra: dict[str, Any]
) -> None:
    """Extra fields anywhere are ignored and the known ones still parse."""
    noisy = {**extra, **item, "metrics": {**metric_extra, **item["metrics"]}}
    page = {"object": "list", "data": [noisy], "has_more": False, "new_field": extra}
    parsed = parse_page(json.dumps(page).encode())
    assert to_wire(parsed.data[0]) == item


@given(
    seconds=st.integers(min_value=0, max_value=4_102_444_800),
    metrics=st.builds(CheckpointMetrics, full_valid_loss=st.one_of(st.none(), _finite)),
)
def test_record_to_wire_to_record_is_the_identity(seconds: int, metrics: CheckpointMetrics) -> None:
    """A record built in code survives records -> JSON -> records."""
    checkpoint = Checkpoint(
        id="ftckpt_x",
        created_at=datetime.fromtimestamp(seconds, UTC),
        fine_tuned_model_checkpoint="ft:m:o:s:x:ckpt-step-1",
        fine_tuning_job_id="ftjob-1",
        metrics=metrics,
        step_number=1,
    )
    page = CheckpointPage(data=(checkpoint,), has_more=False)
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


@st.composite
def damaged_pages(draw: st.DrawFn) -> dict[str, Any]:
    """A valid page with a few values replaced by arbitrary JSON, or keys removed."""
    items = draw(st.lists(wire_checkpoints(), min_size=1, max_size=3))
    page: dict[str, Any] = {"object": "list", "data": items, "has_more": draw(st.booleans())}
    page["first_id"] = items[0]["id"]
    page["last_id"] = items[-1]["id"]
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


@settings(max_examples=500, deadline=None)
@given(page=damaged_pages())
def test_fast_parser_agrees_with_the_converter(page: dict[str, Any]) -> None:
    """The hot-path parser accepts exactly what the cattrs converter accepts, identically."""
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
