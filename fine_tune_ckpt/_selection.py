"""Choosing the checkpoint to deploy by one metric: pure functions over records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from ._models import Checkpoint

__all__ = ["METRICS", "Metric", "better_is", "pick_best"]

#: A metric a checkpoint can be ranked by (``step`` is a position, not a quality). Use it
#: to type your own parameters, e.g. a FastAPI query parameter validated for you.
Metric = Literal[
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
]
METRICS: tuple[str, ...] = get_args(Metric)


def better_is(metric: Metric | str) -> Literal["lowest", "highest"]:
    """Say which way ``metric`` improves: losses fall, accuracies rise."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
    return "lowest" if metric.endswith("loss") else "highest"


def pick_best(checkpoints: Iterable[Checkpoint], metric: Metric | str) -> Checkpoint | None:
    """Return the checkpoint with the best ``metric``, or ``None`` if none reports it.

    Checkpoints without the metric are skipped. On a tie the first seen wins, which in
    the API's newest-first order is the latest checkpoint.
    """
    direction = better_is(metric)
    best: Checkpoint | None = None
    best_value = 0.0
    for checkpoint in checkpoints:
        value = getattr(checkpoint.metrics, metric)
        if value is None:
            continue
        if (
            best is None
            or (direction == "lowest" and value < best_value)
            or (direction == "highest" and value > best_value)
        ):
            best, best_value = checkpoint, value
    return best
