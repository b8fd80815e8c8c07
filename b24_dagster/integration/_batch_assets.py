"""Factories: a DataFrame of rows -> Bitrix24 commands in chunked batches -> a results asset.

`build_bitrix24_batch_asset` makes an asset (with two asset checks; it is
`@bitrix24_batch_assets` over a body that runs its source's rows) and
`build_bitrix24_batch_op` an op for job users. Both send through `batch_by_chunk` with
`halt_on_error=False` by default, unlike the client (whose default follows the JS SDK): a
bulk load wants every row tried, and each row's outcome recorded. A materialization with
failed rows still succeeds; the checks and the metadata say how many and why.
"""

# No `from __future__ import annotations`: Dagster reads the compute functions' annotations.

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import dagster as dg
import pandas as pd

from b24_dagster.client._multifield import MultiValueMode
from b24_dagster.integration._batch_config import (
    FAILURE_RATE_CHECK,
    UNKNOWN_CHECK,
    Bitrix24BatchConfig,
)
from b24_dagster.integration._batch_core import RowFunction
from b24_dagster.integration._batch_decorator import (
    BatchAssetOptions,
    Bitrix24BatchInvocation,
    bitrix24_batch_assets,
    run_rows,
)
from b24_dagster.integration._changelog import Changelog
from b24_dagster.integration._checks_alone import checks_alone
from b24_dagster.integration._storage import Bitrix24Storage
from b24_dagster.integration._sync_plan import SyncMode
from b24_dagster.integration._translator import Bitrix24Translator

__all__ = [
    "FAILURE_RATE_CHECK",
    "UNKNOWN_CHECK",
    "Bitrix24BatchConfig",
    "build_bitrix24_batch_asset",
    "build_bitrix24_batch_op",
]

SourceLoader = Callable[[dg.AssetExecutionContext], pd.DataFrame]


