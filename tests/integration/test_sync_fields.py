"""A sync at field level, materialized against the emulator over HTTP (issue 21): the mapping
checked against the portal's fields, multi-fields written exactly, a diff against the portal
when the state does not know a row, a changelog of every change, and the audit's cases."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from b24_dagster.client import Bitrix24Client
from b24_dagster.integration import SKIPPED_CHECK, build_bitrix24_batch_asset

KEY = dg.AssetKey(["bitrix24", "contact_sync"])
OP = "bitrix24__contact_sync"


def contacts(n: int, **overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "external_id": [f"C{i:04d}" for i in range(n)],
        "name": [f"Name {i}" for i in range(n)],
        "email": [[f"c{i}@example.com"] for i in range(n)],
        "phone": [[f"+1 555 {i:04d}"] for i in range(n)],
    })  # fmt: skip
    for column, values in overrides.items():
        frame[column] = values
    return frame


class Source:
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def assets(self, fields: dict | None = None, method: str = "crm.contact.add", **kwargs) -> list:
        @dg.asset(name="contacts_source")
        def source() -> pd.DataFrame:
            return self.frame

        asset = build_bitrix24_batch_asset(
            name="contact_sync", method=method, source="contacts_source",
            fields=fields or {"name": "NAME", "email": "EMAIL", "phone": "PHONE"}, key_column="external_id",
            reconcile_delay_seconds=0.0, **kwargs)  # fmt: skip
        return [source, asset]


def run(assets, resources, instance, **config) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False,
                          run_config={"ops": {OP: {"config": config}}} if config else None)  # fmt: skip


def meta(result: dg.ExecuteInProcessResult) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == KEY]
    if events:
        return {k: getattr(v, "value", v) for k, v in events[0].materialization.metadata.items()}
    observed = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    return {k: getattr(v, "value", v) for k, v in observed[0].event_specific_data.asset_observation.metadata.items()}


def failure(result: dg.ExecuteInProcessResult) -> str:
    return result.get_step_failure_events()[0].event_specific_data.error.message


def client(emulator) -> Bitrix24Client:
    return Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False)


def portal(emulator) -> dict[str, dict]:
    """Each contact by ORIGIN_ID: its name, e-mails and phones as (VALUE, VALUE_TYPE) lists."""
    with client(emulator) as b24:
        rows = [r for page in b24.iter_list("crm.contact.list", {"select": ["ID", "ORIGIN_ID", "NAME", "LAST_NAME",
                                                                            "EMAIL", "PHONE"]}) for r in page]  # fmt: skip
    return {r["ORIGIN_ID"]: {"ID": int(r["ID"]), "NAME": r["NAME"], "LAST_NAME": r["LAST_NAME"],
                             "EMAIL": sorted((v["VALUE"], v["VALUE_TYPE"]) for v in r.get("EMAIL", [])),
                             "PHONE": sorted((v["VALUE"], v["VALUE_TYPE"]) for v in r.get("PHONE", []))}
            for r in rows}  # fmt: skip


def writes(emulator) -> int:
    return sum(r.commands for r in emulator.request_log if r.committed)


def state_file(base):
    return base / "bitrix24" / ".contact_sync.parquet.sync" / "state.parquet"


def test_edited_emails_and_phones_replace_the_old_ones_and_a_lost_state_writes_nothing(
        b24_emulator, resources, base, instance):  # fmt: skip
    """Before: 10 of 40 contacts held an old e-mail or phone beside the new one; with the state
    deleted, 40 updates were sent and every contact held each value twice."""
    source = Source(contacts(40))
    assert run(source.assets(), resources, instance).success
    edited = contacts(40)
    for i in range(6):
        edited.at[i, "email"] = [f"new{i}@example.com"]
    for i in range(10, 14):
        edited.at[i, "phone"] = [f"+1 666 {i:04d}"]
    source.frame = edited
    before = writes(b24_emulator)
    second = run(source.assets(), resources, instance)
    assert second.success and meta(second)["rows_update"] == 10
    assert writes(b24_emulator) - before == 10
    held = portal(b24_emulator)
    for i, row in edited.iterrows():
        got = held[row["external_id"]]
        assert [v for v, _ in got["EMAIL"]] == row["email"], i
        assert [v for v, _ in got["PHONE"]] == row["phone"], i

    shutil.rmtree(state_file(base).parent)
    before, held = writes(b24_emulator), portal(b24_emulator)
    lost = run(source.assets(), resources, instance)
    m = meta(lost)
    assert lost.success and (m["rows_unchanged"], m["rows_verified"], m["writes_planned"]) == (40, 40, 0)
    assert writes(b24_emulator) == before and portal(b24_emulator) == held
    assert m["lookup_requests"] == 1
    again = run(source.assets(), resources, instance)  # the state learned the records: no read at all
    assert meta(again)["lookup_requests"] == 0


def test_a_value_type_from_the_source_is_applied_and_a_plain_value_keeps_the_portals(b24_emulator, resources, base,
                                                                                     instance):  # fmt: skip
    source = Source(contacts(2, email=[[{"VALUE": "a@example.com", "VALUE_TYPE": "HOME"}], ["b@example.com"]]))
    assert run(source.assets(), resources, instance).success
    with client(b24_emulator) as b24:  # someone marks b's address HOME on the portal
        held = b24.call("crm.contact.get", {"id": 2}).result["EMAIL"][0]
        b24.call("crm.contact.update", {"id": 2, "fields": {"EMAIL": [{"ID": held["ID"], "VALUE_TYPE": "HOME",
                                                                        "VALUE": "B@EXAMPLE.COM"}]}})  # fmt: skip
    source.frame = contacts(2, email=[[{"VALUE": "a@example.com", "VALUE_TYPE": "WORK"}], ["b@example.com"]])
    result = run(source.assets(), resources, instance, rebuild_state=True)
    assert result.success and meta(result)["rows_update"] == 1  # a's type; b equal in normal form
    assert portal(b24_emulator)["C0000"]["EMAIL"] == [("a@example.com", "WORK")]
    assert portal(b24_emulator)["C0001"]["EMAIL"] == [("B@EXAMPLE.COM", "HOME")]


def test_append_keeps_values_the_source_lacks(b24_emulator, resources, base, instance):
    source = Source(contacts(1))
    assert run(source.assets(multi_value="append"), resources, instance).success
    source.frame = contacts(1, email=[["second@example.com"]])
    assert run(source.assets(multi_value="append"), resources, instance).success
    assert [v for v, _ in portal(b24_emulator)["C0000"]["EMAIL"]] == ["c0@example.com", "second@example.com"]


def test_a_misspelt_field_is_refused_with_the_nearest_names_before_any_write(b24_emulator, resources, base, instance):
    """Before: `EMAIL_ADDR` was dropped in silence and every row reported ok."""
    source = Source(contacts(3))
    result = run(source.assets(fields={"name": "NAME", "email": "EMAIL_ADDR"}), resources, instance)
    assert not result.success
    message = failure(result)
    assert "'EMAIL_ADDR' is not a field of crm.contact" in message and "'EMAIL'" in message
    assert writes(b24_emulator) == 0


def test_read_only_and_required_fields_are_refused(b24_emulator, resources, base, instance):
    frame = contacts(2, created=["2024-01-01", "2024-01-02"])
    result = run(Source(frame).assets(fields={"name": "NAME", "created": "DATE_CREATE"}), resources, instance)
    assert not result.success and "'DATE_CREATE' (Date create) is read-only on crm.contact" in failure(result)
    result = run(Source(frame).assets(fields={"email": "EMAIL"}), resources, instance)
    assert not result.success and "needs one of ['LAST_NAME', 'NAME', 'SECOND_NAME'] on create" in failure(result)
    assert writes(b24_emulator) == 0


def test_a_misspelt_method_is_refused_by_name():
    """Before: `crm.contact.ad` with a key was a one-shot send of every row, and a green run."""
    with pytest.raises(dg.DagsterInvalidDefinitionError, match=r"did you mean crm\.contact\.add"):
        Source(contacts(1)).assets(method="crm.contact.ad")
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="known: crm.lead.add"):
        build_bitrix24_batch_asset(name="x", method="tasks.task.add", source="s", key_column="k", sync="upsert")


def test_bad_values_make_their_rows_invalid_with_a_reason_and_the_rest_is_written(b24_emulator, resources, base,
                                                                                  instance):  # fmt: skip
    frame = contacts(4, source=["WEB", "NO_SUCH_SOURCE", "CALL", "WEB"], owner=[1, 2, 999, 3],
                     exported=["Y", "N", "Y", "maybe"])  # fmt: skip
    fields = {"name": "NAME", "source": "SOURCE_ID", "owner": "ASSIGNED_BY_ID", "exported": "EXPORT"}
    result = run(Source(frame).assets(fields=fields), resources, instance)
    assert result.success
    table = pq.read_table(base / "bitrix24" / "contact_sync.parquet").to_pylist()
    assert [r["action"] for r in table] == ["create", "invalid", "invalid", "invalid"]
    reasons = [r["error_description"] for r in table[1:]]
    assert "Value 'NO_SUCH_SOURCE' is not in the SOURCE directory of crm.status.list (field 'SOURCE_ID')" in reasons[0]
    assert reasons[1] == "User with ID 999 not found (field 'ASSIGNED_BY_ID')."  # as the portal words it
    assert "EXPORT: 'maybe' is not a yes/no value" in reasons[2]
    assert sorted(portal(b24_emulator)) == ["C0000"]


def test_the_changelog_and_the_runs_table_record_old_and_new_values(b24_emulator, resources, base, instance):
    source = Source(contacts(3))
    first = run(source.assets(), resources, instance)
    source.frame = contacts(3, name=["Name 0", "Renamed", "Name 2"])
    dry = run(source.assets(), resources, instance, dry_run=True)
    plan = pq.read_table(base / "bitrix24" / ".contact_sync.parquet.sync" / "plan.parquet").to_pylist()
    assert plan[1]["changes"] == [{"field": "NAME", "old": "Name 1", "new": "Renamed", "kind": "update"}]
    assert "NAME: Name 1 → Renamed" in str(meta(dry)["plan_preview"])
    second = run(source.assets(), resources, instance)
    changes = ds.dataset(str(base / "bitrix24" / "contact_sync.changelog"), format="parquet").to_table().to_pylist()
    mine = [c for c in changes if c["run_id"] == second.run_id]
    assert [(c["key"], c["action"], c["field"], c["old_value"], c["new_value"], c["status"]) for c in mine] == [
        ("C0001", "update", "NAME", "Name 1", "Renamed", "ok")]
    created = [c for c in changes if c["run_id"] == first.run_id]
    assert {c["field"] for c in created} == {"NAME", "EMAIL", "PHONE"} and len(created) == 9
    assert json.loads(next(c for c in created if c["field"] == "EMAIL")["new_value"])[0]["VALUE"] == "c0@example.com"
    runs = ds.dataset(str(base / "bitrix24" / "contact_sync.runs"), format="parquet").to_table().to_pylist()
    by_run = {r["run_id"]: r for r in runs}
    assert (by_run[first.run_id]["created"], by_run[second.run_id]["updated"]) == (3, 1)
    assert by_run[dry.run_id]["dry_run"] and by_run[second.run_id]["fields_changed"] == 1


def test_a_cleared_field_is_cleared_on_the_portal(b24_emulator, resources, base, instance):
    """Before: the first run sent an empty update ("Parameter 'fields' must be array.") and later
    runs reported the row unchanged."""
    source = Source(contacts(2, last=["Smith", "Jones"]))
    fields = {"name": "NAME", "last": "LAST_NAME", "email": "EMAIL"}
    assert run(source.assets(fields=fields), resources, instance).success
    source.frame = contacts(2, last=["Smith", None], email=[["c0@example.com"], None])
    result = run(source.assets(fields=fields), resources, instance)
    assert result.success and meta(result)["rows_update"] == 1 and meta(result)["ok"] == 2
    held = portal(b24_emulator)["C0001"]
    assert (held["LAST_NAME"], held["EMAIL"]) == ("", [])
    assert meta(run(source.assets(fields=fields), resources, instance))["writes_planned"] == 0


def test_check_portal_restores_edits_made_on_the_portal_and_logs_them_as_drift(b24_emulator, resources, base,
                                                                               instance):  # fmt: skip
    """Before: check_portal left a person's edits in place while reporting every row ok."""
    source = Source(contacts(3))
    assert run(source.assets(check_portal=True), resources, instance).success
    with client(b24_emulator) as b24:
        b24.call("crm.contact.update", {"id": 2, "fields": {"NAME": "Edited by hand"}})
    result = run(source.assets(check_portal=True), resources, instance)
    assert result.success and (meta(result)["rows_update"], meta(result)["rows_drift"]) == (1, 1)
    assert portal(b24_emulator)["C0001"]["NAME"] == "Name 1"
    changes = ds.dataset(str(base / "bitrix24" / "contact_sync.changelog"), format="parquet").to_table().to_pylist()
    assert [(c["action"], c["old_value"], c["new_value"]) for c in changes if c["run_id"] == result.run_id] == [
        ("drift", "Edited by hand", "Name 1")]


