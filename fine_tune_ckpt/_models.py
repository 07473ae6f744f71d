"""The records a listing yields: plain frozen attrs classes named and shaped as on the wire.

They hold data only. Turning JSON into records and back lives in ``_wire``. Fields the API
sends that this version does not know are kept, read-only, in each record's ``extra``, so
that nothing the API said is lost when records are re-served.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Final, Literal, NoReturn, final

import attrs

from ._metadata import ResponseInfo

__all__ = [
    "TERMINAL_STATUSES",
    "Checkpoint",
    "CheckpointMetrics",
    "CheckpointPage",
    "FineTuningJob",
    "FineTuningJobError",
    "FineTuningJobPage",
    "JobStatus",
]


@final
class FrozenJSONObject(Mapping[str, Any]):
    """A read-only JSON object that compares like a dict and hashes.

    Its values are frozen too: objects are ``FrozenJSONObject`` and arrays are tuples, so
    nothing inside a record can change and every record stays hashable.
    """

    # _hash stays unset until asked for: one slot to set makes building one cheaper, and
    # the parser builds one for every unknown field of every item.
    __slots__ = ("_hash", "_items")

    _items: dict[str, Any]
    _hash: int

    def __init__(self, items: dict[str, Any]) -> None:
        """Wrap ``items``, whose values must already be frozen (see :func:`freeze_json`)."""
        _set_items(self, items)

    def __getitem__(self, key: str) -> Any:
        """The value at ``key``."""
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        """The keys, in the order the API sent them."""
        return iter(self._items)

    def __len__(self) -> int:
        """How many keys."""
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        """Equal to any mapping with the same keys and values, as a dict is."""
        if type(other) is FrozenJSONObject:
            return self._items == other._items
        if isinstance(other, Mapping):
            return self._items == dict(other.items())
        return NotImplemented

    def __hash__(self) -> int:
        """A hash over keys and values, computed once."""
        try:
            return self._hash
        except AttributeError:
            value = hash(frozenset(self._items.items()))
            _set_hash(self, value)
            return value

    def __repr__(self) -> str:
        """Shown as the dict it reads like."""
        return repr(self._items)

    def __reduce__(self) -> str | tuple[type[FrozenJSONObject], tuple[dict[str, Any]]]:
        """Pickle and copy by the wrapped items; the shared empty one stays shared."""
        if self is NO_EXTRA:
            return "NO_EXTRA"  # pickled by name: most records hold it
        return (FrozenJSONObject, (self._items,))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        """Refuse: the object is read-only."""
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> NoReturn:
        """Refuse: the object is read-only."""
        raise AttributeError(f"{type(self).__name__} is read-only")


# The slots' own setters: __setattr__ refuses, and object.__setattr__ costs a third more.
_set_items = FrozenJSONObject.__dict__["_items"].__set__
_set_hash = FrozenJSONObject.__dict__["_hash"].__set__

#: The ``extra`` of a record the API sent no unknown fields for; shared, since most are.
NO_EXTRA: Final = FrozenJSONObject({})


#: JSON scalars that are immutable already; float is apart, as it must be finite too.
_IMMUTABLE_SCALARS = frozenset({str, int, bool, type(None)})


def freeze_json(value: Any) -> Any:
    """A read-only copy of a JSON value: objects become FrozenJSONObject, arrays tuples.

    Raises TypeError for anything JSON cannot hold, so that ``to_wire`` always gives JSON.
    """
    # Exact types first: the parser freezes every unknown field of every item with this,
    # and isinstance() against the Mapping ABC costs more than the rest put together.
    kind = type(value)
    if kind in _IMMUTABLE_SCALARS:
        return value
    if kind is dict:
        # A loop, not freeze_items(): one call less per object, and objects nest.
        items = {}
        for key, inner in value.items():
            if type(key) is not str:
                raise TypeError(f"JSON object keys are strings, got {type(key).__name__}")
            items[key] = inner if type(inner) in _IMMUTABLE_SCALARS else freeze_json(inner)
        return FrozenJSONObject(items)
    if kind is list or kind is tuple:
        if _IMMUTABLE_SCALARS.issuperset(map(type, value)):
            return tuple(value)
        return tuple([freeze_json(inner) for inner in value])
    if kind is float:
        if math.isfinite(value):
            return value
        raise TypeError(f"JSON numbers are finite, got {value!r}")
    if kind is FrozenJSONObject:
        return value  # already frozen all the way down
    # Subclasses last (an OrderedDict, an IntEnum): JSON encoders take them as their base.
    if isinstance(value, Mapping):
        return FrozenJSONObject(freeze_items(value))
    if isinstance(value, list | tuple):
        return tuple([freeze_json(inner) for inner in value])
    if isinstance(value, float):
        return freeze_json(float(value))
    if isinstance(value, str | int):
        return value
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def freeze_items(value: Mapping[Any, Any]) -> dict[str, Any]:
    """The items of a JSON object with their values frozen."""
    items = {}
    for key, inner in value.items():
        if type(key) is not str and not isinstance(key, str):
            raise TypeError(f"JSON object keys are strings, got {type(key).__name__}")
        items[key] = inner if type(inner) in _IMMUTABLE_SCALARS else freeze_json(inner)
    return items


def unknown_fields(value: dict[str, Any], known: frozenset[str]) -> Mapping[str, Any]:
    """The fields of a decoded JSON object outside ``known``, frozen; usually none.

    A set difference finds them in C, so an item pays for its unknown fields only, not
    for every field it has: when the API adds a field, every item of every page has it.
    """
    names = value.keys() - known
    if not names:
        return NO_EXTRA
    if len(names) > 1:  # a set has no order; JSON objects keep theirs through to_wire
        names = [name for name in value if name in names]  # type: ignore[assignment]
    items = {}
    for name in names:  # a loop: a comprehension is one more frame, for one key usually
        inner = value[name]
        items[name] = inner if type(inner) in _IMMUTABLE_SCALARS else freeze_json(inner)
    return FrozenJSONObject(items)


def thaw_json(value: Any) -> Any:
    """The plain JSON value (dicts and lists) a frozen one was made from."""
    if type(value) is FrozenJSONObject:
        return {key: thaw_json(inner) for key, inner in value.items()}
    if type(value) is tuple:
        return [thaw_json(inner) for inner in value]
    return value


def _freeze_extra(value: object, known: frozenset[str], owner: str) -> Mapping[str, Any]:
    """Freeze unknown fields, refusing any that would shadow one of the record's own."""
    if type(value) is not FrozenJSONObject:  # the parser hands over frozen ones
        if not isinstance(value, Mapping):
            raise TypeError(f"extra must be a mapping, got {type(value).__name__}")
        value = freeze_json(value)
    frozen: FrozenJSONObject = value  # type: ignore[assignment]  # checked or frozen above
    if not frozen._items:
        return NO_EXTRA
    if not known.isdisjoint(frozen._items):
        # Two values for one field: to_wire could give back only one of them.
        clash = ", ".join(sorted(known.intersection(frozen._items)))
        raise ValueError(f"extra holds fields {owner} knows: {clash}")
    return frozen


