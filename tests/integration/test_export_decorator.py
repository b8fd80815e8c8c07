"""`@bitrix24_export_assets`: a body of one's own over the list export, materialized against
the emulator over real sockets: an extra filter, an upstream input deciding the filter, daily
partitions in single runs, check subsetting, pool and backfill policy, and the factory built
on the decorator."""

# No `from __future__ import annotations`: Dagster reads the assets' annotations.

import datetime as dt
import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from b24_dagster.integration import (
    IDS_UNIQUE_CHECK,
    ROWS_PRESENT_CHECK,
    Bitrix24ExportInvocation,
    _export_assets,
    bitrix24_export_assets,
    build_bitrix24_export_asset,
)

SELECT = ["ID", "TITLE", "STAGE_ID", "OPPORTUNITY", "DATE_MODIFY"]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "integration.md"


# The example of docs/integration.md, "A body of your own for an export".
@bitrix24_export_assets(name="won_deals", method="crm.deal.list",
                        select=["ID", "TITLE", "STAGE_ID", "OPPORTUNITY", "DATE_MODIFY"],
                        filter={">OPPORTUNITY": 50000})  # fmt: skip
def won_deals(context: dg.AssetExecutionContext, bitrix24: Bitrix24ExportInvocation):
    yield from bitrix24.run(filter={"STAGE_ID": "WON"})


@pytest.fixture
def deals(b24_emulator):
    b24_emulator.portal.seed("deal", 3000)
    return 3000


@pytest.fixture
def everything(deals, resources, base, instance) -> pa.Table:
    """Every deal, exported by the factory (the reference the filtered files are held to)."""
    full = build_bitrix24_export_asset(name="all_deals", method="crm.deal.list", select=SELECT)
    assert dg.materialize([full], resources=resources, instance=instance).success
    table = pq.read_table(base / "bitrix24" / "all_deals.parquet")
    assert table.num_rows == deals
    return table


def _meta(result: dg.ExecuteInProcessResult, node: str) -> dict:
    [mat] = result.asset_materializations_for_node(node)
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def _ids(table: pa.Table, mask: pa.ChunkedArray) -> list[int]:
    return sorted(table.filter(mask)["ID"].to_pylist())


def test_body_passes_an_extra_filter(everything, resources, base, instance):
    result = dg.materialize([won_deals], resources=resources, instance=instance)
    assert result.success
    table = pq.read_table(base / "bitrix24" / "won_deals.parquet")
    expected = _ids(everything, pc.and_(pc.equal(everything["STAGE_ID"], "WON"),
                                        pc.greater(everything["OPPORTUNITY"], 50000.0)))  # fmt: skip
    assert 0 < len(expected) < everything.num_rows
    assert sorted(table["ID"].to_pylist()) == expected
    assert set(table["STAGE_ID"].to_pylist()) == {"WON"}
    assert table.schema.names == SELECT
    types = {f.name: f.type for f in table.schema}
    assert types["ID"] == pa.int64() and types["OPPORTUNITY"] == pa.float64()
    assert types["DATE_MODIFY"] == pa.timestamp("us", tz="UTC") and types["TITLE"] == pa.string()
    meta = _meta(result, "bitrix24__won_deals")
    assert meta["rows"] == meta["dagster/row_count"] == len(expected)
    assert meta["dagster/table_name"] == "bitrix24.won_deals"
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        ROWS_PRESENT_CHECK: True, IDS_UNIQUE_CHECK: True}


@dg.asset(name="vip_deal_ids")
def vip_deal_ids() -> list[int]:
    return [3, 5, 8, 13, 21, 34, 55, 89, 144, 233]


@bitrix24_export_assets(name="vip_deals", method="crm.deal.list", select=["ID", "TITLE", "OPPORTUNITY"],
                        ins={"ids": dg.AssetIn("vip_deal_ids")}, pool="crm_portal")  # fmt: skip
def vip_deals(context: dg.AssetExecutionContext, bitrix24: Bitrix24ExportInvocation, ids: list[int]):
    context.log.info(f"{len(ids)} deals asked for")
    yield from bitrix24.run(filter={"@ID": ids[:-1]})  # the last one is left out


@dg.asset(ins={"deals": dg.AssetIn(key=dg.AssetKey(["bitrix24", "vip_deals"]))})
def vip_report(deals: pd.DataFrame) -> int:
    return len(deals)


def test_body_decides_the_filter_from_an_upstream_input(deals, resources, base, instance):
    assert dg.AssetKey("vip_deal_ids") in vip_deals.asset_deps[vip_deals.key]
    result = dg.materialize([vip_deal_ids, vip_deals, vip_report], resources=resources, instance=instance)
    assert result.success
    table = pq.read_table(base / "bitrix24" / "vip_deals.parquet")
    assert sorted(table["ID"].to_pylist()) == [3, 5, 8, 13, 21, 34, 55, 89, 144]
    assert result.output_for_node("vip_report") == 9  # the file, loaded downstream as a DataFrame


