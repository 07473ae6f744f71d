"""An asyncio pipeline: many jobs at once, the best checkpoint of each, a resumable walk.

Runs offline against the built-in fake API:

    python docs/examples/pipeline.py
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from fine_tune_ckpt import (
    AsyncClient,
    Checkpoint,
    JobFailure,
    best_checkpoint,
    resume_walk,
    walk_jobs,
)
from fine_tune_ckpt.testing import FakeAPIServer, Fault


async def best_per_job(client: AsyncClient, job_ids: list[str]) -> dict[str, Checkpoint]:
    """Walk every job (4 at a time, one connection pool) and keep each job's best loss."""
    best: dict[str, tuple[float, Checkpoint]] = {}
    async for item in walk_jobs(client.checkpoints, job_ids, concurrency=4, on_error="report"):
        if isinstance(item, JobFailure):
            print(f"{item.fine_tuning_job_id}: {type(item.error).__name__}; the rest go on")
            continue
        loss = item.checkpoint.metrics.full_valid_loss
        job_id = item.fine_tuning_job_id
        if loss is not None and (job_id not in best or loss < best[job_id][0]):
            best[job_id] = (loss, item.checkpoint)
    return {job_id: checkpoint for job_id, (_, checkpoint) in best.items()}


async def resumable_export(client: AsyncClient, job_id: str) -> int:
    """Export a job's checkpoints, saving the cursor; survive a crash half-way through."""
    saved: dict[str, str] = {}  # a file or a database row in real life
    exported: defaultdict[str, int] = defaultdict(int)

    def save(cursor: str) -> None:
        saved[job_id] = cursor

    walk = resume_walk(client.checkpoints, job_id, cursor=None, save_cursor=save, limit=10)
    async for checkpoint in walk:
        exported[checkpoint.id] += 1
        if len(exported) == 25:
            break  # pretend the process died here, mid-page
    print(f"{job_id}: crashed after {len(exported)} checkpoints; saved cursor {saved[job_id]}")
    restart = resume_walk(
        client.checkpoints, job_id, cursor=saved.get(job_id), save_cursor=save, limit=10
    )
    async for checkpoint in restart:
        exported[checkpoint.id] += 1
    repeated = sum(1 for count in exported.values() if count > 1)
    print(f"{job_id}: resumed; {len(exported)} exported, {repeated} seen twice (the page cut)")
    return len(exported)


async def main() -> None:
    """Run the pipeline against the fake API."""
    async with FakeAPIServer() as fake:
        job_ids = [f"ftjob-{name}" for name in ("alpha", "beta", "gamma", "delta", "eps")]
        for job_id in job_ids:
            fake.add_job(job_id, count=40)
        fake.inject(Fault(status=503), Fault(status=429, retry_after_ms=200))  # retried
        async with AsyncClient(api_key=fake.api_key, base_url=fake.base_url) as client:
            best = await best_per_job(client, [*job_ids, "ftjob-missing"])
            for job_id, checkpoint in sorted(best.items()):
                print(
                    f"{job_id}: deploy step {checkpoint.step_number} "
                    f"(full_valid_loss {checkpoint.metrics.full_valid_loss})"
                )
            one = await best_checkpoint(client.checkpoints.list("ftjob-alpha"), "valid_loss")
            if one is not None:
                print(f"ftjob-alpha by valid_loss: step {one.step_number}")
            await resumable_export(client, "ftjob-beta")


if __name__ == "__main__":
    asyncio.run(main())
