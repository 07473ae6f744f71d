"""Choosing the checkpoint to deploy by one metric: pure functions over records."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from ._models import Checkpoint

__all__ = ["METRICS", "BestSoFar", "Metric", "better_is", "pick_best"]

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


class BestSoFar:
    """The best checkpoint by one metric among those offered so far, keeping nothing else.

    Checkpoints without the metric are skipped. On a tie the later checkpoint (the higher
    step) wins, in whatever order they are offered: a listing (newest first) and a watch
    (oldest first) pick the same one.
    """

    def __init__(self, metric: Metric | str) -> None:
        """Rank by ``metric``; an unknown metric raises ValueError naming the choices."""
        self.metric = metric
        self._lowest_wins = better_is(metric) == "lowest"
        #: The best checkpoint so far, or ``None`` if none reported the metric yet.
        self.best: Checkpoint | None = None
        self._best_value = 0.0
        #: How many checkpoints were offered.
        self.seen = 0

    def offer(self, checkpoint: Checkpoint) -> None:
        """Consider one more checkpoint."""
        self.seen += 1
        value = getattr(checkpoint.metrics, self.metric)
        if value is None:
            return
        best = self.best
        if (
            best is None
            or (self._lowest_wins and value < self._best_value)
            or (not self._lowest_wins and value > self._best_value)
            or (value == self._best_value and checkpoint.step_number > best.step_number)
        ):
            self.best, self._best_value = checkpoint, value


def pick_best(checkpoints: Iterable[Checkpoint], metric: Metric | str) -> Checkpoint | None:
    """Return the checkpoint with the best ``metric``, or ``None`` if none reports it."""
    ranking = BestSoFar(metric)
    for checkpoint in checkpoints:
        ranking.offer(checkpoint)
    return ranking.best
