"""Fixtures of the packaging tests: the wheel and sdist, built once per session as a user builds
them (`python -m build`), from a copy of the package's files so the checkout stays clean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.demo.helpers import REPO

PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE")


@dataclass(frozen=True)
class Dist:
    """What `python -m build` made: the wheel, the sdist, and everything it printed."""

    wheel: Path
    sdist: Path
    output: str
    seconds: float


def package_files() -> list[str]:
    """Every file of the `b24_dagster` package in the repository, relative to it: git's list of
    files tracked or not ignored (not the state or caches that runs leave in the checkout)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "b24_dagster"],
                            cwd=REPO, capture_output=True, text=True)  # fmt: skip
    if listed.returncode == 0 and listed.stdout.strip():
        return sorted({name for name in listed.stdout.split() if (REPO / name).is_file()})
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "b24_dagster").rglob("*")  # not a checkout
                  if p.is_file() and not any(part.startswith((".", "__pycache__")) for part in p.parts))  # fmt: skip


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """`python -m build` (sdist, then the wheel built from the sdist) of a copy of the sources.

    `--no-isolation` builds with this environment's setuptools instead of downloading one, so
    the test runs offline; the build requirement (`setuptools>=77`) is still checked.
    """
    import time

    source = tmp_path_factory.mktemp("source")
    for name in PACKAGE_FILES:
        shutil.copy2(REPO / name, source / name)
    for name in package_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    # Without PYTHONDONTWRITEBYTECODE, which makes setuptools print "byte-compiling is disabled".
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    seconds = time.monotonic() - started
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    [wheel] = out.glob("b24_dagster-*.whl")
    [sdist] = out.glob("b24_dagster-*.tar.gz")
    return Dist(wheel=wheel, sdist=sdist, output=done.stdout + done.stderr, seconds=seconds)
