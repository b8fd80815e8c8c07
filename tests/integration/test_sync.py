"""Write assets as a sync, materialized against the emulator over HTTP: every record once, only
changes sent, failed rows tried again, a dry run that writes the plan and nothing else."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from b24_dagster.client import Bitrix24Client
from b24_dagster.integration import build_bitrix24_batch_asset

ASSET = "bitrix24__lead_sync"


def leads(n: int, bad: set[int] = frozenset()) -> pd.DataFrame:
    return pd.DataFrame({
        "external_id": [f"L{i:04d}" for i in range(n)],
        "title": [f"Lead {i}" for i in range(n)],
        "email": ["not-an-email" if i in bad else f"lead{i}@example.com" for i in range(n)],
    })  # fmt: skip


class Source:
    """The source rows, changeable between materializations."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def assets(self, **kwargs) -> list:
        @dg.asset(name="leads_source")
        def source() -> pd.DataFrame:
            return self.frame

        asset = build_bitrix24_batch_asset(
            name="lead_sync", method="crm.lead.add", source="leads_source",
            fields={"title": "TITLE", "email": "EMAIL"}, key_column="external_id",
            reconcile_delay_seconds=0.0, **kwargs,
        )  # fmt: skip
        return [source, asset]


def materialize(assets, resources, instance, **config) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False,
                          run_config={"ops": {ASSET: {"config": config}}} if config else None)  # fmt: skip


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    event = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key == dg.AssetKey(["bitrix24", "lead_sync"]))  # fmt: skip
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def client(emulator) -> Bitrix24Client:
    return Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False)


def portal_leads(emulator) -> list[dict]:
    with client(emulator) as b24:
        return [row for page in b24.iter_list("crm.lead.list", {"select": ["ID", "ORIGIN_ID", "TITLE"]})
                for row in page]  # fmt: skip


def writes(emulator) -> int:
    """Commands of the requests that changed the portal."""
    return sum(r.commands for r in emulator.request_log if r.committed)


def test_three_runs_create_once_then_send_only_the_change(b24_emulator, resources, base, instance):
    source = Source(leads(120))
    first = materialize(source.assets(), resources, instance)
    assert first.success
    m1 = metadata(first)
    assert (m1["rows_create"], m1["rows_unchanged"], m1["ok"]) == (120, 0, 120)
    assert (m1["chunks"], m1["failed_chunks"], m1["commands_sent"]) == (3, 0, 120)
    assert sorted(r["ORIGIN_ID"] for r in portal_leads(b24_emulator)) == [f"L{i:04d}" for i in range(120)]

    again = materialize(source.assets(), resources, instance)
    m2 = metadata(again)
    assert (m2["rows_create"], m2["rows_update"], m2["rows_unchanged"], m2["writes_planned"]) == (0, 0, 120, 0)
    assert m2["lookups"] == 0  # every row trusted from the state: no request at all
    assert len(portal_leads(b24_emulator)) == 120

    source.frame.loc[7, "title"] = "Lead 7, renamed"
    before = writes(b24_emulator)
    third = materialize(source.assets(), resources, instance)
    m3 = metadata(third)
    assert (m3["rows_update"], m3["rows_unchanged"], m3["writes_planned"]) == (1, 119, 1)
    assert writes(b24_emulator) - before == 1
    table = pq.read_table(base / "bitrix24" / "lead_sync.parquet")
    assert table.num_rows == 120 and table["action"][7].as_py() == "update"
    assert table["portal_id"].to_pylist() == list(range(1, 121))
    lead7 = next(r for r in portal_leads(b24_emulator) if r["ORIGIN_ID"] == "L0007")
    assert lead7["TITLE"] == "Lead 7, renamed"
    plan_row = table.filter(pc.equal(table["action"], "update")).to_pylist()[0]
    assert plan_row["external_id"] == "L0007" and plan_row["method"] == "crm.lead.update"


def test_records_made_before_the_state_are_found_not_created_again(b24_emulator, resources, base, instance):
    """A record with the row's key already on the portal (a run that died, a person) is updated."""
    with client(b24_emulator) as b24:
        b24.call("crm.lead.add", {"fields": {"TITLE": "made by hand", "ORIGIN_ID": "L0003"}})
    result = materialize(Source(leads(10)).assets(), resources, instance)
    m = metadata(result)
    assert (m["rows_create"], m["rows_update"]) == (9, 1)
    origins = sorted(r["ORIGIN_ID"] for r in portal_leads(b24_emulator))
    assert origins == [f"L{i:04d}" for i in range(10)]


