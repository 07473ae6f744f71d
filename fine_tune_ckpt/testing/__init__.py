"""Test your code against fine_tune_ckpt with no account, no network and no real waits.

- :class:`FakeAPIServer`: the fine-tuning jobs and checkpoints endpoints on 127.0.0.1,
  with scripted faults and jobs that run as its clock moves.
- :class:`JobTimeline`: how such a running job moves on; :class:`JobState`: where it stands.
- :class:`Fault`: one misbehaviour (a status, a dropped connection, a slow answer, ...).
- :class:`FakeClock`: makes retries wait no real time.
- :func:`synthetic_checkpoints`: realistic checkpoints from a seed.
"""

from ._clock import FakeClock
from ._data import synthetic_checkpoints
from ._jobs import JobState, JobTimeline
from ._server import (
    DEFAULT_JOBS_LIMIT,
    DEFAULT_LIMIT,
    RANDOM_FAULTS,
    FakeAPIServer,
    Fault,
    RecordedRequest,
)

__all__ = [
    "DEFAULT_JOBS_LIMIT",
    "DEFAULT_LIMIT",
    "RANDOM_FAULTS",
    "FakeAPIServer",
    "FakeClock",
    "Fault",
    "JobState",
    "JobTimeline",
    "RecordedRequest",
    "synthetic_checkpoints",
]
