"""The Component through `dg`, in a scratch project of its own: scaffold, env, inspect, check,
refresh of its state; and in-process: translation, post_processing, writes from an asset."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tests.demo.helpers import BIN, clean_env

TYPE = "b24_dagster.components.Bitrix24Component"
WRITE = """
  writes:
    - name: contact_sync
      method: crm.contact.add
      csv: contacts.csv
      {key}: external_id
      fields: {{first_name: NAME, last_name: LAST_NAME}}
"""


def _project(root: Path, name: str = "scratch") -> Path:
    """A dg project `name` (no b24_dagster code in it) using the repository's venv."""
    (root / name / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [project]
        name = "{name}"
        version = "0.1"
        [tool.dg]
        directory_type = "project"
        [tool.dg.project]
        root_module = "{name}"
        defs_module = "{name}.defs"
        """))  # fmt: skip
    (root / name / "__init__.py").write_text("")
    (root / name / "defs" / "__init__.py").write_text("")
    (root / name / "definitions.py").write_text(textwrap.dedent("""\
        from pathlib import Path

        import dagster as dg


        @dg.definitions
        def defs() -> dg.Definitions:
            return dg.load_from_defs_folder(path_within_project=Path(__file__).parent.parent)
        """))  # fmt: skip
    return root


def _dg(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dg"), *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=240)  # fmt: skip


def test_dg_scaffold_env_inspect_check_and_refresh(b24_emulator: Any, tmp_path: Path) -> None:
    project = _project(tmp_path / "proj")
    env = clean_env(tmp_path / "home", PYTHONPATH=str(project))
    done = _dg(project, env, "scaffold", "defs", TYPE, "my_crm")
    assert done.returncode == 0, done.stderr[-3000:]
    yaml_path = project / "scratch" / "defs" / "my_crm" / "defs.yaml"
    text = yaml_path.read_text()
    assert 'webhook_url: "{{ env.BITRIX24_WEBHOOK_URL }}"' in text and "key_prefix: [bitrix24, my_crm]" in text
    assert "# writes:" in text and "requirements:" in text and "attributes: {}" not in text

    # `dg list env` links the variable to the component; inspect shows the fields' descriptions
    listed = _dg(project, env, "list", "env")
    assert listed.returncode == 0, listed.stderr[-3000:]
    [row] = [line for line in listed.stdout.splitlines() if "BITRIX24_WEBHOOK_URL" in line]
    assert "my_crm" in row
    inspected = _dg(project, env, "utils", "inspect-component", TYPE)
    assert inspected.returncode == 0, inspected.stderr[-3000:]
    assert "A CSV file of the rows, relative to this defs.yaml" in inspected.stdout
    assert "Make no_unknown_outcomes a blocking check" in inspected.stdout

    # A misspelt key is named; then a CSV that does not exist is named.
    yaml_path.write_text(text.replace("\n  # writes:", WRITE.format(key="key_colum") + "  # writes:", 1))
    bad = _dg(project, env, "check", "defs")
    assert bad.returncode != 0 and "'key_colum' was unexpected" in bad.stdout + bad.stderr
    yaml_path.write_text(text.replace("\n  # writes:", WRITE.format(key="key_column") + "  # writes:", 1))
    missing = _dg(project, env, "check", "defs")
    assert missing.returncode != 0
    assert "csv 'contacts.csv' does not exist" in missing.stdout + missing.stderr
    csv = yaml_path.parent / "contacts.csv"
    csv.write_text("external_id,first_name,last_name\nC1,Ann,Lee\n")
    ok = _dg(project, env, "check", "defs")  # no webhook needed to load: it is read at run time
    assert ok.returncode == 0, (ok.stdout + ok.stderr)[-3000:]

    # The state: the portal's field lists, kept by `dg utils refresh-defs-state`.
    refreshed = _dg(project, {**env, "BITRIX24_WEBHOOK_URL": b24_emulator.webhook_url}, "utils", "refresh-defs-state")
    assert refreshed.returncode == 0, (refreshed.stdout + refreshed.stderr)[-3000:]
    code = b24_emulator.webhook_url.rstrip("/").rsplit("/", 1)[-1]
    states = [p for p in project.rglob("state") if p.is_file()]
    assert states and all(code not in p.read_text() for p in states)
    assert "crm.deal.fields" in states[0].read_text()

    sys.path.insert(0, str(project))
    try:
        defs = dg.load_from_defs_folder(path_within_project=project / "scratch")
    finally:
        sys.path.remove(str(project))
    spec = defs.resolve_assets_def(dg.AssetKey(["bitrix24", "my_crm", "deals"])).specs_by_key[
        dg.AssetKey(["bitrix24", "my_crm", "deals"])]  # fmt: skip
    columns = {c.name: c.description for c in spec.metadata["dagster/column_schema"].schema.columns}
    assert columns["STAGE_ID"].startswith("Stage") and columns["OPPORTUNITY"]
    assert spec.freshness_policy is not None


def _load(folder: Path, yaml: str, monkeypatch: pytest.MonkeyPatch) -> dg.Definitions:
    (folder / "defs.yaml").write_text(textwrap.dedent(yaml))
    monkeypatch.syspath_prepend(str(folder.parents[2]))  # the project root: its package importable
    return dg.load_from_defs_folder(path_within_project=folder)


def test_translation_post_processing_and_writes_from_an_asset(
    b24_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", b24_emulator.webhook_url)
    monkeypatch.setenv("B24_DAGSTER_BASE", str(tmp_path / "data"))
    project = _project(tmp_path / "proj", "scratch_translation")
    folder = project / "scratch_translation" / "defs" / "crm"
    folder.mkdir()
    defs = _load(folder, """\
        type: b24_dagster.components.Bitrix24Component
        attributes:
          webhook_url: "{{ env.BITRIX24_WEBHOOK_URL }}"
          key_prefix: [crm]
          writes:
            - name: contact_sync
              method: crm.contact.add
              source: clean/contacts
              key_column: external_id
              fields: [NAME, LAST_NAME]
          translation:
            group_name: "crm_{{ kind }}"
            tags: {bitrix24/method: "{{ method }}"}
        post_processing:
          assets:
            - target: "*"
              attributes:
                owners: [team:crm]
        """, monkeypatch)  # fmt: skip
    @dg.asset(key=["clean", "contacts"])
    def contacts() -> pd.DataFrame:
        return pd.DataFrame({"external_id": ["A", "B"], "NAME": ["Ann", "Bob"], "LAST_NAME": ["Lee", "Ray"]})

    defs = dg.Definitions.merge(defs, dg.Definitions(assets=[contacts]))
    key = dg.AssetKey(["crm", "contact_sync"])
    spec = defs.resolve_assets_def(key).specs_by_key[key]
    assert spec.group_name == "crm_batch" and spec.tags["bitrix24/method"] == "crm.contact.add"
    assert spec.owners == ["team:crm"]
    references = spec.metadata["dagster/code_references"].code_references
    assert [Path(r.file_path).name for r in references] == ["defs.yaml"]  # Dagster's, not a caller's
    assert [d.asset_key for d in spec.deps] == [dg.AssetKey(["clean", "contacts"])]

    with dg.DagsterInstance.ephemeral() as instance:
        assert defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance).success
    table = pq.read_table(tmp_path / "data" / "crm" / "contact_sync.parquet")
    assert table["status"].to_pylist() == ["ok", "ok"]
    assert b24_emulator.counts()["contact"] == 2


def test_webhook_must_be_an_env_template(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _project(tmp_path / "proj", "scratch_webhook") / "scratch_webhook" / "defs" / "crm"
    folder.mkdir()
    with pytest.raises(Exception) as info:
        _load(folder, """\
            type: b24_dagster.components.Bitrix24Component
            attributes:
              webhook_url: "https://acme.bitrix24.com/rest/1/secretcode/"
            """, monkeypatch)  # fmt: skip
    chain, error = [], info.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__ or error.__context__
    assert any("must be an environment template" in text for text in chain)
