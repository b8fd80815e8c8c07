"""One export run: each partition's list call streamed to a typed Parquet file, in stages.

`ExportSpec` is what an export asset knows when it is defined (the method, its constant
params and filter, the columns' typing, the partitioning); `ExportRun` exports one partition
of one run over a state of its own: the call's params (the day's window on the modification
field, a body's extra filter and params), the pages streamed to Parquet row groups (`_Ids`
counting rows and duplicate ids as they go), and the metadata. The checks' specs and results
and the metadata of a run over several partitions are here too. Used by
`@bitrix24_export_assets` (`_export_decorator.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from b24_dagster.integration._asset_meta import column_descriptions, table_name
from b24_dagster.integration._batch_run import Stopwatch, client_stats, table_schema_metadata
from b24_dagster.integration._errors import to_failure
from b24_dagster.integration._parquet import ParquetStreamWriter, uri_of
from b24_dagster.integration._typing import ColumnTyper, columns_for, normalize_name

__all__ = [
    "DATE_DIM",
    "IDS_UNIQUE_CHECK",
    "ids_of_file",
    "PORTAL_DIM",
    "ROWS_PRESENT_CHECK",
    "ExportRun",
    "ExportSpec",
    "PageTransform",
    "combined_metadata",
    "export_check_results",
    "export_checks",
    "field_descriptions_of",
    "list_defaults",
]

ROWS_PRESENT_CHECK = "rows_present"
"""WARN check of an export: the file has at least one row (an incremental day may have none)."""
IDS_UNIQUE_CHECK = "ids_unique"
"""ERROR check of an export: no id appears twice in a file (the paging lost no row to a
duplicate); blocking, so downstream assets of the same run wait for a good file."""
PORTAL_DIM, DATE_DIM = "portal", "date"

PageTransform = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
"""A page of rows (dicts, as the portal answers) -> the rows to write."""


def list_defaults(method: str) -> tuple[str | None, str | None, str | None]:
    """(fields method, modification field, entity) guessed from a list method."""
    parts = method.split(".")
    if method == "crm.item.list":
        return "crm.item.fields", "updatedTime", None
    if len(parts) == 3 and parts[0] == "crm" and parts[2] == "list":
        return f"crm.{parts[1]}.fields", "DATE_MODIFY", parts[1]
    if method == "tasks.task.list":
        return "tasks.task.getFields", "CHANGED_DATE", "task"
    return None, None, None


def field_descriptions_of(result: Any) -> Mapping[str, Any]:
    """The field descriptions of a `*.fields` answer (`tasks.task.getFields` nests them)."""
    if isinstance(result, Mapping) and isinstance(result.get("fields"), Mapping):
        return result["fields"]
    return result if isinstance(result, Mapping) else {}


@dataclass(frozen=True)
class ExportSpec:
    """What an export asset knows when it is defined (see `build_bitrix24_export_asset`)."""

    name: str
    method: str
    key: dg.AssetKey
    params: Mapping[str, Any]
    filter: Mapping[str, Any]
    select: Sequence[str] | None
    fields_method: str | None
    fields_params: Mapping[str, Any]
    modified_field: str | None
    column_types: Mapping[str, Any] | None
    rows_per_row_group: int
    portals: Sequence[str]
    incremental: bool
    timezone: str
    resource_key: str
    storage_key: str

    @property
    def partitioned(self) -> bool:
        """Whether the asset has partitions (by day, by portal, or both)."""
        return self.incremental or bool(self.portals)

    def split_key(self, key: Any) -> tuple[str | None, str | None]:
        """(portal, day) of a partition key (None: the asset is not partitioned)."""
        if key is None:
            return None, None
        by_dim = getattr(key, "keys_by_dimension", None)
        if by_dim:
            return by_dim[PORTAL_DIM], by_dim[DATE_DIM]
        return (key, None) if self.portals else (None, key if self.incremental else None)


class ExportRun:
    """The export of one partition (or of the whole, unpartitioned asset) in one run."""

    def __init__(self, context: Any, spec: ExportSpec, partition: Any, *, filter: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None, transform: PageTransform | None = None) -> None:  # fmt: skip
        self.context, self.spec, self.partition = context, spec, partition
        self.portal, self.day = spec.split_key(partition)
        self.extra_filter, self.extra_params, self.transform = dict(filter or {}), dict(params or {}), transform
        self.client = getattr(context.resources, spec.resource_key).get_client(self.portal)
        self.path = getattr(context.resources, spec.storage_key).path_for(spec.key, partition)
        self.ids = _Ids(partition)
        self.window: dict[str, Any] = {}
        self.descriptions: Mapping[str, Any] = {}
        self.typer: ColumnTyper | None = None
        self.rows = self.pages = 0

    def execute(self) -> tuple[dict[str, Any], _Ids]:
        """Export the partition to its file; returns its metadata and its ids."""
        before, watch = client_stats(self.client), Stopwatch()
        try:
            self.descriptions = self._field_descriptions()
            self._stream(self.client.iter_list(self.spec.method, self.call_params()))
        except dg.Failure:
            raise
        except Exception as exc:
            failure = to_failure(exc, f"{self.spec.name}: the Bitrix24 export of {self.spec.method} failed",
                                 portal=self.portal)  # fmt: skip
            raise failure from (exc if type(exc).__module__.startswith("b24_dagster") else None)
        metadata = self.metadata(before, client_stats(self.client), watch.elapsed)
        self.context.log.info(f"{self.spec.name}: {self.rows} rows in {self.pages} pages -> {self.path}")
        return metadata, self.ids

    def call_params(self) -> dict[str, Any]:
        """The list call's params: the constant ones, the body's, select, and the filter with
        the day's window (`>=` and `<` on the modification field) in an incremental export."""
        spec = self.spec
        params: dict[str, Any] = {**spec.params, **self.extra_params}
        params.pop("filter", None)  # merged below, not replaced
        flt = {**dict(spec.params.get("filter") or {}), **spec.filter,
               **dict(self.extra_params.get("filter") or {}), **self.extra_filter}  # fmt: skip
        if self.day is not None:
            start = datetime.combine(date.fromisoformat(self.day), time(), tzinfo=ZoneInfo(spec.timezone))
            end = start + timedelta(days=1)
            flt[f">={spec.modified_field}"] = start.isoformat()
            flt[f"<{spec.modified_field}"] = end.isoformat()
            self.window = {"window_start": start.isoformat(), "window_end": end.isoformat()}
        if flt:
            params["filter"] = flt
        if spec.select:
            params["select"] = list(spec.select)
        return params

    def _field_descriptions(self) -> Mapping[str, Any]:
        """The `*.fields` answer; empty (string columns) when the portal has no such method."""
        spec = self.spec
        if not spec.fields_method:
            return {}
        from b24_dagster.errors import MethodNotFoundError, NotFoundError

        try:
            return field_descriptions_of(self.client.call(spec.fields_method, dict(spec.fields_params)).result)
        except (MethodNotFoundError, NotFoundError) as exc:
            self.context.log.warning(f"{spec.name}: {spec.fields_method} is not available ({exc}); columns stay strings")
            return {}

    def _stream(self, pages: Any) -> None:
        """Write the pages as row groups of about `rows_per_row_group` rows (an empty export:
        an empty file with the columns' schema)."""
        writer: ParquetStreamWriter | None = None
        buffer: list[Any] = []
        try:
            for page in pages:
                self.pages += 1
                page = self.transform(list(page)) if self.transform is not None else page
                writer = writer or self._open(page)
                buffer.extend(page)
                if len(buffer) >= self.spec.rows_per_row_group:
                    self._write(writer, buffer)
                    buffer = []
                    self.context.log.info(f"{self.spec.name}: {self.rows} rows written ({self.pages} pages)")
            writer = writer or self._open([])
            if buffer:
                self._write(writer, buffer)
            writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise

    def _open(self, first_page: Any) -> ParquetStreamWriter:
        """The file's columns from `select`, or the first page, typed by the descriptions."""
        columns = columns_for(self.spec.select, first_page, self.descriptions)
        self.typer = ColumnTyper(self.descriptions, columns, self.spec.column_types)
        return ParquetStreamWriter(self.path, self.typer.schema).open()

    def _write(self, writer: ParquetStreamWriter, rows: list[Any]) -> None:
        assert self.typer is not None
        table = self.typer.table(rows)
        writer.write(table)
        self.ids.add(table)
        self.rows += len(rows)

    def metadata(self, before: Mapping[str, float], after: Mapping[str, float], seconds: float) -> dict[str, Any]:
        """The materialization's metadata: counts, the client's requests, the file's columns."""
        assert self.typer is not None

        def spent(name: str) -> float:
            return after[name] - before[name]

        schema = self.typer.schema
        metadata: dict[str, Any] = {
            "rows": self.rows,
            "pages": self.pages,
            "unparsed_values": self.typer.unparsed,
            "requests": int(spent("requests")),
            "retries": int(spent("retries")),
            "refusals": int(spent("refused") + spent("blocked")),
            "throttle_wait_seconds": dg.MetadataValue.float(round(spent("throttle_wait_seconds"), 3)),
            "duration_seconds": dg.MetadataValue.float(round(seconds, 3)),
            "rows_per_second": dg.MetadataValue.float(round(self.rows / seconds, 1) if seconds else 0.0),
            "dagster/row_count": self.rows,
            "dagster/column_schema": table_schema_metadata(schema, column_descriptions(self.descriptions, schema.names)),
            "dagster/uri": uri_of(self.path),
            "dagster/table_name": table_name(self.spec.key),
            **self.window,
        }  # fmt: skip
        if self.portal:
            metadata["portal"] = self.portal
        return metadata