def build_bitrix24_batch_asset(
    *,
    name: str,
    method: str | None,
    source: dg.AssetKey | str | Sequence[str] | SourceLoader,
    fields: Mapping[str, str] | Sequence[str] | None = None,
    row_function: RowFunction | None = None,
    fields_param: str | None = None,
    id_column: str | None = None,
    id_param: str | None = None,
    params: Mapping[str, Any] | None = None,
    key_column: str | None = None,
    nulls: str | None = None,
    field_types: Mapping[str, Any] | None = None,
    timezone: str | None = None,
    halt_on_error: bool = False,
    resumable: bool = True,
    reconcile: bool = True,
    reconcile_field: str | None = None,
    reconcile_delay_seconds: float | None = None,
    bulk_import: bool = False,
    sync: SyncMode | None = None,
    key_field: str | None = None,
    originator_id: str | None = None,
    check_portal: bool = False,
    delete_missing: bool = False,
    max_delete_share: float = 0.1,
    max_attempts: int = 3,
    lock_wait_seconds: float = 0.0,
    match_by: Literal["EMAIL", "PHONE"] | None = None,
    multi_value: MultiValueMode = "replace",
    failure_rate_threshold: float = 0.05,
    block_on_unknown: bool = False,
    max_failures_shown: int = 20,
    log_every_chunks: int | None = None,
    key_prefix: Sequence[str] = ("bitrix24",),
    translator: Bitrix24Translator | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
    resource_key: str = "bitrix24",
    storage_key: str = "bitrix24_storage",
    pool: str | None = "bitrix24",
    entity: str | None = None,
) -> dg.AssetsDefinition:
    """An asset that sends one Bitrix24 command per source row and records every outcome.

    The results file (under `Bitrix24Storage`, `<base>/<asset key>.parquet`) has one row per
    source row, in order: `command_index, command_key, method, chunk_index, status, result,
    error_code, error_description, total, next` and the `key_column` (renamed `source_<name>`
    if it clashes). Two checks come with it: `failure_rate_below_threshold` (WARN) and
    `no_unknown_outcomes` (ERROR).

    `halt_on_error` defaults to False here (the client's default is True, as in the JS SDK):
    a bulk load wants every row tried, so one bad row does not leave the rest unsent.

    Args:
        name: the asset's name (its key is `[*key_prefix, name]` unless the translator says).
        method: e.g. "crm.lead.add"; None when the source is a frame of commands with the
            columns `method` and `params` (a dict per row).
        source: the upstream asset whose value (a DataFrame, loaded by its IO manager) holds
            the rows, or a function `(context) -> DataFrame`.
        fields: columns to send, a list or a mapping column -> Bitrix24 field.
        row_function: instead of `fields`, `row -> fields dict` (the row as a dict of plain
            values), called once per row.
        fields_param, id_column, id_param, params, nulls, field_types, timezone: passed to
            `b24_dagster.frames.commands_from_frame` (see there): nulls "omit" or "empty",
            field_types the entity's `*.fields` answer (Y/N booleans, dates, multi-fields).
        key_column: a source column carried into the results so failures join back.
        halt_on_error: stop at the first failed command (the rest become `not_run`).
        resumable: record each chunk's outcome as it arrives, so that a step executed again
            after a failure does not send the recorded chunks again (see docs/integration.md).
        reconcile: look `unknown` creates up on the portal by their key before anything is
            sent again (found: `ok`; not found: sent again; no key: stays `unknown`).
        reconcile_field: the key field of the creates (default: `ORIGIN_ID` / `originId`).
        reconcile_delay_seconds: how long after it was sent a write whose answer was lost (or
            that was in flight when a run died) may still commit on the portal; its lookup
            waits until then. None (default): the resource's `request_time_limit_seconds` (60)
            or `read_timeout` (60), whichever is longer, plus 1 s and 10%: 67 s.
        bulk_import: send the `crm.item.add` creates 20 a `crm.item.batchImport` call, 1,000
            a request instead of 50 (a sync's creates too). Chosen explicitly: an import starts
            no automation rules or workflows, and the webhook's user needs the CRM "import"
            permission (without it each row says so). `crm.item.add` only.
        sync: how rows become writes. `upsert` (the default with a `key_column` and a create
            method): create what is missing, update what changed, leave the rest; `insert`:
            create only what is missing; `update`: update only what exists; `send`: every row
            as a command, no matching (a one-shot load). See docs/integration.md, "Sync".
        key_field: the portal field that holds the key (default `ORIGIN_ID` on legacy
            `crm.*`, `originId` on `crm.item.*`; `XML_ID` or a user field work too). Creates
            carry it, filled from `key_column` unless `fields` maps it.
        originator_id: a constant `ORIGINATOR_ID` / `originatorId` creates carry and matches
            require (an origin id is unique per originator).
        check_portal: look every row up on the portal (about one request per 2,500 rows)
            instead of trusting the sync state for rows applied before; finds records a person
            deleted (they are created again).
        delete_missing: delete the records whose keys left the source (only records this sync
            made, found by their key); refused when more than `max_delete_share` of them would go.
        max_attempts: a row that failed this many times with the same fields is skipped until
            it changes.
        lock_wait_seconds: how long a second execution of the same asset and partition, or
            another step writing the same key space (portal, entity, key field), waits
            for the first before failing (two never send at once).
        match_by: `EMAIL` or `PHONE`: match leads, contacts or companies by the row's e-mail or
            phone (`crm.duplicate.findbycomm`) instead of a key field; `key_column` still names
            the rows in the results and the state.
        multi_value: how a sync writes multi-fields (`EMAIL`, `PHONE`, `WEB`, `IM`, `fm`, multiple
            user fields): `replace` (the default: the record ends with exactly the row's values,
            compared in normal form, written by value id) or `append` (only values the record
            lacks are added; nothing is changed or removed).
        failure_rate_threshold: the WARN check fails above this share of failed rows.
        block_on_unknown: make `no_unknown_outcomes` a blocking check: when a command's outcome
            is unknown, the assets downstream of this one in the same run (a dbt model reading
            the results) are not run.
        max_failures_shown: rows of the `first_failures` metadata table.
        log_every_chunks: progress log interval (default: every chunk up to 100 chunks).
        translator: a `Bitrix24Translator` to change keys, groups, metadata, tags, kinds.
        partitions_def: partitions (each partition has its own results file).
        resource_key, storage_key: the resource keys of `Bitrix24Resource`/`Bitrix24Storage`.
        pool: the Dagster concurrency pool of the step (limit it in the deployment settings).
        entity: the CRM entity, for the translator's metadata.

    Example:
        ```python
        leads = build_bitrix24_batch_asset(
            name="lead_import", method="crm.lead.add", source="leads_csv",
            fields={"title": "TITLE", "email": "EMAIL"}, key_column="external_id",
        )
        ```
    Re-drive the failed rows (launchpad, or `dg.materialize(..., run_config=...)`), the op
    being named after the asset key (`bitrix24__lead_import`):

        ```python
        run_config = {"ops": {"bitrix24__lead_import": {"config": {"mode": "redrive"}}}}
        ```
    """
    loader = source if callable(source) and not isinstance(source, dg.AssetKey) else None
    ins = {} if loader else {"rows": dg.AssetIn(key=dg.AssetKey.from_coercible(source))}  # type: ignore[arg-type]
    decorator = bitrix24_batch_assets(
        name=name, method=method, ins=ins, fields=fields, row_function=row_function,
        fields_param=fields_param, id_column=id_column, id_param=id_param, params=params,
        key_column=key_column, nulls=nulls, field_types=field_types, timezone=timezone,
        halt_on_error=halt_on_error, resumable=resumable, reconcile=reconcile,
        reconcile_field=reconcile_field, reconcile_delay_seconds=reconcile_delay_seconds,
        bulk_import=bulk_import, sync=sync, key_field=key_field, originator_id=originator_id,
        check_portal=check_portal, delete_missing=delete_missing, max_delete_share=max_delete_share,
        max_attempts=max_attempts, lock_wait_seconds=lock_wait_seconds, match_by=match_by,
        multi_value=multi_value,
        failure_rate_threshold=failure_rate_threshold, block_on_unknown=block_on_unknown,
        max_failures_shown=max_failures_shown, log_every_chunks=log_every_chunks, key_prefix=key_prefix,
        translator=translator, partitions_def=partitions_def, resource_key=resource_key,
        storage_key=storage_key, pool=pool, entity=entity,
    )  # fmt: skip
    if loader is None:

        def from_input(context: dg.AssetExecutionContext, bitrix24: Bitrix24BatchInvocation, rows: pd.DataFrame) -> Any:
            yield from bitrix24.run(rows)

        return decorator(from_input)

    def from_loader(context: dg.AssetExecutionContext, bitrix24: Bitrix24BatchInvocation) -> Any:
        # a run of the checks alone sends nothing, so it needs no source rows either
        yield from bitrix24.run(None if checks_alone(context, bitrix24.asset_key) else loader(context))

    return decorator(from_loader)


