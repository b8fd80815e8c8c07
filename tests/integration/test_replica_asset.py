"""The replica assets materialized against the emulator: the current table with deletions and
records out of the filter, the history tables, the reference tables, versions, partitions."""

from __future__ import annotations

import time
from typing import Any

import dagster as dg
import pyarrow.parquet as pq
import pytest
import requests

from b24_dagster.integration import (
    build_bitrix24_reference_asset,
    build_bitrix24_replica_asset,
)


def _call(emu: Any, method: str, params: dict[str, Any]) -> Any:
    answer = requests.post(emu.webhook_url + method, json=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def _rows(path: Any) -> dict[int, dict[str, Any]]:
    table = pq.read_table(path).to_pylist()
    return {int(r.get("ID", r.get("id"))): r for r in table}


def _next_second(emu: Any) -> None:
    """Wait (up to 5 s) until the portal's clock is in a later second than now."""
    start = _call(emu, "server.time", {})
    deadline = time.monotonic() + 5
    while _call(emu, "server.time", {}) == start:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _materialization(result: dg.ExecuteInMemoryResult, key: list[str]) -> dict[str, Any]:
    event = next(m for m in result.get_asset_materialization_events()
                 if m.asset_key == dg.AssetKey(key))
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_deals_replica_marks_a_deletion_and_keeps_every_stage_move(b24_emulator, resources, base, instance) -> None:
    b24_emulator.portal.seed("deal", 300)
    for _ in range(3):   # deals made over the API have their creation in the stage history
        _call(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "API deal"}})
    deals = build_bitrix24_replica_asset(entity="deal", select=["ID", "TITLE", "STAGE_ID", "OPPORTUNITY", "DATE_MODIFY"],
                                         history=True)
    reference = build_bitrix24_reference_asset()
    first = dg.materialize([deals, reference], resources=resources, instance=instance)
    assert first.success
    meta = _materialization(first, ["bitrix24", "replica", "deals"])
    assert (meta["mode"], meta["rows"], meta["live"], meta["deleted"]) == ("full", 303, 303, 0)
    current = base / "bitrix24" / "replica" / "deals.parquet"
    assert pq.read_table(current).schema.field("ID").type.bit_width == 64

    _call(b24_emulator, "crm.deal.delete", {"id": 17})
    _call(b24_emulator, "crm.deal.update", {"id": 302, "fields": {"STAGE_ID": "PREPARATION"}})
    _call(b24_emulator, "crm.deal.update", {"id": 302, "fields": {"STAGE_ID": "WON"}})   # two moves in one interval
    # a change in the second of a run's probe is read again by the next run: let the second pass,
    # so that the third run finds nothing to read
    _next_second(b24_emulator)
    second = dg.materialize([deals, reference], resources=resources, instance=instance)
    assert second.success
    meta = _materialization(second, ["bitrix24", "replica", "deals"])
    assert (meta["mode"], meta["new_deletions"], meta["deleted"], meta["live"]) == ("incremental", 1, 1, 302)
    assert meta["requests"] == sum(v for k, v in meta.items() if k.startswith("requests_"))
    rows = _rows(current)
    assert rows[17]["_deleted"] is True and rows[17]["_deleted_at"] is not None
    assert rows[302]["STAGE_ID"] == "WON" and rows[302]["_deleted"] is False
    assert sum(r["_deleted"] for r in rows.values()) == 1
    moves = pq.read_table(base / "bitrix24" / "replica" / "deals_stage_history.parquet").to_pylist()
    assert [(m["OWNER_ID"], m["STAGE_ID"]) for m in moves if m["OWNER_ID"] == 302] == [
        (302, "NEW"), (302, "PREPARATION"), (302, "WON")]
    versions = pq.read_table(base / "bitrix24" / "replica" / "deals_history.parquet").to_pylist()
    of_302 = sorted((v for v in versions if v["ID"] == 302), key=lambda v: v["_valid_from"])
    assert [v["STAGE_ID"] for v in of_302] == ["NEW", "WON"]
    assert of_302[0]["_valid_to"] == of_302[1]["_valid_from"] and of_302[1]["_valid_to"] is None
    closed = [v for v in versions if v["ID"] == 17]
    assert len(closed) == 1 and closed[0]["_deleted"] is True and closed[0]["_valid_to"] is not None
    # the replaced table stays readable
    kept = list((base / "_versions" / "bitrix24" / "replica" / "deals").glob("*.parquet"))
    assert len(kept) == 1 and pq.read_table(kept[0]).num_rows == 303
    assert not pq.read_table(kept[0]).to_pandas()["_deleted"].any()
    # the reference tables name the ids
    statuses = pq.read_table(base / "bitrix24" / "replica" / "ref_statuses.parquet").to_pylist()
    assert {"ENTITY_ID": "DEAL_STAGE", "STATUS_ID": "WON"}.items() <= next(
        s for s in statuses if s["STATUS_ID"] == "WON" and s["ENTITY_ID"] == "DEAL_STAGE").items()
    users = pq.read_table(base / "bitrix24" / "replica" / "ref_users.parquet")
    assert users.num_rows == 10 and users.schema.field("ID").type.bit_width == 64
    currencies = pq.read_table(base / "bitrix24" / "replica" / "ref_currencies.parquet")["CURRENCY"].to_pylist()
    assert currencies == ["USD", "EUR", "RUB", "GBP"]

    third = dg.materialize([deals], resources=resources, instance=instance)
    meta = _materialization(third, ["bitrix24", "replica", "deals"])
    assert (meta["mode"], meta["requests"]) == ("unchanged", 1)