class _Ids:
    """Rows and duplicate ids of one exported file, counted as its row groups are written."""

    def __init__(self, partition: Any) -> None:
        self.partition = partition
        self.rows = 0
        self.column: str | None = None
        self.seen: set[Any] = set()
        self.duplicates = 0
        self.examples: list[Any] = []

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        if self.column is None:
            self.column = next((n for n in table.column_names if normalize_name(n) == "id"), "")
        if not self.column:
            return
        for value in pc.drop_null(table[self.column]).to_pylist():
            if value in self.seen:
                self.duplicates += 1
                if len(self.examples) < 10:
                    self.examples.append(value)
            else:
                self.seen.add(value)


def ids_of_file(path: Any, partition: Any) -> _Ids:
    """The rows and duplicate ids of an exported file, read back (only its id column)."""
    ids = _Ids(partition)
    with path.open("rb") as handle:
        parquet = pq.ParquetFile(handle)
        column = next((n for n in parquet.schema_arrow.names if normalize_name(n) == "id"), None)
        if column is None:
            ids.column, ids.rows = "", parquet.metadata.num_rows
            return ids
        for batch in parquet.iter_batches(batch_size=100_000, columns=[column]):
            ids.add(pa.Table.from_batches([batch]))
    return ids


def export_checks(key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    """The export's two checks (`rows_present` WARN, `ids_unique` ERROR and blocking)."""
    return [
        dg.AssetCheckSpec(ROWS_PRESENT_CHECK, asset=key,
                          description="The export has at least one row (WARN: an incremental day may have none)."),
        dg.AssetCheckSpec(IDS_UNIQUE_CHECK, asset=key, blocking=True,
                          description="No id appears twice in an exported file (ERROR, blocking downstream)."),
    ]  # fmt: skip


def export_check_results(key: dg.AssetKey, files: Sequence[_Ids]) -> list[dg.AssetCheckResult]:
    """Both checks' results over the files of a run."""
    rows = sum(f.rows for f in files)
    empty = [str(f.partition) for f in files if f.rows == 0 and f.partition is not None]
    duplicates = sum(f.duplicates for f in files)
    without_id = all(not f.column for f in files)
    examples = [e for f in files for e in f.examples][:10]
    return [
        dg.AssetCheckResult(
            check_name=ROWS_PRESENT_CHECK, asset_key=key, passed=rows > 0 and not empty,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rows": rows, **({"empty_partitions": ", ".join(empty[:20])} if empty else {})},
        ),
        dg.AssetCheckResult(
            check_name=IDS_UNIQUE_CHECK, asset_key=key, passed=duplicates == 0,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"duplicate_ids": duplicates, "id_column": "" if without_id else (files[0].column or ""),
                      **({"examples": ", ".join(map(str, examples))} if examples else {})},
            description="no id column: nothing to compare" if without_id else None,
        ),
    ]  # fmt: skip


_SUMMED = ("rows", "pages", "unparsed_values", "requests", "retries", "refusals", "dagster/row_count")


def combined_metadata(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metadata of a run over several partitions: the counts summed, the last file's rest."""
    if len(parts) == 1:
        return parts[0]
    out = dict(parts[-1])
    for name in _SUMMED:
        out[name] = sum(int(p.get(name, 0)) for p in parts)
    seconds = sum(float(getattr(p["duration_seconds"], "value", 0.0)) for p in parts)
    out["duration_seconds"] = dg.MetadataValue.float(round(seconds, 3))
    out["rows_per_second"] = dg.MetadataValue.float(round(out["rows"] / seconds, 1) if seconds else 0.0)
    out["partitions"] = len(parts)
    for name in ("window_start", "dagster/uri"):
        out.pop(name, None)
    if "window_end" in out:
        out["window_start"] = parts[0].get("window_start")
    return out
