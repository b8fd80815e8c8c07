"""An export's schedule brings its downstream assets along: the run a tick requests exports,
then materializes what reads the export (in the same run), and leaves out only the assets that
cannot share the export's runs (other partitions; unpartitioned ones when there is a run per
portal). Each tick is evaluated as the daemon does and its run executed with the request's
partition and asset selection, against the emulator."""

# No `from __future__ import annotations`: Dagster reads the assets' annotations.

import datetime as dt

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from b24_dagster.integration import build_bitrix24_export_asset, build_bitrix24_export_schedule

TICK = dt.datetime(2025, 3, 2, 3, 0, tzinfo=dt.UTC)
SEEDED_DAY = "2024-01-01"  # the emulator's seeded records are made from this day on, 61 s apart
WEEKLY = dg.WeeklyPartitionsDefinition(start_date="2025-01-01")


def _run_tick(defs: dg.Definitions, schedule: dg.ScheduleDefinition, instance: dg.DagsterInstance,
              tick: dt.datetime = TICK) -> dg.RunRequest:  # fmt: skip
    """Evaluate one tick of `schedule` and execute its run request, as the daemon would."""
    schedule_def = defs.resolve_schedule_def(schedule.name)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                        repository_def=defs.get_repository_def())  # fmt: skip
    [request] = schedule_def.evaluate_tick(context).run_requests or []
    job = defs.resolve_job_def(schedule_def.job_name)
    result = job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                    tags=request.tags, asset_selection=request.asset_selection)  # fmt: skip
    assert result.success
    return request


def _materialized(instance: dg.DagsterInstance, key: dg.AssetKey) -> dg.AssetMaterialization | None:
    event = instance.get_latest_materialization_event(key)
    return event.asset_materialization if event is not None else None


def test_full_export_schedule_materializes_its_downstream_assets(b24_emulator, resources, base, instance):
    b24_emulator.portal.seed("deal", 120)
    deals = build_bitrix24_export_asset(name="deals", method="crm.deal.list",
                                        select=["ID", "TITLE", "OPPORTUNITY"])  # fmt: skip

    @dg.asset(ins={"frame": dg.AssetIn(deals.key)})
    def deal_total(frame: pd.DataFrame) -> dg.Output[float]:
        return dg.Output(float(frame["OPPORTUNITY"].sum()), metadata={"rows": len(frame)})

    @dg.asset(deps=[deal_total])
    def deal_report() -> None: ...

    @dg.asset(deps=[deals], partitions_def=WEEKLY)
    def weekly_deals() -> None: ...  # other partitions: keeps its own trigger

    @dg.asset
    def unrelated() -> None: ...

    schedule = build_bitrix24_export_schedule(deals)
    defs = dg.Definitions(assets=[deals, deal_total, deal_report, weekly_deals, unrelated],
                          schedules=[schedule], resources=resources)  # fmt: skip
    assert defs.resolve_job_def(schedule.job.name).asset_layer.selected_asset_keys == {
        deals.key, deal_total.key, deal_report.key}  # fmt: skip

    _run_tick(defs, schedule, instance)
    for key in (deals.key, deal_total.key, deal_report.key):
        assert _materialized(instance, key) is not None, key
    assert _materialized(instance, weekly_deals.key) is None
    assert _materialized(instance, unrelated.key) is None
    # The downstream asset read the file the export of the same run wrote.
    exported = pq.read_table(base / "bitrix24" / "deals.parquet")
    assert exported.num_rows == 120
    assert _materialized(instance, deal_total.key).metadata["rows"].value == 120
    # The export's checks ran in that run too.
    [run] = instance.get_runs()
    events = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    checks = {e.dagster_event.event_specific_data.check_name for e in events}
    assert {"rows_present", "ids_unique"} <= checks


def test_incremental_export_schedule_runs_yesterdays_downstream_partition(b24_emulator, resources, base,
                                                                          instance):
    b24_emulator.portal.seed("deal", 30)
    deals = build_bitrix24_export_asset(name="deals_daily", method="crm.deal.list", incremental=True,
                                        start_date=SEEDED_DAY, select=["ID", "DATE_MODIFY"])  # fmt: skip
    seen: dict[str, object] = {}

    @dg.asset(partitions_def=deals.partitions_def, ins={"day": dg.AssetIn(deals.key)})
    def day_rows(context: dg.AssetExecutionContext, day: pd.DataFrame) -> None:
        seen["partition"] = context.partition_key
        seen["rows"] = len(day)

    @dg.asset(ins={"days": dg.AssetIn(deals.key, metadata={"allow_missing_partitions": True})})
    def all_days(days: dict[str, pd.DataFrame]) -> None:
        seen["days"] = sorted(days)

    schedule = build_bitrix24_export_schedule(deals)
    defs = dg.Definitions(assets=[deals, day_rows, all_days], schedules=[schedule], resources=resources)
    request = _run_tick(defs, schedule, instance, tick=dt.datetime(2024, 1, 2, 3, 0, tzinfo=dt.UTC))

    assert request.partition_key == SEEDED_DAY
    exported = pq.read_table(base / "bitrix24" / "deals_daily" / f"{SEEDED_DAY}.parquet")
    assert 0 < exported.num_rows < 30
    assert seen == {"partition": SEEDED_DAY, "rows": exported.num_rows, "days": [SEEDED_DAY]}
    assert _materialized(instance, day_rows.key) is not None
    assert _materialized(instance, all_days.key) is not None


def test_multi_portal_schedule_leaves_out_unpartitioned_downstream(resources):
    deals = build_bitrix24_export_asset(name="deals", method="crm.deal.list", portals=["main", "eu"])

    @dg.asset(partitions_def=deals.partitions_def, deps=[deals])
    def per_portal() -> None: ...

    @dg.asset(deps=[deals])
    def across_portals() -> None: ...  # would run once per portal's run: left out

    schedule = build_bitrix24_export_schedule(deals)
    alone = build_bitrix24_export_schedule(deals, name="alone", downstream=False)
    defs = dg.Definitions(assets=[deals, per_portal, across_portals], schedules=[schedule, alone],
                          resources=resources)  # fmt: skip
    assert defs.resolve_job_def(schedule.job.name).asset_layer.selected_asset_keys == {
        deals.key, per_portal.key}  # fmt: skip
    assert defs.resolve_job_def(alone.job.name).asset_layer.selected_asset_keys == {deals.key}
