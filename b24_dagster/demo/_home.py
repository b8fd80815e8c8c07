"""The demo's Dagster home: its `dagster.yaml` and where the demo's files go."""

from __future__ import annotations

import os
from pathlib import Path

from b24_dagster.demo._local_portal import REPO_ROOT, dagster_home
from b24_dagster.integration import BASE_ENV, PORTAL_TAG

DAGSTER_YAML = f"""\
# Written by `python -m b24_dagster.demo`; edit freely, the demo does not overwrite it.
run_queue:
  max_concurrent_runs: 4
  # At most one run per Bitrix24 portal at a time: runs share the portal's rate limit and
  # operating-time budget, so two at once would only slow each other down (and a write-back
  # racing an export would export half-written state).
  # The schedules tag their runs {PORTAL_TAG}; Dagster tags every run of a portal
  # partition dagster/partition/portal, however it was launched (UI, backfill, sensor).
  tag_concurrency_limits:
    - key: "{PORTAL_TAG}"
      value:
        applyLimitPerUniqueValue: true
      limit: 1
    - key: "dagster/partition/portal"
      value:
        applyLimitPerUniqueValue: true
      limit: 1
telemetry:
  enabled: false
"""

DUCKDB_ENV = "B24_DAGSTER_DUCKDB_PATH"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_examples"
DEFINITIONS_FILE = REPO_ROOT / "definitions.py"
WORKSPACE_FILE = REPO_ROOT / "workspace.yaml"


def prepare_home(home: Path | None = None) -> Path:
    """Create the home with the demo's `dagster.yaml` (kept if present); return its path."""
    home = (home or dagster_home()).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML, encoding="utf-8")
    return home


DOTENV_FILE = REPO_ROOT / ".env"


def point_dagster_cli_at_home(home: Path, dotenv: Path = DOTENV_FILE) -> bool:
    """Make `dagster` and `dg` commands run in the repository use `home` as their Dagster home.

    Both read a `.env` file in the working directory before they create their instance, so a
    line `DAGSTER_HOME=${DAGSTER_HOME:-<home>}` there gives them the demo's home (and runs
    they launch are recorded where the demo's are) unless `DAGSTER_HOME` is already set. A
    `.env` that sets `DAGSTER_HOME` is left alone. Returns True when the line was written.
    """
    text = dotenv.read_text(encoding="utf-8") if dotenv.exists() else ""
    if any(line.split("=", 1)[0].strip().removeprefix("export ").strip() == "DAGSTER_HOME"
           for line in text.splitlines() if "=" in line):  # fmt: skip
        return False
    line = "# Written by the demo (python -m b24_dagster.demo): its Dagster home for dagster/dg.\n"
    line += f"DAGSTER_HOME=${{DAGSTER_HOME:-{home}}}\n"
    dotenv.write_text(text + ("\n" if text and not text.endswith("\n") else "") + line, encoding="utf-8")
    return True


def data_dir(home: Path | None = None) -> Path:
    """Where the demo keeps Parquet files and the dbt DuckDB file unless the environment says."""
    env = os.environ.get(BASE_ENV)
    return Path(env) if env else (home or dagster_home()) / "data"


def duckdb_path(home: Path | None = None) -> Path:
    """The dbt project's DuckDB database file (see `dbt_examples/profiles.yml`)."""
    env = os.environ.get(DUCKDB_ENV)
    return Path(env) if env else data_dir(home) / "dbt" / "b24_examples.duckdb"
