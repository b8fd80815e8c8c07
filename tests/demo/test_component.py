"""The YAML Component instance in b24_dagster/defs/ loads and materializes on its own."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest

from b24_dagster.components import Bitrix24Component

DEFS = Path(__file__).resolve().parents[2] / "b24_dagster" / "defs"


def test_component_yaml_materializes(
    b24_emulator: Any, demo_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    b24_emulator.portal.seed("company", 7)
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", b24_emulator.webhook_url)
    defs = dg.load_from_defs_folder(path_within_project=DEFS)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        "bitrix24/crm_sync/companies",
        "bitrix24/crm_sync/contacts",
        "bitrix24/crm_sync/contact_import",
    }
    assert defs.resolve_schedule_def("bitrix24_crm_sync_companies_schedule")

    job = defs.resolve_implicit_global_asset_job_def()
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance)
    assert result.success

    base = tmp_path / "data" / "bitrix24" / "crm_sync"
    assert pq.read_table(base / "companies.parquet").num_rows == 7
    contacts = pq.read_table(base / "contact_import.parquet").to_pandas()
    assert len(contacts) == 12
    refused = contacts[contacts["status"] != "ok"]
    assert list(refused["external_id"]) == ["EXPO-005"]  # a contact with no name

    # The write is a sync by key: a second run creates nothing and tries only the refused row.
    made = b24_emulator.counts()["contact"]
    with dg.DagsterInstance.ephemeral() as instance:
        assert job.execute_in_process(instance=instance).success
    again = pq.read_table(base / "contact_import.parquet").to_pandas()
    assert b24_emulator.counts()["contact"] == made
    # The nameless contact is refused before a request (a contact needs a name): `invalid` again.
    assert dict(again["action"].value_counts()) == {"unchanged": 11, "invalid": 1}


def test_component_sync_field_is_checked_by_name() -> None:
    write = {"name": "w", "method": "crm.lead.add", "csv": "rows.csv", "key_column": "external_id"}
    assert Bitrix24Component.model_validate({"writes": [{**write, "sync": "insert"}]}).writes[0].sync == "insert"
    with pytest.raises(Exception, match=r"writes\.0\.sync"):
        Bitrix24Component.model_validate({"writes": [{**write, "sync": "bogus"}]})


def test_component_schema_refuses_unknown_attributes() -> None:
    with pytest.raises(Exception, match="not_an_attribute"):
        Bitrix24Component.model_validate({"not_an_attribute": 1})


def test_component_type_is_registered_for_dg() -> None:
    """`dg list components` finds the type through this entry point group."""
    from importlib.metadata import entry_points

    modules = {ep.value for ep in entry_points(group="dagster_dg_cli.registry_modules")}
    assert "b24_dagster.components" in modules


def test_component_write_with_bulk_import(
    b24_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bulk_import: true` (crm.item.add): the CSV's 30 deals ride one request of two
    crm.item.batchImport calls (doc page api-reference/crm/universal/import/crm-item-batch-import.md)."""
    (tmp_path / "deals.csv").write_text("external_id,title\n" + "".join(f"D{i},Deal {i}\n" for i in range(30)))
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", b24_emulator.webhook_url)
    monkeypatch.setenv("B24_DAGSTER_BASE", str(tmp_path / "data"))
    component = Bitrix24Component.model_validate({"writes": [{
        "name": "deal_load", "method": "crm.item.add", "csv": "deals.csv", "key_column": "external_id",
        "params": {"entityTypeId": 2}, "fields": ["title"], "bulk_import": True}]})  # fmt: skip
    defs = component.build_defs_from_state(SimpleNamespace(path=tmp_path), None)  # type: ignore[arg-type]  # only .path is read
    with dg.DagsterInstance.ephemeral() as instance:
        assert defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance).success
    assert b24_emulator.counts()["deal"] == 30
    assert [r.commands for r in b24_emulator.request_log if r.committed] == [2]


def test_a_write_naming_an_unknown_field_is_refused_at_definition_time(
    b24_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the portal's field lists in the defs state (`dg utils refresh-defs-state`), a write
    whose mapping names a field the portal does not know fails `dg check defs`, not a run."""
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", b24_emulator.webhook_url)
    (tmp_path / "contacts.csv").write_text("external_id,name,email\nC1,Ann,ann@example.com\n")
    write = {"name": "contact_sync", "method": "crm.contact.add", "csv": "contacts.csv", "key_column": "external_id"}
    bad = Bitrix24Component.model_validate({"writes": [{**write, "fields": {"name": "NAME", "email": "EMAIL_ADDR"}}]})
    state = tmp_path / "state.json"
    bad.write_state_to_path(state)
    with pytest.raises(ValueError, match=r"'EMAIL_ADDR' is not a field of crm.contact; did you mean 'EMAIL'"):
        bad.build_defs_from_state(SimpleNamespace(path=tmp_path), state)  # type: ignore[arg-type]
    good = Bitrix24Component.model_validate({"writes": [{**write, "fields": {"name": "NAME", "email": "EMAIL"}}]})
    assert good.build_defs_from_state(SimpleNamespace(path=tmp_path), state)  # type: ignore[arg-type]
