"""`@bitrix24_batch_assets`: a batch write or sync whose asset body is your own.

A decorator over `dg.multi_asset`, in the manner of `@dlt_assets` and `@dbt_assets`: the
body receives a `Bitrix24BatchInvocation` and yields what its `run(rows)` yields (the
materialization with its metadata, and the check results), after doing whatever it likes
with its inputs first:

    @bitrix24_batch_assets(name="lead_import", method="crm.lead.add", key_column="external_id",
                           ins={"leads": dg.AssetIn("leads_csv")})
    def lead_import(context: dg.AssetExecutionContext, bitrix24: Bitrix24BatchInvocation,
                    leads: pd.DataFrame):
        yield from bitrix24.run(leads[leads["consent"] == "yes"])

`build_bitrix24_batch_asset` is this decorator over a body that runs its source's rows.
Partitions, a pool, the translator and asset-check subsetting work as in the factory; the
run configuration is `Bitrix24BatchConfig` (mode, dry run, halt_on_error).
"""

# No `from __future__ import annotations`: Dagster reads the compute function's annotations.

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import dagster as dg

from b24_dagster.client._multifield import MultiValueMode
from b24_dagster.integration._asset_meta import definition_metadata, table_name
from b24_dagster.integration._batch_config import (
    FAILURE_RATE_CHECK,
    SKIPPED_CHECK,
    UNKNOWN_CHECK,
    Bitrix24BatchConfig,
    check_results,
    check_run_config,
    check_specs,
)
from b24_dagster.integration._batch_core import BatchSpec, RowFunction, run_batch_step
from b24_dagster.integration._changelog import Changelog
from b24_dagster.integration._checks_alone import (
    checks_alone,
    last_materialization,
    not_materialized,
    of_run,
    selected_only,
)
from b24_dagster.integration._key_space import LOCKS_FOLDER, LockSettings
from b24_dagster.integration._sync import run_sync, sync_spec_of
from b24_dagster.integration._sync_plan import SyncMode, SyncSpec
from b24_dagster.integration._translator import Bitrix24AssetProps, Bitrix24Translator

__all__ = ["BatchAssetOptions", "Bitrix24BatchInvocation", "bitrix24_batch_assets", "run_rows"]


@dataclass(frozen=True)
class BatchAssetOptions:
    """Every setting of a batch asset but its name, method and inputs (see the factory's Args)."""

    fields: Mapping[str, str] | Sequence[str] | None = None
    row_function: RowFunction | None = None
    fields_param: str | None = None
    id_column: str | None = None
    id_param: str | None = None
    params: Mapping[str, Any] | None = None
    key_column: str | None = None
    nulls: str | None = None
    field_types: Mapping[str, Any] | None = None
    timezone: str | None = None
    halt_on_error: bool = False
    resumable: bool = True
    reconcile: bool = True
    reconcile_field: str | None = None
    reconcile_delay_seconds: float | None = None
    bulk_import: bool = False
    sync: SyncMode | None = None
    key_field: str | None = None
    originator_id: str | None = None
    check_portal: bool = False
    delete_missing: bool = False
    max_delete_share: float = 0.1
    max_attempts: int = 3
    lock_wait_seconds: float = 0.0
    match_by: Literal["EMAIL", "PHONE"] | None = None
    multi_value: MultiValueMode = "replace"
    failure_rate_threshold: float = 0.05
    block_on_unknown: bool = False
    max_failures_shown: int = 20
    log_every_chunks: int | None = None
    key_prefix: Sequence[str] = ("bitrix24",)
    translator: Bitrix24Translator | None = None
    partitions_def: dg.PartitionsDefinition | None = None
    resource_key: str = "bitrix24"
    storage_key: str = "bitrix24_storage"
    pool: str | None = "bitrix24"
    entity: str | None = None
    extra_deps: Sequence[Any] = field(default_factory=tuple)

    def batch_spec(self, method: str | None) -> BatchSpec:
        """How rows become commands."""
        if self.bulk_import and method != "crm.item.add":
            raise dg.DagsterInvalidDefinitionError(
                f"bulk_import packs crm.item.add creates into crm.item.batchImport; method is {method!r}")
        columns = self.fields
        if columns is not None and not isinstance(columns, Mapping):
            columns = {str(c): str(c) for c in columns}  # a list of columns: same names
        return BatchSpec(
            method=method, fields=columns, fields_param=self.fields_param, id_column=self.id_column,
            id_param=self.id_param, params=self.params, key_column=self.key_column, nulls=self.nulls,
            field_types=self.field_types, row_function=self.row_function, timezone=self.timezone,
            halt_on_error=self.halt_on_error, max_failures_shown=self.max_failures_shown,
            log_every_chunks=self.log_every_chunks, reconcile=self.reconcile,
            reconcile_field=self.reconcile_field, reconcile_delay_seconds=self.reconcile_delay_seconds,
            bulk_import=self.bulk_import)  # fmt: skip

    def sync_spec(self, method: str | None) -> SyncSpec | None:
        """The sync, or None for a one-shot send."""
        return sync_spec_of(method, self.key_column, self)