# One converter per record: attrs and mypy take only named functions as converters. The
# identity check first keeps the common case (nothing unknown) cheap on the hot path. They
# take ``object``, checked at run time, so that ``CheckpointMetrics(**floats)`` still
# type-checks: mypy would match every value of such a dict against this parameter too.
def _metrics_extra(value: object) -> Mapping[str, Any]:
    return value if value is NO_EXTRA else _freeze_extra(value, METRICS_KEYS, "CheckpointMetrics")


def _checkpoint_extra(value: object) -> Mapping[str, Any]:
    return value if value is NO_EXTRA else _freeze_extra(value, CHECKPOINT_KEYS, "Checkpoint")


def _page_extra(value: object) -> Mapping[str, Any]:
    return value if value is NO_EXTRA else _freeze_extra(value, PAGE_KEYS, "CheckpointPage")


@attrs.frozen
class CheckpointMetrics:
    """Training metrics at a checkpoint's step; the API sends only those it measured."""

    #: The training step these metrics were taken at.
    step: float | None = None
    #: Training loss at this step.
    train_loss: float | None = None
    #: Training mean token accuracy at this step.
    train_mean_token_accuracy: float | None = None
    #: Validation loss on a validation batch at this step.
    valid_loss: float | None = None
    #: Validation mean token accuracy on a validation batch at this step.
    valid_mean_token_accuracy: float | None = None
    #: Validation loss over the full validation set.
    full_valid_loss: float | None = None
    #: Validation mean token accuracy over the full validation set.
    full_valid_mean_token_accuracy: float | None = None
    #: Fields the API sent that this version does not know (the official SDK's
    #: ``model_extra``), read-only: JSON objects in it are read-only mappings and arrays
    #: are tuples. ``to_wire`` gives them back as sent. Empty when there are none.
    extra: Mapping[str, Any] = attrs.field(default=NO_EXTRA, converter=_metrics_extra, kw_only=True)


