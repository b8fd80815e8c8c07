"""`build_bitrix24_replica_asset`: a CRM entity kept as one current-state table.

The asset is a `multi_asset` over the replica's files: the current table (`<name>`), and with
`history=True` the versions (`<name>_history`) and, for deals, leads and smart processes, the
stage moves (`<name>_stage_history`). Each run is `ReplicaRun` (`_replica_run.py`) under a
lock beside the current file (one writer per replica and portal, whoever launched the run),
and reports what it read, found deleted or out of scope, and the requests each step cost.
With `portals=` the asset is partitioned by portal, each portal's webhook from
`BITRIX24_WEBHOOK_URL__<PORTAL>`, as the exports are.

`full_refresh` in the run config reads every record again:

    run_config = {"ops": {"bitrix24__replica__deals": {"config": {"full_refresh": True}}}}
"""

# No `from __future__ import annotations`: Dagster reads the compute function's annotations.

import json
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from dagster._utils.warnings import disable_dagster_warnings
from pydantic import Field

from b24_dagster.integration._asset_meta import column_descriptions, definition_metadata, table_name
from b24_dagster.integration._batch_run import table_schema_metadata
from b24_dagster.integration._errors import to_failure
from b24_dagster.integration._export_run import IDS_UNIQUE_CHECK
from b24_dagster.integration._lock import StepLock
from b24_dagster.integration._parquet import uri_of
from b24_dagster.integration._replica_entities import ReplicaEntity, replica_entity
from b24_dagster.integration._replica_run import ReplicaPaths, ReplicaRun, ReplicaSpec
from b24_dagster.integration._replica_table import read_status
from b24_dagster.integration._replica_versions import version_metadata, versions_folder
from b24_dagster.integration._translator import Bitrix24AssetProps, Bitrix24Translator

__all__ = ["REPLICA_METADATA", "Bitrix24ReplicaConfig", "build_bitrix24_replica_asset"]

REPLICA_METADATA = "bitrix24/replica"
"""Definition metadata of a replica's table: how to probe it (read by the change sensor)."""

_SYSTEM_DESCRIPTIONS = {
    "_deleted": "the portal no longer has the record (found by a lookup of its id)",
    "_deleted_at": "the portal's clock of the run that found the record deleted",
    "_out_of_scope": "the record exists but left the replica's filter",
    "_synced_at": "the portal's clock of the run that last changed this row",
}


class Bitrix24ReplicaConfig(dg.Config):
    """Run configuration of a replica asset."""

    full_refresh: bool = Field(
        default=False,
        description="Read every record again instead of the ones modified since the last run "
                    "(deletions and records out of the filter are still found and marked).",
    )
    sweep: bool = Field(
        default=False,
        description="Find what disappeared by reading every id (one request per 2,500) instead of "
                    "by counts of id ranges: it also sees a deletion that a record restored without "
                    "modification offsets in the same range (e.g. a weekly run).",
    )


def _sibling(key: dg.AssetKey, suffix: str) -> dg.AssetKey:
    return dg.AssetKey([*key.path[:-1], key.path[-1] + suffix])


def _probe_metadata(entity: ReplicaEntity, flt: Mapping[str, Any], history: bool) -> str:
    return json.dumps({"entity": entity.name, "filter": dict(flt), "history": history}, sort_keys=True, default=str)


