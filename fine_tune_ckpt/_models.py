"""The records a listing yields: plain frozen attrs classes named and shaped as on the wire.

They hold data only. Turning JSON into records and back lives in ``_wire``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import attrs

__all__ = ["Checkpoint", "CheckpointMetrics", "CheckpointPage"]


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

    @property
    def next_after(self) -> str | None:
        """The ``after`` cursor of the next page, or ``None`` when this is the last page.

        As in the official SDK, the cursor is the id of this page's last item.
        """
        if not self.has_more or not self.data:
            return None
        return self.data[-1].id
