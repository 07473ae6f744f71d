"""Automation: ``nox -l`` lists the sessions, ``nox`` runs lint, typing and tests."""

from __future__ import annotations

import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "typing", "tests", "docs"]
nox.options.reuse_existing_virtualenvs = True

PYPROJECT = nox.project.load_toml("pyproject.toml")


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """Type-check the package and the tests with mypy --strict."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "typing"))
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "docs"))
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark against the aiohttp floor and the official SDK; write the table."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "bench"))
    session.run("python", "-m", "tests.benchmarks.run", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with warnings as errors."""
    session.install(".", *nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("pytest", *session.posargs)


@nox.session
def build(session: nox.Session) -> None:
    """Build sdist and wheel, check them, and run the wheel from a clean virtualenv."""
    # uv as a package, not assumed on PATH: CI machines start with only pip.
    session.install("build[uv]>=1.2", "twine>=6.1")
    dist = Path("dist")
    shutil.rmtree(dist, ignore_errors=True)  # stale files would be checked as ours
    session.run("python", "-m", "build", "--installer", "uv", "--outdir", str(dist))
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        session.error(f"expected one sdist and one wheel in dist/, got {sorted(dist.iterdir())}")
    session.run("twine", "check", "--strict", str(sdists[0]), str(wheels[0]))
    _check_license_shipped(session, sdists[0], wheels[0])
    # A virtualenv with nothing in it, on this session's Python: the wheel must bring
    # everything it needs.
    clean = Path(session.create_tmp()) / "clean-venv"
    shutil.rmtree(clean, ignore_errors=True)
    session.run("uv", "venv", "--quiet", "--python", str(Path(session.bin) / "python"), str(clean))
    scripts = clean / ("Scripts" if sys.platform == "win32" else "bin")
    session.run("uv", "pip", "install", "--quiet", "--python", str(scripts / "python"), wheels[0])
    # From the clean environment's own script, so nothing comes from this checkout.
    command = str(scripts / "fine-tune-ckpt")
    session.run(command, "--version", external=True)
    session.run(command, "demo", external=True, silent=True)


def _check_license_shipped(session: nox.Session, sdist: Path, wheel: Path) -> None:
    """Fail the session unless both archives carry LICENSE, as it is in the checkout."""
    expected = Path("LICENSE").read_bytes()
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        in_wheel = archive.read(names[0]) if len(names) == 1 else None
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        declared = archive.read(metadata).decode().splitlines()
    with tarfile.open(sdist) as archive:
        root = sdist.name.removesuffix(".tar.gz")
        try:
            member = archive.extractfile(f"{root}/LICENSE")
        except KeyError:  # no such member
            member = None
        in_sdist = member.read() if member is not None else None
    if in_wheel != expected:
        session.error(f"{wheel.name} does not carry LICENSE in its .dist-info/licenses")
    if in_sdist != expected:
        session.error(f"{sdist.name} does not carry LICENSE at its root")
    if "License-File: LICENSE" not in declared or "License-Expression: MIT" not in declared:
        session.error(f"{wheel.name} metadata does not declare License-Expression/License-File")
