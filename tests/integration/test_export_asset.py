"""List exports against the emulator: typed Parquet, full and incremental (partitioned)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from b24_dagster.integration import build_bitrix24_export_asset

DEAL_SELECT = ["ID", "TITLE", "STAGE_ID", "OPPORTUNITY", "CURRENCY_ID", "ASSIGNED_BY_ID",
               "OPENED", "CLOSED", "BEGINDATE", "DATE_CREATE", "DATE_MODIFY"]  # fmt: skip
DAY = "2024-01-10"


@pytest.fixture
def deals_5000(b24_emulator):
    b24_emulator.portal.seed("deal", 5000)
    return 5000


def _meta(result: dg.ExecuteInProcessResult, node: str) -> dict:
    [mat] = result.asset_materializations_for_node(node)
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def test_full_legacy_export_has_every_row_typed(deals_5000, resources, base, instance):
    deals = build_bitrix24_export_asset(name="deals", method="crm.deal.list", select=DEAL_SELECT)
    result = dg.materialize([deals], resources=resources, instance=instance)
    assert result.success
    table = pq.read_table(base / "bitrix24" / "deals.parquet")
    assert table.num_rows == 5000
    assert table["ID"].to_pylist() == list(range(1, 5001))
    types = {f.name: f.type for f in table.schema}
    assert types["ID"] == pa.int64() and types["ASSIGNED_BY_ID"] == pa.int64()
    assert types["OPPORTUNITY"] == pa.float64()
    assert types["OPENED"] == pa.bool_() and types["CLOSED"] == pa.bool_()
    assert types["DATE_MODIFY"] == pa.timestamp("us", tz="UTC")
    assert types["BEGINDATE"] == pa.date32() and types["TITLE"] == pa.string()
    assert table["TITLE"][0].as_py() == "Deal #1"
    assert table["DATE_CREATE"][0].as_py() == dt.datetime(2024, 1, 1, 0, 1, 1, tzinfo=dt.UTC)
    assert table.column("OPPORTUNITY").null_count == 0
    meta = _meta(result, "bitrix24__deals")
    assert meta["rows"] == meta["dagster/row_count"] == 5000 and meta["unparsed_values"] == 0
    assert meta["requests"] <= 5  # 50 chained pages of 50 per batch request (+ the fields call)


def test_item_list_export_is_typed_the_same(deals_5000, resources, base, instance):
    deals = build_bitrix24_export_asset(
        name="deal_items", method="crm.item.list", entity_type_id=2,
        select=["id", "title", "opportunity", "opened", "updatedTime", "stageId"],
    )  # fmt: skip
    assert dg.materialize([deals], resources=resources, instance=instance).success
    table = pq.read_table(base / "bitrix24" / "deal_items.parquet")
    assert table.num_rows == 5000
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("updatedTime").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("opened").type == pa.bool_()


def test_incremental_partition_exports_one_day_of_modifications(deals_5000, resources, base, instance):
    full = build_bitrix24_export_asset(name="deals", method="crm.deal.list", select=DEAL_SELECT)
    daily = build_bitrix24_export_asset(
        name="deals_daily", method="crm.deal.list", select=DEAL_SELECT,
        incremental=True, start_date="2024-01-01",
    )  # fmt: skip
    assert dg.materialize([full], resources=resources, instance=instance).success
    result = dg.materialize([daily], resources=resources, instance=instance, partition_key=DAY)
    assert result.success

    everything = pq.read_table(base / "bitrix24" / "deals.parquet")
    start = dt.datetime.fromisoformat(DAY).replace(tzinfo=dt.UTC)
    in_window = pc.and_(
        pc.greater_equal(everything["DATE_MODIFY"], pa.scalar(start, pa.timestamp("us", "UTC"))),
        pc.less(everything["DATE_MODIFY"], pa.scalar(start + dt.timedelta(days=1), pa.timestamp("us", "UTC"))),
    )
    expected = everything.filter(in_window)["ID"].to_pylist()
    day = pq.read_table(base / "bitrix24" / "deals_daily" / f"{DAY}.parquet")
    assert 0 < len(expected) < 5000
    assert sorted(day["ID"].to_pylist()) == sorted(expected)
    meta = _meta(result, "bitrix24__deals_daily")
    assert meta["window_start"].startswith(DAY)


def test_empty_export_keeps_the_schema(b24_emulator, resources, base, instance):
    deals = build_bitrix24_export_asset(name="none", method="crm.deal.list", select=DEAL_SELECT)
    assert dg.materialize([deals], resources=resources, instance=instance).success
    table = pq.read_table(base / "bitrix24" / "none.parquet")
    assert table.num_rows == 0 and table.schema.names == DEAL_SELECT
    assert table.schema.field("DATE_MODIFY").type == pa.timestamp("us", tz="UTC")


def test_multi_portal_partition_reads_its_own_webhook(deals_5000, resources, base, instance, monkeypatch, b24_emulator):
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL__EU", b24_emulator.webhook_url)
    deals = build_bitrix24_export_asset(
        name="deals", method="crm.deal.list", select=["ID"], portals=["main", "eu"]
    )
    result = dg.materialize([deals], resources=resources, instance=instance, partition_key="eu")
    assert result.success
    assert pq.read_table(base / "bitrix24" / "deals" / "eu.parquet").num_rows == 5000
    failed = dg.materialize([deals], resources=resources, instance=instance, partition_key="main",
                            raise_on_error=False)  # fmt: skip
    assert not failed.success
    assert "BITRIX24_WEBHOOK_URL__MAIN" in failed.failure_data_for_node("bitrix24__deals").error.message


def test_tasks_export_with_column_type_overrides(b24_emulator, resources, base, instance):
    b24_emulator.portal.seed("task", 120)
    tasks = build_bitrix24_export_asset(
        name="tasks", method="tasks.task.list", select=["ID", "TITLE", "CHANGED_DATE"],
        column_types={"id": "int64"},
    )  # fmt: skip
    assert dg.materialize([tasks], resources=resources, instance=instance).success
    table = pq.read_table(base / "bitrix24" / "tasks.parquet")
    assert table.num_rows == 120
    assert table.schema.field("id").type == pa.int64()
    assert table["id"].to_pylist() == sorted(table["id"].to_pylist())
