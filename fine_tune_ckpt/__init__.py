"""An async client for listing the checkpoints of fine-tuning jobs.

>>> from fine_tune_ckpt import AsyncClient
>>> async def best_loss(job_id: str) -> float | None:  # doctest: +SKIP
...     async with AsyncClient() as client:
...         losses = [
...             cp.metrics.full_valid_loss async for cp in client.checkpoints.list(job_id)
...         ]
...     return min((loss for loss in losses if loss is not None), default=None)
"""

from ._client import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    AsyncAzureClient,
    AsyncClient,
)
from ._clock import Clock, SystemClock
from ._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FineTuneCkptError,
    InternalServerError,
    NotFoundError,
    PaginationError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from ._jobs import AsyncJobsResource
from ._metadata import RateLimit, ResponseInfo
from ._models import (
    TERMINAL_STATUSES,
    Checkpoint,
    CheckpointMetrics,
    CheckpointPage,
    FineTuningJob,
    FineTuningJobError,
    FineTuningJobPage,
    JobStatus,
)
from ._options import NOT_GIVEN, NotGiven
from ._paging import AsyncCheckpointPager, AsyncCursorPager, AsyncJobPager, CursorPage
from ._pipelines import (
    JobCheckpoint,
    JobFailure,
    JobSource,
    best_checkpoint,
    resume_walk,
    walk_jobs,
)
from ._resource import AsyncCheckpointsResource
from ._selection import Metric
from ._version import __version__
from ._watch import CheckpointWatcher
from ._wire import to_wire

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "NOT_GIVEN",
    "TERMINAL_STATUSES",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncAzureClient",
    "AsyncCheckpointPager",
    "AsyncCheckpointsResource",
    "AsyncClient",
    "AsyncCursorPager",
    "AsyncJobPager",
    "AsyncJobsResource",
    "AuthenticationError",
    "BadRequestError",
    "Checkpoint",
    "CheckpointMetrics",
    "CheckpointPage",
    "CheckpointWatcher",
    "Clock",
    "ConflictError",
    "CursorPage",
    "FineTuneCkptError",
    "FineTuningJob",
    "FineTuningJobError",
    "FineTuningJobPage",
    "InternalServerError",
    "JobCheckpoint",
    "JobFailure",
    "JobSource",
    "JobStatus",
    "Metric",
    "NotFoundError",
    "NotGiven",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimit",
    "RateLimitError",
    "ResponseInfo",
    "SystemClock",
    "UnprocessableEntityError",
    "__version__",
    "best_checkpoint",
    "resume_walk",
    "to_wire",
    "walk_jobs",
]