def test_delete_missing_deletes_only_the_record_the_sync_made(b24_emulator, resources, base, instance):
    """Before: someone deleted the synced record and made their own with the same key; when the
    key left the source, theirs was deleted."""
    source = Source(contacts(20))
    assert run(source.assets(delete_missing=True), resources, instance).success
    with client(b24_emulator) as b24:
        b24.call("crm.contact.delete", {"id": 1})
        theirs = b24.call("crm.contact.add", {"fields": {"NAME": "Theirs", "ORIGIN_ID": "C0000"}}).result
    source.frame = contacts(20).iloc[1:]
    result = run(source.assets(delete_missing=True), resources, instance)
    assert result.success and (meta(result)["rows_delete"], meta(result)["rows_gone"]) == (0, 1)
    assert portal(b24_emulator)["C0000"]["ID"] == theirs


def test_an_empty_source_with_delete_missing_is_refused_for_the_share_not_the_key_column(b24_emulator, resources,
                                                                                         base, instance):  # fmt: skip
    source = Source(contacts(5))
    assert run(source.assets(delete_missing=True), resources, instance).success
    source.frame = contacts(5).iloc[0:0]
    result = run(source.assets(delete_missing=True), resources, instance)
    assert not result.success and "5 of the 5 records this sync made left the source" in failure(result)


