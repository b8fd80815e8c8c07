"""Scheduled list exports (deals, leads, contacts, companies, tasks, any list method) to Parquet.

`build_bitrix24_export_asset` streams `Bitrix24Client.iter_list` pages into Parquet row
groups with typed columns (see `_typing`), in full mode (everything, unpartitioned) or
incremental mode (the rows modified on each day of a `DailyPartitionsDefinition`). With
`portals=[...]` the asset is partitioned by portal as well (`MultiPartitionsDefinition`
of `portal` x `date`, or a `StaticPartitionsDefinition` in full mode), each portal's
webhook from `BITRIX24_WEBHOOK_URL__<PORTAL>`. `build_bitrix24_export_schedule` runs it.

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
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg

from b24_dagster.integration._batch_run import Stopwatch, client_stats, table_schema_metadata
from b24_dagster.integration._errors import to_failure
from b24_dagster.integration._parquet import ParquetStreamWriter, uri_of
from b24_dagster.integration._storage import Bitrix24Storage
from b24_dagster.integration._translator import Bitrix24AssetProps, Bitrix24Translator
from b24_dagster.integration._typing import ColumnTyper, columns_for

__all__ = ["PORTAL_TAG", "build_bitrix24_export_asset", "build_bitrix24_export_schedule"]

PORTAL_TAG = "bitrix24/portal"
"""The run tag naming a run's portal (limit it to 1 per value in `run_queue`)."""
PORTAL_DIM, DATE_DIM = "portal", "date"


def _defaults(method: str) -> tuple[str | None, str | None, str | None]:
    """(fields method, modification field, entity) guessed from a list method."""
    parts = method.split(".")
    if method == "crm.item.list":
        return "crm.item.fields", "updatedTime", None
    if len(parts) == 3 and parts[0] == "crm" and parts[2] == "list":
        return f"crm.{parts[1]}.fields", "DATE_MODIFY", parts[1]
    if method == "tasks.task.list":
        return "tasks.task.getFields", "CHANGED_DATE", "task"
    return None, None, None


def _descriptions(result: Any) -> Mapping[str, Any]:
    if isinstance(result, Mapping) and isinstance(result.get("fields"), Mapping):
        return result["fields"]
    return result if isinstance(result, Mapping) else {}


def _partitions(
    incremental: bool, start_date: str | None, timezone: str, portals: Sequence[str]
) -> dg.PartitionsDefinition | None:
    daily = (
        dg.DailyPartitionsDefinition(start_date=start_date or "2024-01-01", timezone=timezone)
        if incremental
        else None
    )
    if not portals:
        return daily
    static = dg.StaticPartitionsDefinition(list(portals))
    if daily is None:
        return static
    return dg.MultiPartitionsDefinition({PORTAL_DIM: static, DATE_DIM: daily})


