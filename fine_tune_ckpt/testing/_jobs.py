"""The fake's fine-tuning jobs: what a job looks like, and how a running one moves on.

Everything here is pure. :meth:`JobTimeline.at` turns the seconds since a job was added
into its status and how many of its checkpoints exist; :func:`job_object` turns that into
the ``fine_tuning.job`` JSON the API answers. The server only reads its clock and asks.
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, get_args, runtime_checkable

import attrs

from .._models import Checkpoint

__all__ = ["JobState", "JobTimeline"]

#: Every status the API gives a job.
JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
#: The statuses a job ends in.
JobOutcome = Literal["succeeded", "failed", "cancelled"]

# A reading meant to be exactly at a boundary (2 + 3 seconds of a FakeClock, or 0.1 * 3)
# may come out a hair below it in floating point; it still counts as reached.
_EPSILON = 1e-9
_BASE_MODEL = "gpt-4o-mini-2024-07-18"
_ALPHABET = string.ascii_letters + string.digits
# How long before its first checkpoint a finished job was created, and after its last
# one it finished (validation and queueing before; saving the model after).
_CREATED_BEFORE_FIRST_CHECKPOINT = 5 * 60
_FINISHED_AFTER_LAST_CHECKPOINT = 60
# A finished job with no checkpoints to date it by starts when synthetic checkpoints do.
_EMPTY_JOB_START = int(datetime(2026, 1, 5, 9, 0, tzinfo=UTC).timestamp())


class SupportsMonotonic(Protocol):
    """Anything with a ``monotonic()`` reading in seconds, e.g. :class:`FakeClock`."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...


@runtime_checkable
class SupportsTime(Protocol):
    """A clock that also tells the Unix time (``FakeClock``, ``SystemClock``)."""

    def time(self) -> float:
        """The Unix time now."""
        ...


