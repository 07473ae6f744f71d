"""``fine-tune-ckpt demo``: the main job, offline, against the built-in fake API."""

from __future__ import annotations

import time
from typing import IO, TYPE_CHECKING

from ._cli_common import EXIT_API_ERROR, EXIT_OK, error_line, retry_log
from ._cli_watch import follow
from ._client import AsyncClient
from ._errors import APIError
from ._output import CHECKPOINTS, Writer
from ._selection import pick_best

if TYPE_CHECKING:  # the demo's fake is imported only when it runs
    from .testing import FakeAPIServer, FakeClock

__all__ = ["demo_command"]

DEMO_JOB_ID = "ftjob-demo"
#: The running job the demo watches, on a fake clock.
DEMO_WATCHED_JOB_ID = "ftjob-demo-live"


async def demo_command(out: IO[str], err: IO[str]) -> int:
    """Run ``demo``: list a fake job through a 429, then watch one run; return the exit code."""
    from .testing import FakeAPIServer, FakeClock

    # The fake's running job moves on this clock, and so does the client that watches it:
    # each wait between polls moves the job on at once. Dated from now, as a real job is.
    clock = FakeClock(wall_start=time.time())
    async with FakeAPIServer(clock=clock) as fake:
        code = await _demo_listing(fake, out, err)
        if code == EXIT_OK:
            code = await _demo_watch(fake, clock, out, err)
    return code


async def _demo_listing(fake: FakeAPIServer, out: IO[str], err: IO[str]) -> int:
    """List a finished job's checkpoints through one 429, then name the one to deploy."""
    from .testing import Fault

    fake.add_job(DEMO_JOB_ID, count=30)
    # The second page is refused once with 429 + Retry-After, to show the retry.
    fake.inject(Fault(), Fault(status=429, retry_after=1))
    print(f"fine-tune-ckpt: demo: fake API on {fake.base_url}, job {DEMO_JOB_ID}", file=err)
    with retry_log(err, enabled=True):
        async with AsyncClient(api_key=fake.api_key, base_url=fake.base_url) as client:
            writer = Writer("table", out, CHECKPOINTS)
            checkpoints = []
            pages = 0
            try:
                async for page in client.checkpoints.list(DEMO_JOB_ID, limit=10).pages():
                    pages += 1
                    print(
                        f"fine-tune-ckpt: demo: page {pages}: {len(page.data)} checkpoints",
                        file=err,
                    )
                    for checkpoint in page.data:
                        writer.write(checkpoint)
                        checkpoints.append(checkpoint)
            except APIError as exc:
                print(error_line(exc, resume_option="--after"), file=err)
                return EXIT_API_ERROR
            writer.close()
    best = pick_best(checkpoints, "full_valid_loss")
    if best is None:
        print("fine-tune-ckpt: demo: no checkpoint reports full_valid_loss", file=err)
        return EXIT_API_ERROR
    print(
        f"\n{len(checkpoints)} checkpoints in {pages} pages. Deploy "
        f"{best.fine_tuned_model_checkpoint} (step {best.step_number}): lowest "
        f"full_valid_loss, {best.metrics.full_valid_loss}.",
        file=out,
    )
    return EXIT_OK


async def _demo_watch(fake: FakeAPIServer, clock: FakeClock, out: IO[str], err: IO[str]) -> int:
    """Watch a job run to the end on the fake clock: minutes of polls in no real time."""
    from .testing import JobTimeline

    timeline = JobTimeline(validating_files=30, queued=60, checkpoint_every=120)
    fake.add_running_job(DEMO_WATCHED_JOB_ID, count=4, timeline=timeline)
    started = clock.monotonic()
    print(f"\nWatching {DEMO_WATCHED_JOB_ID} as it runs, on a fake clock:", file=out)
    async with AsyncClient(api_key=fake.api_key, base_url=fake.base_url, clock=clock) as client:
        watcher = client.checkpoints.watch(DEMO_WATCHED_JOB_ID, poll_interval=60)
        code = await follow(watcher, "table", None, out, err)
    if code == EXIT_OK:
        minutes = (clock.monotonic() - started) / 60
        print(
            f"{len(clock.sleeps) + 1} polls a minute apart followed it for {minutes:.0f} "
            "minutes of fake time, in no real time.",
            file=out,
        )
    return code
