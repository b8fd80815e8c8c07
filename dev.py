#!/usr/bin/env python3
"""Set up and run b24-dagster from a fresh clone, with nothing but Python.

    python3 dev.py demo     # make .venv, install, run the demo pipeline against the emulator
    python3 dev.py test     # make .venv, install, run the test suite (extra args go to pytest)
    python3 dev.py bench    # make .venv, install, run the benchmarks against the peers

Each command creates its own virtualenv in `.venv/` and installs what it needs. Both are
idempotent: a second run reuses the virtualenv and reinstalls only when `pyproject.toml`
has changed (a stamp file in `.venv/` records the hash of what was installed).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"

EXTRAS = {"demo": "ui,dbt", "test": "test", "bench": "bench"}
# An install for a later entry includes everything an earlier one needs (test = ui,dbt,tls + pytest
# and the peer clients; bench = test + matplotlib, pyinstrument), so `demo` after `test` installs nothing.
COVERS = {"demo": ("demo", "test", "bench"), "test": ("test", "bench"), "bench": ("bench",)}


def _run(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    return subprocess.call([str(a) for a in args], cwd=ROOT, env=env)


def ensure_venv(command: str) -> None:
    """Create `.venv` and install what `command` needs, unless a stamp says it is there."""
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py runs on whatever python3 is)
        sys.exit(f"b24-dagster needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating virtualenv in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    if any((VENV / f".installed-{c}-{digest}").exists() for c in COVERS[command]):
        return
    pip = [PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if _run(*pip, "--upgrade", "pip") != 0:
        sys.exit("upgrading pip in .venv failed")
    if _run(*pip, "-e", f".[{EXTRAS[command]}]") != 0:
        sys.exit(f"installing b24-dagster[{EXTRAS[command]}] into .venv failed")
    for old in VENV.glob(".installed-*"):
        if not old.name.endswith(digest):
            old.unlink()
    (VENV / f".installed-{command}-{digest}").touch()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv(command)
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if command == "test":
        return _run(PYTHON, "-m", "pytest", *rest, env=env)
    if command == "demo":
        return _run(PYTHON, "-m", "b24_dagster.demo", *rest, env=env)
    return _run(PYTHON, "-m", "b24_dagster.bench", *rest, env=env)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