def _split_key(key: str | None, portals: Sequence[str], incremental: bool) -> tuple[str | None, str | None]:
    """(portal, day) of a partition key."""
    if key is None:
        return None, None
    by_dim = getattr(key, "keys_by_dimension", None)
    if by_dim:
        return by_dim[PORTAL_DIM], by_dim[DATE_DIM]
    return (key, None) if portals else (None, key if incremental else None)


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

    Example:
        ```python
        deals = build_bitrix24_export_asset(
            name="deals", method="crm.deal.list", select=["ID", "TITLE", "STAGE_ID",
            "OPPORTUNITY", "DATE_MODIFY"], incremental=True, start_date="2025-01-01",
        )
        schedule = build_bitrix24_export_schedule(deals)
        ```
    """
    guessed_fields, guessed_modified, entity = _defaults(method)
    fields_method = fields_method or guessed_fields
    modified_field = modified_field or guessed_modified
    if incremental and not modified_field:
        raise ValueError(f"incremental export of {method} needs modified_field")
    fields_params = dict(fields_params or {})
    base_params = dict(params or {})
    if entity_type_id is not None:
        base_params.setdefault("entityTypeId", entity_type_id)
        fields_params.setdefault("entityTypeId", entity_type_id)
    translator = translator or Bitrix24Translator()
    props = Bitrix24AssetProps(
        name=name, kind="export", method=method, entity=entity, key_prefix=tuple(key_prefix),
        portals=tuple(portals),
    )  # fmt: skip
    spec = translator.get_asset_spec(props)
    partitions_def = _partitions(incremental, start_date, timezone, portals)
    zone = ZoneInfo(timezone)

    @dg.asset(
        key=spec.key, description=spec.description, group_name=spec.group_name,
        metadata=dict(spec.metadata), tags=dict(spec.tags), kinds=set(spec.kinds),
        owners=list(spec.owners), partitions_def=partitions_def, pool=pool,
        required_resource_keys={resource_key, storage_key}, deps=[d.asset_key for d in spec.deps],
        io_manager_key=storage_key,  # loads the file as a downstream AssetIn (_inputs.py)
    )  # fmt: skip
    def _export(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        storage: Bitrix24Storage = getattr(context.resources, storage_key)
        key = context.partition_key if context.has_partition_key else None
        portal, day = _split_key(key, portals, incremental)
        client = getattr(context.resources, resource_key).get_client(portal)
        call_params: dict[str, Any] = dict(base_params)
        flt = dict(filter or {})
        window: dict[str, Any] = {}
        if day is not None:
            start = datetime.combine(date.fromisoformat(day), time(), tzinfo=zone)
            end = start + timedelta(days=1)
            flt[f">={modified_field}"] = start.isoformat()
            flt[f"<{modified_field}"] = end.isoformat()
            window = {"window_start": start.isoformat(), "window_end": end.isoformat()}
        if flt:
            call_params["filter"] = flt
        if select:
            call_params["select"] = list(select)
        path = storage.path_for(spec.key, key)
        before = client_stats(client)
        watch = Stopwatch()
        try:
            descriptions = _field_descriptions(client, fields_method, fields_params, context.log, name)
            rows, pages, writer, typer = _stream(
                client.iter_list(method, call_params), path, select, descriptions,
                column_types, rows_per_row_group, context.log, name,
            )  # fmt: skip
        except dg.Failure:
            raise
        except Exception as exc:
            failure = to_failure(exc, f"{name}: the Bitrix24 export of {method} failed", portal=portal)
            raise failure from (exc if type(exc).__module__.startswith("b24_dagster") else None)
        after = client_stats(client)
        duration = watch.elapsed
        metadata: dict[str, Any] = {
            "rows": rows,
            "pages": pages,
            "unparsed_values": typer.unparsed,
            "requests": int(after["requests"] - before["requests"]),
            "retries": int(after["retries"] - before["retries"]),
            "refusals": int(after["refused"] - before["refused"] + after["blocked"] - before["blocked"]),
            "throttle_wait_seconds": dg.MetadataValue.float(
                round(after["throttle_wait_seconds"] - before["throttle_wait_seconds"], 3)
            ),
            "duration_seconds": dg.MetadataValue.float(round(duration, 3)),
            "rows_per_second": dg.MetadataValue.float(round(rows / duration, 1) if duration else 0.0),
            "dagster/row_count": rows,
            "dagster/column_schema": table_schema_metadata(typer.schema),
            "dagster/uri": uri_of(path),
            **window,
        }
        if portal:
            metadata["portal"] = portal
        context.log.info(f"{name}: {rows} rows in {pages} pages -> {path}")
        return dg.MaterializeResult(metadata=metadata)

    return _export


def _field_descriptions(
    client: Any, fields_method: str | None, params: Mapping[str, Any], log: Any, label: str
) -> Mapping[str, Any]:
    """The `*.fields` answer; empty (string columns) when the portal has no such method."""
    if not fields_method:
        return {}
    from b24_dagster.errors import MethodNotFoundError, NotFoundError

    try:
        return _descriptions(client.call(fields_method, dict(params)).result)
    except (MethodNotFoundError, NotFoundError) as exc:
        log.warning(f"{label}: {fields_method} is not available ({exc}); columns stay strings")
        return {}


def _stream(
    pages: Any,
    path: Any,
    select: Sequence[str] | None,
    descriptions: Mapping[str, Any],
    column_types: Mapping[str, Any] | None,
    group_rows: int,
    log: Any,
    label: str,
) -> tuple[int, int, ParquetStreamWriter, ColumnTyper]:
    """Write the pages as row groups of about `group_rows` rows; returns the counts."""
    typer: ColumnTyper | None = None
    writer: ParquetStreamWriter | None = None
    buffer: list[Any] = []
    rows = count = 0
    try:
        for page in pages:
            count += 1
            if typer is None:
                typer = ColumnTyper(descriptions, columns_for(select, page, descriptions), column_types)
                writer = ParquetStreamWriter(path, typer.schema).open()
            buffer.extend(page)
            if len(buffer) >= group_rows:
                assert writer is not None
                writer.write(typer.table(buffer))
                rows += len(buffer)
                buffer = []
                log.info(f"{label}: {rows} rows written ({count} pages)")
        if typer is None:
            typer = ColumnTyper(descriptions, columns_for(select, [], descriptions), column_types)
            writer = ParquetStreamWriter(path, typer.schema).open()
        assert writer is not None
        if buffer:
            writer.write(typer.table(buffer))
            rows += len(buffer)
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return rows, count, writer, typer


def build_bitrix24_export_schedule(
    asset: dg.AssetsDefinition,
    *,
    name: str | None = None,
    cron_schedule: str = "0 3 * * *",
    hour_of_day: int = 3,
    minute_of_hour: int = 0,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """A schedule for an export asset: yesterday's partition daily (incremental), or the
    whole export on `cron_schedule` (full). Multi-portal: one run per portal, tagged
    `bitrix24/portal=<portal>` so that `run_queue.tag_concurrency_limits` can allow one at a
    time per portal.
    """
    key = asset.key
    base = name or "_".join(key.path)
    job = dg.define_asset_job(f"{base}_job", selection=[key])
    pdef = asset.partitions_def
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
