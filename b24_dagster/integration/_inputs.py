"""Loading a batch-results or export asset as the input of another asset.

The factories' assets write their Parquet files themselves and return a
`MaterializeResult`, so no IO manager stores them; their outputs name `Bitrix24Storage` as
their IO manager (`io_manager_key=storage_key`) only so that Dagster asks it to *load* them.
A downstream asset then takes one with a plain `AssetIn`:

    @dg.asset(ins={"results": dg.AssetIn(["bitrix24", "contact_import"])})
    def failed_contacts(results: pd.DataFrame) -> pd.DataFrame: ...

The value's form follows the input's `metadata={"format": ...}`, else its type annotation:

    pandas   (default) a DataFrame: `frames.results_to_frame` for batch results (status a
             categorical), `frames.table_to_frame` for exports; each column's dtype follows
             its Arrow type alone (nullable dtypes), so it is the same in every run and on
             pandas 2.2 and 3.x
    arrow    a `pyarrow.Table` (annotation `pa.Table`)
    dataset  a `pyarrow.dataset.Dataset`: nothing is read until asked (annotation
             `pyarrow.dataset.Dataset`); one dataset over every partition loaded
    path     the file's `UPath` (annotation `UPath` or `pathlib.Path`)

`metadata={"columns": [...]}` reads only those columns (pandas and arrow). A partitioned
upstream gives the partition the downstream run maps to; several partitions (an
unpartitioned downstream, a range) give a dict of partition key to value, except for
`dataset`, which is one dataset. `metadata={"allow_missing_partitions": True}` skips the
partitions that were never materialized instead of failing.
"""

from __future__ import annotations

import pathlib
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg
from upath import UPath

from b24_dagster.integration._parquet import read_parquet, uri_of

if TYPE_CHECKING:
    from b24_dagster.integration._storage import Bitrix24Storage

__all__ = ["INPUT_FORMATS", "load_asset_input"]

INPUT_FORMATS = ("pandas", "arrow", "dataset", "path")
"""The values of an input's `metadata={"format": ...}`."""


def load_asset_input(storage: Bitrix24Storage, context: dg.InputContext) -> Any:
    """The value of an input whose upstream asset's file is under `storage` (see module doc)."""
    if not context.has_asset_key:
        raise dg.Failure(f"{storage.__class__.__name__} loads only the inputs of assets; "
                         "op outputs are not stored by it", allow_retries=False)  # fmt: skip
    key = context.asset_key
    meta = dict(context.definition_metadata or {})
    fmt = _format(meta, context.dagster_type.typing_type)
    columns = meta.get("columns")
    if not context.has_asset_partitions:
        path = storage.path_for(key)
        _require(path, key, None)
        return _read(fmt, [path], columns)
    paths = _partition_paths(storage, context, key, allow_missing=bool(meta.get("allow_missing_partitions")))
    if fmt == "dataset":
        return _dataset(list(paths.values()))
    values = {partition: _read(fmt, [path], columns) for partition, path in paths.items()}
    if len(context.asset_partition_keys) == 1 and not _is_dict(context.dagster_type.typing_type):
        return next(iter(values.values())) if values else None
    return values


def _format(meta: Mapping[str, Any], annotation: Any) -> str:
    fmt = meta.get("format")
    if fmt is not None:
        if fmt not in INPUT_FORMATS:
            raise dg.Failure(f"input metadata format={fmt!r}: use one of {', '.join(INPUT_FORMATS)}",
                             allow_retries=False)  # fmt: skip
        return str(fmt)
    if _is_dict(annotation):
        args = typing.get_args(annotation)
        annotation = args[1] if len(args) == 2 else Any
    if isinstance(annotation, type):
        import pyarrow as pa

        if issubclass(annotation, pa.Table):
            return "arrow"
        if issubclass(annotation, UPath | pathlib.PurePath):
            return "path"
        if annotation.__module__.startswith("pyarrow") and "Dataset" in annotation.__name__:
            return "dataset"
    return "pandas"


def _is_dict(annotation: Any) -> bool:
    return annotation is dict or typing.get_origin(annotation) in (dict, Mapping)


def _require(path: UPath, key: dg.AssetKey, partition: str | None) -> None:
    if not path.exists():
        what = key.to_user_string() + (f" partition {partition}" if partition else "")
        raise dg.Failure(f"{what} has no file at {uri_of(path)}: materialize it first (or check "
                         f"the base of Bitrix24Storage / $B24_DAGSTER_BASE)", allow_retries=False)  # fmt: skip


def _partition_paths(storage: Bitrix24Storage, context: dg.InputContext, key: dg.AssetKey,
                     *, allow_missing: bool) -> dict[str, UPath]:  # fmt: skip
    pdef = context.asset_partitions_def
    paths: dict[str, UPath] = {}
    for partition in context.asset_partition_keys:
        parsed: Any = partition
        if isinstance(pdef, dg.MultiPartitionsDefinition):
            parsed = pdef.get_partition_key_from_str(partition)
        path = storage.path_for(key, parsed)
        if allow_missing and not path.exists():
            continue
        _require(path, key, partition)
        paths[str(partition)] = path
    return paths


def _read(fmt: str, paths: list[UPath], columns: Any) -> Any:
    [path] = paths
    if fmt == "path":
        return path
    if fmt == "dataset":
        return _dataset(paths)
    table = read_parquet(path, columns=list(columns) if columns else None)
    if fmt == "arrow":
        return table
    from b24_dagster.frames import results_to_frame, table_to_frame
    from b24_dagster.integration._batch_run import RESULT_SCHEMA

    if set(RESULT_SCHEMA.names) <= set(table.column_names):
        return results_to_frame(table)
    return table_to_frame(table)


def _dataset(paths: list[UPath]) -> Any:
    import pyarrow.dataset as ds

    if not paths:
        raise dg.Failure("no partition of the input has a file", allow_retries=False)
    fs = paths[0].fs
    if paths[0].protocol in ("", "file", "local"):
        return ds.dataset([p.path for p in paths], format="parquet")
    return ds.dataset([p.path for p in paths], format="parquet", filesystem=fs)
