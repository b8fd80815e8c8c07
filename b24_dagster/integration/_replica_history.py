"""A replica's history (`history=True`): every version seen, and every stage move.

**Versions** (`<name>_history`): one row per version of a record the replica has seen, with
`_valid_from` (the record's modification time in that version), `_valid_to` (the next
version's `_valid_from`, or the run's time when the record was found deleted; null while
current), `_deleted` (the version ended with the record's deletion), `_hash` (of the data
columns) and `_synced_at`. A fetched row becomes a new version only when its data differ from
the open version's: so a rerun after a crash, or the overlap of two runs, never adds a version
twice. Versions between two runs are not seen (a record changed twice between runs has one
new version); the stage moves below are complete.

**Stage moves** (`<name>_stage_history`): the rows of `crm.stagehistory.list` (deals, leads,
smart processes), read by `>ID` cursor from the highest `ID` the file holds, so a move made
between two runs is never lost, and none is read twice.

Both files are published like the current table (atomically, by `ParquetStreamWriter`), and
before it: the current table's state is what a rerun starts from, and both merges are
idempotent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from b24_dagster.integration._parquet import ParquetStreamWriter, iter_parquet_batches
from b24_dagster.integration._replica_table import TIMESTAMP
from b24_dagster.integration._typing import ColumnTyper

__all__ = ["HASH", "VALID_FROM", "VALID_TO", "append_stage_moves", "record_versions", "stage_schema"]

VALID_FROM, VALID_TO, HASH = "_valid_from", "_valid_to", "_hash"
_VERSION_DELETED, _SYNCED = "_deleted", "_synced_at"


def _tables(path: UPath) -> Iterator[pa.Table]:
    """The file's rows, a batch at a time (nothing when it does not exist yet)."""
    if path.exists():
        for batch in iter_parquet_batches(path, batch_size=65_536):
            yield pa.Table.from_batches([batch])


def _history_schema(data: pa.Schema) -> pa.Schema:
    return pa.schema([*data, pa.field(VALID_FROM, TIMESTAMP), pa.field(VALID_TO, TIMESTAMP),
                      pa.field(_VERSION_DELETED, pa.bool_()), pa.field(HASH, pa.string()),
                      pa.field(_SYNCED, TIMESTAMP)])


def _hashes(data: pa.Table) -> list[str]:
    return [hashlib.sha1(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:20]
            for row in data.to_pylist()]


def _open_versions(path: UPath, id_column: str) -> dict[int, str]:
    """id -> hash of each record's open version."""
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        table = pq.read_table(handle, columns=[id_column, VALID_TO, HASH])
    table = table.filter(pc.is_null(table[VALID_TO]))
    return dict(zip(table[id_column].to_pylist(), table[HASH].to_pylist(), strict=True))


def record_versions(path: UPath, data: pa.Schema, patch: pa.Table, gone: np.ndarray, now: datetime, *,
                    id_column: str, modified_column: str | None) -> dict[str, int]:
    """Add the patch's new versions and close the versions they (and the `gone` ids) end.

    Args:
        path: the history file.
        data: the replica's data columns.
        patch: the rows the run fetched (full replica schema).
        gone: ids found deleted in this run.
        now: the run's time (the portal's clock).
        id_column, modified_column: the id and the modification time columns.
    """
    schema = _history_schema(data)
    rows = patch.select(data.names)
    hashes = _hashes(rows)
    open_versions = _open_versions(path, id_column)
    ids = rows[id_column].to_pylist()
    new_mask = [open_versions.get(i) != h for i, h in zip(ids, hashes, strict=True)]
    fresh = rows.filter(pa.array(new_mask))
    modified = fresh[modified_column] if modified_column in fresh.column_names else None
    starts = [m if m is not None else now for m in (modified.to_pylist() if modified is not None
                                                    and pa.types.is_timestamp(modified.type) else [None] * fresh.num_rows)]
    closes: dict[int, tuple[datetime, bool]] = {i: (s, False) for i, s in zip(fresh[id_column].to_pylist(), starts, strict=True)
                                                if i in open_versions}
    closes.update({int(i): (now, True) for i in gone.tolist() if int(i) in open_versions})
    with ParquetStreamWriter(path, schema) as writer:
        for table in _tables(path):
            writer.write(_close(table.cast(schema), closes, id_column))
        if fresh.num_rows:
            extra = {VALID_FROM: pa.array(starts, TIMESTAMP), VALID_TO: pa.nulls(fresh.num_rows, TIMESTAMP),
                     _VERSION_DELETED: pa.array([False] * fresh.num_rows), HASH: pa.array(
                         [h for h, keep in zip(hashes, new_mask, strict=True) if keep], pa.string()),
                     _SYNCED: pa.array([now] * fresh.num_rows, TIMESTAMP)}
            writer.write(pa.table({**{n: fresh[n] for n in data.names}, **extra}, schema=schema))
    return {"versions_added": fresh.num_rows, "versions_closed": len(closes)}


