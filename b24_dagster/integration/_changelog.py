"""A record of every change a sync made: the changelog and the runs table, beside the results.

Two Parquet tables per sync asset, one file per run (and partition), so that a run appends
without rewriting what others wrote, and a glob reads the whole history:

    <base>/<asset>.changelog/run_id=<run>/<partition or "all">.parquet   one row per written field
    <base>/<asset>.runs/run_id=<run>/<partition or "all">.parquet        one row per run

A changelog row: the run, asset, partition, key, portal id, action (`create`, `update`,
`drift` when the portal had moved and the source had not, `delete`), field, old and new value
(text; lists as JSON), the outcome (`ok`, `error`, `unknown`, `not_run`) and its error, and
when. The writes of a run that died are logged by the run that settles its journal, under the
dead run's id. dbt reads both as sources (`dbt_examples/models/sources.yml`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from upath import UPath

from b24_dagster.integration._parquet import ParquetStreamWriter, uri_of

__all__ = ["CHANGELOG_SCHEMA", "RUNS_SCHEMA", "Changelog", "ChangeRow"]

_TS = pa.timestamp("us", tz="UTC")
CHANGELOG_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("asset", pa.string()), ("partition", pa.string()), ("key", pa.string()),
    ("portal_id", pa.int64()), ("action", pa.string()), ("field", pa.string()), ("old_value", pa.string()),
    ("new_value", pa.string()), ("status", pa.string()), ("error", pa.string()), ("changed_at", _TS),
])  # fmt: skip
RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("asset", pa.string()), ("partition", pa.string()), ("mode", pa.string()),
    ("dry_run", pa.bool_()), ("started_at", _TS), ("finished_at", _TS), ("duration_seconds", pa.float64()),
    ("rows", pa.int64()), ("created", pa.int64()), ("updated", pa.int64()), ("unchanged", pa.int64()),
    ("deleted", pa.int64()), ("drift", pa.int64()), ("invalid", pa.int64()), ("skipped", pa.int64()),
    ("ambiguous", pa.int64()), ("failed", pa.int64()), ("fields_changed", pa.int64()),
    ("lookup_requests", pa.int64()), ("requests", pa.int64()),
])  # fmt: skip


@dataclass(frozen=True)
class ChangeRow:
    """One written field of one row, with the row's outcome."""

    key: str
    portal_id: int | None
    action: str
    field: str | None
    old: str | None
    new: str | None
    status: str
    error: str | None = None


class Changelog:
    """Where one sync asset's changelog and runs table live, and their writers.

    Args:
        asset_file: The unpartitioned results file of the asset (`<base>/<asset>.parquet`).
        asset: The asset key, as text.
        partition: The partition key, or None.
    """

    def __init__(self, asset_file: UPath, asset: str, partition: str | None) -> None:
        stem = asset_file.name.removesuffix(".parquet")
        self.changes_root = asset_file.with_name(f"{stem}.changelog")
        self.runs_root = asset_file.with_name(f"{stem}.runs")
        self.asset = asset
        self.partition = partition

    def _file(self, root: UPath, run_id: str) -> UPath:
        name = "all" if self.partition is None else "".join(c if c.isalnum() or c in "-_.=" else "_"
                                                             for c in self.partition)  # fmt: skip
        return root / f"run_id={run_id}" / f"{name}.parquet"

    def write_changes(self, run_id: str, rows: Iterable[ChangeRow]) -> tuple[UPath, int]:
        """Write one run's changes (one file, replaced if that run wrote it before); the path and
        the number of rows. Nothing is written when there are none."""
        now = dt.datetime.now(dt.UTC)
        records = [{"run_id": run_id, "asset": self.asset, "partition": self.partition, "key": r.key,
                    "portal_id": r.portal_id, "action": r.action, "field": r.field, "old_value": r.old,
                    "new_value": r.new, "status": r.status, "error": r.error, "changed_at": now} for r in rows]  # fmt: skip
        path = self._file(self.changes_root, run_id)
        if records:
            _write(path, pa.Table.from_pylist(records, schema=CHANGELOG_SCHEMA))
        return path, len(records)

    def write_run(self, run_id: str, row: Mapping[str, Any]) -> UPath:
        """Write the run's row of the runs table."""
        record = {"run_id": run_id, "asset": self.asset, "partition": self.partition, **row}
        path = self._file(self.runs_root, run_id)
        _write(path, pa.Table.from_pylist([record], schema=RUNS_SCHEMA))
        return path

    def uris(self) -> dict[str, str]:
        """The two tables' folders, for metadata."""
        return {"changelog_uri": uri_of(self.changes_root), "runs_uri": uri_of(self.runs_root)}


def _write(path: UPath, table: pa.Table) -> None:
    with ParquetStreamWriter(path, table.schema) as writer:
        writer.write(table)
