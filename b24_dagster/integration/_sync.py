"""Sync options of the batch factories, and the bridge from a factory's body to the sync step.

A write asset with a `key_column` and a create method (`*.add`) is a sync by default
(`sync="upsert"`): see `_sync_plan` for how rows are matched and `_sync_step` for the stages.
`sync="send"` keeps the one-shot behaviour (every row sent, no matching), for loads that
must not look anything up.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

import dagster as dg
from upath import UPath

from b24_dagster.client._lookup import comm_entity_type
from b24_dagster.integration._batch_core import BatchSpec, build_commands, result_key_name
from b24_dagster.integration._sync_plan import SyncMode, SyncSpec
from b24_dagster.integration._sync_step import SyncRun, run_sync_step, sync_calls

__all__ = ["SyncOptions", "run_sync", "sync_spec_of"]

_MODES = ("upsert", "insert", "update", "send")


class SyncOptions(Protocol):
    """The sync arguments of a factory (see `build_bitrix24_batch_asset`); `BatchAssetOptions`
    has them."""

    sync: SyncMode | None
    key_field: str | None
    originator_id: str | None
    check_portal: bool
    delete_missing: bool
    max_delete_share: float
    max_attempts: int
    match_by: Literal["EMAIL", "PHONE"] | None


def sync_spec_of(method: str | None, key_column: str | None, options: SyncOptions) -> SyncSpec | None:
    """The sync of a factory's arguments, or None for a one-shot send; refuses what cannot sync."""
    mode = options.sync
    creates = method is not None and method.lower().endswith(".add")
    if mode is None:  # a sync when it can be one: a key, a create, a field to match by
        syncable = key_column is not None and creates and (
            options.key_field or options.match_by or str(method).startswith("crm."))
        mode = "upsert" if syncable else "send"
    if mode not in _MODES:
        raise dg.DagsterInvalidDefinitionError(f"sync must be one of {', '.join(_MODES)}; got {mode!r}")
    if mode == "send":
        return None
    if not creates:
        raise dg.DagsterInvalidDefinitionError(
            f"sync={mode!r} needs the entity's create method (e.g. crm.lead.add, crm.item.add); got "
            f"{method!r}. Updates and deletes follow from the key; use sync='send' to send as is.")
    if key_column is None:
        raise dg.DagsterInvalidDefinitionError(f"sync={mode!r} needs key_column: the column that identifies a row")
    assert method is not None
    if options.match_by is not None:
        if options.match_by not in ("EMAIL", "PHONE") or options.delete_missing:
            raise dg.DagsterInvalidDefinitionError(
                "match_by is EMAIL or PHONE, and deletes need a key field (delete_missing with a key_field)")
        comm_entity_type(method)  # leads, contacts, companies only
    key_field = options.key_field or (None if options.match_by else _default_key_field(method))
    if not 0 <= options.max_delete_share <= 1 or options.max_attempts < 1:
        raise dg.DagsterInvalidDefinitionError("max_delete_share must be within 0..1 and max_attempts at least 1")
    return SyncSpec(mode=mode, create_method=method, key_field=key_field, originator=options.originator_id,
                    match_by=options.match_by, check_portal=options.check_portal, delete_missing=options.delete_missing,
                    max_delete_share=options.max_delete_share, max_attempts=options.max_attempts)  # fmt: skip


def _default_key_field(method: str) -> str:
    if method.startswith("crm.item."):
        return "originId"
    if method.startswith("crm."):
        return "ORIGIN_ID"
    raise dg.DagsterInvalidDefinitionError(
        f"{method} has no origin field to match rows by: name the key field (key_field=...)")


def run_sync(*, batch: BatchSpec, sync: SyncSpec, frame: Any, client: Any, path: UPath, log: Any,
             label: str, run_id: str, dry_run: bool, lock_wait_seconds: float) -> dict[str, Any]:  # fmt: skip
    """Build the rows' create commands (checked before any request) and run the sync step."""
    commands, keys = build_commands(batch, frame)
    if keys is None:
        raise dg.Failure(f"{label}: a sync needs the key column {batch.key_column!r} in the rows")
    key_list = [str(k) for k in keys.to_pylist()]
    key_name = batch.key_column if batch.key_column not in ("action", "portal_id") else f"source_{batch.key_column}"
    try:
        calls = sync_calls(list(commands), key_list, sync)
    except ValueError as exc:  # bad input: refused before any request
        raise dg.Failure(f"{label}: {exc}", allow_retries=False) from None
    run = SyncRun(sync=sync, client=client, path=path, log=log, label=label, calls=calls, keys=key_list,
                  key_name=result_key_name(key_name) or key_name, halt_on_error=batch.halt_on_error,
                  reconcile_delay_seconds=batch.reconcile_delay_seconds, bulk_import=batch.bulk_import,
                  request_id=f"{run_id[:8]}-{label}"[:100])  # fmt: skip
    return run_sync_step(run, dry_run=dry_run, owner=run_id, lock_wait_seconds=lock_wait_seconds)
