"""Test your code against fine_tune_ckpt with no account, no network and no real waits.

- :class:`FakeAPIServer`: the checkpoints endpoint on 127.0.0.1, with scripted faults.
- :class:`Fault`: one misbehaviour (a status, a dropped connection, a slow answer, ...).
- :class:`FakeClock`: makes retries wait no real time.
- :func:`synthetic_checkpoints`: realistic checkpoints from a seed.
"""

from ._clock import FakeClock
from ._data import synthetic_checkpoints
from ._server import DEFAULT_LIMIT, RANDOM_FAULTS, FakeAPIServer, Fault, RecordedRequest

__all__ = [
    "DEFAULT_LIMIT",
    "RANDOM_FAULTS",
    "FakeAPIServer",
    "FakeClock",
    "Fault",
    "RecordedRequest",
    "synthetic_checkpoints",
]
