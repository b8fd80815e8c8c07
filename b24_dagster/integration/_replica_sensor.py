"""`build_bitrix24_replica_sensor`: start the replicas only when the portal changed.

Each tick probes every replica of a portal in one batch request: per replica one list
command (`start=0`, newest modification first: the count and the newest modification time),
one more without the filter for a filtered replica. A replica whose answers differ from the
last tick's (the cursor) is run, with the reference tables; one whose answers did not change
gets an observation (its count and newest modification) and no run. Every change of a record
shows in those answers: a creation adds to the count, a deletion takes from it, an update or
a stage move (or leaving the filter) moves the newest modification.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import dagster as dg

from b24_dagster.integration._export_assets import PORTAL_TAG
from b24_dagster.integration._replica_assets import REPLICA_METADATA
from b24_dagster.integration._replica_calls import run_reads
from b24_dagster.integration._replica_entities import ReplicaEntity, replica_entity

__all__ = ["build_bitrix24_replica_sensor"]


def _replica_of(asset: dg.AssetsDefinition) -> tuple[dg.AssetKey, ReplicaEntity, dict[str, Any]]:
    for spec in asset.specs:
        raw = spec.metadata.get(REPLICA_METADATA)
        if raw is not None:
            config = json.loads(raw if isinstance(raw, str) else raw.value)
            return spec.key, replica_entity(config["entity"]), config["filter"]
    raise dg.DagsterInvalidDefinitionError(f"{asset.key.to_user_string()} is not a replica asset "
                                           "(build it with build_bitrix24_replica_asset)")


def _probe_calls(entity: ReplicaEntity, flt: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    select = [entity.cursor_field, entity.modified_field]
    order = {entity.modified_field: "DESC"}
    calls = [(entity.method, entity.list_params(flt, select=select, order=order, start=0))]
    if flt:
        calls.append((entity.method, entity.list_params({}, select=select, order=order, start=0)))
    return calls


def build_bitrix24_replica_sensor(
    replicas: Sequence[dg.AssetsDefinition],
    *,
    reference: dg.AssetsDefinition | None = None,
    name: str = "bitrix24_replica_sensor",
    minimum_interval_seconds: int = 300,
    resource_key: str = "bitrix24",
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that runs the replicas whose entity changed on the portal (one probe request per
    portal and tick), with the `reference` tables, and observes the others.

    Args:
        replicas: assets of `build_bitrix24_replica_asset` (all of one portal set).
        reference: the asset of `build_bitrix24_reference_asset`, refreshed with any run.
        name, minimum_interval_seconds, default_status: the sensor's.
        resource_key: the `Bitrix24Resource`.
    """
    watched = [(asset, *_replica_of(asset)) for asset in replicas]
    if not watched:
        raise dg.DagsterInvalidDefinitionError("build_bitrix24_replica_sensor needs at least one replica asset")
    partitions = {str(a.partitions_def) for a, *_ in watched}
    if len(partitions) > 1:
        raise dg.DagsterInvalidDefinitionError("the replicas of one sensor must have the same portals")
    pdef = watched[0][0].partitions_def
    portals: list[str | None] = list(pdef.get_partition_keys()) if pdef is not None else [None]
    selection = [k for a, *_ in watched for k in a.keys] + (list(reference.keys) if reference is not None else [])

    @dg.sensor(name=name, asset_selection=selection, minimum_interval_seconds=minimum_interval_seconds,
               default_status=default_status, required_resource_keys={resource_key})  # fmt: skip
    def _sensor(context: dg.SensorEvaluationContext, **_resources: Any) -> dg.SensorResult:
        # the resource comes from context.resources (a direct call also passes it by name)
        cursor = json.loads(context.cursor) if context.cursor else {}
        runs, events = [], []
        for portal in portals:
            client = getattr(context.resources, resource_key).get_client(portal)
            calls, spans = [], []
            for _, _key, entity, flt in watched:
                probe = _probe_calls(entity, flt)
                spans.append((len(calls), len(probe)))
                calls += probe
            answers = run_reads(client, calls)
            changed: list[dg.AssetKey] = []
            for (asset, key, entity, _), (start, count) in zip(watched, spans, strict=True):
                seen = []
                for answer in answers[start:start + count]:
                    rows = entity.rows_of(answer.result)
                    seen += [answer.total or 0, str(rows[0].get(entity.modified_column)) if rows else None]
                slot = f"{portal or ''}|{key.to_user_string()}"
                if cursor.get(slot) != seen:
                    changed += list(asset.keys)
                    cursor[slot] = seen
                else:
                    events.append(dg.AssetObservation(asset_key=key, partition=portal, metadata={
                        "total": seen[0], "newest_modified": seen[1] or "", "changed": False}))
            if changed:
                keys = changed + (list(reference.keys) if reference is not None else [])
                run_key = hashlib.sha256(json.dumps([portal, sorted(k.to_user_string() for k in changed),
                                                     {k: v for k, v in cursor.items()}]).encode()).hexdigest()[:16]
                runs.append(dg.RunRequest(run_key=run_key, asset_selection=keys, partition_key=portal,
                                          tags={PORTAL_TAG: portal} if portal else {}))
        return dg.SensorResult(run_requests=runs, asset_events=events, cursor=json.dumps(cursor, sort_keys=True))

    return _sensor
