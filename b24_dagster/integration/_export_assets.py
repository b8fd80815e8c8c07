"""Scheduled list exports (deals, leads, contacts, companies, tasks, any list method) to Parquet.

`build_bitrix24_export_asset` streams `Bitrix24Client.iter_list` pages into Parquet row
groups with typed columns (see `_typing`), in full mode (everything, unpartitioned) or
incremental mode (the rows modified on each day of a `DailyPartitionsDefinition`). With
`portals=[...]` the asset is partitioned by portal as well (`MultiPartitionsDefinition`
of `portal` x `date`, or a `StaticPartitionsDefinition` in full mode), each portal's
webhook from `BITRIX24_WEBHOOK_URL__<PORTAL>`. `build_bitrix24_export_schedule` runs it.

The factory is `@bitrix24_export_assets` (`_export_decorator.py`) over a body that runs the
export as it is; the stages of a run (params, streaming, metadata, checks) are in
`_export_run.py`.

At most one run per portal at a time is Dagster's job, not ours: every run of a portal's
partition is tagged `bitrix24/portal=<name>` by the schedule (and Dagster tags a multi-
partition run `dagster/partition/portal=<name>` whoever launches it), and the instance's
`dagster.yaml` limits runs per tag value:

    concurrency:
      runs:
        tag_concurrency_limits:
          - key: "dagster/partition/portal"
            value: {applyLimitPerUniqueValue: true}
            limit: 1
"""

# No `from __future__ import annotations`: Dagster reads the compute functions' annotations.

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg

from b24_dagster.integration._downstream import ExportAndDownstream
from b24_dagster.integration._export_decorator import (
    Bitrix24ExportInvocation,
    bitrix24_export_assets,
)
from b24_dagster.integration._export_run import (
    DATE_DIM,
    IDS_UNIQUE_CHECK,
    PORTAL_DIM,
    ROWS_PRESENT_CHECK,
    field_descriptions_of,
    list_defaults,
)
from b24_dagster.integration._translator import Bitrix24Translator

__all__ = [
    "IDS_UNIQUE_CHECK",
    "PORTAL_TAG",
    "ROWS_PRESENT_CHECK",
    "build_bitrix24_export_asset",
    "build_bitrix24_export_schedule",
]

PORTAL_TAG = "bitrix24/portal"
"""The run tag naming a run's portal (limit it to 1 per value in `run_queue`)."""

# The Component reads a portal's field lists with these (components/_bitrix24.py).
_defaults = list_defaults
_descriptions = field_descriptions_of


def build_bitrix24_export_asset(
    *,
    name: str,
    method: str,
    params: Mapping[str, Any] | None = None,
    select: Sequence[str] | None = None,
    filter: Mapping[str, Any] | None = None,
    entity_type_id: int | None = None,
    fields_method: str | None = None,
    fields_params: Mapping[str, Any] | None = None,
    incremental: bool = False,
    start_date: str | None = None,
    timezone: str = "UTC",
    modified_field: str | None = None,
    portals: Sequence[str] = (),
    column_types: Mapping[str, Any] | None = None,
    rows_per_row_group: int = 10_000,
    key_prefix: Sequence[str] = ("bitrix24",),
    translator: Bitrix24Translator | None = None,
    resource_key: str = "bitrix24",
    storage_key: str = "bitrix24_storage",
    pool: str | None = "bitrix24",
    field_descriptions: Mapping[str, Any] | None = None,
    freshness_policy: dg.FreshnessPolicy | None = None,
    checks: bool = True,
) -> dg.AssetsDefinition:
    """An asset that exports a Bitrix24 list method to a typed Parquet file.

    Args:
        name: the asset's name (key `[*key_prefix, name]` unless the translator says).
        method: the list method: "crm.deal.list", "crm.item.list", "tasks.task.list", ...
        params: constant parameters of the list call (besides select and filter).
        select: the fields to export (also the column order); default: what the method
            returns on its first page.
        filter: a constant filter, e.g. `{"CATEGORY_ID": 0}`.
        entity_type_id: for `crm.item.list` (1 lead, 2 deal, 3 contact, 4 company, ...).
        fields_method, fields_params: the `*.fields` method giving the column types
            (guessed for crm.* and tasks.task.list; other methods export strings).
        incremental: export one day of modifications per partition (`>=` and `<` on
            `modified_field`) instead of everything.
        start_date, timezone: of the daily partitions (default 2024-01-01, UTC).
        modified_field: default DATE_MODIFY (legacy crm), updatedTime (crm.item),
            CHANGED_DATE (tasks).
        portals: portal names: one partition per portal, webhook per portal from the
            environment (`Bitrix24Resource.get_client(portal)`).
        column_types: column -> Arrow type (or alias such as "int64"), beating the
            descriptions.
        rows_per_row_group: rows buffered per Parquet row group (memory stays bounded).
        translator, key_prefix, resource_key, storage_key, pool: as for the batch asset.
        field_descriptions: the `*.fields` answer known when the definitions load (the
            Component keeps it as its state, `dg utils refresh-defs-state`): the asset then
            shows its columns, types and the portal's titles before any run.
        freshness_policy: e.g. `dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26))`.
        checks: the `rows_present` (WARN) and `ids_unique` (ERROR, blocking) checks.

    Partitioned exports have `BackfillPolicy.single_run()`: a partition range (a UI backfill,
    `dg launch --partition-range`) is one run that writes each partition's file in turn.

    Example:
        ```python
        deals = build_bitrix24_export_asset(
            name="deals", method="crm.deal.list", select=["ID", "TITLE", "STAGE_ID",
            "OPPORTUNITY", "DATE_MODIFY"], incremental=True, start_date="2025-01-01",
        )
        schedule = build_bitrix24_export_schedule(deals)
        ```
    """
    decorator = bitrix24_export_assets(
        name=name, method=method, params=params, select=select, filter=filter, entity_type_id=entity_type_id,
        fields_method=fields_method, fields_params=fields_params, incremental=incremental, start_date=start_date,
        timezone=timezone, modified_field=modified_field, portals=portals, column_types=column_types,
        rows_per_row_group=rows_per_row_group, key_prefix=key_prefix, translator=translator,
        resource_key=resource_key, storage_key=storage_key, pool=pool, field_descriptions=field_descriptions,
        freshness_policy=freshness_policy, checks=checks,
    )  # fmt: skip

    def export(context: dg.AssetExecutionContext, bitrix24: Bitrix24ExportInvocation) -> Any:
        yield from bitrix24.run()

    return decorator(export)


