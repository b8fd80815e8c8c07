"""b24-dagster in a project of one's own, the way Dagster's docs make one (issue 24).

`create-dagster project` makes the project; the wheel `python -m build` made is installed into
the project's virtualenv with pip; `dg scaffold defs` adds the Component; the project's own
Python assets sit beside it in `defs/` (a source of rows, a write sync built by the factory, a
summary of the Component's export) with the resources declared once more in Python, shared by
key, under a base path of the project's choosing; `dg check defs` and `dg list defs` show every
asset; `dg launch` materializes them all, over HTTP, against an emulator that runs from the
installed wheel.

Speed: the project's virtualenv sees this environment's packages through a `.pth` line, so pip
finds every dependency installed and installs the wheel alone, offline, in seconds (the commands
are a user's; only the download is skipped).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from b24_dagster import Bitrix24Client
from tests.demo.helpers import BIN, clean_env
from tests.package.conftest import Dist

COMPONENT = "b24_dagster.components.Bitrix24Component"
SEEDED_DEALS = 40
LEADS = ["L1", "L2", "L3"]

ANALYTICS = '''\
"""The project's own assets, beside the Component's."""

import dagster as dg
import pandas as pd

from b24_dagster.integration import build_bitrix24_batch_asset


@dg.asset
def new_leads() -> pd.DataFrame:
    return pd.DataFrame({"external_id": %(leads)r, "title": [f"Lead {k}" for k in %(leads)r]})


# A write sync of the project's own, on the resources the Component provides (same keys).
lead_sync = build_bitrix24_batch_asset(
    name="lead_sync", method="crm.lead.add", source="new_leads", key_column="external_id",
    fields={"title": "TITLE"}, key_prefix=("bitrix24", "crm"),
)


@dg.asset(ins={"deals": dg.AssetIn(["bitrix24", "crm", "deals"])})
def deal_summary(deals: pd.DataFrame) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"deals": len(deals), "opportunity": float(deals["OPPORTUNITY"].sum())})
'''

RESOURCES = '''\
"""The Bitrix24 resources, declared in Python as well: the very objects the Component uses."""

import dagster as dg

from b24_dagster.components import shared_resources


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=shared_resources(base_path=%(lake)r))
'''


class Steps:
    """The commands of the test, each timed (printed at the end, for the issue's note)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env, self.seconds = cwd, env, {}

    def run(self, label: str, *args: str | Path, timeout: float = 300) -> str:
        started = time.monotonic()
        done = subprocess.run([str(a) for a in args], cwd=self.cwd, env=self.env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout)  # fmt: skip
        self.seconds[label] = round(time.monotonic() - started, 1)
        assert done.returncode == 0, f"{label}:\n{(done.stdout + done.stderr)[-4000:]}"
        return done.stdout + done.stderr


def _venv(project: Path, steps: Steps) -> Path:
    """`python -m venv .venv` in the project, seeing this environment's packages; `dg` as pip
    would have written it had it installed dagster-dg-cli there."""
    steps.run("python -m venv .venv", sys.executable, "-m", "venv", "--without-pip", ".venv")
    venv = project / ".venv"
    python = venv / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    # Plain path lines: this environment's packages, whose own .pth files (its editable
    # b24_dagster) are not run, and the project's sources (what `pip install -e .` would add).
    here = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "_test_environment.pth").write_text(f"{here}\n{project / 'src'}\n")
    (venv / "bin" / "dg").write_text(
        f"#!{python}\nimport sys\nfrom dagster_dg_cli.cli import main\n"
        "if __name__ == '__main__':\n    sys.exit(main())\n"
    )
    (venv / "bin" / "dg").chmod(0o755)
    return venv


