"""The public namespace: exactly what ``__all__`` promises, each with a docstring."""

from __future__ import annotations

import inspect

import fine_tune_ckpt
import fine_tune_ckpt.testing

EXPECTED = {
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncCheckpointPager",
    "AsyncCursorPager",
    "AsyncJobPager",
    "AsyncJobsResource",
    "CheckpointWatcher",
    "CursorPage",
    "FineTuningJob",
    "FineTuningJobError",
    "FineTuningJobPage",
    "JobStatus",
    "TERMINAL_STATUSES",
    "AsyncAzureClient",
    "AsyncCheckpointsResource",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "Checkpoint",
    "CheckpointMetrics",
    "CheckpointPage",
    "Clock",
    "ConflictError",
    "FineTuneCkptError",
    "InternalServerError",
    "JobCheckpoint",
    "JobFailure",
    "JobSource",
    "Metric",
    "NOT_GIVEN",
    "NotGiven",
    "NotFoundError",
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
}


def test_all_is_exact() -> None:
    """``__all__`` lists the public names, no more and no fewer."""
    assert set(fine_tune_ckpt.__all__) == EXPECTED
    assert len(fine_tune_ckpt.__all__) == len(EXPECTED)
    public = {
        name
        for name, value in vars(fine_tune_ckpt).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public - set(fine_tune_ckpt.__all__) == set()


def test_every_public_name_is_documented() -> None:
    """Every public class and function, and their public methods, have docstrings."""
    for module in (fine_tune_ckpt, fine_tune_ckpt.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert inspect.getdoc(obj), name
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and callable(member):
                        assert inspect.getdoc(member), f"{name}.{attr}"


def test_importing_needs_no_configuration() -> None:
    """Importing the package needs no API key: configuration is read by the client."""
    import importlib

    importlib.reload(fine_tune_ckpt)


def test_every_public_name_is_in_the_api_reference() -> None:
    """docs/api.md documents each name of both public namespaces."""
    from pathlib import Path

    reference = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    for module in (fine_tune_ckpt, fine_tune_ckpt.testing):
        for name in module.__all__:
            if name != "__version__":
                assert f"{module.__name__}.{name}" in reference, name