@attrs.frozen
class Checkpoint:
    """A ``fine_tuning.job.checkpoint``: a model checkpoint of a job, ready to use."""

    #: The checkpoint identifier, e.g. ``ftckpt_zc4Q7MP6XxulcVzj4MZdwsAB``.
    id: str
    #: When the checkpoint was created, as an aware UTC datetime.
    created_at: datetime
    #: The model name to use this checkpoint, ``ft:<base>:<org>:<suffix>:<id>:ckpt-step-<n>``.
    fine_tuned_model_checkpoint: str
    #: The fine-tuning job this checkpoint was created from.
    fine_tuning_job_id: str
    #: Metrics at this checkpoint's step.
    metrics: CheckpointMetrics
    #: The step number the checkpoint was created at.
    step_number: int
    #: The object type, always ``fine_tuning.job.checkpoint``.
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    #: Fields the API sent that this version does not know (the official SDK's
    #: ``model_extra``), read-only: JSON objects in it are read-only mappings and arrays
    #: are tuples. ``to_wire`` gives them back as sent. Empty when there are none.
    extra: Mapping[str, Any] = attrs.field(
        default=NO_EXTRA, converter=_checkpoint_extra, kw_only=True
    )


@attrs.frozen
class CheckpointPage:
    """One page of a listing, as the API sent it (newest checkpoint first)."""

    #: The checkpoints on this page.
    data: tuple[Checkpoint, ...]
    #: Whether the API holds more checkpoints after this page.
    has_more: bool
    #: The id of the first checkpoint on this page, if the API sent one.
    first_id: str | None = None
    #: The id of the last checkpoint on this page, if the API sent one.
    last_id: str | None = None
    #: The object type, always ``list``.
    object: Literal["list"] = "list"
    #: Fields the API sent that this version does not know (the official SDK's
    #: ``model_extra``), read-only: JSON objects in it are read-only mappings and arrays
    #: are tuples. ``to_wire`` gives them back as sent. Empty when there are none.
    extra: Mapping[str, Any] = attrs.field(default=NO_EXTRA, converter=_page_extra, kw_only=True)
    #: What is known of the answer that brought this page: status, request id, headers,
    #: rate limits, attempts and time taken. Not part of the page's data: it takes no part
    #: in equality and ``to_wire`` leaves it out. ``None`` for a page not fetched.
    response: ResponseInfo | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    @property
    def next_after(self) -> str | None:
        """The ``after`` cursor of the next page, or ``None`` when this is the last page.

        As in the official SDK, the cursor is the id of this page's last item.
        """
        if not self.has_more or not self.data:
            return None
        return self.data[-1].id


#: Where a fine-tuning job stands. The last three are final: the job will not change again.
JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]

#: The statuses a job ends in; a watch ends once its job reaches one.
TERMINAL_STATUSES: Final[frozenset[JobStatus]] = frozenset({"succeeded", "failed", "cancelled"})


def _error_extra(value: object) -> Mapping[str, Any]:
    if value is NO_EXTRA:
        return value
    return _freeze_extra(value, JOB_ERROR_KEYS, "FineTuningJobError")


def _job_extra(value: object) -> Mapping[str, Any]:
    return value if value is NO_EXTRA else _freeze_extra(value, JOB_KEYS, "FineTuningJob")


def _job_page_extra(value: object) -> Mapping[str, Any]:
    return value if value is NO_EXTRA else _freeze_extra(value, JOB_PAGE_KEYS, "FineTuningJobPage")