def _duration(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _pace(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.name} must be a finite number > 0, got {value!r}")


def _outcome(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if value not in get_args(JobOutcome):
        raise ValueError(f"outcome must be 'succeeded', 'failed' or 'cancelled', got {value!r}")


@attrs.frozen
class JobState:
    """Where a job stands at one moment, as :meth:`JobTimeline.at` computes it."""

    #: The job's ``status``.
    status: JobStatus
    #: How many of the job's checkpoints exist: its oldest ones, newest listed first.
    checkpoints: int
    #: Seconds after its creation the job is expected to end; only while ``running``.
    estimated_finish_after: float | None = None
    #: Seconds after its creation the job ended; ``None`` until it has.
    finished_after: float | None = None


@attrs.frozen
class JobTimeline:
    """How a running job of the fake moves on: ``validating_files``, ``queued``, ``running``, end.

    The job validates its files for ``validating_files`` seconds, waits ``queued`` seconds,
    then runs: its checkpoints appear oldest first, the k-th ``k * checkpoint_every``
    seconds into the run, and with the last one the job ends as ``outcome``. A phase of 0
    seconds is skipped (``validating_files=0, queued=0``: running from the start). A job
    with no checkpoints ends as soon as it is out of the queue: e.g. one that fails while
    validating its files.

    A ``failed`` job carries the error ``error_code``/``error_message``/``error_param``; a
    ``succeeded`` one its ``fine_tuned_model``, ``trained_tokens`` and result file.
    """

    #: Seconds in ``validating_files``.
    validating_files: float = attrs.field(default=2.0, validator=_duration)
    #: Seconds in ``queued``.
    queued: float = attrs.field(default=3.0, validator=_duration)
    #: Seconds between checkpoints while ``running``.
    checkpoint_every: float = attrs.field(default=5.0, validator=_pace)
    #: How the job ends: ``"succeeded"``, ``"failed"`` or ``"cancelled"``.
    outcome: JobOutcome = attrs.field(default="succeeded", validator=_outcome)
    #: The ``error.code`` of a failed job.
    error_code: str = "server_error"
    #: The ``error.message`` of a failed job.
    error_message: str = "The job failed due to an internal error (simulated by the fake)."
    #: The ``error.param`` of a failed job, e.g. ``"training_file"``; ``None`` when the
    #: failure is not about a parameter.
    error_param: str | None = None

    @property
    def running_from(self) -> float:
        """Seconds after its creation the job starts ``running``."""
        return self.validating_files + self.queued

    def duration(self, checkpoints: int) -> float:
        """Seconds from creation to the outcome for a job with ``checkpoints`` checkpoints."""
        if checkpoints < 0:
            raise ValueError(f"checkpoints must not be negative, got {checkpoints}")
        return self.running_from + checkpoints * self.checkpoint_every

    def at(self, elapsed: float, *, checkpoints: int) -> JobState:
        """The state ``elapsed`` seconds after creation of a job with ``checkpoints`` checkpoints.

        A negative ``elapsed`` (a clock set back) reads as 0.
        """
        end = self.duration(checkpoints)
        now = max(elapsed, 0.0) + _EPSILON
        if now < self.validating_files:
            return JobState("validating_files", 0)
        if now < self.running_from:
            return JobState("queued", 0)
        if now < end:
            made = int((now - self.running_from) / self.checkpoint_every)
            return JobState("running", min(made, checkpoints), estimated_finish_after=end)
        return JobState(self.outcome, checkpoints, finished_after=end)


@attrs.frozen
class JobProfile:
    """What stays the same about a job whatever its status: ids, files, model, numbers."""

    id: str
    created_at: int
    model: str
    organization_id: str
    training_file: str
    validation_file: str | None
    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    seed: int
    #: The model name the job has once it succeeds.
    fine_tuned_model: str
    #: The billable tokens it has once it succeeds.
    trained_tokens: int
    #: The result file it has once it succeeds.
    result_file: str


def make_profile(
    fine_tuning_job_id: str,
    checkpoints: Sequence[Checkpoint],
    *,
    seed: int,
    created_at: int,
) -> JobProfile:
    """A plausible profile for a job with ``checkpoints`` (newest first), the same every time.

    The base model, organization and suffix of ``fine_tuned_model`` come from the newest
    checkpoint's model name when it has the real form, so the names agree.
    """
    rng = random.Random(f"job:{fine_tuning_job_id}:{seed}")

    def token(length: int) -> str:
        return "".join(rng.choices(_ALPHABET, k=length))

    base, prefix = _BASE_MODEL, f"ft:{_BASE_MODEL}:fake-org:demo"
    if checkpoints:
        parts = checkpoints[0].fine_tuned_model_checkpoint.split(":")
        if len(parts) >= 5 and parts[0] == "ft":  # ft:<base>:<org>:<suffix>:<id>[:ckpt-step-n]
            base, prefix = parts[1], ":".join(parts[:4])
    batch_size = rng.choice((1, 2, 4, 8))
    steps = checkpoints[0].step_number if checkpoints else rng.randint(100, 1000)
    return JobProfile(
        id=fine_tuning_job_id,
        created_at=created_at,
        model=base,
        organization_id=f"org-{token(24)}",
        training_file=f"file-{token(22)}",
        validation_file=f"file-{token(22)}",
        n_epochs=rng.choice((2, 3, 4)),
        batch_size=batch_size,
        learning_rate_multiplier=rng.choice((0.5, 1.0, 1.8, 2.0)),
        seed=rng.randrange(2**31),
        fine_tuned_model=f"{prefix}:{token(8)}",
        trained_tokens=steps * batch_size * rng.randint(200, 800),
        result_file=f"file-{token(22)}",
    )


def scheduled(
    timeline: JobTimeline, checkpoints: Sequence[Checkpoint], created_at: int
) -> list[Checkpoint]:
    """``checkpoints`` (newest first) re-dated to when ``timeline`` makes each.

    The oldest is made ``checkpoint_every`` seconds into the run of a job created at the
    Unix time ``created_at``, the next one ``checkpoint_every`` later, and so on.
    """
    return [
        attrs.evolve(
            checkpoint,
            created_at=_utc(created_at + timeline.running_from + k * timeline.checkpoint_every),
        )
        for k, checkpoint in zip(range(len(checkpoints), 0, -1), checkpoints, strict=True)
    ]


def finished_times(checkpoints: Sequence[Checkpoint]) -> tuple[int, int]:
    """When a finished job with ``checkpoints`` (newest first) was created, and finished.

    Created before its first checkpoint, finished after its last one, in Unix seconds.
    """
    if not checkpoints:
        return _EMPTY_JOB_START, _EMPTY_JOB_START + _CREATED_BEFORE_FIRST_CHECKPOINT
    oldest = min(int(c.created_at.timestamp()) for c in checkpoints)
    newest = max(int(c.created_at.timestamp()) for c in checkpoints)
    return (
        oldest - _CREATED_BEFORE_FIRST_CHECKPOINT,
        newest + _FINISHED_AFTER_LAST_CHECKPOINT,
    )


def job_object(profile: JobProfile, state: JobState, timeline: JobTimeline) -> dict[str, Any]:
    """The ``fine_tuning.job`` JSON object of a job in ``state``.

    Hyperparameters read ``"auto"`` until the job runs, as the API resolves them then;
    ``timeline`` gives a failed job its error.
    """
    succeeded = state.status == "succeeded"
    resolved = state.status not in {"validating_files", "queued"}
    hyperparameters: dict[str, Any] = {
        "batch_size": profile.batch_size if resolved else "auto",
        "learning_rate_multiplier": profile.learning_rate_multiplier if resolved else "auto",
        "n_epochs": profile.n_epochs if resolved else "auto",
    }
    error = None
    if state.status == "failed":
        error = {
            "code": timeline.error_code,
            "message": timeline.error_message,
            "param": timeline.error_param,
        }
    return {
        "object": "fine_tuning.job",
        "id": profile.id,
        "created_at": profile.created_at,
        "error": error,
        "fine_tuned_model": profile.fine_tuned_model if succeeded else None,
        "finished_at": _at(profile.created_at, state.finished_after),
        "hyperparameters": hyperparameters,
        "model": profile.model,
        "organization_id": profile.organization_id,
        "result_files": [profile.result_file] if succeeded else [],
        "status": state.status,
        "trained_tokens": profile.trained_tokens if succeeded else None,
        "training_file": profile.training_file,
        "validation_file": profile.validation_file,
        "integrations": [],
        "seed": profile.seed,
        "estimated_finish": _at(profile.created_at, state.estimated_finish_after),
        "method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}},
        "metadata": None,
    }


def _at(created_at: int, offset: float | None) -> int | None:
    """The Unix second ``offset`` seconds after ``created_at``, or ``None``."""
    return None if offset is None else created_at + math.ceil(offset)


def _utc(timestamp: float) -> datetime:
    """The whole Unix second at or after ``timestamp``, as an aware UTC datetime."""
    return datetime.fromtimestamp(math.ceil(timestamp), UTC)
