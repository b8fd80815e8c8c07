"""A create whose answer was lost is settled before anything is sent again: looked up on the
portal by the key it carries (v2), or sent again under its Idempotency-Key (v3)."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import b24_dagster.integration._send_step as send_step
from b24_dagster.client import Bitrix24Client
from b24_dagster.emulator._faults import FaultRule, FaultSettings
from b24_dagster.integration import (
    RESULT_SCHEMA,
    UNKNOWN_CHECK,
    Bitrix24Resource,
    build_bitrix24_batch_asset,
)
from b24_dagster.integration._journal import BatchJournal
from b24_dagster.integration._reconcile import ReconcileCounts, reconcile_table
from tests.integration.test_batch_asset import ASSET, checks, leads, run
from tests.integration.test_resume import _crash_at

BATCH = frozenset({"batch"})


def keyed_assets(frame, **kwargs) -> list:
    """Leads whose `external_id` is sent as ORIGIN_ID."""

    @dg.asset(name="leads_csv")
    def source():
        return frame

    asset = build_bitrix24_batch_asset(
        name="lead_import", method="crm.lead.add", source="leads_csv", reconcile_delay_seconds=0.0,
        fields={"title": "TITLE", "email": "EMAIL", "external_id": "ORIGIN_ID"}, key_column="external_id", sync="send",
        **kwargs,
    )  # fmt: skip
    return [source, asset]


def _origins(emulator) -> list[str]:
    with Bitrix24Client(emulator.webhook_url) as client:
        pages = client.iter_list("crm.lead.list", {"select": ["ID", "ORIGIN_ID"]})
        return [row["ORIGIN_ID"] for page in pages for row in page]


def test_interrupted_chunk_is_reconciled_not_resent(b24_emulator, resources, base, instance, monkeypatch):
    frame = leads(180, bad_every=None)
    with monkeypatch.context() as patch:
        _crash_at(patch, 2)  # chunk 2 committed, its answer lost
        assert not run(keyed_assets(frame), resources, instance).success
    assert b24_emulator.counts()["lead"] == 150
    result = run(keyed_assets(frame), resources, instance)
    assert result.success
    assert sorted(_origins(b24_emulator)) == sorted(frame["external_id"])  # each once
    table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
    assert table["status"].to_pylist() == ["ok"] * 180
    found = table.slice(100, 50)
    assert all(d.startswith("reconciled: the create landed (found by ORIGIN_ID)")
               for d in found["error_description"].to_pylist())  # fmt: skip
    with Bitrix24Client(b24_emulator.webhook_url) as client:  # the found id is the record's
        lead = client.call("crm.lead.get", {"id": json.loads(found["result"][0].as_py())}).result
    assert lead["ORIGIN_ID"] == found["external_id"][0].as_py()
    [mat] = result.asset_materializations_for_node(ASSET)
    assert mat.metadata["reconciled_found"].value == 50
    assert mat.metadata["reconciled_resent"].value == 0
    assert mat.metadata["reconciled_unknown_left"].value == 0
    assert mat.metadata["interrupted_chunks"].value == 1
    assert checks(result)[UNKNOWN_CHECK].passed


def _crash_before(monkeypatch, chunk: int) -> None:
    """Make the run stop as chunk `chunk` leaves: its in-flight marker is written (the
    request may have gone, as far as the journal can tell), the request is not sent."""
    real = BatchJournal.sending

    def crashing(self, number, *args, **kwargs):
        real(self, number, *args, **kwargs)
        if number == chunk:
            raise RuntimeError("worker lost")

    monkeypatch.setattr(BatchJournal, "sending", crashing)


def test_interrupted_chunk_not_landed_is_resent(b24_emulator, resources, base, instance, monkeypatch):
    frame = leads(120, bad_every=None)
    with monkeypatch.context() as patch:
        _crash_before(patch, 1)
        assert not run(keyed_assets(frame), resources, instance).success
    assert b24_emulator.counts()["lead"] == 50
    result = run(keyed_assets(frame), resources, instance)
    assert result.success
    assert sorted(_origins(b24_emulator)) == sorted(frame["external_id"])
    table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
    assert table["status"].to_pylist() == ["ok"] * 120
    [mat] = result.asset_materializations_for_node(ASSET)
    assert mat.metadata["reconciled_found"].value == 0
    assert mat.metadata["reconciled_resent"].value == 50


def test_answers_lost_within_a_run_are_reconciled(b24_emulator, resources, base, instance):
    """Batch request 2 commits and loses its answer; request 4 is dropped before it runs.
    (Request 3 is the lookup of chunk 1, 5 the lookup of chunk 2, 6 its re-send.)"""
    b24_emulator.faults.configure(FaultSettings(
        close_after=FaultRule(requests=(2, 2), methods=BATCH),
        close_before=FaultRule(requests=(4, 4), methods=BATCH),
    ))  # fmt: skip
    frame = leads(300, bad_every=None)
    result = run(keyed_assets(frame), resources, instance)
    assert result.success
    assert b24_emulator.stats["faults"]["close_after"] == 1
    assert b24_emulator.stats["faults"]["close_before"] == 1
    assert sorted(_origins(b24_emulator)) == sorted(frame["external_id"])  # none twice, none lost
    table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
    assert table["status"].to_pylist() == ["ok"] * 300
    assert table["external_id"].to_pylist() == list(frame["external_id"])
    [mat] = result.asset_materializations_for_node(ASSET)
    assert (mat.metadata["reconciled_found"].value, mat.metadata["reconciled_resent"].value) == (50, 50)
    assert mat.metadata["unknown"].value == 0
    assert checks(result)[UNKNOWN_CHECK].passed


def test_creates_without_a_key_stay_unknown(b24_emulator, resources, base, instance):
    b24_emulator.faults.configure(FaultSettings(close_after=FaultRule(requests=(1, 1), methods=BATCH)))
    frame = leads(60, bad_every=None)

    @dg.asset(name="leads_csv")
    def source():
        return frame

    asset = build_bitrix24_batch_asset(
        name="lead_import", method="crm.lead.add", source="leads_csv", reconcile_delay_seconds=0.0,
        fields={"title": "TITLE"}, key_column="external_id", sync="send",
    )  # fmt: skip
    result = run([source, asset], resources, instance)
    table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
    assert table["status"].to_pylist() == ["unknown"] * 50 + ["ok"] * 10
    [mat] = result.asset_materializations_for_node(ASSET)
    assert mat.metadata["reconciled_unknown_left"].value == 50
    assert mat.metadata["reconcile_lookups"].value == 0
    assert not checks(result)[UNKNOWN_CHECK].passed
    assert b24_emulator.counts()["lead"] == 60


def test_reconcile_off_leaves_unknown(b24_emulator, resources, base, instance, monkeypatch):
    frame = leads(100, bad_every=None)
    with monkeypatch.context() as patch:
        _crash_at(patch, 0)
        assert not run(keyed_assets(frame, reconcile=False), resources, instance).success
    result = run(keyed_assets(frame, reconcile=False), resources, instance)
    table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
    assert table["status"].to_pylist() == ["unknown"] * 50 + ["ok"] * 50
    assert not checks(result)[UNKNOWN_CHECK].passed
    assert b24_emulator.counts()["lead"] == 100


def _task_assets(n: int) -> list:
    frame = pd.DataFrame({"title": [f"Task {i}" for i in range(n)]})

    @dg.asset(name="task_rows")
    def source():
        return frame

    asset = build_bitrix24_batch_asset(name="task_import", method="tasks.task.add", source="task_rows",
                                       fields=["title"])  # fmt: skip
    return [source, asset]


def _v3(resources) -> dict[str, object]:
    return {**resources, "bitrix24": Bitrix24Resource(
        webhook_url=dg.EnvVar("BITRIX24_WEBHOOK_URL"), api_version=3, requests_per_second=None,
        share_limits=False, max_retries=2, backoff_seconds=0.01)}  # fmt: skip


def _run_tasks(assets, resources, instance) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False,
                          run_config={"ops": {"bitrix24__task_import": {"config": {"mode": "all"}}}})  # fmt: skip


def test_v3_interrupted_chunk_is_replayed_under_its_idempotency_key(b24_emulator, resources, base, instance,
                                                                     monkeypatch):  # fmt: skip
    resources = _v3(resources)
    with monkeypatch.context() as patch:
        _crash_at(patch, 2)  # chunk 2 committed on the portal, its answer lost
        assert not _run_tasks(_task_assets(180), resources, instance).success
    assert b24_emulator.counts()["task"] == 150
    replays = b24_emulator.stats["replays"]
    result = _run_tasks(_task_assets(180), resources, instance)
    assert result.success
    assert b24_emulator.counts()["task"] == 180  # chunk 2 was replayed, not run again
    assert b24_emulator.stats["replays"] == replays + 1
    keys = [r.idempotency_key for r in b24_emulator.request_log if r.idempotency_key]
    assert len(set(keys)) == 4 and len(keys) == 5  # chunks 0-3, chunk 2 twice
    table = pq.read_table(base / "bitrix24" / "task_import.parquet")
    assert table["status"].to_pylist() == ["ok"] * 180
    assert table["command_index"].to_pylist() == list(range(180))
    [mat] = result.asset_materializations_for_node("bitrix24__task_import")
    assert mat.metadata["replayed_chunks"].value == 1


def test_v3_chunk_older_than_the_replay_window_is_not_resent(b24_emulator, resources, base, instance,
                                                             monkeypatch):  # fmt: skip
    resources = _v3(resources)
    with monkeypatch.context() as patch:
        _crash_at(patch, 1)
        assert not _run_tasks(_task_assets(120), resources, instance).success
    monkeypatch.setattr(send_step, "REPLAY_WINDOW_SECONDS", 0.0)  # the portal forgot the key
    result = _run_tasks(_task_assets(120), resources, instance)
    table = pq.read_table(base / "bitrix24" / "task_import.parquet")
    assert table["status"].to_pylist() == ["ok"] * 50 + ["unknown"] * 50 + ["ok"] * 20
    assert b24_emulator.counts()["task"] == 120  # nothing sent twice; the check says so
    assert not checks(result)["no_unknown_outcomes"].passed


@pytest.mark.parametrize("keyed", [True, False])
def test_lookups_wait_the_settle_time_only_when_there_is_one(b24_emulator, keyed) -> None:
    fields = {"TITLE": "x", **({"ORIGIN_ID": "S1"} if keyed else {})}
    calls = [("crm.lead.add", {"fields": fields})]
    row = {name: None for name in RESULT_SCHEMA.names} | {
        "command_index": 0, "command_key": "0", "method": "crm.lead.add", "chunk_index": 0, "status": "unknown"}
    table = pa.Table.from_pylist([row], schema=RESULT_SCHEMA)
    waits: list[float] = []
    counts = ReconcileCounts()
    with Bitrix24Client(b24_emulator.webhook_url) as client:
        out = reconcile_table(table, lambda i: calls[i], client, counts=counts, settle_seconds=7.5,
                              sleep=waits.append)  # fmt: skip
    assert waits == ([7.5] if keyed else [])
    assert out["status"].to_pylist() == (["ok"] if keyed else ["unknown"])  # not found: sent now
    assert (counts.resent, counts.left) == ((1, 0) if keyed else (0, 1))
    assert b24_emulator.counts()["lead"] == int(keyed)


def test_redrive_settles_unknown_creates_by_lookup_before_sending(b24_emulator, resources, base, instance):
    """Run 1 without reconciling leaves 100 unknown rows (50 landed, 50 never ran); the
    re-drive looks them up: 50 found, 50 sent, none twice."""
    b24_emulator.faults.configure(FaultSettings(
        close_after=FaultRule(requests=(1, 1), methods=BATCH),
        close_before=FaultRule(requests=(2, 2), methods=BATCH),
    ))  # fmt: skip
    frame = leads(150, bad_every=None)
    first = run(keyed_assets(frame, reconcile=False), resources, instance)
    assert not checks(first)[UNKNOWN_CHECK].passed
    assert b24_emulator.counts()["lead"] == 100
    b24_emulator.faults.configure(None)

    result = run(keyed_assets(frame), resources, instance, mode="redrive")
    assert result.success
    assert sorted(_origins(b24_emulator)) == sorted(frame["external_id"])
    table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
    assert table["status"].to_pylist() == ["ok"] * 150
    assert table["external_id"].to_pylist() == list(frame["external_id"])
    [mat] = result.asset_materializations_for_node(ASSET)
    assert (mat.metadata["reconciled_found"].value, mat.metadata["reconciled_resent"].value) == (50, 50)
    assert mat.metadata["redriven"].value == 0  # nothing sent blindly
    assert checks(result)[UNKNOWN_CHECK].passed


#: Faults after which the client cannot tell whether a write batch ran (its rows are unknown).
LOSSY = {
    "error_500": FaultSettings(error_500=FaultRule(rate=0.2, methods=BATCH), seed=11),
    "html_error": FaultSettings(html_error=FaultRule(rate=0.2, methods=BATCH), seed=11),
    "close_before": FaultSettings(close_before=FaultRule(rate=0.2, methods=BATCH), seed=11),
    "close_after": FaultSettings(close_after=FaultRule(rate=0.2, methods=BATCH), seed=11),
    "malformed_json": FaultSettings(malformed_json=FaultRule(rate=0.2, methods=BATCH), seed=11),
    "mix": FaultSettings(
        close_before=FaultRule(rate=0.07), close_after=FaultRule(rate=0.07), error_500=FaultRule(rate=0.07),
        html_error=FaultRule(rate=0.07), malformed_json=FaultRule(rate=0.07),
        storm_503=FaultRule(rate=0.05, length=3), slow=FaultRule(rate=0.05, delay=0.1), seed=11),
}  # fmt: skip


@pytest.mark.parametrize("fault", sorted(LOSSY))
def test_keyed_creates_under_lossy_faults_end_ok_and_once(fault, b24_emulator, resources, base, instance):
    """600 keyed leads through the asset while batches lose their answers: every row `ok`,
    every ORIGIN_ID once on the portal, lookups and re-sends counted."""
    resources = {**resources, "bitrix24": Bitrix24Resource(
        webhook_url=dg.EnvVar("BITRIX24_WEBHOOK_URL"), requests_per_second=None, share_limits=False,
        max_retries=6, backoff_seconds=0.001)}  # fmt: skip
    b24_emulator.faults.configure(LOSSY[fault])
    frame = leads(600, bad_every=None)
    result = run(keyed_assets(frame), resources, instance)
    assert result.success
    hits = {k: v for k, v in b24_emulator.stats["faults"].items() if v}
    assert hits and (fault == "mix" or fault in hits), "the fault did not fire"
    on_portal = _origins(b24_emulator)
    assert len(on_portal) == 600 and sorted(on_portal) == sorted(frame["external_id"])
    table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
    assert table["status"].to_pylist() == ["ok"] * 600
    assert table["external_id"].to_pylist() == list(frame["external_id"])
    [mat] = result.asset_materializations_for_node(ASSET)
    found, resent = mat.metadata["reconciled_found"].value, mat.metadata["reconciled_resent"].value
    assert found + resent > 0 and mat.metadata["reconciled_unknown_left"].value == 0
    print(f"\n{fault}: faults {hits}; reconciled found {found}, re-sent {resent}, "
          f"lookups {mat.metadata['reconcile_lookups'].value}")


def test_crm_item_creates_are_found_by_origin_id(b24_emulator, resources, base, instance):
    """`crm.item.add` carries `originId` (with `originatorId`): the lookup is a `crm.item.list`
    of the same entity type, and the found result takes the create's `{"item": ...}` shape."""
    b24_emulator.faults.configure(FaultSettings(close_after=FaultRule(requests=(1, 1), methods=BATCH)))
    frame = pd.DataFrame({"external_id": [f"D{i:03d}" for i in range(70)],
                          "title": [f"Deal {i}" for i in range(70)]})  # fmt: skip

    @dg.asset(name="deal_rows")
    def source():
        return frame

    asset = build_bitrix24_batch_asset(
        name="deal_import", method="crm.item.add", source="deal_rows", reconcile_delay_seconds=0.0,
        params={"entityTypeId": 2}, key_column="external_id", sync="send",
        row_function=lambda row: {"title": row["title"], "originId": row["external_id"], "originatorId": "erp"},
    )  # fmt: skip
    result = dg.materialize([source, asset], resources=resources, instance=instance, raise_on_error=False,
                            run_config={"ops": {"bitrix24__deal_import": {"config": {"mode": "all"}}}})  # fmt: skip
    assert result.success
    assert b24_emulator.stats["faults"]["close_after"] == 1
    assert b24_emulator.counts()["deal"] == 70
    table = pq.read_table(base / "bitrix24" / "deal_import.parquet")
    assert table["status"].to_pylist() == ["ok"] * 70
    found = json.loads(table["result"][0].as_py())
    assert found["item"]["originId"] == "D000" and found["item"]["id"] >= 1
    assert "found by originId, originatorId" in table["error_description"][0].as_py()
    [mat] = result.asset_materializations_for_node("bitrix24__deal_import")
    assert mat.metadata["reconciled_found"].value == 50


def test_a_field_the_user_names_is_the_key(b24_emulator, resources, base, instance):
    b24_emulator.faults.configure(FaultSettings(close_after=FaultRule(requests=(1, 1), methods=BATCH)))
    frame = leads(60, bad_every=None)

    @dg.asset(name="leads_csv")
    def source():
        return frame

    asset = build_bitrix24_batch_asset(
        name="lead_import", method="crm.lead.add", source="leads_csv", reconcile_delay_seconds=0.0,
        fields={"title": "TITLE", "external_id": "SOURCE_DESCRIPTION"}, key_column="external_id", sync="send",
        reconcile_field="SOURCE_DESCRIPTION",
    )  # fmt: skip
    result = run([source, asset], resources, instance)
    assert result.success
    assert b24_emulator.counts()["lead"] == 60
    table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
    assert table["status"].to_pylist() == ["ok"] * 60
    assert "found by SOURCE_DESCRIPTION" in table["error_description"][0].as_py()