def _start_emulator(python: Path, steps: Steps) -> tuple[subprocess.Popen[str], str]:
    """The emulator of the installed wheel, in a process of its own; its webhook URL."""
    proc = subprocess.Popen([str(python), "-m", "b24_dagster.emulator", "--port", "0", "--rate", "0",
                             "--seed-deals", str(SEEDED_DEALS)], cwd=steps.cwd, env=steps.env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(60)
    if not line or not line[0].startswith("http"):
        proc.kill()
        proc.wait()
        pytest.fail(f"the emulator printed no webhook URL (exit code {proc.poll()})")
    return proc, line[0].strip()


def test_component_and_python_assets_in_a_create_dagster_project(dist: Dist, tmp_path: Path) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    lake = tmp_path / "lake"
    env = clean_env(home, DAGSTER_DG_UPDATE_CHECK_ENABLED="0", B24_DAGSTER_STATE_DIR=str(tmp_path / "limits"))
    env.pop("PYTHONPATH", None)
    steps = Steps(tmp_path, env)

    steps.run("create-dagster project my-crm", BIN / "create-dagster", "project", "my-crm", "--no-uv-sync")
    project = tmp_path / "my-crm"
    package = project / "src" / "my_crm"
    assert (package / "definitions.py").is_file() and (project / "pyproject.toml").is_file()
    steps.cwd = project
    venv = _venv(project, steps)
    steps.env = env = {**env, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{env['PATH']}"}
    python = venv / "bin" / "python"

    installed = steps.run("pip install <wheel>[ui]", python, "-m", "pip", "install", "--no-index",
                          "--disable-pip-version-check", f"{dist.wheel}[ui]")  # fmt: skip
    assert "Successfully installed b24-dagster-0.1.0" in installed
    assert not [line for line in installed.splitlines() if line.startswith(("WARNING", "DEPRECATION"))]
    where = steps.run("import b24_dagster", python, "-c", "import b24_dagster; print(b24_dagster.__file__)")
    assert where.strip().startswith(str(venv)), where  # the wheel's copy, not this checkout's

    steps.run("dg scaffold defs", "dg", "scaffold", "defs", COMPONENT, "crm")
    yaml_path = package / "defs" / "crm" / "defs.yaml"
    text = yaml_path.read_text()
    assert "  # base_path:" in text and "key_prefix: [bitrix24, crm]" in text
    yaml_path.write_text(text.replace("  # base_path:", f"  base_path: {lake}  #", 1))
    (package / "defs" / "analytics.py").write_text(ANALYTICS % {"leads": LEADS})
    (package / "defs" / "resources.py").write_text(RESOURCES % {"lake": str(lake)})

    checked = steps.run("dg check defs", "dg", "check", "defs")
    assert "All definitions loaded successfully" in checked
    listed = _json_of(steps.run("dg list defs --json", "dg", "list", "defs", "--json"))
    keys = {asset["asset_key"] for asset in listed["assets"]}
    assert {"bitrix24/crm/deals", "bitrix24/crm/lead_sync", "new_leads", "deal_summary"} <= keys, keys

    emulator, webhook = _start_emulator(python, steps)
    try:
        steps.env = {**env, "BITRIX24_WEBHOOK_URL": webhook}
        # One process for a run's steps (the default starts one per step): the same
        # materializations, much less time on two busy cores.
        in_process = json.dumps({"execution": {"config": {"in_process": {}}}})
        # What the export's schedule runs: the export, then the project's asset that reads it.
        steps.run("dg launch --job bitrix24_crm_deals_job", "dg", "launch", "--job", "bitrix24_crm_deals_job",
                  "--config-json", in_process, timeout=600)  # fmt: skip
        steps.run("dg launch --assets new_leads,bitrix24/crm/lead_sync", "dg", "launch", "--assets",
                  "new_leads,bitrix24/crm/lead_sync", "--config-json", in_process, timeout=600)  # fmt: skip
        deals = pq.read_table(lake / "bitrix24" / "crm" / "deals.parquet")
        assert deals.num_rows == SEEDED_DEALS
        results = pq.read_table(lake / "bitrix24" / "crm" / "lead_sync.parquet")
        assert results["status"].to_pylist() == ["ok"] * len(LEADS)
        with Bitrix24Client(webhook, requests_per_second=None) as client:
            created = list(client.iter_list("crm.lead.list", {"select": ["ID", "ORIGIN_ID"]}))
        assert sorted(row["ORIGIN_ID"] for page in created for row in page) == LEADS
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("deal_summary"))
        assert event is not None and event.asset_materialization is not None
        assert event.asset_materialization.metadata["deals"].value == SEEDED_DEALS
    print("\nstep seconds:", json.dumps(steps.seconds), f"(build {dist.seconds:.1f} s)")


def _json_of(output: str) -> dict:
    """The JSON document in `dg list defs --json`'s output (Dagster may log a line before it)."""
    return json.loads(output[output.index("{"):])