@dataclass
class _Compiled:
    name: str
    key: dg.AssetKey
    batch: BatchSpec
    sync: SyncSpec | None
    options: BatchAssetOptions


class Bitrix24BatchInvocation:
    """What the body of a `@bitrix24_batch_assets` asset runs its rows with."""

    def __init__(self, context: dg.AssetExecutionContext, config: Bitrix24BatchConfig, compiled: _Compiled) -> None:
        self.context = context
        self.config = config
        self._c = compiled

    @property
    def asset_key(self) -> dg.AssetKey:
        """The asset's key."""
        return self._c.key

    def run(self, rows: Any) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult | dg.AssetObservation]:
        """Sync (or send) `rows` (a DataFrame), write the results, yield the materialization.

        A dry run yields an observation with the plan instead (the asset is not materialized,
        so downstream assets of the run are skipped).

        When the run selected only the asset's checks, nothing is sent: the checks read the
        outcome counts of the last materialization (see `_checks_alone`).
        """
        c, context = self._c, self.context
        if checks_alone(context, c.key):
            yield from self._checks_of_last_run()
            return
        storage = getattr(context.resources, c.options.storage_key)
        partition = context.partition_key if context.has_partition_key else None
        path = storage.path_for(c.key, partition)
        changelog = Changelog(storage.path_for(c.key), c.key.to_user_string(), partition)
        metadata = run_rows(context, self.config, rows, label=c.name, batch=c.batch, sync=c.sync, path=path,
                            options=c.options, changelog=changelog)  # fmt: skip
        if self.config.dry_run:
            # Nothing was written: the plan is an observation. A materialization would start
            # downstream assets and automation on results that do not exist.
            context.log.info(f"{c.name}: dry run, nothing sent; the plan is recorded as an observation")
            yield dg.AssetObservation(asset_key=c.key, metadata=metadata)  # type: ignore[misc]
            return
        checks = list(selected_only(context, c.key, check_results(c.key, metadata, c.options.failure_rate_threshold)))
        yield dg.MaterializeResult(asset_key=c.key, metadata={**metadata, "dagster/table_name": table_name(c.key)},
                                   check_results=checks)  # fmt: skip

    def _checks_of_last_run(self) -> Iterator[dg.AssetCheckResult]:
        c = self._c
        names = (FAILURE_RATE_CHECK, UNKNOWN_CHECK, *((SKIPPED_CHECK,) if c.sync is not None else ()))
        found = last_materialization(self.context, c.key)
        if found is None:
            results = not_materialized(c.key, names, f"{c.name} has not been materialized (dry runs aside): "
                                                     "nothing to check")  # fmt: skip
        elif not {"failure_rate", "unknown", "commands"} <= found[0].keys():
            results = not_materialized(c.key, names, f"the last materialization of {c.name} (run {found[1]}) "
                                                     "has no outcome counts")  # fmt: skip
        else:
            results = of_run(check_results(c.key, found[0], c.options.failure_rate_threshold), found[1])
        yield from selected_only(self.context, c.key, results)


def run_rows(context: Any, config: Bitrix24BatchConfig, rows: Any, *, label: str, batch: BatchSpec,
             sync: SyncSpec | None, path: Any, options: BatchAssetOptions,
             changelog: Changelog | None = None) -> dict[str, Any]:  # fmt: skip
    """Run one asset's or op's rows (the sync, or the one-shot send); returns the metadata."""
    check_run_config(context, label)
    client = getattr(context.resources, options.resource_key).get_client()
    if config.halt_on_error is not None:
        batch = replace(batch, halt_on_error=config.halt_on_error)
    locking = lock_settings(context, options, label)
    if sync is not None:
        return run_sync(batch=batch, sync=sync, frame=rows, client=client, path=path, log=context.log, label=label,
                        run_id=context.run.run_id, dry_run=config.dry_run, changelog=changelog,
                        lock_wait_seconds=options.lock_wait_seconds, rebuild_state=config.rebuild_state,
                        locking=locking)  # fmt: skip
    if config.dry_run or config.rebuild_state:
        raise dg.Failure(f"{label}: dry_run and rebuild_state are for a sync, and this asset does not sync (no "
                         "key_column, or sync='send'): nothing was sent", allow_retries=False)  # fmt: skip
    return run_batch_step(spec=batch, frame=rows, client=client, path=path, log=context.log, mode=config.mode,
                          include_unknown=config.include_unknown, request_id=f"{context.run.run_id[:8]}-{label}",
                          label=label, journal=options.resumable, locking=locking).metadata  # fmt: skip