def test_a_filtered_replica_tells_leaving_the_filter_from_deletion(b24_emulator, resources, base, instance) -> None:
    ids = [_call(b24_emulator, "crm.lead.add", {"fields": {"TITLE": f"lead {i}", "ASSIGNED_BY_ID": 5}})
           for i in range(6)]
    leads = build_bitrix24_replica_asset(entity="lead", name="my_leads", filter={"ASSIGNED_BY_ID": 5},
                                         select=["ID", "TITLE", "ASSIGNED_BY_ID", "DATE_MODIFY"])
    assert dg.materialize([leads], resources=resources, instance=instance).success
    _call(b24_emulator, "crm.lead.update", {"id": ids[1], "fields": {"ASSIGNED_BY_ID": 6}})   # leaves the filter
    _call(b24_emulator, "crm.lead.delete", {"id": ids[2]})
    result = dg.materialize([leads], resources=resources, instance=instance)
    meta = _materialization(result, ["bitrix24", "replica", "my_leads"])
    assert (meta["new_deletions"], meta["new_out_of_scope"], meta["live"]) == (1, 1, 4)
    rows = _rows(base / "bitrix24" / "replica" / "my_leads.parquet")
    assert rows[ids[1]]["_out_of_scope"] is True and rows[ids[1]]["_deleted"] is False
    assert rows[ids[1]]["ASSIGNED_BY_ID"] == 6   # its data as the portal has it now
    assert rows[ids[2]]["_deleted"] is True and rows[ids[2]]["_out_of_scope"] is False
    # the record out of scope is deleted later: the next run's lookup finds it gone
    _call(b24_emulator, "crm.lead.delete", {"id": ids[1]})
    _call(b24_emulator, "crm.lead.update", {"id": ids[3], "fields": {"TITLE": "changed"}})
    assert dg.materialize([leads], resources=resources, instance=instance).success
    rows = _rows(base / "bitrix24" / "replica" / "my_leads.parquet")
    assert rows[ids[1]]["_deleted"] is True and rows[ids[3]]["TITLE"] == "changed"


def test_full_refresh_reads_everything_and_still_marks_deletions(b24_emulator, resources, base, instance) -> None:
    b24_emulator.portal.seed("company", 120)
    companies = build_bitrix24_replica_asset(entity="company", select=["ID", "TITLE", "DATE_MODIFY"])
    assert dg.materialize([companies], resources=resources, instance=instance).success
    _call(b24_emulator, "crm.company.delete", {"id": 60})
    config = dg.RunConfig(ops={"bitrix24__replica__companies": {"config": {"full_refresh": True}}})
    result = dg.materialize([companies], resources=resources, instance=instance, run_config=config)
    meta = _materialization(result, ["bitrix24", "replica", "companies"])
    assert (meta["mode"], meta["changed"], meta["new_deletions"]) == ("full_refresh", 119, 1)
    assert _rows(base / "bitrix24" / "replica" / "companies.parquet")[60]["_deleted"] is True


