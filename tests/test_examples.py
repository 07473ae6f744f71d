"""Every runnable example under docs/examples runs, offline, and exits 0."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).parent.parent / "docs" / "examples").glob("*.py"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
async def test_example_runs(example: Path) -> None:
    """The example runs against the built-in fake and exits 0."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(example),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert out


def test_there_are_examples() -> None:
    """The examples folder is not silently empty."""
    assert EXAMPLES