def test_transform_changes_the_pages_before_they_are_written(deals, resources, base, instance):
    @bitrix24_export_assets(name="even_deals", method="crm.deal.list", select=["ID", "TITLE"])
    def even_deals(context: dg.AssetExecutionContext, bitrix24: Bitrix24ExportInvocation):
        yield from bitrix24.run(filter={"<=ID": 100},
                                transform=lambda page: [r for r in page if int(r["ID"]) % 2 == 0])  # fmt: skip

    result = dg.materialize([even_deals], resources=resources, instance=instance)
    assert result.success
    table = pq.read_table(base / "bitrix24" / "even_deals.parquet")
    assert table["ID"].to_pylist() == list(range(2, 101, 2))
    assert _meta(result, "bitrix24__even_deals")["rows"] == 50


def _daily() -> dg.AssetsDefinition:
    @bitrix24_export_assets(name="won_daily", method="crm.deal.list", select=SELECT, incremental=True,
                            start_date="2024-01-01")  # fmt: skip
    def won_daily(context: dg.AssetExecutionContext, bitrix24: Bitrix24ExportInvocation):
        context.log.info(f"partitions {bitrix24.partition_keys}")
        yield from bitrix24.run(filter={"STAGE_ID": "WON"})

    return won_daily


def _won_on(table: pa.Table, day: str) -> list[int]:
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    stamp = pa.timestamp("us", "UTC")
    return _ids(table, pc.and_(
        pc.equal(table["STAGE_ID"], "WON"),
        pc.and_(pc.greater_equal(table["DATE_MODIFY"], pa.scalar(start, stamp)),
                pc.less(table["DATE_MODIFY"], pa.scalar(start + dt.timedelta(days=1), stamp)))))  # fmt: skip


def _day_file(base: Path, day: str) -> list[int]:
    return sorted(pq.read_table(base / "bitrix24" / "won_daily" / f"{day}.parquet")["ID"].to_pylist())


def test_daily_partitions_one_and_a_range_in_one_run(everything, resources, base, instance):
    daily = _daily()
    one = dg.materialize([daily], resources=resources, instance=instance, partition_key="2024-01-10")
    assert one.success
    assert 0 < len(_won_on(everything, "2024-01-10")) == len(_day_file(base, "2024-01-10"))
    assert _day_file(base, "2024-01-10") == _won_on(everything, "2024-01-10")
    assert _meta(one, "bitrix24__won_daily")["window_start"] == "2024-01-10T00:00:00+00:00"

    job = dg.Definitions(assets=[daily], resources=resources).resolve_implicit_global_asset_job_def()
    both = job.execute_in_process(instance=instance, tags={
        "dagster/asset_partition_range_start": "2024-01-11", "dagster/asset_partition_range_end": "2024-01-12"})
    assert both.success
    runs = {r.run_id for r in instance.get_runs()}
    assert both.run_id in runs and one.run_id in runs and len(runs) == 3  # (with the full export's)
    for day in ("2024-01-11", "2024-01-12"):
        assert _day_file(base, day) == _won_on(everything, day) and _day_file(base, day)
    mats = both.asset_materializations_for_node("bitrix24__won_daily")
    assert sorted(m.partition for m in mats) == ["2024-01-11", "2024-01-12"]
    meta = {k: getattr(v, "value", v) for k, v in mats[0].metadata.items()}
    assert meta["partitions"] == 2
    assert meta["rows"] == len(_won_on(everything, "2024-01-11")) + len(_won_on(everything, "2024-01-12"))


def test_only_the_selected_check_runs(deals, resources, base, instance):
    key = won_deals.key
    one_check = dg.AssetSelection.assets(key).without_checks() | dg.AssetSelection.checks(
        dg.AssetCheckKey(key, IDS_UNIQUE_CHECK))
    result = dg.materialize([won_deals], resources=resources, instance=instance, selection=one_check)
    assert result.success
    assert [e.check_name for e in result.get_asset_check_evaluations()] == [IDS_UNIQUE_CHECK]
    assert (base / "bitrix24" / "won_deals.parquet").exists()
    none = dg.materialize([won_deals], resources=resources, instance=instance,
                          selection=dg.AssetSelection.assets(key).without_checks())  # fmt: skip
    assert none.success and not none.get_asset_check_evaluations()
    assert len(none.asset_materializations_for_node("bitrix24__won_deals")) == 1


