"""This project's client in a bench process: writes, the export to typed Parquet, the bare
pipeline of scenario 4."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from b24_dagster import Bitrix24Client

from ._workload import EXPORT_METHOD, EXPORT_SELECT, IdChecker, add_params

__all__ = ["EXPORT_SCHEMA", "run"]

#: The typed columns of the export (dates become timestamps, money a double).
EXPORT_SCHEMA = pa.schema([
    ("id", pa.int64()), ("title", pa.string()), ("stageId", pa.string()),
    ("opportunity", pa.float64()), ("currencyId", pa.string()), ("assignedById", pa.int64()),
    ("createdTime", pa.timestamp("s", tz="UTC")), ("updatedTime", pa.timestamp("s", tz="UTC")),
])
_ROW_GROUP = 10_000


def _client(spec: dict[str, Any]) -> Bitrix24Client:
    rate = spec.get("rate") or None
    return Bitrix24Client(spec["url"], requests_per_second=rate, burst=int(spec.get("burst", 50)),
                          share_limits=False, operating_limit=float(spec.get("operating_limit") or 480.0))


def _status_counts(table: pa.Table) -> dict[str, int]:
    # without pyarrow.compute: its import (a tenth of a second) is no cost of the client
    return dict(Counter(table["status"].to_pylist()))


def writes(spec: dict[str, Any]) -> dict[str, Any]:
    """``crm.item.add`` x n through ``batch_by_chunk`` (``bulk_import=True`` for the bulk
    client: 20 a ``crm.item.batchImport`` call), every outcome as Arrow."""
    from ._scenarios import OURS_BULK

    started = time.time()
    t0 = time.perf_counter()
    with _client(spec) as client:
        calls = [("crm.item.add", p) for p in add_params(spec["tag"], int(spec["n"]))]
        run = client.batch_by_chunk(calls, halt_on_error=False, bulk_import=spec["client"] == OURS_BULK)
        table = run.to_arrow()
        wall = time.perf_counter() - t0
        status = _status_counts(table)
        stats = client.stats
    return {"wall_s": wall, "started_unix": started, "commands": table.num_rows, "ok": status.get("ok", 0),
            "failed": status.get("error", 0) + status.get("not_run", 0),
            "unknown": status.get("unknown", 0), "client_requests": stats.requests,
            "client_refused": stats.refused, "client_retries": stats.retries,
            "client_blocked": stats.blocked, "throttle_wait_s": stats.throttle_wait_seconds,
            "operating_wait_s": stats.operating_wait_seconds,
            "bound_by_operating": int(stats.bound_by == "operating_time")}


def _typed(rows: list[dict[str, Any]]) -> pa.Table:
    import pyarrow.compute as pc

    columns = []
    for f in EXPORT_SCHEMA:
        values = [r.get(f.name) for r in rows]
        if pa.types.is_timestamp(f.type):
            columns.append(pc.cast(pa.array(values, pa.string()), f.type))
        else:
            columns.append(pa.array(values, f.type))
    return pa.Table.from_arrays(columns, schema=EXPORT_SCHEMA)


def export(spec: dict[str, Any]) -> dict[str, Any]:
    """The fast list export, written to typed Parquet one row group per 10,000 rows."""
    import pyarrow.parquet as pq

    out = Path(spec["out_dir"]) / "deals.parquet"
    checker = IdChecker()
    t0 = time.perf_counter()
    buffer: list[dict[str, Any]] = []
    with _client(spec) as client, pq.ParquetWriter(out, EXPORT_SCHEMA) as writer:
        params = {"entityTypeId": 2, "select": EXPORT_SELECT}
        for page in client.iter_list(EXPORT_METHOD, params):
            checker.add([r["id"] for r in page])
            buffer.extend(page)
            if len(buffer) >= _ROW_GROUP:
                writer.write_table(_typed(buffer))
                buffer = []
        if buffer:
            writer.write_table(_typed(buffer))
        requests = client.stats.requests
    wall = time.perf_counter() - t0
    written = pq.ParquetFile(out).metadata.num_rows
    out.unlink()
    return {"wall_s": wall, "rows": checker.rows, "unique": checker.unique,
            "repeated": checker.repeated, "client_requests": requests, "parquet_rows": written}


def pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """Scenario 4 without Dagster: DataFrame -> commands -> chunked batches -> Parquet."""
    import pyarrow.parquet as pq

    from b24_dagster.frames import commands_from_frame

    from ._frame import source_frame

    t0 = time.perf_counter()
    frame = source_frame(spec["tag"], int(spec["n"]))
    commands = commands_from_frame(frame, "crm.item.add", key_column="source_id",
                                   fields={c: c for c in frame.columns if c != "source_id"},
                                   params={"entityTypeId": 2})
    with _client(spec) as client:
        table = commands.with_results(
            client.batch_by_chunk(commands.calls, halt_on_error=False).to_arrow())
    out = Path(spec["out_dir"]) / "bare.parquet"
    pq.write_table(table, out)
    wall = time.perf_counter() - t0
    rows = pq.ParquetFile(out).metadata.num_rows
    out.unlink()
    return {"wall_s": wall, "rows": rows}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Dispatch on ``spec["task"]``."""
    return {"writes": writes, "export": export, "pipeline": pipeline}[spec["task"]](spec)
