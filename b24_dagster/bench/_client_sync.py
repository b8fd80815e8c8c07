"""Scenario 6, the sync: one keyed table synced three times through the Dagster asset.

Run 1 creates every row; run 2 follows a change to 1% of the rows; run 3 follows no change;
run 4 follows the loss of the sync state (its folder deleted): every row is read from the
portal and compared, and none needs a write.
Each run is one materialization of `build_bitrix24_batch_asset` (sync `upsert` by `originId`)
with an ephemeral instance in this process; the figures of each run come from its metadata
(requests the client sent, writes planned, wall time). Two clients: `b24-dagster sync`
trusts the sync state for rows applied before, `b24-dagster sync (checked)` looks every row
up on the portal (`check_portal`).

A peer has no sync: its "re-run" is sending every row again (`resend`, fast_bitrix24 here),
which the harness sees as duplicates on the portal.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from b24_dagster.integration import Bitrix24Resource, Bitrix24Storage, build_bitrix24_batch_asset

from ._scenarios import SYNC_CHECKED as CHECKED
from ._workload import ENTITY_TYPE_ID, add_fields

__all__ = ["run"]
CHANGED_SHARE = 0.01


def _frame(tag: str, n: int) -> pd.DataFrame:
    rows = [add_fields(tag, i) for i in range(n)]
    frame = pd.DataFrame(rows)
    frame.insert(0, "key", [f"{tag}-{i}" for i in range(n)])
    return frame


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Four materializations; `r1_*` ... `r4_*` figures of each."""
    n = int(spec["n"])
    state = {"frame": _frame(spec["tag"], n)}
    asset = build_bitrix24_batch_asset(
        name="bench_sync", method="crm.item.add", source=lambda _context: state["frame"],
        fields={c: c for c in state["frame"].columns if c != "key"}, key_column="key",
        params={"entityTypeId": ENTITY_TYPE_ID}, check_portal=spec["client"] == CHECKED,
        failure_rate_threshold=1.0)  # fmt: skip
    resources = {
        "bitrix24": Bitrix24Resource(webhook_url=spec["url"], requests_per_second=spec.get("rate") or None,
                                     burst=int(spec.get("burst", 50)), share_limits=False),
        "bitrix24_storage": Bitrix24Storage(base_path=str(Path(spec["out_dir"]) / "sync")),
    }  # fmt: skip
    out: dict[str, Any] = {}
    t_all = time.perf_counter()
    with dg.DagsterInstance.ephemeral() as instance:
        for number in (1, 2, 3, 4):
            if number == 4:  # the state is lost (deleted, or a run from another base)
                shutil.rmtree(Path(spec["out_dir"]) / "sync" / "bitrix24" / ".bench_sync.parquet.sync")
            if number == 2:  # 1% of the rows change one field
                frame = state["frame"].copy()
                step = int(1 / CHANGED_SHARE)
                frame.loc[::step, "opportunity"] = frame.loc[::step, "opportunity"] + 1
                state["frame"] = frame
            t0 = time.perf_counter()
            result = dg.materialize([asset], resources=resources, instance=instance, raise_on_error=False)
            out[f"r{number}_wall_s"] = time.perf_counter() - t0
            if not result.success:
                out["error"] = f"run {number} failed"
                break
            meta = {k: getattr(v, "value", v) for k, v in
                    result.get_asset_materialization_events()[0].materialization.metadata.items()}  # fmt: skip
            out[f"r{number}_requests"] = int(meta["requests"])
            out[f"r{number}_writes"] = int(meta["writes_planned"])
            out[f"r{number}_lookup_requests"] = int(meta["lookup_requests"])
            out[f"r{number}_ok"] = int(meta["ok"])
    out["wall_s"] = time.perf_counter() - t_all
    if "r2_requests" in out and out.get("r1_requests"):
        out["r2_over_r1_requests"] = out["r2_requests"] / out["r1_requests"]
    return out