def _close(table: pa.Table, closes: Mapping[int, tuple[datetime, bool]], id_column: str) -> pa.Table:
    """Set `_valid_to` (and `_deleted`) on the open versions of the ids in `closes`."""
    if not closes or table.num_rows == 0:
        return table
    ids = table[id_column].to_pylist()
    open_ = pc.is_null(table[VALID_TO]).to_pylist()
    hits = [o and i in closes for i, o in zip(ids, open_, strict=True)]
    if not any(hits):
        return table
    ends = [closes[i][0] if h else None for i, h in zip(ids, hits, strict=True)]
    deleted = [closes[i][1] if h else None for i, h in zip(ids, hits, strict=True)]
    mask = pa.array(hits)
    table = table.set_column(table.schema.get_field_index(VALID_TO), VALID_TO,
                             pc.if_else(mask, pa.array(ends, TIMESTAMP), table[VALID_TO]))
    return table.set_column(table.schema.get_field_index(_VERSION_DELETED), _VERSION_DELETED,
                            pc.if_else(mask, pa.array(deleted, pa.bool_()), table[_VERSION_DELETED]))


_STAGE_TYPES = {"ID": pa.int64(), "TYPE_ID": pa.int64(), "OWNER_ID": pa.int64(), "CREATED_TIME": TIMESTAMP,
                "CATEGORY_ID": pa.int64()}


def stage_schema(lead: bool) -> pa.Schema:
    """The columns of a stage-move file (leads say STATUS where the others say STAGE)."""
    names = ["ID", "TYPE_ID", "OWNER_ID", "CREATED_TIME"] + (
        ["STATUS_SEMANTIC_ID", "STATUS_ID"] if lead else ["CATEGORY_ID", "STAGE_SEMANTIC_ID", "STAGE_ID"])
    return pa.schema([pa.field(n, _STAGE_TYPES.get(n, pa.string())) for n in names] + [pa.field(_SYNCED, TIMESTAMP)])


def stage_cursor(path: UPath) -> int:
    """The highest move id the file holds (0: none)."""
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        ids = pq.read_table(handle, columns=["ID"])["ID"]
    top = pc.max(ids).as_py()
    return int(top) if top is not None else 0


def append_stage_moves(client: Any, path: UPath, entity_type_id: int, now: datetime) -> dict[str, int]:
    """Read the moves after the file's cursor and publish the file with them appended."""
    schema = stage_schema(entity_type_id == 1)
    cursor = stage_cursor(path)
    typer = ColumnTyper({}, [f.name for f in schema if f.name != _SYNCED],
                        {f.name: f.type for f in schema if f.name != _SYNCED})
    params = {"entityTypeId": entity_type_id, "filter": {">ID": cursor},
              "select": [f.name for f in schema if f.name != _SYNCED]}
    new_rows = 0
    with ParquetStreamWriter(path, schema) as writer:
        for table in _tables(path):
            writer.write(table.cast(schema))
        for page in client.iter_list("crm.stagehistory.list", params, api_version=2):
            table = typer.table(page)
            table = table.append_column(_SYNCED, pa.array([now] * table.num_rows, TIMESTAMP))
            writer.write(table)
            new_rows += table.num_rows
    return {"stage_moves_added": new_rows, "stage_moves_cursor": cursor}