def build_bitrix24_export_schedule(
    asset: dg.AssetsDefinition,
    *,
    name: str | None = None,
    cron_schedule: str = "0 3 * * *",
    hour_of_day: int = 3,
    minute_of_hour: int = 0,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
    downstream: bool = True,
) -> dg.ScheduleDefinition:
    """A schedule for an export asset: yesterday's partition daily (incremental), or the
    whole export on `cron_schedule` (full). Multi-portal: one run per portal, tagged
    `bitrix24/portal=<portal>` so that `run_queue.tag_concurrency_limits` can allow one at a
    time per portal.

    With `downstream` (the default) each run also materializes, after the export, the assets
    downstream of it that can share its runs: those with the export's partitions definition,
    and unpartitioned ones unless the schedule emits one run per portal (`_downstream.py`).
    `downstream=False` runs the export alone.
    """
    key = asset.key
    base = name or "_".join(key.path)
    pdef = asset.partitions_def
    fan_out = pdef is not None and not isinstance(pdef, dg.TimeWindowPartitionsDefinition)
    selection = ExportAndDownstream(key=key, one_run_per_tick=not fan_out) if downstream else [key]
    job = dg.define_asset_job(f"{base}_job", selection=selection)
    if pdef is None:
        return dg.ScheduleDefinition(
            name=f"{base}_schedule", job=job, cron_schedule=cron_schedule, default_status=default_status
        )
    if isinstance(pdef, dg.TimeWindowPartitionsDefinition):
        return dg.build_schedule_from_partitioned_job(
            job, name=f"{base}_schedule", hour_of_day=hour_of_day,
            minute_of_hour=minute_of_hour, default_status=default_status,
        )  # fmt: skip
    multi = isinstance(pdef, dg.MultiPartitionsDefinition)
    portals = (
        pdef.get_partitions_def_for_dimension(PORTAL_DIM).get_partition_keys()
        if multi
        else pdef.get_partition_keys()
    )
    cron = f"{minute_of_hour} {hour_of_day} * * *" if multi else cron_schedule
    timezone = (
        pdef.get_partitions_def_for_dimension(DATE_DIM).timezone if multi else "UTC"  # type: ignore[attr-defined]
    )

    @dg.schedule(name=f"{base}_schedule", job=job, cron_schedule=cron,
                 execution_timezone=timezone, default_status=default_status)  # fmt: skip
    def _schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        requests = []
        scheduled = context.scheduled_execution_time or datetime.now(ZoneInfo(timezone))
        day = (scheduled.astimezone(ZoneInfo(timezone)).date() - timedelta(days=1)).isoformat()
        for portal in portals:
            partition = (
                dg.MultiPartitionKey({PORTAL_DIM: portal, DATE_DIM: day}) if multi else portal
            )
            requests.append(
                dg.RunRequest(
                    run_key=f"{portal}|{day}" if multi else f"{portal}|{scheduled.isoformat()}",
                    partition_key=partition,
                    tags={PORTAL_TAG: portal},
                )
            )
        return requests

    return _schedule
