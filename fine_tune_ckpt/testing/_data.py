"""Synthetic but realistic checkpoints for the fake server, from a seed."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta

from .._models import Checkpoint, CheckpointMetrics

__all__ = ["synthetic_checkpoints"]

_BASE_MODEL = "gpt-4o-mini-2024-07-18"
_START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def synthetic_checkpoints(
    fine_tuning_job_id: str,
    count: int,
    *,
    seed: int = 0,
    steps_between: int = 100,
    organization: str = "fake-org",
    suffix: str = "demo",
) -> list[Checkpoint]:
    """Make ``count`` checkpoints of one job, newest first, as the API lists them.

    Steps grow by ``steps_between``; losses fall and accuracies rise, with noise; model
    names have the real form ``ft:<base>:<org>:<suffix>:<id>:ckpt-step-<n>``. The same
    arguments always give the same checkpoints.
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    rng = random.Random(f"{fine_tuning_job_id}:{seed}")
    alphabet = string.ascii_letters + string.digits
    checkpoints = []
    for index in range(count):
        step = (index + 1) * steps_between
        progress = (index + 1) / count
        loss = 2.2 * (1 - 0.8 * progress) + rng.uniform(-0.05, 0.05)
        accuracy = 0.45 + 0.5 * progress + rng.uniform(-0.02, 0.02)
        model_id = "".join(rng.choices(alphabet, k=8))
        checkpoints.append(
            Checkpoint(
                id="ftckpt_" + "".join(rng.choices(alphabet, k=24)),
                created_at=_START + timedelta(minutes=7 * (index + 1)),
                fine_tuned_model_checkpoint=(
                    f"ft:{_BASE_MODEL}:{organization}:{suffix}:{model_id}:ckpt-step-{step}"
                ),
                fine_tuning_job_id=fine_tuning_job_id,
                metrics=CheckpointMetrics(
                    step=step,
                    train_loss=round(loss + rng.uniform(-0.1, 0.1), 4),
                    train_mean_token_accuracy=round(min(accuracy + 0.02, 1.0), 4),
                    valid_loss=round(loss + rng.uniform(0.0, 0.15), 4),
                    valid_mean_token_accuracy=round(min(accuracy - 0.01, 1.0), 4),
                    full_valid_loss=round(loss + 0.05, 4),
                    full_valid_mean_token_accuracy=round(min(accuracy, 1.0), 4),
                ),
                step_number=step,
            )
        )
    checkpoints.reverse()
    return checkpoints
