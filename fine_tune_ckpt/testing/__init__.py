"""Test your code against fine_tune_ckpt with no account, no network and no real waits.

- :class:`FakeAPIServer`: the fine-tuning jobs and checkpoints endpoints on 127.0.0.1,
  with scripted faults and jobs that run as its clock moves.
- :class:`JobTimeline`: how such a running job moves on; :class:`JobState`: where it stands.
- :class:`Fault`: one misbehaviour (a status, a dropped connection, a slow answer, ...).
- :class:`RateLimitPolicy`: the rate of requests the fake takes before answering 429.
- :class:`FakeClock`: makes retries wait no real time.
- :func:`synthetic_checkpoints`: realistic checkpoints from a seed.
"""

from ._clock import FakeClock
from ._data import synthetic_checkpoints
from ._jobs import JobState, JobTimeline
from ._ratelimit import RateLimitPolicy
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
    "RateLimitPolicy",
    "RecordedRequest",
    "synthetic_checkpoints",
]
