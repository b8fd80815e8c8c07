"""`@bitrix24_export_assets`: a list export whose asset body is your own.

A decorator over `dg.multi_asset`, in the manner of `@dlt_assets`, `@dbt_assets` and
`@sling_assets`: the body receives a `Bitrix24ExportInvocation` and yields what its `run()`
yields (the materialization with its metadata, and the selected check results), after
deciding with its inputs what to export:

    @bitrix24_export_assets(name="won_deals", method="crm.deal.list", select=["ID", "TITLE"],
                            ins={"categories": dg.AssetIn("sales_categories")})
    def won_deals(context: dg.AssetExecutionContext, bitrix24: Bitrix24ExportInvocation,
                  categories: list[int]):
        yield from bitrix24.run(filter={"STAGE_SEMANTIC_ID": "S", "@CATEGORY_ID": categories})

`build_bitrix24_export_asset` is this decorator over a body that runs the export as it is.
Partitions (daily in incremental mode, by portal with `portals=`), a pool, single-run
backfills of partition ranges, the translator and asset-check subsetting work as in the
factory.
"""

# No `from __future__ import annotations`: Dagster reads the compute function's annotations.

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import dagster as dg
from dagster._utils.warnings import disable_dagster_warnings

from b24_dagster.integration._asset_meta import column_descriptions, definition_metadata
from b24_dagster.integration._batch_run import table_schema_metadata
from b24_dagster.integration._checks_alone import checks_alone, not_materialized, selected_only
from b24_dagster.integration._export_run import (
    DATE_DIM,
    IDS_UNIQUE_CHECK,
    PORTAL_DIM,
    ROWS_PRESENT_CHECK,
    ExportRun,
    ExportSpec,
    PageTransform,
    combined_metadata,
    export_check_results,
    export_checks,
    field_descriptions_of,
    ids_of_file,
    list_defaults,
)
from b24_dagster.integration._translator import Bitrix24AssetProps, Bitrix24Translator
from b24_dagster.integration._typing import ColumnTyper, columns_for

__all__ = ["Bitrix24ExportInvocation", "ExportAssetOptions", "bitrix24_export_assets"]


@dataclass(frozen=True)
class ExportAssetOptions:
    """Every setting of an export asset but its name and method (see the factory's Args)."""

    params: Mapping[str, Any] | None = None
    select: Sequence[str] | None = None
    filter: Mapping[str, Any] | None = None
    entity_type_id: int | None = None
    fields_method: str | None = None
    fields_params: Mapping[str, Any] | None = None
    incremental: bool = False
    start_date: str | None = None
    timezone: str = "UTC"
    modified_field: str | None = None
    portals: Sequence[str] = ()
    column_types: Mapping[str, Any] | None = None
    rows_per_row_group: int = 10_000
    key_prefix: Sequence[str] = ("bitrix24",)
    translator: Bitrix24Translator | None = None
    resource_key: str = "bitrix24"
    storage_key: str = "bitrix24_storage"
    pool: str | None = "bitrix24"
    field_descriptions: Mapping[str, Any] | None = None
    freshness_policy: dg.FreshnessPolicy | None = None
    checks: bool = True
    extra_deps: Sequence[Any] = field(default_factory=tuple)

    def export_spec(self, name: str, method: str, key: dg.AssetKey) -> ExportSpec:
        """What each run needs, the method's defaults filled in; refuses an incremental export
        without a modification field."""
        fields_method, modified_field, _ = list_defaults(method)
        modified_field = self.modified_field or modified_field
        if self.incremental and not modified_field:
            raise ValueError(f"incremental export of {method} needs modified_field")
        params, fields_params = dict(self.params or {}), dict(self.fields_params or {})
        if self.entity_type_id is not None:
            params.setdefault("entityTypeId", self.entity_type_id)
            fields_params.setdefault("entityTypeId", self.entity_type_id)
        return ExportSpec(
            name=name, method=method, key=key, params=params, filter=dict(self.filter or {}), select=self.select,
            fields_method=self.fields_method or fields_method, fields_params=fields_params,
            modified_field=modified_field, column_types=self.column_types,
            rows_per_row_group=self.rows_per_row_group, portals=tuple(self.portals), incremental=self.incremental,
            timezone=self.timezone, resource_key=self.resource_key, storage_key=self.storage_key,
        )  # fmt: skip

    def partitions_def(self) -> dg.PartitionsDefinition | None:
        """Daily (incremental), by portal (`portals`), both (a multi-partition), or none."""
        daily = (dg.DailyPartitionsDefinition(start_date=self.start_date or "2024-01-01", timezone=self.timezone)
                 if self.incremental else None)  # fmt: skip
        if not self.portals:
            return daily
        static = dg.StaticPartitionsDefinition(list(self.portals))
        if daily is None:
            return static
        return dg.MultiPartitionsDefinition({PORTAL_DIM: static, DATE_DIM: daily})

    def column_schema(self) -> dg.TableSchemaMetadataValue | None:
        """The file's columns as the definitions know them (from `field_descriptions`)."""
        if not self.field_descriptions:
            return None
        described = field_descriptions_of(self.field_descriptions)
        typer = ColumnTyper(described, columns_for(self.select, [], described), self.column_types)
        return dg.MetadataValue.table_schema(
            table_schema_metadata(typer.schema, column_descriptions(described, typer.schema.names)))  # fmt: skip


