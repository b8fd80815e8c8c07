"""The replica's current-state file: its columns, its embedded state, its merge.

One Parquet file per replica (and portal), sorted by id: the typed columns of the export and
four system columns,

| column          | type                    | meaning                                          |
|-----------------|-------------------------|--------------------------------------------------|
| `_deleted`      | bool                    | the portal no longer has the record              |
| `_deleted_at`   | timestamp[us, UTC]      | the portal's clock of the run that found it gone |
| `_out_of_scope` | bool                    | it exists, but left the replica's filter         |
| `_synced_at`    | timestamp[us, UTC]      | the portal's clock of the run that last changed the row |

The run's state (high-water mark, the probe's answers, the version) travels inside the file,
as Parquet key-value metadata, so the table and the state it was built from are published
together by one atomic rename (`ParquetStreamWriter`): a run that dies leaves both as they
were, and its rerun starts from them.

A run writes the new version by streaming the old file batch by batch and merging, in id
order, the rows it fetched (a patch table, small) and the ids it found deleted: memory holds
one batch of the old file and the patch, never the whole table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from b24_dagster.integration._parquet import iter_parquet_batches

__all__ = [
    "DELETED",
    "DELETED_AT",
    "OUT_OF_SCOPE",
    "STATE_KEY",
    "SYNCED_AT",
    "SYSTEM_COLUMNS",
    "TIMESTAMP",
    "data_schema",
    "merge_into",
    "read_state",
    "read_status",
    "replica_schema",
    "system_columns_for",
]

DELETED, DELETED_AT, OUT_OF_SCOPE, SYNCED_AT = "_deleted", "_deleted_at", "_out_of_scope", "_synced_at"
SYSTEM_COLUMNS = (DELETED, DELETED_AT, OUT_OF_SCOPE, SYNCED_AT)
TIMESTAMP = pa.timestamp("us", tz="UTC")
STATE_KEY = b"b24_dagster.replica"
_BATCH_ROWS = 65_536


def replica_schema(data: pa.Schema, state: Mapping[str, Any] | None = None) -> pa.Schema:
    """The file's schema: the data columns, the system columns, and the state as metadata."""
    fields = [*data, pa.field(DELETED, pa.bool_()), pa.field(DELETED_AT, TIMESTAMP),
              pa.field(OUT_OF_SCOPE, pa.bool_()), pa.field(SYNCED_AT, TIMESTAMP)]
    metadata = {STATE_KEY: json.dumps(state or {}, sort_keys=True, default=str).encode()}
    return pa.schema(fields, metadata=metadata)


def data_schema(schema: pa.Schema) -> pa.Schema:
    """The data columns of a replica file's schema (no system columns, no metadata)."""
    return pa.schema([f for f in schema if f.name not in SYSTEM_COLUMNS])


def system_columns_for(rows: int, *, deleted: bool = False, out_of_scope: bool | np.ndarray = False,
                       synced_at: datetime | None = None) -> dict[str, pa.Array]:
    """The system columns of `rows` fetched rows (live, or out of scope where the mask says)."""
    oos = np.asarray(out_of_scope) if isinstance(out_of_scope, np.ndarray) else np.full(rows, out_of_scope)
    stamp = pa.nulls(rows, TIMESTAMP) if synced_at is None else pa.array(
        np.full(rows, int(synced_at.timestamp() * 1_000_000), dtype=np.int64)).cast(TIMESTAMP)
    return {
        DELETED: pa.array(np.full(rows, deleted), pa.bool_()),
        DELETED_AT: pa.nulls(rows, TIMESTAMP),
        OUT_OF_SCOPE: pa.array(oos, pa.bool_()),
        SYNCED_AT: stamp,
    }


def read_state(path: UPath) -> dict[str, Any] | None:
    """The state embedded in a replica file (None: no file, or not a replica's)."""
    try:
        with path.open("rb") as handle:
            schema = pq.read_schema(handle)
    except (FileNotFoundError, OSError):
        return None
    raw = (schema.metadata or {}).get(STATE_KEY)
    if raw is None:
        return None
    state = json.loads(raw)
    state["_schema"] = data_schema(schema)
    return state  # type: ignore[no-any-return]


def read_status(path: UPath, id_column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, deleted, out of scope) of every row of a replica file, in id order."""
    with path.open("rb") as handle:
        table = pq.read_table(handle, columns=[id_column, DELETED, OUT_OF_SCOPE])
    ids = table[id_column].to_numpy(zero_copy_only=False).astype(np.int64)
    deleted = table[DELETED].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    oos = table[OUT_OF_SCOPE].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    return ids, deleted, oos


def _batches(path: UPath | None) -> Iterator[pa.Table]:
    if path is None:
        return
    for batch in iter_parquet_batches(path, batch_size=_BATCH_ROWS):
        yield pa.Table.from_batches([batch])


def _mark_deleted(table: pa.Table, ids: np.ndarray, gone: np.ndarray, now: datetime) -> tuple[pa.Table, int]:
    """Set `_deleted` (and `_deleted_at`, `_synced_at`) on the rows of `gone` not yet deleted."""
    was = table[DELETED].fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    mask = np.isin(ids, gone) & ~was
    if not mask.any():
        return table, 0
    hit = pa.array(mask)
    stamp = pa.scalar(now, TIMESTAMP)
    for name, value in ((DELETED, pa.scalar(True)), (DELETED_AT, stamp), (SYNCED_AT, stamp)):
        column = table[name]
        table = table.set_column(table.schema.get_field_index(name), name, pc.if_else(hit, value, column))
    return table, int(mask.sum())


def merge_into(writer: Any, current: UPath | None, patch: pa.Table, gone: np.ndarray, now: datetime,
               id_column: str) -> dict[str, int]:
    """Write the merge of the `current` file, the `patch` rows (they replace the rows of their
    ids) and the `gone` ids (marked deleted) to `writer`, in id order; returns counts.

    Args:
        writer: an open `ParquetStreamWriter` with the replica's schema.
        current: the current file, or None (the patch is the whole table).
        patch: full-schema rows sorted by id, each id once.
        gone: the ids the portal no longer has (sorted).
        now: the run's time (the portal's clock).
        id_column: the id column.
    """
    patch_ids = patch[id_column].to_numpy(zero_copy_only=False).astype(np.int64)
    pos = 0
    counts = {"rows": 0, "newly_deleted": 0, "replaced": 0}
    for table in _batches(current):
        if table.num_rows == 0:
            continue
        table = table.cast(writer.schema)
        ids = table[id_column].to_numpy(zero_copy_only=False).astype(np.int64)
        end = int(np.searchsorted(patch_ids, ids[-1], side="right"))
        fresh = patch.slice(pos, end - pos)
        if fresh.num_rows:
            replaced = np.isin(ids, patch_ids[pos:end])
            counts["replaced"] += int(replaced.sum())
            table = table.filter(pa.array(~replaced))
            ids = ids[~replaced]
        pos = end
        if len(ids):
            first, last = np.searchsorted(gone, ids[0], "left"), np.searchsorted(gone, ids[-1], "right")
            if last > first:
                table, marked = _mark_deleted(table, ids, gone[first:last], now)
                counts["newly_deleted"] += marked
        merged = pa.concat_tables([table, fresh.cast(writer.schema)]).sort_by(id_column) if fresh.num_rows else table
        writer.write(merged)
        counts["rows"] += merged.num_rows
    rest = patch.slice(pos)
    if rest.num_rows:
        writer.write(rest.cast(writer.schema))
        counts["rows"] += rest.num_rows
    return counts
