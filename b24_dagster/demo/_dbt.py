"""The demo's dbt project (`dbt_examples/`), loaded through dagster-dbt."""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from b24_dagster.demo._home import DBT_PROJECT_DIR


def dbt_executable() -> str:
    """The `dbt` beside this interpreter (a venv's bin is often not on PATH), else PATH's."""
    local = Path(sys.executable).parent / "dbt"
    return str(local) if local.exists() else (shutil.which("dbt") or "dbt")


def dbt_resource(project: DbtProject) -> DbtCliResource:
    """The `DbtCliResource` of the demo's project."""
    return DbtCliResource(project_dir=project, dbt_executable=dbt_executable())


def _newest_source_mtime(project_dir: Path) -> float:
    paths = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in ("models", "macros", "tests"):
        paths.extend((project_dir / folder).rglob("*"))
    return max((p.stat().st_mtime for p in paths if p.is_file()), default=0.0)


def _is_current(project: DbtProject) -> bool:
    manifest = project.manifest_path
    return manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(
        project.project_dir
    )


def load_dbt_project(project_dir: Path = DBT_PROJECT_DIR) -> DbtProject:
    """The dbt project with a current `target/manifest.json`.

    `DbtProject.prepare_if_dev()` parses only under `dagster dev`, and a fresh clone has no
    `target/` at all, so `dagster asset materialize` or `dg check defs` would find no
    manifest: parse whenever it is missing or older than the project's files. A file lock
    keeps the processes that load the definitions at once from parsing together.
    """
    project = DbtProject(project_dir=project_dir)
    if _is_current(project):
        return project
    target = project.project_dir / project.target_path
    target.mkdir(parents=True, exist_ok=True)
    # dbt writes its log files beside the project unless told otherwise.
    os.environ.setdefault("DBT_LOG_PATH", str(project.project_dir / "logs"))
    with open(target / ".parse.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _is_current(project):
                dbt_resource(project).cli(
                    ["parse", "--quiet"], target_path=project.target_path
                ).wait()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return project