def test_failed_rows_are_tried_again_until_max_attempts(b24_emulator, resources, base, instance):
    source = Source(leads(20, bad={4}))
    for attempt in (1, 2):
        m = metadata(materialize(source.assets(max_attempts=2), resources, instance))
        assert (m["error"], m["rows_create"], m["rows_retried"]) == (1, 1 if attempt == 2 else 20, attempt - 1)
        assert (m["chunks"], m["failed_chunks"]) == (1, 1)
    m = metadata(materialize(source.assets(max_attempts=2), resources, instance))
    assert (m["rows_skipped"], m["writes_planned"], m["not_run"]) == (1, 0, 1)
    source.frame.loc[4, "email"] = "fixed@example.com"  # a change: tried again
    m = metadata(materialize(source.assets(max_attempts=2), resources, instance))
    assert (m["rows_create"], m["ok"]) == (1, 20)
    assert len(portal_leads(b24_emulator)) == 20


def test_dry_run_writes_the_plan_and_nothing_else(b24_emulator, resources, base, instance):
    source = Source(leads(30))
    assert materialize(source.assets(), resources, instance).success
    results_before = (base / "bitrix24" / "lead_sync.parquet").read_bytes()
    state = base / "bitrix24" / ".lead_sync.parquet.sync" / "state.parquet"
    state_before = state.read_bytes()
    source.frame.loc[2, "title"] = "changed"
    source.frame = pd.concat([source.frame, leads(31).tail(1)], ignore_index=True)
    before = writes(b24_emulator)
    dry = materialize(source.assets(), resources, instance, dry_run=True)
    assert dry.success and not [e for e in dry.get_asset_materialization_events()
                                if e.asset_key == dg.AssetKey(["bitrix24", "lead_sync"])], "a plan is no materialization"
    [observation] = [e.event_specific_data.asset_observation for e in dry.all_events
                     if e.event_type_value == "ASSET_OBSERVATION"]  # fmt: skip
    m = {k: getattr(v, "value", v) for k, v in observation.metadata.items()}
    assert writes(b24_emulator) == before
    assert (base / "bitrix24" / "lead_sync.parquet").read_bytes() == results_before
    assert state.read_bytes() == state_before
    assert (m["dry_run"], m["rows_create"], m["rows_update"], m["rows_unchanged"]) == (True, 1, 1, 29)
    plan = pq.read_table(base / "bitrix24" / ".lead_sync.parquet.sync" / "plan.parquet")
    assert plan.num_rows == 31
    row = plan.filter(pc.equal(plan["action"], "update")).to_pylist()[0]
    assert (row["key"], row["portal_id"], row["changed_fields"]) == ("L0002", 3, ["TITLE"])


def test_delete_missing_is_opt_in_and_bounded(b24_emulator, resources, base, instance):
    source = Source(leads(20))
    materialize(source.assets(), resources, instance)
    source.frame = source.frame.iloc[:18]
    materialize(source.assets(), resources, instance)
    assert len(portal_leads(b24_emulator)) == 20  # not without delete_missing
    refused = materialize(source.assets(delete_missing=True, max_delete_share=0.05), resources, instance)
    assert not refused.success and len(portal_leads(b24_emulator)) == 20
    done = materialize(source.assets(delete_missing=True, max_delete_share=0.2), resources, instance)
    assert metadata(done)["rows_delete"] == 2
    assert sorted(r["ORIGIN_ID"] for r in portal_leads(b24_emulator)) == [f"L{i:04d}" for i in range(18)]


@pytest.mark.parametrize("mode", ["insert", "update"])
def test_insert_and_update_modes(b24_emulator, resources, base, instance, mode):
    with client(b24_emulator) as b24:
        b24.call("crm.lead.add", {"fields": {"TITLE": "old", "ORIGIN_ID": "L0000"}})
    m = metadata(materialize(Source(leads(3)).assets(sync=mode), resources, instance))
    titles = {r["ORIGIN_ID"]: r["TITLE"] for r in portal_leads(b24_emulator)}
    if mode == "insert":
        assert (m["rows_create"], m["rows_unchanged"]) == (2, 1) and titles["L0000"] == "old"
    else:
        assert (m["rows_update"], m["rows_missing"], m["error"]) == (1, 2, 2) and list(titles) == ["L0000"]
        assert titles["L0000"] == "Lead 0"


def test_ambiguous_key_is_not_written(b24_emulator, resources, base, instance):
    with client(b24_emulator) as b24:
        for _ in range(2):
            b24.call("crm.lead.add", {"fields": {"TITLE": "twin", "ORIGIN_ID": "L0001"}})
    result = materialize(Source(leads(3)).assets(), resources, instance)
    table = pq.read_table(base / "bitrix24" / "lead_sync.parquet")
    assert table["action"].to_pylist() == ["create", "ambiguous", "create"]
    assert table["error_code"][1].as_py() == "SYNC_AMBIGUOUS"
    assert metadata(result)["rows_ambiguous"] == 1 and len(portal_leads(b24_emulator)) == 4