def build_bitrix24_batch_op(
    *,
    name: str,
    method: str | None,
    fields: Mapping[str, str] | Sequence[str] | None = None,
    row_function: RowFunction | None = None,
    fields_param: str | None = None,
    id_column: str | None = None,
    id_param: str | None = None,
    params: Mapping[str, Any] | None = None,
    key_column: str | None = None,
    nulls: str | None = None,
    field_types: Mapping[str, Any] | None = None,
    timezone: str | None = None,
    halt_on_error: bool = False,
    resumable: bool = True,
    reconcile: bool = True,
    reconcile_field: str | None = None,
    reconcile_delay_seconds: float | None = None,
    bulk_import: bool = False,
    sync: SyncMode | None = None,
    key_field: str | None = None,
    originator_id: str | None = None,
    check_portal: bool = False,
    delete_missing: bool = False,
    max_delete_share: float = 0.1,
    max_attempts: int = 3,
    lock_wait_seconds: float = 0.0,
    match_by: Literal["EMAIL", "PHONE"] | None = None,
    multi_value: MultiValueMode = "replace",
    max_failures_shown: int = 20,
    log_every_chunks: int | None = None,
    resource_key: str = "bitrix24",
    storage_key: str = "bitrix24_storage",
    results_key: Sequence[str] | None = None,
    pool: str | None = "bitrix24",
) -> dg.OpDefinition:
    """An op for job users: input `rows` (a DataFrame), output the results file's URI (str).

    Same arguments and behaviour as `build_bitrix24_batch_asset` (including the sync with a
    `key_column`, and `halt_on_error=False` by default, since a bulk load wants every row tried), without
    asset checks: the output's metadata carries the partial-failure counts and tables. The
    results go to `<base>/<results_key>.parquet` (default `bitrix24_ops/<name>`), so a later
    run with `mode: redrive` finds them.

    Example:
        ```python
        send = build_bitrix24_batch_op(name="update_deals", method="crm.deal.update",
                                       id_column="ID", fields=["STAGE_ID"])

        @dg.job(resource_defs={"bitrix24": ..., "bitrix24_storage": Bitrix24Storage()})
        def write_back():
            send(load_rows())
        ```
    """
    options = BatchAssetOptions(
        fields=fields, row_function=row_function, fields_param=fields_param, id_column=id_column,
        id_param=id_param, params=params, key_column=key_column, nulls=nulls, field_types=field_types,
        timezone=timezone, halt_on_error=halt_on_error, resumable=resumable, reconcile=reconcile,
        reconcile_field=reconcile_field, reconcile_delay_seconds=reconcile_delay_seconds,
        bulk_import=bulk_import, sync=sync, key_field=key_field, originator_id=originator_id,
        check_portal=check_portal, delete_missing=delete_missing, max_delete_share=max_delete_share,
        max_attempts=max_attempts, lock_wait_seconds=lock_wait_seconds, match_by=match_by,
        multi_value=multi_value, max_failures_shown=max_failures_shown, log_every_chunks=log_every_chunks,
        resource_key=resource_key, storage_key=storage_key, pool=pool,
    )  # fmt: skip
    batch, sync_spec = options.batch_spec(method), options.sync_spec(method)
    key = dg.AssetKey(list(results_key) if results_key else ["bitrix24_ops", name])

    @dg.op(
        name=name,
        ins={"rows": dg.In(description="The source rows (a pandas DataFrame).")},
        out=dg.Out(str, description="URI of the results Parquet file."),
        required_resource_keys={resource_key, storage_key},
        tags={"kind": "bitrix24"},
        pool=pool,
    )
    def _op(context: dg.OpExecutionContext, config: Bitrix24BatchConfig, rows: pd.DataFrame) -> dg.Output[str]:
        storage: Bitrix24Storage = getattr(context.resources, storage_key)
        partition = context.partition_key if context.has_partition_key else None
        path = storage.path_for(key, partition)
        changelog = Changelog(storage.path_for(key), key.to_user_string(), partition)
        metadata = run_rows(context, config, rows, label=name, batch=batch, sync=sync_spec, path=path,
                            options=options, changelog=changelog)  # fmt: skip
        return dg.Output(str(path), metadata=metadata)

    return _op
