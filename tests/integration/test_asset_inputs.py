"""Batch results and exports as the `AssetIn` of downstream assets, loaded by `Bitrix24Storage`.

Each downstream asset is materialized in a run of its own, so its input comes from the file
the upstream run wrote (local disk, or an fsspec store), not from memory.
"""

# No `from __future__ import annotations`: Dagster reads the assets' annotations.

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from upath import UPath

from b24_dagster.integration import Bitrix24Storage, build_bitrix24_export_asset
from tests.integration.test_batch_asset import import_assets, leads

DAY, NEXT_DAY = "2024-01-10", "2024-01-11"


@pytest.fixture
def deals(b24_emulator):
    b24_emulator.portal.seed("deal", 3000)


def _materialize(assets, selected, resources, instance, **kwargs) -> dg.ExecuteInProcessResult:
    result = dg.materialize(assets, selection=selected, resources=resources, instance=instance, **kwargs)
    assert result.success
    return result


def test_batch_results_arrive_as_a_dataframe(b24_emulator, resources, instance):
    seen: dict[str, pd.DataFrame] = {}

    @dg.asset(ins={"results": dg.AssetIn(["bitrix24", "lead_import"])})
    def failed_leads(results: pd.DataFrame) -> pd.DataFrame:
        seen["results"] = results
        return results[results["status"] != "ok"]

    assets = [*import_assets(leads(60), sync="send"), failed_leads]
    _materialize(assets, [dg.AssetKey("leads_csv"), dg.AssetKey(["bitrix24", "lead_import"])],
                 resources, instance)
    result = _materialize(assets, [failed_leads.key], resources, instance)

    frame = seen["results"]
    assert len(frame) == 60 and frame["external_id"].tolist() == [f"L{i:04d}" for i in range(60)]
    assert list(frame["status"].cat.categories) == ["ok", "error", "not_run", "unknown"]
    assert str(frame["command_index"].dtype) == "Int64" and str(frame["error_code"].dtype) == "string"
    failed = result.output_for_node("failed_leads")
    assert failed["external_id"].tolist() == [f"L{i:04d}" for i in range(0, 60, 10)]


def test_export_arrives_as_arrow_dataset_path_or_selected_columns(deals, resources, instance):
    export = build_bitrix24_export_asset(name="deals", method="crm.deal.list",
                                         select=["ID", "TITLE", "OPPORTUNITY", "CLOSED"])  # fmt: skip
    key = export.key
    seen: dict[str, object] = {}

    # One input per asset: an asset may not take the same upstream key twice.
    @dg.asset(ins={"frame": dg.AssetIn(key, metadata={"columns": ["ID", "OPPORTUNITY"]})})
    def deal_frame(frame: pd.DataFrame) -> int:
        seen["frame"] = frame
        return int(frame["OPPORTUNITY"].gt(0).sum())

    @dg.asset(ins={"table": dg.AssetIn(key, metadata={"format": "arrow"})})
    def deal_arrow(table) -> None:
        seen["by_meta"] = table

    @dg.asset(ins={"table": dg.AssetIn(key)})
    def deal_table(table: pa.Table) -> None:
        seen["by_type"] = table

    @dg.asset(ins={"lazy": dg.AssetIn(key, metadata={"format": "dataset"})})
    def deal_lazy(lazy) -> None:
        seen["lazy"] = lazy

    @dg.asset(ins={"path": dg.AssetIn(key)})
    def deal_path(path: UPath) -> None:
        seen["path"] = path

    downstream = [deal_frame, deal_arrow, deal_table, deal_lazy, deal_path]
    _materialize([export, *downstream], [key], resources, instance)
    _materialize([export, *downstream], [a.key for a in downstream], resources, instance)

    frame = seen["frame"]
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["ID", "OPPORTUNITY"]
    assert len(frame) == 3000 and str(frame["ID"].dtype) == "Int64"
    for name in ("by_meta", "by_type"):
        table = seen[name]
        assert isinstance(table, pa.Table) and table.num_rows == 3000
        assert table.schema.field("CLOSED").type == pa.bool_()
    lazy = seen["lazy"]
    assert isinstance(lazy, ds.Dataset) and lazy.count_rows() == 3000
    assert lazy.to_table(columns=["ID"], filter=ds.field("ID") <= 10).num_rows == 10
    path = seen["path"]
    assert isinstance(path, UPath) and path.name == "deals.parquet" and path.exists()


