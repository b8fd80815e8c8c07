"""Factories: a DataFrame of rows -> Bitrix24 commands in chunked batches -> a results asset.

`build_bitrix24_batch_asset` makes an asset (with two asset checks) and
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
from pydantic import Field

from b24_dagster.integration._asset_meta import definition_metadata, table_name
from b24_dagster.integration._batch_core import BatchSpec, RowFunction, run_batch_step
from b24_dagster.integration._storage import Bitrix24Storage
from b24_dagster.integration._sync import SyncOptions, run_sync, sync_spec_of
from b24_dagster.integration._sync_plan import SyncMode
from b24_dagster.integration._translator import Bitrix24AssetProps, Bitrix24Translator

__all__ = [
    "FAILURE_RATE_CHECK",
    "UNKNOWN_CHECK",
    "Bitrix24BatchConfig",
    "build_bitrix24_batch_asset",
    "build_bitrix24_batch_op",
]

FAILURE_RATE_CHECK = "failure_rate_below_threshold"
UNKNOWN_CHECK = "no_unknown_outcomes"

SourceLoader = Callable[[dg.AssetExecutionContext], pd.DataFrame]


class Bitrix24BatchConfig(dg.Config):
    """Run configuration of a batch asset or op (the launchpad shows these)."""

    mode: Literal["all", "redrive"] = Field(
        default="all",
        description=(
            "all: send every command and replace the results. redrive: send again only the "
            "commands whose latest status is error or not_run, and merge their new outcome."
        ),
    )
    include_unknown: bool = Field(
        default=False,
        description=(
            "In redrive mode, also send the unknown commands that could not be settled. Unknown "
            "creates that carry a key (ORIGIN_ID / originId / reconcile_field) are always looked "
            "up on the portal first; the rest may already have been applied: only for idempotent "
            "methods (updates) or after checking."
        ),
    )
    halt_on_error: bool | None = Field(
        default=None,
        description="Stop at the first failed command (default: the factory's, normally false).",
    )
    dry_run: bool = Field(
        default=False,
        description=(
            "Sync assets only: look the rows up and write the plan (create, update, unchanged, "
            "delete, ambiguous, ... per row) beside the results, and send no write; the results "
            "and the sync state stay as they were."
        ),
    )


def _spec(method: str | None, **kwargs: Any) -> BatchSpec:
    if kwargs.get("bulk_import") and method != "crm.item.add":
        raise dg.DagsterInvalidDefinitionError(
            f"bulk_import packs crm.item.add creates into crm.item.batchImport; method is {method!r}")
    fields = kwargs.get("fields")
    if fields is not None and not isinstance(fields, Mapping):
        kwargs["fields"] = {str(c): str(c) for c in fields}  # a list of columns: same names
    return BatchSpec(method=method, **kwargs)


def _checks(key: dg.AssetKey, threshold: float, block_on_unknown: bool = False) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            FAILURE_RATE_CHECK,
            asset=key,
            description=f"At most {threshold:.1%} of the commands failed (error, not_run, unknown).",
        ),
        dg.AssetCheckSpec(
            UNKNOWN_CHECK,
            asset=key,
            description="No command has an unknown outcome (sent, but its answer was lost)."
            + (" Blocking: downstream assets of the run do not run when it fails." if block_on_unknown else ""),
            blocking=block_on_unknown,
        ),
    ]


def _check_results(key: dg.AssetKey, metadata: dict[str, Any], threshold: float) -> list[dg.AssetCheckResult]:
    failure_rate = float(getattr(metadata["failure_rate"], "value", metadata["failure_rate"]))
    unknown, commands = int(metadata["unknown"]), int(metadata["commands"])
    return [
        dg.AssetCheckResult(
            check_name=FAILURE_RATE_CHECK,
            asset_key=key,
            passed=failure_rate <= threshold,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "failure_rate": dg.MetadataValue.float(round(failure_rate, 6)),
                "threshold": dg.MetadataValue.float(threshold),
                "failed": round(failure_rate * commands),
                "commands": commands,
            },
        ),
        dg.AssetCheckResult(
            check_name=UNKNOWN_CHECK,
            asset_key=key,
            passed=unknown == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"unknown": unknown, "commands": commands},
            description=None
            if unknown == 0
            else (
                f"{unknown} commands may or may not have been applied by the portal and carry "
                "no key to look them up by: check them on the portal, then re-drive "
                "(include_unknown) only what is missing."
            ),
        ),
    ]


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
    reconcile_delay_seconds: float = 10.0,
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
        reconcile_delay_seconds: wait this long after an answer was lost before looking up
            (the portal may still be running the request whose answer timed out).
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
        lock_wait_seconds: how long a second execution of the same asset and partition waits
            for the first before failing (two never send at once).
        match_by: `EMAIL` or `PHONE`: match leads, contacts or companies by the row's e-mail or
            phone (`crm.duplicate.findbycomm`) instead of a key field; `key_column` still names
            the rows in the results and the state.
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
    translator = translator or Bitrix24Translator()
    props = Bitrix24AssetProps(
        name=name, kind="batch", method=method or "(commands)", entity=entity, key_prefix=tuple(key_prefix)
    )
    spec = translator.get_asset_spec(props)
    batch = _spec(
        method, fields=fields, fields_param=fields_param, id_column=id_column, id_param=id_param,
        params=params, key_column=key_column, nulls=nulls, field_types=field_types,
        row_function=row_function, timezone=timezone, halt_on_error=halt_on_error,
        max_failures_shown=max_failures_shown, log_every_chunks=log_every_chunks,
        reconcile=reconcile, reconcile_field=reconcile_field,
        reconcile_delay_seconds=reconcile_delay_seconds, bulk_import=bulk_import,
    )  # fmt: skip
    sync_spec = sync_spec_of(method, key_column, SyncOptions(
        sync=sync, key_field=key_field, originator_id=originator_id, check_portal=check_portal,
        delete_missing=delete_missing, max_delete_share=max_delete_share, max_attempts=max_attempts,
        lock_wait_seconds=lock_wait_seconds, match_by=match_by))  # fmt: skip
    loader = source if callable(source) and not isinstance(source, dg.AssetKey) else None
    ins = {} if loader else {"rows": dg.AssetIn(key=dg.AssetKey.from_coercible(source))}  # type: ignore[arg-type]

    def body(context: dg.AssetExecutionContext, config: Bitrix24BatchConfig, rows: pd.DataFrame) -> dg.MaterializeResult:
        resource = getattr(context.resources, resource_key)
        storage: Bitrix24Storage = getattr(context.resources, storage_key)
        partition = context.partition_key if context.has_partition_key else None
        path = storage.path_for(spec.key, partition)
        run_spec = batch if config.halt_on_error is None else _with_halt(batch, config.halt_on_error)
        if sync_spec is not None:
            metadata = run_sync(
                batch=run_spec, sync=sync_spec, frame=rows, client=resource.get_client(), path=path,
                log=context.log, label=name, run_id=context.run.run_id, dry_run=config.dry_run,
                lock_wait_seconds=lock_wait_seconds,
            )  # fmt: skip
        else:
            _refuse_dry_run(config, name)
            metadata = run_batch_step(
                spec=run_spec, frame=rows, client=resource.get_client(), path=path, log=context.log,
                mode=config.mode, include_unknown=config.include_unknown,
                request_id=f"{context.run.run_id[:8]}-{name}", label=name, journal=resumable,
            ).metadata  # fmt: skip
        return dg.MaterializeResult(
            asset_key=spec.key,
            metadata={**metadata, "dagster/table_name": table_name(spec.key)},
            check_results=_check_results(spec.key, metadata, failure_rate_threshold),
        )

    decorator = dg.asset(
        key=spec.key, ins=ins, description=spec.description, group_name=spec.group_name,
        metadata=definition_metadata(spec), tags=dict(spec.tags), kinds=set(spec.kinds),
        owners=list(spec.owners), check_specs=_checks(spec.key, failure_rate_threshold, block_on_unknown),
        partitions_def=partitions_def, required_resource_keys={resource_key, storage_key},
        pool=pool, deps=[d.asset_key for d in spec.deps],
        io_manager_key=storage_key,  # loads the results as a downstream AssetIn (_inputs.py)
    )  # fmt: skip
    if loader is None:

        def from_input(context: dg.AssetExecutionContext, config: Bitrix24BatchConfig, rows: pd.DataFrame) -> dg.MaterializeResult:
            return body(context, config, rows)

        return decorator(_named(from_input, name))

    def from_loader(context: dg.AssetExecutionContext, config: Bitrix24BatchConfig) -> dg.MaterializeResult:
        return body(context, config, loader(context))

    return decorator(_named(from_loader, name))


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
    reconcile_delay_seconds: float = 10.0,
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
    batch = _spec(
        method, fields=fields, fields_param=fields_param, id_column=id_column, id_param=id_param,
        params=params, key_column=key_column, nulls=nulls, field_types=field_types,
        row_function=row_function, timezone=timezone, halt_on_error=halt_on_error,
        max_failures_shown=max_failures_shown, log_every_chunks=log_every_chunks,
        reconcile=reconcile, reconcile_field=reconcile_field,
        reconcile_delay_seconds=reconcile_delay_seconds, bulk_import=bulk_import,
    )  # fmt: skip
    key = dg.AssetKey(list(results_key) if results_key else ["bitrix24_ops", name])
    sync_spec = sync_spec_of(method, key_column, SyncOptions(
        sync=sync, key_field=key_field, originator_id=originator_id, check_portal=check_portal,
        delete_missing=delete_missing, max_delete_share=max_delete_share, max_attempts=max_attempts,
        lock_wait_seconds=lock_wait_seconds, match_by=match_by))  # fmt: skip

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
        run_spec = batch if config.halt_on_error is None else _with_halt(batch, config.halt_on_error)
        client = getattr(context.resources, resource_key).get_client()
        if sync_spec is not None:
            metadata = run_sync(batch=run_spec, sync=sync_spec, frame=rows, client=client, path=path,
                                log=context.log, label=name, run_id=context.run.run_id,
                                dry_run=config.dry_run, lock_wait_seconds=lock_wait_seconds)  # fmt: skip
            return dg.Output(str(path), metadata=metadata)
        _refuse_dry_run(config, name)
        outcome = run_batch_step(
            spec=run_spec, frame=rows, client=client,
            path=path, log=context.log, mode=config.mode, include_unknown=config.include_unknown,
            request_id=f"{context.run.run_id[:8]}-{name}", label=name, journal=resumable,
        )  # fmt: skip
        return dg.Output(str(outcome.path), metadata=outcome.metadata)

    return _op


def _refuse_dry_run(config: Bitrix24BatchConfig, name: str) -> None:
    if config.dry_run:
        raise dg.Failure(f"{name}: dry_run plans a sync, and this asset does not sync (no key_column, "
                         "or sync='send'): nothing was sent", allow_retries=False)  # fmt: skip


def _with_halt(spec: BatchSpec, halt: bool) -> BatchSpec:
    from dataclasses import replace

    return replace(spec, halt_on_error=halt)


def _named(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    fn.__name__ = name.replace("-", "_")
    return fn
