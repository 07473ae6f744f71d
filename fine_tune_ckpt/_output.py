"""How the command writes records: a table for people, JSON Lines, JSON or CSV for tools.

Each format streams, one record at a time, so a long listing needs no memory. A
:class:`Layout` says how one kind of record (checkpoints, jobs) fills a table and a CSV
row; JSON and JSON Lines are always the API's own JSON (``to_wire``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import datetime
from typing import IO, Generic, TypeVar

import attrs

from ._models import Checkpoint, CheckpointMetrics, FineTuningJob
from ._wire import to_wire

__all__ = ["CHECKPOINTS", "CHECKPOINTS_BY_JOB", "FORMATS", "JOBS", "Layout", "Writer", "shown"]

FORMATS = ("table", "json", "jsonl", "csv")

Record = TypeVar("Record", Checkpoint, FineTuningJob)


@attrs.frozen
class Layout(Generic[Record]):
    """How one kind of record is shown in a table and in CSV."""

    #: The CSV header.
    csv_columns: tuple[str, ...]
    #: One record's CSV cells, in the order of ``csv_columns``.
    csv_row: Callable[[Record], list[object]]
    #: The table's header line.
    table_header: str
    #: One record's table line.
    table_row: Callable[[Record], str]
    #: What an empty table says, e.g. ``(no checkpoints)``.
    nothing: str


class Writer(Generic[Record]):
    """Writes records one by one in one format, so long listings stream."""

    def __init__(self, output_format: str, out: IO[str], layout: Layout[Record]) -> None:
        """Write to ``out`` in ``output_format`` (a :data:`FORMATS` name) as ``layout`` says."""
        self._format = output_format
        self._out = out
        self._layout: Layout[Record] = layout
        self._count = 0
        self._csv = csv.writer(out, lineterminator="\n") if output_format == "csv" else None

    def write(self, record: Record) -> None:
        """Write one record (after the header, on the first call)."""
        if self._count == 0:
            self._start()
        self._count += 1
        if self._format == "jsonl":
            self._out.write(json.dumps(to_wire(record)) + "\n")
        elif self._format == "json":
            separator = "  " if self._count == 1 else ", "
            self._out.write(separator + json.dumps(to_wire(record)) + "\n")
        elif self._csv is not None:
            self._csv.writerow(self._layout.csv_row(record))
        else:
            self._out.write(self._layout.table_row(record) + "\n")

    def close(self) -> None:
        """Finish the output: close a JSON array, or say that the table is empty."""
        if self._count == 0:
            self._start()
        if self._format == "json":
            self._out.write("]\n")
        elif self._format == "table" and self._count == 0:
            self._out.write(self._layout.nothing + "\n")
        self._out.flush()

    def _start(self) -> None:
        if self._format == "json":
            self._out.write("[\n")
        elif self._csv is not None:
            self._csv.writerow(self._layout.csv_columns)
        elif self._format == "table":
            self._out.write(self._layout.table_header + "\n")


# -- checkpoints --------------------------------------------------------------------

_METRIC_NAMES = tuple(attrs.fields_dict(CheckpointMetrics))
_CHECKPOINT_TABLE = (
    ("STEP", 7),
    ("CREATED (UTC)", 16),
    ("TRAIN_LOSS", 10),
    ("VALID_LOSS", 10),
    ("FULL_VALID_LOSS", 15),
    ("FULL_VALID_ACC", 14),
)


def _checkpoint_csv_row(checkpoint: Checkpoint) -> list[object]:
    metrics = to_wire(checkpoint.metrics)
    return [
        checkpoint.id,
        checkpoint.created_at.isoformat(),
        checkpoint.step_number,
        checkpoint.fine_tuned_model_checkpoint,
        checkpoint.fine_tuning_job_id,
        *(metrics.get(name, "") for name in _METRIC_NAMES),
    ]


def _checkpoint_table_row(checkpoint: Checkpoint) -> str:
    metrics = checkpoint.metrics
    cells = (
        str(checkpoint.step_number),
        _minute(checkpoint.created_at),
        _number(metrics.train_loss),
        _number(metrics.valid_loss),
        _number(metrics.full_valid_loss),
        _number(metrics.full_valid_mean_token_accuracy),
    )
    # Numbers: right-aligned, so their digits line up.
    row = "  ".join(
        cell.rjust(width) for cell, (_, width) in zip(cells, _CHECKPOINT_TABLE, strict=True)
    )
    return f"{row}  {shown(checkpoint.fine_tuned_model_checkpoint)}"


#: Checkpoints: a column per field and metric in CSV; step, time and four metrics in a table.
CHECKPOINTS: Layout[Checkpoint] = Layout(
    csv_columns=(
        "id",
        "created_at",
        "step_number",
        "fine_tuned_model_checkpoint",
        "fine_tuning_job_id",
        *_METRIC_NAMES,
    ),
    csv_row=_checkpoint_csv_row,
    table_header="  ".join(name.rjust(width) for name, width in _CHECKPOINT_TABLE)
    + "  CHECKPOINT MODEL",
    table_row=_checkpoint_table_row,
    nothing="(no checkpoints)",
)

_JOB_COLUMN = 30  # ftjob- and 24 characters


def _checkpoint_by_job_table_row(checkpoint: Checkpoint) -> str:
    # Names: left-aligned, as in the jobs table; a longer one pushes the rest along.
    job = shown(checkpoint.fine_tuning_job_id).ljust(_JOB_COLUMN)
    return f"{job}  {_checkpoint_table_row(checkpoint)}"


#: Checkpoints of many jobs, interleaved: the table gains a JOB column in front. CSV,
#: JSON and JSON Lines already carry each checkpoint's ``fine_tuning_job_id``, so they
#: stay as for one job, and a tool reads both alike.
CHECKPOINTS_BY_JOB: Layout[Checkpoint] = attrs.evolve(
    CHECKPOINTS,
    table_header=f"{'JOB'.ljust(_JOB_COLUMN)}  {CHECKPOINTS.table_header}",
    table_row=_checkpoint_by_job_table_row,
)


# -- jobs ---------------------------------------------------------------------------

_JOB_TABLE = (
    ("ID", _JOB_COLUMN),
    ("STATUS", 16),  # validating_files
    ("MODEL", 22),  # gpt-4o-mini-2024-07-18
    ("CREATED (UTC)", 16),
    ("FINISHED (UTC)", 16),
)


def _job_csv_row(job: FineTuningJob) -> list[object]:
    return [
        job.id,
        job.status,
        job.model,
        job.created_at.isoformat(),
        "" if job.finished_at is None else job.finished_at.isoformat(),
        job.fine_tuned_model or "",
    ]


def _job_table_row(job: FineTuningJob) -> str:
    cells = (
        shown(job.id),
        job.status,
        shown(job.model),
        _minute(job.created_at),
        "-" if job.finished_at is None else _minute(job.finished_at),
    )
    # Names: left-aligned, so they read as words; a longer one pushes the rest along.
    row = "  ".join(cell.ljust(width) for cell, (_, width) in zip(cells, _JOB_TABLE, strict=True))
    return f"{row}  {shown(job.fine_tuned_model or '-')}"


#: Jobs: id, status, model, times and the fine-tuned model, in CSV and in a table.
JOBS: Layout[FineTuningJob] = Layout(
    csv_columns=("id", "status", "model", "created_at", "finished_at", "fine_tuned_model"),
    csv_row=_job_csv_row,
    table_header="  ".join(name.ljust(width) for name, width in _JOB_TABLE) + "  FINE_TUNED_MODEL",
    table_row=_job_table_row,
    nothing="(no jobs)",
)


def shown(text: str) -> str:
    """``text`` safe for a terminal: control characters (escape sequences) shown escaped.

    A table is read on a terminal, and a value the server sent could otherwise move the
    cursor, clear the screen or recolour what follows. CSV and JSON carry values as sent.
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _minute(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
