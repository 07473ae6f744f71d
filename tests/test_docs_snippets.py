"""Every Python sample in README.md and docs/*.md runs against the fake API.

The samples of one page run in order in one namespace, as a reader would type them, with
top-level ``await`` allowed. A sample that defines ``async def test_...`` has that test
called with the plugin's fixtures, and is also run by pytest as a reader's own suite
would run it: pytest-asyncio in its default strict mode, with the page's own pytest
configuration and warnings as errors. A sample that breaks fails this test.
"""

from __future__ import annotations

import ast
import inspect
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from fine_tune_ckpt import AsyncClient
from fine_tune_ckpt.testing import FakeAPIServer

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SAMPLE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
TOML = re.compile(r"^```toml\n(.*?)^```", re.DOTALL | re.MULTILINE)
WITH_SAMPLES = [page for page in PAGES if SAMPLE.search(page.read_text())]
WITH_TESTS = [
    page
    for page in WITH_SAMPLES
    if any("def test_" in sample for sample in SAMPLE.findall(page.read_text()))
]


def test_the_docs_have_samples() -> None:
    """The pages are found and most of them carry samples (the test would be hollow)."""
    names = {page.name for page in WITH_SAMPLES}
    assert {"README.md", "index.md", "listing.md", "errors.md", "testing.md"} <= names


@pytest.mark.parametrize("page", WITH_SAMPLES, ids=[page.name for page in WITH_SAMPLES])
async def test_samples_run(
    page: Path,
    fake_api: FakeAPIServer,
    client: AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each sample of the page runs to the end without error."""
    text = page.read_text()  # noqa: ASYNC240 - a small local file, read once
    monkeypatch.setenv("OPENAI_API_KEY", fake_api.api_key)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_api.base_url)
    # Names the samples use as placeholders for the reader's own code.
    namespace: dict[str, Any] = {
        "client": client,
        "job_id": "ftjob-abc123",
        "job_ids": ["ftjob-abc123"],
        "log": logging.getLogger("docs-sample"),
        "process": lambda *args: None,
        "export": lambda *args: None,
        "load": lambda: None,
        "store": lambda cursor: None,
    }
    ran_tests: set[str] = set()
    for number, sample in enumerate(SAMPLE.findall(text), start=1):
        namespace["client"] = client  # a sample may have closed its own "client"
        code = compile(
            sample, f"{page.name} sample {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
        result = eval(code, namespace)  # noqa: S307 - our own documentation, on purpose
        if inspect.iscoroutine(result):
            await result
        for name, value in list(namespace.items()):
            if name.startswith("test_") and name not in ran_tests:
                ran_tests.add(name)
                await value(fine_tune_ckpt_client=client, fine_tune_ckpt_fake=fake_api)
    capsys.readouterr()


def test_some_pages_show_pytest_tests() -> None:
    """The README and the testing page show tests (else the strict-mode test is hollow)."""
    assert {page.name for page in WITH_TESTS} >= {"README.md", "testing.md"}


@pytest.mark.parametrize("page", WITH_TESTS, ids=[page.name for page in WITH_TESTS])
def test_test_samples_pass_in_strict_mode(page: Path, pytester: pytest.Pytester) -> None:
    """The page's test samples pass as a user's own suite, configured as the page says."""
    text = page.read_text()
    samples = [sample for sample in SAMPLE.findall(text) if "def test_" in sample]
    configs = [block for block in TOML.findall(text) if "[tool.pytest.ini_options]" in block]
    assert len(configs) == 1, f"{page.name} should show the pytest configuration once"
    assert "asyncio_mode" not in configs[0].replace('# asyncio_mode = "auto"', "")
    pytester.makefile(".toml", pyproject=configs[0])
    pytester.makepyfile(**{f"test_sample_{n}": code for n, code in enumerate(samples)})
    # In a subprocess: the project's own asyncio_mode = "auto" must not leak in.
    result = pytester.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider", timeout=120)
    assert re.search(r"^asyncio: mode=(Mode\.)?strict\b", result.stdout.str(), re.I | re.M)
    result.assert_outcomes(passed=sum(sample.count("def test_") for sample in samples))
