"""Quick start: list every checkpoint of a job, page by page and item by item.

Runs offline: it starts the built-in fake API on 127.0.0.1 and points the client at it.
To use the real API instead, drop the fake and set OPENAI_API_KEY.

    python docs/examples/quickstart.py
"""

from __future__ import annotations

import asyncio

from fine_tune_ckpt import AsyncClient
from fine_tune_ckpt.testing import FakeAPIServer


async def main() -> None:
    """List a demo job's checkpoints and print the one with the lowest validation loss."""
    async with FakeAPIServer() as fake:
        fake.add_job("ftjob-abc123", count=42)
        async with AsyncClient(api_key=fake.api_key, base_url=fake.base_url) as client:
            pager = client.checkpoints.list("ftjob-abc123", limit=10)

            first_page = await pager  # just the first page, as the official SDK does
            print(f"first page: {len(first_page.data)} items, has_more={first_page.has_more}")

            best = None
            async for checkpoint in pager:  # every checkpoint, across all pages
                loss = checkpoint.metrics.full_valid_loss
                print(f"step {checkpoint.step_number:>5}  full_valid_loss {loss}")
                if loss is not None and (best is None or loss < best[0]):
                    best = (loss, checkpoint)
            if best is not None:
                print(f"best: {best[1].fine_tuned_model_checkpoint} (loss {best[0]})")


if __name__ == "__main__":
    asyncio.run(main())