def test_partitions_arrive_one_by_one_or_all_together(deals, resources, instance):
    daily = build_bitrix24_export_asset(
        name="deals_daily", method="crm.deal.list", select=["ID", "DATE_MODIFY"],
        incremental=True, start_date="2024-01-01",
    )  # fmt: skip
    seen: dict[str, object] = {}

    @dg.asset(partitions_def=daily.partitions_def, ins={"day": dg.AssetIn(daily.key)})
    def day_summary(context: dg.AssetExecutionContext, day: pd.DataFrame) -> int:
        seen[context.partition_key] = day
        return len(day)

    @dg.asset(ins={"days": dg.AssetIn(daily.key, metadata={"allow_missing_partitions": True})})
    def all_days(days: dict[str, pd.DataFrame]) -> int:
        seen["days"] = days
        return sum(len(d) for d in days.values())

    @dg.asset(ins={"lazy": dg.AssetIn(daily.key, metadata={"allow_missing_partitions": True})})
    def all_days_lazy(lazy: ds.Dataset) -> int:
        seen["lazy"] = lazy
        return lazy.count_rows()

    assets = [daily, day_summary, all_days, all_days_lazy]
    for day in (DAY, NEXT_DAY):
        _materialize(assets, [daily.key], resources, instance, partition_key=day)
    _materialize(assets, [day_summary.key], resources, instance, partition_key=NEXT_DAY)
    one_day = seen[NEXT_DAY]
    assert isinstance(one_day, pd.DataFrame) and len(one_day) > 0
    assert (one_day["DATE_MODIFY"].dt.strftime("%Y-%m-%d") == NEXT_DAY).all()

    _materialize(assets, [all_days.key, all_days_lazy.key], resources, instance)
    days = seen["days"]
    assert sorted(days) == [DAY, NEXT_DAY] and len(days[NEXT_DAY]) == len(one_day)
    total = len(days[DAY]) + len(days[NEXT_DAY])
    assert seen["lazy"].count_rows() == total

    strict = dg.materialize([daily, day_summary], selection=[day_summary.key], resources=resources,
                            instance=instance, partition_key="2024-01-02", raise_on_error=False)  # fmt: skip
    assert not strict.success
    message = strict.failure_data_for_node("day_summary").error.message
    assert "bitrix24/deals_daily partition 2024-01-02 has no file" in message


def test_multi_portal_partition_and_object_storage(deals, resources, instance, b24_emulator, monkeypatch):
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL__EU", b24_emulator.webhook_url)
    resources = {**resources, "bitrix24_storage": Bitrix24Storage(base_path="memory://lake/b24")}
    export = build_bitrix24_export_asset(name="deals", method="crm.deal.list", select=["ID", "TITLE"],
                                         incremental=True, portals=["main", "eu"])  # fmt: skip
    partition = dg.MultiPartitionKey({"portal": "eu", "date": DAY})
    seen: dict[str, pd.DataFrame] = {}

    @dg.asset(partitions_def=export.partitions_def, ins={"deals": dg.AssetIn(export.key)})
    def eu_titles(deals: pd.DataFrame) -> int:
        seen["deals"] = deals
        return len(deals)

    _materialize([export, eu_titles], [export.key], resources, instance, partition_key=partition)
    written = UPath("memory://lake/b24/bitrix24/deals/date=2024-01-10/portal=eu.parquet")
    assert written.exists()
    _materialize([export, eu_titles], [eu_titles.key], resources, instance, partition_key=partition)
    assert len(seen["deals"]) > 0 and list(seen["deals"].columns) == ["ID", "TITLE"]
    written.fs.rm("/lake", recursive=True)


def test_an_input_never_materialized_names_the_asset(resources, instance, b24_emulator):
    export = build_bitrix24_export_asset(name="nothing_yet", method="crm.deal.list")

    @dg.asset(ins={"rows": dg.AssetIn(export.key)})
    def downstream(rows: pd.DataFrame) -> int:
        return len(rows)

    result = dg.materialize([export, downstream], selection=[downstream.key], resources=resources,
                            instance=instance, raise_on_error=False)  # fmt: skip
    message = result.failure_data_for_node("downstream").error.message
    assert "bitrix24/nothing_yet has no file at file:///" in message and "materialize it first" in message