def test_only_a_rows_own_error_counts_as_an_attempt(b24_emulator, resources, base, instance):
    """Before: with halt_on_error, rows never sent counted as failed attempts and ended skipped
    for good (39 of 200 never written after the bad row was fixed)."""
    frame = contacts(120)
    frame.at[5, "email"] = ["not-an-email"]
    source = Source(frame)
    for _ in range(3):  # the bad row fails each time and halts its chunk; the rows after it in
        result = run(source.assets(halt_on_error=True), resources, instance)  # the chunk wait
        assert result.success and len(portal(b24_emulator)) == 120 - 45
    fourth = run(source.assets(halt_on_error=True), resources, instance)
    m = meta(fourth)
    assert (m["rows_skipped"], m["rows_create"]) == (1, 44)  # only the bad row is skipped
    assert len(portal(b24_emulator)) == 119
    assert {e.check_name: e.passed for e in fourth.get_asset_check_evaluations()}[SKIPPED_CHECK] is False
    requests = b24_emulator.stats["requests"]
    run(source.assets(halt_on_error=True), resources, instance)
    assert b24_emulator.stats["requests"] - requests == 1  # the fields read only: skipped rows cost nothing
    source.frame = contacts(120)  # the bad row fixed
    fixed = run(source.assets(halt_on_error=True), resources, instance)
    assert fixed.success and meta(fixed)["rows_create"] == 1 and len(portal(b24_emulator)) == 120