def lock_settings(context: Any, options: BatchAssetOptions, label: str) -> LockSettings:
    """Where and how the step locks: the key-space locks under `<base>/.locks` of the storage
    resource, its lease length, this run and asset (for whoever waits)."""
    storage = getattr(context.resources, options.storage_key, None)
    base = storage.base() if storage is not None and hasattr(storage, "base") else None
    try:
        asset = context.asset_key.to_user_string()
    except Exception:  # an op: its name
        asset = label
    partition = str(context.partition_key) if getattr(context, "has_partition_key", False) else None
    return LockSettings(root=base / LOCKS_FOLDER if base is not None else None, owner=context.run.run_id,
                        asset=asset, partition=partition, wait_seconds=options.lock_wait_seconds,
                        lease_seconds=getattr(storage, "lease_seconds", 600.0), log=context.log.info)  # fmt: skip


def bitrix24_batch_assets(
    *,
    name: str,
    method: str | None,
    ins: Mapping[str, dg.AssetIn] | None = None,
    **options: Any,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """A decorator over `dg.multi_asset` for a batch write or sync with a body of your own.

    The body is called as `body(context, bitrix24, **inputs)` and yields from
    `bitrix24.run(rows)`. See the module docstring for an example.

    Args:
        name: the asset's name (its key is `[*key_prefix, name]` unless the translator says).
        method: the write method (`crm.lead.add`), as in `build_bitrix24_batch_asset`.
        ins: the upstream assets the body takes (a DataFrame each, by their IO managers).
        **options: any other argument of `build_bitrix24_batch_asset` but `source`
            (`BatchAssetOptions`): fields, key_column, sync, partitions_def, pool, ...
    """
    known = {f.name for f in fields(BatchAssetOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise dg.DagsterInvalidDefinitionError(f"bitrix24_batch_assets got unknown arguments: {', '.join(unknown)}")
    opts = BatchAssetOptions(**options)
    translator = opts.translator or Bitrix24Translator()
    props = Bitrix24AssetProps(name=name, kind="batch", method=method or "(commands)", entity=opts.entity,
                               key_prefix=tuple(opts.key_prefix))  # fmt: skip
    spec = translator.get_asset_spec(props)
    compiled = _Compiled(name=name, key=spec.key, batch=opts.batch_spec(method), sync=opts.sync_spec(method),
                         options=opts)  # fmt: skip
    ins = dict(ins or {})
    deps = [*(d.asset_key for d in spec.deps), *(i.key or dg.AssetKey([n]) for n, i in ins.items()),
            *opts.extra_deps]
    asset_spec = dg.AssetSpec(
        key=spec.key, deps=deps, description=spec.description, group_name=spec.group_name,
        metadata=definition_metadata(spec), tags=dict(spec.tags), kinds=set(spec.kinds), owners=list(spec.owners),
        skippable=True,  # a dry run observes the asset and does not materialize it (see run())
    ).with_io_manager_key(opts.storage_key)  # the results load as a downstream AssetIn (_inputs.py)

    def decorator(body: Callable[..., Any]) -> dg.AssetsDefinition:
        @dg.multi_asset(
            name=spec.key.to_python_identifier(), specs=[asset_spec], ins=ins,
            check_specs=check_specs(spec.key, opts.failure_rate_threshold, opts.block_on_unknown,
                                    sync=compiled.sync is not None),
            can_subset=True, partitions_def=opts.partitions_def,
            required_resource_keys={opts.resource_key, opts.storage_key}, pool=opts.pool,
        )  # fmt: skip
        def compute(context: dg.AssetExecutionContext, config: Bitrix24BatchConfig, **inputs: Any) -> Any:
            yield from body(context, Bitrix24BatchInvocation(context, config, compiled), **inputs)

        return compute

    return decorator
