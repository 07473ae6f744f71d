"""How the command writes checkpoints: a table for people, JSON Lines, JSON or CSV for tools.

Each format streams, one checkpoint at a time, so a long listing needs no memory.
"""

from __future__ import annotations

import csv
import json
from typing import IO

import attrs

from ._models import Checkpoint, CheckpointMetrics
from ._wire import to_wire

__all__ = ["FORMATS", "Writer"]

FORMATS = ("table", "json", "jsonl", "csv")

_CSV_COLUMNS = (
    "id",
    "created_at",
    "step_number",
    "fine_tuned_model_checkpoint",
    "fine_tuning_job_id",
    *(field for field in attrs.fields_dict(CheckpointMetrics)),
)
_TABLE = (
    ("STEP", 7),
    ("CREATED (UTC)", 16),
    ("TRAIN_LOSS", 10),
    ("VALID_LOSS", 10),
    ("FULL_VALID_LOSS", 15),
    ("FULL_VALID_ACC", 14),
)


class Writer:
    """Writes checkpoints one by one in one format, so long listings stream."""

    def __init__(self, output_format: str, out: IO[str]) -> None:
        self._format = output_format
        self._out = out
        self._count = 0
        self._csv = csv.writer(out, lineterminator="\n") if output_format == "csv" else None

    def write(self, checkpoint: Checkpoint) -> None:
        """Write one checkpoint (after the header, on the first call)."""
        if self._count == 0:
            self._start()
        self._count += 1
        if self._format == "jsonl":
            self._out.write(json.dumps(to_wire(checkpoint)) + "\n")
        elif self._format == "json":
            separator = "  " if self._count == 1 else ", "
            self._out.write(separator + json.dumps(to_wire(checkpoint)) + "\n")
        elif self._csv is not None:
            self._csv.writerow(_csv_row(checkpoint))
        else:
            self._out.write(_table_row(checkpoint) + "\n")

    def close(self) -> None:
        """Finish the output: close a JSON array, or say that the table is empty."""
        if self._count == 0:
            self._start()
        if self._format == "json":
            self._out.write("]\n")
        elif self._format == "table" and self._count == 0:
            self._out.write("(no checkpoints)\n")
        self._out.flush()

    def _start(self) -> None:
        if self._format == "json":
            self._out.write("[\n")
        elif self._csv is not None:
            self._csv.writerow(_CSV_COLUMNS)
        elif self._format == "table":
            header = "  ".join(name.rjust(width) for name, width in _TABLE)
            self._out.write(f"{header}  CHECKPOINT MODEL\n")


def _csv_row(checkpoint: Checkpoint) -> list[object]:
    metrics = to_wire(checkpoint.metrics)
    return [
        checkpoint.id,
        checkpoint.created_at.isoformat(),
        checkpoint.step_number,
        checkpoint.fine_tuned_model_checkpoint,
        checkpoint.fine_tuning_job_id,
        *(metrics.get(name, "") for name in attrs.fields_dict(CheckpointMetrics)),
    ]


def _table_row(checkpoint: Checkpoint) -> str:
    metrics = checkpoint.metrics
    cells = (
        str(checkpoint.step_number),
        checkpoint.created_at.strftime("%Y-%m-%d %H:%M"),
        _number(metrics.train_loss),
        _number(metrics.valid_loss),
        _number(metrics.full_valid_loss),
        _number(metrics.full_valid_mean_token_accuracy),
    )
    row = "  ".join(cell.rjust(width) for cell, (_, width) in zip(cells, _TABLE, strict=True))
    return f"{row}  {checkpoint.fine_tuned_model_checkpoint}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