def build_bitrix24_replica_asset(
    *,
    entity: str | int,
    name: str | None = None,
    select: Sequence[str] | None = None,
    filter: Mapping[str, Any] | None = None,
    history: bool = False,
    portals: Sequence[str] = (),
    overlap_seconds: float = 300.0,
    keep_versions_hours: float = 168.0,
    deletions: str = "counts",
    column_types: Mapping[str, Any] | None = None,
    key_prefix: Sequence[str] = ("bitrix24", "replica"),
    translator: Bitrix24Translator | None = None,
    resource_key: str = "bitrix24",
    storage_key: str = "bitrix24_storage",
    pool: str | None = "bitrix24",
    lock_wait_seconds: float = 0.0,
    checks: bool = True,
) -> dg.AssetsDefinition:
    """An asset that keeps a CRM entity as one current-state Parquet table (see the module doc).

    Args:
        entity: "deal", "lead", "contact", "company", "task", "activity", or a smart process's
            `entityTypeId` (an int).
        name: the asset's name (default: "deals", "leads", ..., "items_<T>").
        select: the fields to keep (default: what the list method returns); the id and the
            modification field are added when missing.
        filter: a constant filter; a record that leaves it is marked `_out_of_scope`.
        history: also keep every version seen (`<name>_history`) and the stage moves
            (`<name>_stage_history`, deals, leads and smart processes).
        portals: portal names: one partition per portal, as the exports.
        overlap_seconds: how far before the last high-water mark (the portal's clock) each
            run reads modifications again, for same-second and late commits.
        keep_versions_hours: how long replaced versions of the table stay readable.
        deletions: "counts" (compare counts of id ranges, read ids where they differ) or
            "sweep" (read every id; one request per 2,500).
        column_types: column -> Arrow type (or alias), beating the portal's descriptions.
        key_prefix, translator, resource_key, storage_key, pool: as for the exports.
        lock_wait_seconds: how long a run waits for another run of the same replica.
        checks: the `ids_unique` check (ERROR, blocking).

    Example:
        ```python
        deals = build_bitrix24_replica_asset(entity="deal", history=True)
        leads = build_bitrix24_replica_asset(entity="lead", filter={"ASSIGNED_BY_ID": 5})
        ```
    """
    e = replica_entity(entity)
    if deletions not in ("counts", "sweep"):
        raise ValueError(f"deletions must be 'counts' or 'sweep', not {deletions!r}")
    if overlap_seconds < 0 or keep_versions_hours < 0:
        raise ValueError("overlap_seconds and keep_versions_hours cannot be negative")
    if select is not None and any("*" in s for s in select):
        raise ValueError("a replica's select names its fields (no wildcards)")
    spec = ReplicaSpec(e, tuple(select) if select else None, dict(filter or {}), history, overlap_seconds,
                       keep_versions_hours, deletions, column_types)  # fmt: skip
    props = Bitrix24AssetProps(name=name or e.plural, kind="replica", method=e.method, entity=e.name,
                               key_prefix=tuple(key_prefix), portals=tuple(portals))  # fmt: skip
    asset_spec = (translator or Bitrix24Translator()).get_asset_spec(props)
    key = asset_spec.key
    history_key = _sibling(key, "_history") if history else None
    stage_key = _sibling(key, "_stage_history") if history and e.stage_type_id is not None else None
    common = {"group_name": asset_spec.group_name, "kinds": set(asset_spec.kinds), "owners": list(asset_spec.owners),
              "tags": dict(asset_spec.tags)}
    specs = [dg.AssetSpec(key=key, deps=asset_spec.deps, description=asset_spec.description,
                          metadata=definition_metadata(asset_spec, **{REPLICA_METADATA: _probe_metadata(
                              e, spec.filter, history)}), **common)]
    if history_key is not None:
        specs.append(dg.AssetSpec(key=history_key, description=f"Every version of the {e.plural} the replica "
                                  "has seen, with _valid_from and _valid_to.", **common))
    if stage_key is not None:
        specs.append(dg.AssetSpec(key=stage_key, description=f"Every stage move of the {e.plural} "
                                  "(crm.stagehistory.list), read by id cursor.", **common))
    specs = [s.with_io_manager_key(storage_key) for s in specs]
    partitions_def = dg.StaticPartitionsDefinition(list(portals)) if portals else None
    check_specs = [dg.AssetCheckSpec(IDS_UNIQUE_CHECK, asset=key, blocking=True,
                                     description="No id appears twice in the replica (ERROR, blocking).")]

    with disable_dagster_warnings():
        decorator = dg.multi_asset(
            name=key.to_python_identifier(), specs=specs, check_specs=check_specs if checks else None,
            partitions_def=partitions_def, required_resource_keys={resource_key, storage_key}, pool=pool,
            backfill_policy=dg.BackfillPolicy.multi_run(1) if partitions_def is not None else None,
        )  # fmt: skip

    @decorator
    def replica(context: dg.AssetExecutionContext, config: Bitrix24ReplicaConfig) -> Any:
        portal = context.partition_key if partitions_def is not None else None
        storage = getattr(context.resources, storage_key)
        client = getattr(context.resources, resource_key).get_client(portal)
        paths = ReplicaPaths(
            current=storage.path_for(key, portal), versions=versions_folder(storage.base(), list(key.path), portal),
            history=storage.path_for(history_key, portal) if history_key is not None else None,
            stages=storage.path_for(stage_key, portal) if stage_key is not None else None,
        )  # fmt: skip
        lock = StepLock(paths.current.with_name(f".{paths.current.name}.lock"), owner=context.run.run_id,
                        wait_seconds=lock_wait_seconds)  # fmt: skip
        try:
            with lock:
                outcome = ReplicaRun(client, spec, paths, full_refresh=config.full_refresh, sweep=config.sweep,
                                     log=context.log.info).execute()  # fmt: skip
        except dg.Failure:
            raise
        except Exception as exc:
            failure = to_failure(exc, f"{key.to_user_string()}: the Bitrix24 replica of {e.method} failed", portal=portal)
            raise failure from (exc if type(exc).__module__.startswith("b24_dagster") else None)
        meta = dict(outcome.metadata)
        ids, _, _ = read_status(paths.current, e.id_field)
        duplicates = len(ids) - len(np.unique(ids))
        schema = table_schema_metadata(
            _file_schema(paths.current),
            {**column_descriptions(outcome.descriptions, outcome.schema.names), **_SYSTEM_DESCRIPTIONS})  # fmt: skip
        meta.update({"dagster/row_count": meta.get("rows", 0), "dagster/column_schema": schema,
                     "dagster/uri": uri_of(paths.current), "dagster/table_name": table_name(key),
                     **version_metadata(paths.versions), **({"portal": portal} if portal else {})})
        results = []
        if checks:
            results.append(dg.AssetCheckResult(
                check_name=IDS_UNIQUE_CHECK, asset_key=key, passed=duplicates == 0,
                severity=dg.AssetCheckSeverity.ERROR, metadata={"duplicate_ids": duplicates, "id_column": e.id_field}))
        yield dg.MaterializeResult(asset_key=key, metadata=meta, check_results=results)
        for extra_key, path, counts in ((history_key, paths.history, ("versions_added", "versions_closed")),
                                        (stage_key, paths.stages, ("stage_moves_added",))):
            if extra_key is not None and path is not None:
                yield dg.MaterializeResult(asset_key=extra_key, metadata={
                    "dagster/uri": uri_of(path), "dagster/table_name": table_name(extra_key),
                    **{c: int(meta.get(c, 0)) for c in counts}, **({"portal": portal} if portal else {})})

    return replica


def _file_schema(path: Any) -> pa.Schema:
    """The current file's columns (data and system), without the embedded state."""
    with path.open("rb") as handle:
        return pq.read_schema(handle).remove_metadata()