class Bitrix24ExportInvocation:
    """What the body of a `@bitrix24_export_assets` asset runs its export with."""

    def __init__(self, context: dg.AssetExecutionContext, spec: ExportSpec, checks: bool) -> None:
        self.context = context
        self._spec = spec
        self._checks = checks

    @property
    def asset_key(self) -> dg.AssetKey:
        """The asset's key."""
        return self._spec.key

    @property
    def partition_keys(self) -> list[Any]:
        """The partitions of this run (`[None]` when the asset is not partitioned; more than
        one in a single-run backfill of a range; `MultiPartitionKey`s by portal and date)."""
        return list(self.context.partition_keys) if self._spec.partitioned else [None]

    def run(self, *, filter: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
            transform: PageTransform | None = None) -> Iterator[dg.MaterializeResult]:  # fmt: skip
        """Export each partition of the run to its file; yield the one materialization.

        Args:
            filter: more filter conditions, over the constant `filter` (and the day's window).
            params: more parameters of the list call, over the constant `params`.
            transform: `page -> rows`, applied to each page (a list of dicts) before it is
                typed and written: drop rows, add or rename fields (list the new ones in `select`).
        """
        spec, context, keys = self._spec, self.context, self.partition_keys
        if checks_alone(context, spec.key):  # nothing is exported: the checks read the files
            yield from self._checks_of_files(keys)
            return
        if len(keys) > 1:
            context.log.info(f"{spec.name}: {len(keys)} partitions in this run, {keys[0]} ... {keys[-1]}")
        outcomes = [ExportRun(context, spec, key, filter=filter, params=params, transform=transform).execute()
                    for key in keys]  # fmt: skip
        checks: list[dg.AssetCheckResult] = []
        if self._checks:
            checks = list(selected_only(context, spec.key, export_check_results(spec.key, [ids for _, ids in outcomes])))
        yield dg.MaterializeResult(asset_key=spec.key, metadata=combined_metadata([m for m, _ in outcomes]),
                                   check_results=checks)  # fmt: skip

    def _checks_of_files(self, keys: Sequence[Any]) -> Iterator[dg.AssetCheckResult]:
        spec = self._spec
        storage = getattr(self.context.resources, spec.storage_key)
        paths = [storage.path_for(spec.key, key) for key in keys]
        missing = [str(key) if key is not None else spec.name for key, path in zip(keys, paths, strict=True)
                   if not path.exists()]  # fmt: skip
        if missing:
            results = not_materialized(spec.key, (ROWS_PRESENT_CHECK, IDS_UNIQUE_CHECK),
                                       f"not exported yet: {', '.join(missing[:20])}")  # fmt: skip
        else:
            results = export_check_results(spec.key, [ids_of_file(path, key) for key, path in zip(keys, paths, strict=True)])
        yield from selected_only(self.context, spec.key, results)


def bitrix24_export_assets(
    *,
    name: str,
    method: str,
    ins: Mapping[str, dg.AssetIn] | None = None,
    **options: Any,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """A decorator over `dg.multi_asset` for a list export with a body of your own.

    The body is called as `body(context, bitrix24, **inputs)` and yields from
    `bitrix24.run(filter=..., params=...)`. See the module docstring for an example.

    Args:
        name: the asset's name (its key is `[*key_prefix, name]` unless the translator says).
        method: the list method (`crm.deal.list`), as in `build_bitrix24_export_asset`.
        ins: the upstream assets the body takes (loaded by their IO managers).
        **options: any other argument of `build_bitrix24_export_asset`
            (`ExportAssetOptions`): select, filter, incremental, portals, pool, checks, ...
    """
    unknown = sorted(set(options) - {f.name for f in fields(ExportAssetOptions)})
    if unknown:
        raise dg.DagsterInvalidDefinitionError(f"bitrix24_export_assets got unknown arguments: {', '.join(unknown)}")
    opts = ExportAssetOptions(**options)
    entity = list_defaults(method)[2]
    props = Bitrix24AssetProps(name=name, kind="export", method=method, entity=entity,
                               key_prefix=tuple(opts.key_prefix), portals=tuple(opts.portals))  # fmt: skip
    spec = (opts.translator or Bitrix24Translator()).get_asset_spec(props)
    export = opts.export_spec(name, method, spec.key)
    partitions_def = opts.partitions_def()
    ins = dict(ins or {})
    deps = [*(d.asset_key for d in spec.deps), *(i.key or dg.AssetKey([n]) for n, i in ins.items()),
            *opts.extra_deps]  # fmt: skip
    asset_spec = dg.AssetSpec(
        key=spec.key, deps=deps, description=spec.description, group_name=spec.group_name,
        metadata=definition_metadata(spec, **{"dagster/column_schema": opts.column_schema()}), tags=dict(spec.tags),
        kinds=set(spec.kinds), owners=list(spec.owners), freshness_policy=opts.freshness_policy,
    ).with_io_manager_key(opts.storage_key)  # the file loads as a downstream AssetIn (_inputs.py)

    def decorator(body: Callable[..., Any]) -> dg.AssetsDefinition:
        with disable_dagster_warnings():  # BackfillPolicy is a beta parameter
            compute_decorator = dg.multi_asset(
                name=spec.key.to_python_identifier(), specs=[asset_spec], ins=ins,
                check_specs=export_checks(spec.key) if opts.checks else None, can_subset=True,
                partitions_def=partitions_def, required_resource_keys={opts.resource_key, opts.storage_key},
                pool=opts.pool,
                backfill_policy=dg.BackfillPolicy.single_run() if partitions_def is not None else None,
            )  # fmt: skip

        @compute_decorator
        def compute(context: dg.AssetExecutionContext, **inputs: Any) -> Any:
            yield from body(context, Bitrix24ExportInvocation(context, export, opts.checks), **inputs)

        return compute

    return decorator