def test_tasks_activities_and_smart_process_items(b24_emulator, resources, base, instance) -> None:
    spa = _call(b24_emulator, "crm.type.add", {"fields": {"title": "Orders", "entityTypeId": 1036}})["type"]
    items = [_call(b24_emulator, "crm.item.add", {"entityTypeId": 1036, "fields": {"title": f"o{i}"}})["item"]["id"]
             for i in range(4)]
    deal = _call(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "d"}})
    calls = [_call(b24_emulator, "crm.activity.add", {"fields": {
        "OWNER_TYPE_ID": 2, "OWNER_ID": deal, "TYPE_ID": 2, "SUBJECT": f"call {i}", "RESPONSIBLE_ID": 1,
        "COMMUNICATIONS": [{"VALUE": "+1"}]}}) for i in range(3)]
    b24_emulator.portal.seed("task", 40)
    assets = [build_bitrix24_replica_asset(entity=spa["entityTypeId"], history=True),
              build_bitrix24_replica_asset(entity="activity"),
              build_bitrix24_replica_asset(entity="task", select=["ID", "TITLE", "CHANGED_DATE"])]
    assert dg.materialize(assets, resources=resources, instance=instance).success
    _call(b24_emulator, "crm.item.delete", {"entityTypeId": 1036, "id": items[0]})
    _call(b24_emulator, "crm.item.update", {"entityTypeId": 1036, "id": items[1], "fields": {"stageId": spa and
                                                                                            "DT1036_1:PREPARATION"}})
    _call(b24_emulator, "crm.activity.delete", {"id": calls[1]})
    _call(b24_emulator, "tasks.task.delete", {"taskId": 7})
    assert dg.materialize(assets, resources=resources, instance=instance).success
    folder = base / "bitrix24" / "replica"
    spa_rows = _rows(folder / "items_1036.parquet")
    assert spa_rows[items[0]]["_deleted"] and spa_rows[items[1]]["stageId"] == "DT1036_1:PREPARATION"
    moves = pq.read_table(folder / "items_1036_stage_history.parquet")["STAGE_ID"].to_pylist()
    assert moves.count("DT1036_1:PREPARATION") == 1
    assert _rows(folder / "activities.parquet")[calls[1]]["_deleted"]
    tasks = _rows(folder / "tasks.parquet")
    assert tasks[7]["_deleted"] and sum(t["_deleted"] for t in tasks.values()) == 1


def test_portals_partition_the_replica(b24_emulator, resources, base, instance, monkeypatch) -> None:
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL__EU", b24_emulator.webhook_url)
    b24_emulator.portal.seed("contact", 30)
    contacts = build_bitrix24_replica_asset(entity="contact", select=["ID", "NAME", "DATE_MODIFY"],
                                            portals=["main", "eu"])
    assert dg.materialize([contacts], resources=resources, instance=instance, partition_key="eu").success
    assert pq.read_table(base / "bitrix24" / "replica" / "contacts" / "eu.parquet").num_rows == 30
    failed = dg.materialize([contacts], resources=resources, instance=instance, partition_key="main",
                            raise_on_error=False)
    assert not failed.success   # no BITRIX24_WEBHOOK_URL__MAIN: nothing written
    assert not (base / "bitrix24" / "replica" / "contacts" / "main.parquet").exists()


def test_bad_definitions_are_refused_before_any_request() -> None:
    with pytest.raises(ValueError, match="unknown replica entity"):
        build_bitrix24_replica_asset(entity="invoice")
    with pytest.raises(ValueError, match="counts"):
        build_bitrix24_replica_asset(entity="deal", deletions="sometimes")
    with pytest.raises(ValueError, match="wildcards"):
        build_bitrix24_replica_asset(entity="deal", select=["*"])