def test_checks_alone_read_the_file_and_export_nothing(b24_emulator, deals, resources, base, instance):
    key = won_deals.key
    checks_only = dg.AssetSelection.checks_for_assets(key)
    never = dg.materialize([won_deals], resources=resources, instance=instance, selection=checks_only,
                           raise_on_error=False)  # fmt: skip
    assert not never.success, "ids_unique is blocking: its failure fails the run"
    evaluations = never.get_asset_check_evaluations()
    assert {(e.check_name, e.passed) for e in evaluations} == {(ROWS_PRESENT_CHECK, False), (IDS_UNIQUE_CHECK, False)}
    assert all(e.description == "not exported yet: won_deals" for e in evaluations)
    assert not (base / "bitrix24" / "won_deals.parquet").exists()
    assert dg.materialize([won_deals], resources=resources, instance=instance).success
    rows = pq.read_metadata(base / "bitrix24" / "won_deals.parquet").num_rows
    requests = b24_emulator.stats["requests"]
    result = dg.materialize([won_deals], resources=resources, instance=instance, selection=checks_only)
    assert result.success and b24_emulator.stats["requests"] == requests, "the checks alone call no method"
    assert not result.asset_materializations_for_node("bitrix24__won_deals")
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations[ROWS_PRESENT_CHECK].passed and evaluations[IDS_UNIQUE_CHECK].passed
    assert evaluations[ROWS_PRESENT_CHECK].metadata["rows"].value == rows > 0


def test_pool_and_backfill_policy_are_on_the_definition():
    daily = _daily()
    assert daily.op.pools == {"bitrix24"} and vip_deals.op.pools == {"crm_portal"}
    assert daily.backfill_policy == dg.BackfillPolicy.single_run()
    assert isinstance(daily.partitions_def, dg.DailyPartitionsDefinition)
    assert won_deals.backfill_policy is None and won_deals.partitions_def is None
    assert daily.op.name == "bitrix24__won_daily"
    assert won_deals.check_keys == {dg.AssetCheckKey(won_deals.key, IDS_UNIQUE_CHECK),
                                    dg.AssetCheckKey(won_deals.key, ROWS_PRESENT_CHECK)}  # fmt: skip
    assert won_deals.can_subset


def test_unknown_arguments_are_refused_by_name():
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="selct"):
        bitrix24_export_assets(name="x", method="crm.deal.list", selct=["ID"])
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="incremntal, selct"):
        bitrix24_export_assets(name="x", method="crm.deal.list", selct=["ID"], incremntal=True)


def _definition(asset: dg.AssetsDefinition) -> dict:
    spec = next(iter(asset.specs))
    metadata = {k: v for k, v in spec.metadata.items() if k != "dagster/code_references"}
    return {"keys": asset.keys, "checks": asset.check_specs_by_output_name, "partitions": asset.partitions_def,
            "backfill": asset.backfill_policy, "op": asset.op.name, "pools": asset.op.pools,
            "resources": asset.required_resource_keys, "io_manager": asset.get_io_manager_key_for_asset_key(spec.key),
            "metadata": metadata, "freshness": spec.freshness_policy, "kinds": spec.kinds, "tags": spec.tags,
            "group": spec.group_name, "description": spec.description, "deps": asset.asset_deps}  # fmt: skip


def test_the_factory_is_the_decorator_over_a_body_that_runs_the_export(monkeypatch):
    fields = {"ID": {"type": "integer", "title": "ID"}, "TITLE": {"type": "string", "title": "Name"}}
    options = dict(select=["ID", "TITLE"], incremental=True, start_date="2024-03-01", timezone="Europe/Berlin",
                   field_descriptions=fields, pool="crm_portal",
                   freshness_policy=dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=26)))  # fmt: skip
    calls = []

    def spy(**kwargs):
        calls.append(kwargs)
        return bitrix24_export_assets(**kwargs)

    monkeypatch.setattr(_export_assets, "bitrix24_export_assets", spy)
    factory = build_bitrix24_export_asset(name="deals", method="crm.deal.list", **options)
    assert len(calls) == 1 and calls[0]["select"] == ["ID", "TITLE"] and calls[0]["name"] == "deals"

    @bitrix24_export_assets(name="deals", method="crm.deal.list", **options)
    def deals(context: dg.AssetExecutionContext, bitrix24: Bitrix24ExportInvocation):
        yield from bitrix24.run()

    assert _definition(factory) == _definition(deals)
    schema = next(iter(factory.specs)).metadata["dagster/column_schema"].schema
    assert [(c.name, c.type) for c in schema.columns] == [("ID", "int64"), ("TITLE", "string")]
    unchecked = build_bitrix24_export_asset(name="deals", method="crm.deal.list", checks=False)
    assert not unchecked.check_keys and unchecked.partitions_def is None


def _docs_example() -> str:
    section = DOCS.read_text(encoding="utf-8").split("## A body of your own for an export")[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_docs_example_is_the_one_tested_here_and_runs(everything, resources, base, instance):
    namespace: dict = {}
    exec(compile(_docs_example(), str(DOCS), "exec"), namespace)
    example = namespace["won_deals"]
    assert _definition(example) == _definition(won_deals)
    assert dg.materialize([example], resources=resources, instance=instance).success
    table = pq.read_table(base / "bitrix24" / "won_deals.parquet")
    expected = _ids(everything, pc.and_(pc.equal(everything["STAGE_ID"], "WON"),
                                        pc.greater(everything["OPPORTUNITY"], 50000.0)))  # fmt: skip
    assert sorted(table["ID"].to_pylist()) == expected and len(expected) > 0
    assert table.schema.names == SELECT
