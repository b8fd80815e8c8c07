"""A decorated asset run for its checks alone: nothing is sent to the portal.

Dagster runs a multi-asset's body when only its checks are selected (re-running a check from
the UI, a check-only job). For a batch write that body would write to the CRM again, and for
an export it would call the portal and then fail, since it may not yield the materialization
of an asset that is not selected. Instead the checks read what the last materialization left:
a batch asset's outcome counts (its metadata), an export's Parquet files. A check of an asset
never materialized fails, saying so (a blocking check, such as an export's `ids_unique`, then
fails the run, as Dagster does for any failed blocking check).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import dagster as dg

__all__ = ["checks_alone", "last_materialization", "not_materialized", "of_run", "selected_only"]

#: Materializations looked at for the last one that is not a dry run.
_LOOK_BACK = 50


def checks_alone(context: dg.AssetExecutionContext, key: dg.AssetKey) -> bool:
    """True when the run selected some of the asset's checks but not the asset itself."""
    return key not in context.selected_asset_keys


def last_materialization(context: dg.AssetExecutionContext, key: dg.AssetKey) -> tuple[dict[str, Any], str] | None:
    """The metadata (plain values) and run id of the asset's last materialization that is not
    a dry run (of this run's partition, when it has one), or None."""
    partition = context.partition_key if context.has_partition_key else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition is not None else None),
        limit=_LOOK_BACK,
    ).records
    for record in records:  # newest first
        if record.asset_materialization is None:
            continue
        metadata = {name: getattr(value, "value", value) for name, value in record.asset_materialization.metadata.items()}
        if metadata.get("dry_run") is not True:  # a dry run's counts are of its plan, not of results
            return metadata, record.run_id
    return None


def not_materialized(key: dg.AssetKey, check_names: Sequence[str], why: str) -> list[dg.AssetCheckResult]:
    """Failed results of the checks, for an asset with nothing to check."""
    return [dg.AssetCheckResult(check_name=name, asset_key=key, passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                description=why) for name in check_names]  # fmt: skip


def of_run(results: Iterable[dg.AssetCheckResult], run_id: str) -> list[dg.AssetCheckResult]:
    """The results with the run whose outcome they checked (`checked_run_id`)."""
    return [dg.AssetCheckResult(check_name=r.check_name, asset_key=r.asset_key, passed=r.passed, severity=r.severity,
                                description=r.description, metadata={**r.metadata, "checked_run_id": run_id})
            for r in results]  # fmt: skip


def selected_only(context: dg.AssetExecutionContext, key: dg.AssetKey,
                  results: Iterable[dg.AssetCheckResult]) -> Iterator[dg.AssetCheckResult]:  # fmt: skip
    """The results of the checks this run selected."""
    selected = context.selected_asset_check_keys
    return (r for r in results if dg.AssetCheckKey(key, r.check_name) in selected)
