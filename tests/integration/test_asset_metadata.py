"""Metadata as dagster-dbt shows it: table names, columns with titles before a run, code
references, export checks, a freshness policy, single-run backfills of partition ranges, and a
blocking check that keeps downstream assets from running on unknown outcomes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from b24_dagster import Bitrix24Client
from b24_dagster.integration import (
    IDS_UNIQUE_CHECK,
    ROWS_PRESENT_CHECK,
    UNKNOWN_CHECK,
    build_bitrix24_batch_asset,
    build_bitrix24_export_asset,
)

SELECT = ["ID", "TITLE", "STAGE_ID", "OPPORTUNITY", "DATE_MODIFY"]


def _leads(n: int) -> pd.DataFrame:
    return pd.DataFrame({"external_id": [f"L{i}" for i in range(n)], "title": [f"Lead {i}" for i in range(n)]})


def _import(block: bool) -> list:
    @dg.asset(name="leads_csv")
    def source() -> pd.DataFrame:
        return _leads(10)

    results = build_bitrix24_batch_asset(
        name="lead_import", method="crm.lead.add", source="leads_csv", fields={"title": "TITLE"},
        key_column="external_id", sync="send", reconcile=False, block_on_unknown=block,
    )  # fmt: skip

    @dg.asset(deps=[results.key])
    def lead_report() -> None:  # stands for a dbt model reading the results
        return None

    return [source, results, lead_report]


def test_batch_asset_has_table_name_and_code_reference(b24_emulator, resources, base, instance):
    source, results, _ = _import(block=False)
    spec = next(iter(results.specs))
    assert spec.metadata["dagster/table_name"] == "bitrix24.lead_import"
    [reference] = spec.metadata["dagster/code_references"].code_references
    assert Path(reference.file_path) == Path(__file__).resolve()  # the line that called the factory
    linked = dg.link_code_references_to_git(
        [results], git_url="https://github.com/acme/crm", git_branch="main",
        file_path_mapping=dg.AnchorBasedFilePathMapping(local_file_anchor=Path(__file__).parents[2],
                                                        file_anchor_path_in_repository=""),
    )  # fmt: skip
    [url] = next(iter(linked[0].specs)).metadata["dagster/code_references"].code_references
    assert url.url.startswith("https://github.com/acme/crm/tree/main/tests/integration/test_asset_metadata.py")

    result = dg.materialize([source, results], resources=resources, instance=instance)
    [mat] = result.asset_materializations_for_node("bitrix24__lead_import")
    assert mat.metadata["dagster/table_name"].value == "bitrix24.lead_import"


def test_unknown_outcomes_block_downstream_only_when_asked(b24_emulator, resources, base, instance):
    from b24_dagster.emulator import FaultRule, FaultSettings

    ran = {}
    for block in (False, True):
        b24_emulator.set_faults(FaultSettings(close_after=FaultRule(rate=1.0, methods={"batch"})))
        try:
            result = dg.materialize(_import(block), resources=resources, instance=instance, raise_on_error=False)
        finally:
            b24_emulator.set_faults(None)
        [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == UNKNOWN_CHECK]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
        assert set(table["status"].to_pylist()) == {"unknown"}
        ran[block] = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()]
        assert result.success is not block  # a failed blocking check fails the step that ran it
    assert "lead_report" in ran[False]
    assert "lead_report" not in ran[True] and "bitrix24/lead_import" in ran[True]


def test_export_columns_and_titles_before_any_run(b24_emulator, resources, base, instance):
    b24_emulator.portal.seed("deal", 30)
    fields = Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None).call("crm.deal.fields").result
    policy = dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(hours=26))
    deals = build_bitrix24_export_asset(name="deals", method="crm.deal.list", select=SELECT,
                                        field_descriptions=fields, freshness_policy=policy)  # fmt: skip
    spec = next(iter(deals.specs))
    assert spec.metadata["dagster/table_name"] == "bitrix24.deals"
    columns = {c.name: c for c in spec.metadata["dagster/column_schema"].schema.columns}
    assert list(columns) == SELECT
    assert (columns["ID"].type, columns["OPPORTUNITY"].type, columns["DATE_MODIFY"].type) == (
        "int64", "double", "timestamp[us, tz=UTC]")  # fmt: skip
    assert columns["STAGE_ID"].description.startswith(fields["STAGE_ID"]["title"])
    assert "crm_status" in columns["STAGE_ID"].description
    assert spec.freshness_policy == policy

    result = dg.materialize([deals], resources=resources, instance=instance)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks[ROWS_PRESENT_CHECK].passed and checks[IDS_UNIQUE_CHECK].passed
    assert checks[IDS_UNIQUE_CHECK].metadata["id_column"].value == "ID"
    [mat] = result.asset_materializations_for_node("bitrix24__deals")
    after = {c.name: c.description for c in mat.metadata["dagster/column_schema"].schema.columns}
    assert after == {n: c.description for n, c in columns.items()}  # the same titles after the run


def test_empty_export_warns(b24_emulator, resources, base, instance):
    deals = build_bitrix24_export_asset(name="none", method="crm.deal.list", select=SELECT)
    result = dg.materialize([deals], resources=resources, instance=instance)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks[ROWS_PRESENT_CHECK].passed
    assert checks[ROWS_PRESENT_CHECK].severity == dg.AssetCheckSeverity.WARN
    assert checks[IDS_UNIQUE_CHECK].passed


def test_partition_range_is_one_run_writing_each_day(b24_emulator, resources, base, instance):
    b24_emulator.portal.seed("deal", 3000)
    daily = build_bitrix24_export_asset(name="deals_daily", method="crm.deal.list", select=SELECT,
                                        incremental=True, start_date="2024-01-01")  # fmt: skip
    assert daily.backfill_policy == dg.BackfillPolicy.single_run()
    job = dg.Definitions(assets=[daily], resources=resources).resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(instance=instance, tags={
        "dagster/asset_partition_range_start": "2024-01-10", "dagster/asset_partition_range_end": "2024-01-12"})
    assert result.success
    days = ["2024-01-10", "2024-01-11", "2024-01-12"]
    counts = [pq.read_table(base / "bitrix24" / "deals_daily" / f"{d}.parquet").num_rows for d in days]
    assert all(n > 0 for n in counts)
    mats = result.asset_materializations_for_node("bitrix24__deals_daily")
    assert sorted(m.partition for m in mats) == days
    assert mats[0].metadata["rows"].value == sum(counts) and mats[0].metadata["partitions"].value == 3