def test_an_unreadable_state_names_the_file_and_rebuild_state_recovers_without_writes(b24_emulator, resources,
                                                                                      base, instance):  # fmt: skip
    """Before: a truncated state stopped every run with a raw ArrowInvalid."""
    source = Source(contacts(30))
    assert run(source.assets(), resources, instance).success
    state_file(base).write_bytes(state_file(base).read_bytes()[:100])
    broken = run(source.assets(), resources, instance)
    assert not broken.success
    assert "contact_sync.parquet.sync/state.parquet cannot be read" in failure(broken)
    assert "rebuild_state: true" in failure(broken)
    before = writes(b24_emulator)
    rebuilt = run(source.assets(), resources, instance, rebuild_state=True)
    assert rebuilt.success and meta(rebuilt)["rows_verified"] == 30 and writes(b24_emulator) == before
    assert run(source.assets(), resources, instance).success


def test_a_state_of_another_portal_is_not_trusted(b24_emulator, resources, base, instance):
    source = Source(contacts(5))
    assert run(source.assets(), resources, instance).success
    b24_emulator.portal.reset()  # another portal at the same place: none of the records are there
    result = run(source.assets(), resources, instance)
    assert result.success and meta(result)["rows_create"] == 0  # the state is still trusted: same origin
    table = pq.read_table(state_file(base))
    meta_keys = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert meta_keys["b24_dagster.portal"].startswith("http://127.0.0.1:")
    foreign = table.replace_schema_metadata({**table.schema.metadata, b"b24_dagster.portal": b"https://other.example"})
    pq.write_table(foreign, state_file(base))
    result = run(source.assets(), resources, instance)
    assert result.success and meta(result)["rows_create"] == 5
    assert "another portal" in meta(result)["state_distrusted"]


