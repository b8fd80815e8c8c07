"""Scenario 4 through Dagster: ``build_bitrix24_batch_asset`` materialized with an ephemeral
instance in this process (the in-process executor), DataFrame in, Parquet results out."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.parquet as pq

from b24_dagster.integration import (
    Bitrix24Resource,
    Bitrix24Storage,
    build_bitrix24_batch_asset,
)

from ._frame import source_frame

__all__ = ["run"]


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Materialize the batch asset once; the wall time includes Dagster's own work."""
    t0 = time.perf_counter()
    frame = source_frame(spec["tag"], int(spec["n"]))
    asset = build_bitrix24_batch_asset(
        name="bench_deals", method="crm.item.add", source=lambda _context: frame,
        fields={c: c for c in frame.columns if c != "source_id"}, key_column="source_id",
        params={"entityTypeId": 2})
    base = Path(spec["out_dir"]) / "dagster"
    result = dg.materialize(
        [asset],
        resources={
            "bitrix24": Bitrix24Resource(webhook_url=spec["url"], requests_per_second=None,
                                         share_limits=False),
            "bitrix24_storage": Bitrix24Storage(base_path=str(base)),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    wall = time.perf_counter() - t0
    files = sorted(base.rglob("*.parquet"))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    for f in files:
        f.unlink()
    out: dict[str, Any] = {"wall_s": wall, "rows": rows}
    if not result.success:
        out["error"] = "the Dagster run failed"
    return out