def _unreachable(resources, monkeypatch) -> dict:
    """The same resources, pointed at a port where nothing listens."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", f"http://127.0.0.1:{port}/rest/1/deadhostcode/")
    return resources


def test_a_run_against_a_dead_host_publishes_nothing(b24_emulator, resources, base, instance, monkeypatch):
    """Before: 500 CONNECT_ERROR rows replaced the good results, and the step succeeded."""
    source = Source(leads(40))
    assert materialize(source.assets(), resources, instance).success
    results_file = base / "bitrix24" / "lead_sync.parquet"
    state = base / "bitrix24" / ".lead_sync.parquet.sync" / "state.parquet"
    good = (results_file.read_bytes(), state.read_bytes())
    source.frame = leads(45)  # five new rows: the fields read that checks them fails first
    failed = materialize(source.assets(), _unreachable(resources, monkeypatch), instance)
    assert not failed.success
    message = failed.get_step_failure_events()[0].event_specific_data.error.message
    assert "crm.lead.fields failed" in message and "nothing was sent" in message
    assert (results_file.read_bytes(), state.read_bytes()) == good


def test_one_shot_send_stops_after_silent_chunks_and_keeps_the_results(b24_emulator, resources, base, instance,
                                                                     monkeypatch):  # fmt: skip
    source = Source(leads(400))
    assert materialize(source.assets(sync="send"), resources, instance).success
    results_file = base / "bitrix24" / "lead_sync.parquet"
    good = results_file.read_bytes()
    failed = materialize(source.assets(sync="send"), _unreachable(resources, monkeypatch), instance)
    assert not failed.success
    error = failed.get_step_failure_events()[0].event_specific_data.error.message
    assert "3 chunks in a row got no answer" in error and "after 150 of 400" in error
    assert results_file.read_bytes() == good
    assert "deadhostcode" not in error


def test_contacts_matched_by_email(b24_emulator, resources, base, instance):
    """No key field on the portal: rows are matched by e-mail through crm.duplicate.findbycomm."""
    with client(b24_emulator) as b24:
        b24.call("crm.contact.add", {"fields": {"NAME": "Known", "EMAIL": [{"VALUE": "ANN@example.com"}]}})
        for _ in range(2):
            b24.call("crm.contact.add", {"fields": {"NAME": "Twin", "EMAIL": [{"VALUE": "bob@example.com"}]}})
    frame = pd.DataFrame({"row_id": ["r1", "r2", "r3", "r4"], "NAME": ["Ann", "Bob", "Cid", "Dee"],
                          "EMAIL": ["ann@example.com", "bob@example.com", "cid@example.com", None]})  # fmt: skip

    @dg.asset(name="people")
    def people() -> pd.DataFrame:
        return frame

    asset = build_bitrix24_batch_asset(name="contact_sync", method="crm.contact.add", source="people",
                                       fields=["NAME", "EMAIL"], key_column="row_id", match_by="EMAIL")  # fmt: skip
    result = dg.materialize([people, asset], resources=resources, instance=instance, raise_on_error=False)
    assert result.success
    table = pq.read_table(base / "bitrix24" / "contact_sync.parquet")
    assert table["action"].to_pylist() == ["update", "ambiguous", "create", "invalid"]
    assert table["portal_id"].to_pylist()[:3] == [1, None, 4]
    assert b24_emulator.counts()["contact"] == 4
    again = dg.materialize([people, asset], resources=resources, instance=instance, raise_on_error=False)
    assert pq.read_table(base / "bitrix24" / "contact_sync.parquet")["action"].to_pylist() == \
        ["unchanged", "ambiguous", "unchanged", "invalid"] and again.success  # fmt: skip


def test_check_portal_finds_a_record_a_person_deleted(b24_emulator, resources, base, instance):
    source = Source(leads(60))
    materialize(source.assets(), resources, instance)
    with client(b24_emulator) as b24:
        b24.call("crm.lead.delete", {"id": 5})
    trusted = metadata(materialize(source.assets(), resources, instance))
    assert (trusted["rows_unchanged"], trusted["lookups"]) == (60, 0)  # the state is trusted
    checked = metadata(materialize(source.assets(check_portal=True), resources, instance))
    assert (checked["rows_create"], checked["rows_unchanged"]) == (1, 59)
    assert (checked["lookups"], checked["lookup_requests"]) == (2, 1)  # 60 keys: 2 commands, 1 request
    assert sorted(r["ORIGIN_ID"] for r in portal_leads(b24_emulator)) == [f"L{i:04d}" for i in range(60)]


def test_a_key_field_mapped_to_other_values_is_refused_before_any_request(b24_emulator, resources, base,
                                                                          instance):  # fmt: skip
    frame = leads(5)
    frame["other"] = [f"X{i}" for i in range(5)]

    @dg.asset(name="leads_source")
    def source() -> pd.DataFrame:
        return frame

    asset = build_bitrix24_batch_asset(name="lead_sync", method="crm.lead.add", source="leads_source",
                                       fields={"title": "TITLE", "other": "ORIGIN_ID"}, key_column="external_id")  # fmt: skip
    result = materialize([source, asset], resources, instance)
    assert not result.success
    assert "ORIGIN_ID is mapped to 'X0' but the row's key is 'L0000'" in \
        result.get_step_failure_events()[0].event_specific_data.error.message  # fmt: skip
    assert not b24_emulator.request_log  # nothing was sent
