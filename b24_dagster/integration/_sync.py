"""Sync options of the batch factories, and the bridge from a factory's body to the sync step.

A write asset with a `key_column` and a create method (`*.add`) is a sync by default
(`sync="upsert"`): see `_sync_plan` for how rows are matched and `_sync_step` for the stages.
`sync="send"` keeps the one-shot behaviour (every row sent, no matching), for loads that
must not look anything up.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Literal, Protocol

import dagster as dg
from upath import UPath

from b24_dagster.client._entities import crm_entity_of
from b24_dagster.client._lookup import comm_entity_type
from b24_dagster.client._multifield import MultiValueMode
from b24_dagster.errors import ConfigurationError
from b24_dagster.integration._batch_core import BatchSpec, build_commands, result_key_name
from b24_dagster.integration._batch_run import client_stats
from b24_dagster.integration._changelog import Changelog
from b24_dagster.integration._key_space import LockSettings
from b24_dagster.integration._sync_fields import check_fields, mapping_digest
from b24_dagster.integration._sync_plan import SyncMode, SyncSpec
from b24_dagster.integration._sync_step import SyncRun, run_sync_step, sync_calls

__all__ = ["SyncOptions", "check_method", "run_sync", "sync_spec_of"]

_MODES = ("upsert", "insert", "update", "send")
_MULTI_VALUE = ("replace", "append")
#: The operations of the CRM entities' method families (crm-<entity>-*.md, crm-item-*.md).
_OPERATIONS = {"add", "update", "delete", "get", "list", "fields"}
_ITEM_OPERATIONS = _OPERATIONS | {"import", "batchImport"}
_ENTITIES = {"crm.lead", "crm.deal", "crm.contact", "crm.company", "crm.item"}


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
    multi_value: MultiValueMode
    params: Mapping[str, Any] | None


def check_method(method: str | None) -> None:
    """Refuse a method of a CRM entity that the entity does not have (`crm.contact.ad`), naming
    the nearest: a misspelt method must not become a send of every row."""
    if method is None:
        return
    prefix, _, operation = method.rpartition(".")
    known = _ITEM_OPERATIONS if prefix == "crm.item" else _OPERATIONS
    if prefix in _ENTITIES and operation not in known:
        near = difflib.get_close_matches(operation, sorted(known), n=2)
        hint = f"; did you mean {' or '.join(f'{prefix}.{n}' for n in near)}?" if near else ""
        raise dg.DagsterInvalidDefinitionError(f"{method!r} is not a method of {prefix}{hint}")


def sync_spec_of(method: str | None, key_column: str | None, options: SyncOptions) -> SyncSpec | None:
    """The sync of a factory's arguments, or None for a one-shot send; refuses what cannot sync."""
    check_method(method)
    mode = options.sync
    creates = method is not None and method.lower().endswith(".add")
    if mode is None:  # a sync when it can be one: a key, a create, a field to match by
        syncable = key_column is not None and creates and (
            options.key_field or options.match_by or str(method).startswith("crm."))
        mode = "upsert" if syncable else "send"
    if mode not in _MODES:
        raise dg.DagsterInvalidDefinitionError(f"sync must be one of {', '.join(_MODES)}; got {mode!r}")
    if options.multi_value not in _MULTI_VALUE:
        raise dg.DagsterInvalidDefinitionError(f"multi_value must be replace or append; got {options.multi_value!r}")
    if mode == "send":
        return None
    try:
        entity = crm_entity_of(str(method), options.params)
    except ConfigurationError as exc:
        raise dg.DagsterInvalidDefinitionError(f"sync={mode!r}: {exc}") from None
    if key_column is None:
        raise dg.DagsterInvalidDefinitionError(f"sync={mode!r} needs key_column: the column that identifies a row")
    assert method is not None
    if options.match_by is not None:
        if options.match_by not in ("EMAIL", "PHONE") or options.delete_missing:
            raise dg.DagsterInvalidDefinitionError(
                "match_by is EMAIL or PHONE, and deletes need a key field (delete_missing with a key_field)")
        comm_entity_type(method)  # leads, contacts, companies only
    key_field = options.key_field or (None if options.match_by else entity.key_field)
    if not 0 <= options.max_delete_share <= 1 or options.max_attempts < 1:
        raise dg.DagsterInvalidDefinitionError("max_delete_share must be within 0..1 and max_attempts at least 1")
    return SyncSpec(mode=mode, create_method=method, key_field=key_field, originator=options.originator_id,
                    match_by=options.match_by, check_portal=options.check_portal, delete_missing=options.delete_missing,
                    max_delete_share=options.max_delete_share, max_attempts=options.max_attempts,
                    multi_value=options.multi_value)  # fmt: skip


def run_sync(*, batch: BatchSpec, sync: SyncSpec, frame: Any, client: Any, path: UPath, log: Any,
             label: str, run_id: str, dry_run: bool, lock_wait_seconds: float,
             rebuild_state: bool = False, changelog: Changelog | None = None,
             locking: LockSettings | None = None) -> dict[str, Any]:  # fmt: skip
    """Check the rows against the portal's fields, build their commands, run the sync step."""
    entity = crm_entity_of(sync.create_method, batch.params)
    before = client_stats(client)
    # Plain strings in a multi-field carry no VALUE_TYPE: the sync keeps the type the portal holds.
    commands, keys = build_commands(replace(batch, multi_value_type=None), frame)
    if keys is None:
        raise dg.Failure(f"{label}: a sync needs the key column {batch.key_column!r} in the rows")
    key_list = [str(k) for k in keys.to_pylist()]
    key_name = batch.key_column if batch.key_column not in ("action", "portal_id") else f"source_{batch.key_column}"
    try:
        calls = sync_calls(list(commands), key_list, sync)
    except ValueError as exc:  # bad input: refused before any request
        raise dg.Failure(f"{label}: {exc}", allow_retries=False) from None
    mapped = list(batch.fields.values()) if isinstance(batch.fields, Mapping) else []
    given = [*sync.own_fields, *(((batch.params or {}).get("fields") or {}).keys())]
    checked = check_fields(client, entity, calls, mapped, label=label, creates=sync.mode != "update",
                           updates=sync.mode != "insert", given=given)  # fmt: skip
    run = SyncRun(sync=sync, client=client, path=path, log=log, label=label, calls=calls, keys=key_list,
                  key_name=result_key_name(key_name) or key_name, halt_on_error=batch.halt_on_error,
                  reconcile_delay_seconds=batch.reconcile_delay_seconds, bulk_import=batch.bulk_import,
                  request_id=f"{run_id[:8]}-{label}"[:100], fields=checked, run_id=run_id, changelog=changelog,
                  before=before,
                  portal=client.webhook.origin, mapping=mapping_digest(entity, checked.targets, sync.key_field,
                                                                       sync.multi_value))  # fmt: skip
    return run_sync_step(run, dry_run=dry_run, owner=run_id, lock_wait_seconds=lock_wait_seconds,
                         rebuild_state=rebuild_state, locking=locking)  # fmt: skip