def test_the_sync_metadata_has_the_reconciliation_figures(b24_emulator, resources, base, instance):
    result = run(Source(contacts(3)).assets(), resources, instance)
    m = meta(result)
    assert {"reconciled_found", "reconciled_resent", "reconciled_unknown_left", "reconcile_lookups"} <= set(m)


def test_nothing_to_send_still_proves_the_webhook(b24_emulator, resources, base, instance, monkeypatch):
    """Before: a wrong webhook went unnoticed while nothing changed (0 requests, green run)."""
    source = Source(contacts(3))
    assert run(source.assets(), resources, instance).success
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", b24_emulator.webhook_url.replace("/rest/1/", "/rest/1/x"))
    result = run(source.assets(), resources, instance)
    assert not result.success and "crm.contact.fields failed" in failure(result)


def test_config_for_an_op_outside_the_run_fails_before_any_request(b24_emulator, resources, base, instance):
    """A dry_run meant for another asset's op, in a run that selects only this one: Dagster accepts
    config for ops a selection leaves out and ignores it, so before, this run wrote for real."""
    def rows(context) -> pd.DataFrame:
        return contacts(2)

    mine = build_bitrix24_batch_asset(name="contact_sync", method="crm.contact.add", source=rows,
                                      fields={"name": "NAME"}, key_column="external_id")  # fmt: skip
    other = build_bitrix24_batch_asset(name="other_sync", method="crm.lead.add", source=rows,
                                       fields={"name": "TITLE"}, key_column="external_id")  # fmt: skip
    defs = dg.Definitions(assets=[mine, other], resources=resources,
                          jobs=[dg.define_asset_job("crm_syncs", selection=[KEY, other.key])])  # fmt: skip
    job = defs.resolve_job_def("crm_syncs")
    result = job.execute_in_process(instance=instance, raise_on_error=False, op_selection=[OP],
                                    run_config={"ops": {"bitrix24__other_sync": {"config": {"dry_run": True}}}})  # fmt: skip
    assert not result.success
    assert "names ops that are not in this run: bitrix24__other_sync" in failure(result)
    assert b24_emulator.stats["requests"] == 0