def _frozen_object(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a mapping, got {type(value).__name__}")
    frozen: Mapping[str, Any] = freeze_json(value)
    return frozen


def _frozen_object_or_none(value: object) -> Mapping[str, Any] | None:
    return None if value is None else _frozen_object(value)


def _frozen_objects_or_none(value: object) -> tuple[Mapping[str, Any], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return tuple(_frozen_object(item) for item in value)


def _strings(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


@attrs.frozen
class FineTuningJobError:
    """Why a job failed: the ``error`` of a ``failed`` :class:`FineTuningJob`."""

    #: A machine-readable error code.
    code: str
    #: A human-readable error message.
    message: str
    #: The parameter that was invalid (usually ``training_file``), or ``None``.
    param: str | None = None
    #: Fields the API sent that this version does not know, read-only (see
    #: :attr:`Checkpoint.extra`).
    extra: Mapping[str, Any] = attrs.field(default=NO_EXTRA, converter=_error_extra, kw_only=True)


@attrs.frozen
class FineTuningJob:
    """A ``fine_tuning.job``: one fine-tuning job, as ``client.jobs`` reads it.

    Every top-level field of the API's schema is typed. ``hyperparameters``, ``method``,
    ``integrations`` and ``metadata`` are read-only mappings as sent (their shapes are
    large unions that vary with the fine-tuning method).
    """

    #: The job identifier, e.g. ``ftjob-abc123``.
    id: str
    #: When the job was created, as an aware UTC datetime.
    created_at: datetime
    #: The base model being fine-tuned.
    model: str
    #: Where the job stands; see :data:`TERMINAL_STATUSES`.
    status: JobStatus
    #: The organization that owns the job.
    organization_id: str
    #: The file id of the training data.
    training_file: str
    #: The object type, always ``fine_tuning.job``.
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    #: Why the job failed, for a ``failed`` job; otherwise ``None``.
    error: FineTuningJobError | None = None
    #: The fine-tuned model's name once the job succeeded; ``None`` while it runs.
    fine_tuned_model: str | None = None
    #: When the job finished, as an aware UTC datetime; ``None`` while it runs.
    finished_at: datetime | None = None
    #: The hyperparameters used (supervised jobs), read-only as sent.
    hyperparameters: Mapping[str, Any] = attrs.field(default=NO_EXTRA, converter=_frozen_object)
    #: The compiled results file ids.
    result_files: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    #: Billable tokens processed; ``None`` while the job runs.
    trained_tokens: int | None = None
    #: The file id of the validation data, if any.
    validation_file: str | None = None
    #: The integrations enabled for the job (read-only mappings), if the API sent them.
    integrations: tuple[Mapping[str, Any], ...] | None = attrs.field(
        default=None, converter=_frozen_objects_or_none
    )
    #: The seed used for the job.
    seed: int | None = None
    #: When the job is expected to finish; ``None`` unless it is running.
    estimated_finish: datetime | None = None
    #: The fine-tuning method and its hyperparameters, read-only as sent.
    method: Mapping[str, Any] | None = attrs.field(default=None, converter=_frozen_object_or_none)
    #: The key-value pairs attached to the job, read-only.
    metadata: Mapping[str, str] | None = attrs.field(default=None, converter=_frozen_object_or_none)
    #: Fields the API sent that this version does not know, read-only (see
    #: :attr:`Checkpoint.extra`).
    extra: Mapping[str, Any] = attrs.field(default=NO_EXTRA, converter=_job_extra, kw_only=True)
    #: What is known of the answer that brought this job (``client.jobs.retrieve`` only):
    #: takes no part in equality, and ``to_wire`` leaves it out.
    response: ResponseInfo | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    @property
    def is_finished(self) -> bool:
        """Whether the job has reached a final status: succeeded, failed or cancelled."""
        return self.status in TERMINAL_STATUSES


@attrs.frozen
class FineTuningJobPage:
    """One page of ``client.jobs.list``, as the API sent it (newest job first)."""

    #: The jobs on this page.
    data: tuple[FineTuningJob, ...]
    #: Whether the API holds more jobs after this page.
    has_more: bool
    #: The object type, always ``list``.
    object: Literal["list"] = "list"
    #: Fields the API sent that this version does not know, read-only.
    extra: Mapping[str, Any] = attrs.field(
        default=NO_EXTRA, converter=_job_page_extra, kw_only=True
    )
    #: What is known of the answer that brought this page (see
    #: :attr:`CheckpointPage.response`).
    response: ResponseInfo | None = attrs.field(default=None, eq=False, repr=False, kw_only=True)

    @property
    def next_after(self) -> str | None:
        """The ``after`` cursor of the next page (this page's last job id), or ``None``."""
        if not self.has_more or not self.data:
            return None
        return self.data[-1].id


def _wire_keys(record: type[attrs.AttrsInstance]) -> frozenset[str]:
    return frozenset(
        field.name for field in attrs.fields(record) if field.name not in {"extra", "response"}
    )


#: The keys each record reads from the wire; any other key goes to its ``extra``.
METRICS_KEYS: Final = _wire_keys(CheckpointMetrics)
CHECKPOINT_KEYS: Final = _wire_keys(Checkpoint)
PAGE_KEYS: Final = _wire_keys(CheckpointPage)
JOB_ERROR_KEYS: Final = _wire_keys(FineTuningJobError)
JOB_KEYS: Final = _wire_keys(FineTuningJob)
JOB_PAGE_KEYS: Final = _wire_keys(FineTuningJobPage)


# The parser's way to make records of values it has already checked and converted. A
# builder is its record with assignment allowed: filled in by plain assignments (a slot
# store each, the cheapest way Python has to set a field), it then becomes the record
# by __class__ assignment, which Python allows as it adds no slot of its own. So no
# __init__ frame, no frozen __setattr__, no converter: the record is the one __init__
# makes, in about a third of the time. (Assigning __class__ raises an audit event.)
# Both dunders are needed: they share one type slot, which is generic only if both are.
# Made by calling the builder, whose __init__ is object's: no argument tuples, where
# object.__new__(builder) makes two.


class CheckpointMetricsBuilder(CheckpointMetrics):
    """A :class:`CheckpointMetrics` being filled in by the parser; never handed out."""

    __slots__ = ()
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__
    __init__ = object.__init__  # filled in by assignments instead


class CheckpointBuilder(Checkpoint):
    """A :class:`Checkpoint` being filled in by the parser; never handed out."""

    __slots__ = ()
    __setattr__ = object.__setattr__
    __delattr__ = object.__delattr__
    __init__ = object.__init__  # filled in by assignments instead
