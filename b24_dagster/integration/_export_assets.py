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

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from dagster._utils.warnings import disable_dagster_warnings

from b24_dagster.integration._asset_meta import column_descriptions, definition_metadata, table_name
from b24_dagster.integration._batch_run import Stopwatch, client_stats, table_schema_metadata
from b24_dagster.integration._errors import to_failure
from b24_dagster.integration._parquet import ParquetStreamWriter, uri_of
from b24_dagster.integration._storage import Bitrix24Storage
from b24_dagster.integration._translator import Bitrix24AssetProps, Bitrix24Translator
from b24_dagster.integration._typing import ColumnTyper, columns_for, normalize_name

__all__ = [
    "IDS_UNIQUE_CHECK",
    "PORTAL_TAG",
    "ROWS_PRESENT_CHECK",
    "build_bitrix24_export_asset",
    "build_bitrix24_export_schedule",
]

ROWS_PRESENT_CHECK = "rows_present"
"""WARN check of an export: the file has at least one row (an incremental day may have none)."""
IDS_UNIQUE_CHECK = "ids_unique"
"""ERROR check of an export: no id appears twice in a file (the paging lost no row to a
duplicate); blocking, so downstream assets of the same run wait for a good file."""

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
    known_columns = None
    if field_descriptions:
        described = _descriptions(field_descriptions)
        typer = ColumnTyper(described, columns_for(select, [], described), column_types)
        known_columns = dg.MetadataValue.table_schema(
            table_schema_metadata(typer.schema, column_descriptions(described, typer.schema.names)))
    check_specs = _export_checks(spec.key) if checks else []

    with disable_dagster_warnings():  # BackfillPolicy is a beta parameter of dg.asset
        decorator = dg.asset(
        key=spec.key, description=spec.description, group_name=spec.group_name,
        metadata=definition_metadata(spec, **{"dagster/column_schema": known_columns}), tags=dict(spec.tags),
        kinds=set(spec.kinds), owners=list(spec.owners), partitions_def=partitions_def, pool=pool,
        required_resource_keys={resource_key, storage_key}, deps=[d.asset_key for d in spec.deps],
        io_manager_key=storage_key,  # loads the file as a downstream AssetIn (_inputs.py)
        check_specs=check_specs, freshness_policy=freshness_policy,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def is not None else None,
    )  # fmt: skip

    @decorator
    def _export(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        keys: list[Any] = [None] if partitions_def is None else list(context.partition_keys)
        if len(keys) > 1:
            context.log.info(f"{name}: {len(keys)} partitions in this run, {keys[0]} ... {keys[-1]}")
        outcomes = [_export_one(context, key) for key in keys]
        metadata = outcomes[0][0] if len(outcomes) == 1 else _combined([m for m, _ in outcomes])
        return dg.MaterializeResult(
            metadata=metadata,
            check_results=_export_check_results(spec.key, [i for _, i in outcomes]) if checks else None,
        )

    def _export_one(context: dg.AssetExecutionContext, key: Any) -> tuple[dict[str, Any], "_Ids"]:
        storage: Bitrix24Storage = getattr(context.resources, storage_key)
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
        ids = _Ids(key)
        try:
            descriptions = _field_descriptions(client, fields_method, fields_params, context.log, name)
            rows, pages, writer, typer = _stream(
                client.iter_list(method, call_params), path, select, descriptions,
                column_types, rows_per_row_group, context.log, name, on_table=ids.add,
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
            "dagster/column_schema": table_schema_metadata(
                typer.schema, column_descriptions(descriptions, typer.schema.names)),
            "dagster/uri": uri_of(path),
            "dagster/table_name": table_name(spec.key),
            **window,
        }  # fmt: skip
        if portal:
            metadata["portal"] = portal
        context.log.info(f"{name}: {rows} rows in {pages} pages -> {path}")
        return metadata, ids

    return _export


class _Ids:
    """Rows and duplicate ids of one exported file, counted as its row groups are written."""

    def __init__(self, partition: Any) -> None:
        self.partition = partition
        self.rows = 0
        self.column: str | None = None
        self.seen: set[Any] = set()
        self.duplicates = 0
        self.examples: list[Any] = []

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        if self.column is None:
            self.column = next((n for n in table.column_names if normalize_name(n) == "id"), "")
        if not self.column:
            return
        for value in pc.drop_null(table[self.column]).to_pylist():
            if value in self.seen:
                self.duplicates += 1
                if len(self.examples) < 10:
                    self.examples.append(value)
            else:
                self.seen.add(value)


def _export_checks(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(ROWS_PRESENT_CHECK, asset=key,
                          description="The export has at least one row (WARN: an incremental day may have none)."),
        dg.AssetCheckSpec(IDS_UNIQUE_CHECK, asset=key, blocking=True,
                          description="No id appears twice in an exported file (ERROR, blocking downstream)."),
    ]  # fmt: skip


def _export_check_results(key: dg.AssetKey, files: Sequence[_Ids]) -> list[dg.AssetCheckResult]:
    rows = sum(f.rows for f in files)
    empty = [str(f.partition) for f in files if f.rows == 0 and f.partition is not None]
    duplicates = sum(f.duplicates for f in files)
    without_id = all(not f.column for f in files)
    examples = [e for f in files for e in f.examples][:10]
    return [
        dg.AssetCheckResult(
            check_name=ROWS_PRESENT_CHECK, asset_key=key, passed=rows > 0 and not empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rows": rows, **({"empty_partitions": ", ".join(empty[:20])} if empty else {})},
        ),
        dg.AssetCheckResult(
            check_name=IDS_UNIQUE_CHECK, asset_key=key, passed=duplicates == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"duplicate_ids": duplicates, "id_column": "" if without_id else (files[0].column or ""),
                      **({"examples": ", ".join(map(str, examples))} if examples else {})},
            description="no id column: nothing to compare" if without_id else None,
        ),
    ]  # fmt: skip


_SUMMED = ("rows", "pages", "unparsed_values", "requests", "retries", "refusals", "dagster/row_count")


def _combined(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metadata of a run over several partitions: the counts summed, the last file's rest."""
    out = dict(parts[-1])
    for name in _SUMMED:
        out[name] = sum(int(p.get(name, 0)) for p in parts)
    seconds = sum(float(getattr(p["duration_seconds"], "value", 0.0)) for p in parts)
    out["duration_seconds"] = dg.MetadataValue.float(round(seconds, 3))
    out["rows_per_second"] = dg.MetadataValue.float(round(out["rows"] / seconds, 1) if seconds else 0.0)
    out["partitions"] = len(parts)
    for name in ("window_start", "dagster/uri"):
        out.pop(name, None)
    if "window_end" in out:
        out["window_start"] = parts[0].get("window_start")
    return out


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
    on_table: Callable[[pa.Table], None] | None = None,
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
                table = typer.table(buffer)
                writer.write(table)
                if on_table is not None:
                    on_table(table)
                rows += len(buffer)
                buffer = []
                log.info(f"{label}: {rows} rows written ({count} pages)")
        if typer is None:
            typer = ColumnTyper(descriptions, columns_for(select, [], descriptions), column_types)
            writer = ParquetStreamWriter(path, typer.schema).open()
        assert writer is not None
        if buffer:
            table = typer.table(buffer)
            writer.write(table)
            if on_table is not None:
                on_table(table)
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
