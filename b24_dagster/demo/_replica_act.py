"""The demo's second act: the portal changes, the replica and dbt see it.

After the pipeline's run, the demo deletes one deal and moves another to the next stage of
its pipeline (through the REST API, as a user would), then materializes the deal replica and
the reference tables again. The replica finds the deletion (`_deleted`) and reads the move;
dbt's views on the replica (built by the pipeline's run) list the deleted deal
(`deleted_deals`) and time the stages (`deal_stage_durations`) as soon as the files change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from b24_dagster import Bitrix24Client

__all__ = ["PortalChange", "REPLICA_SELECTION", "change_the_portal", "replica_summary"]

_REPLICA = ("deals", "deals_history", "deals_stage_history")
_REFERENCE = ("ref_statuses", "ref_categories", "ref_userfield_items", "ref_users", "ref_currencies", "ref_types")
REPLICA_SELECTION = ",".join(f"bitrix24/replica/{name}" for name in (*_REPLICA, *_REFERENCE))
"""The replica and the reference tables (`dagster asset materialize --select`). The dbt models on
them are views, so they show the new files without a dbt run of their own."""

_NEXT_STAGE = {"NEW": "PREPARATION", "PREPARATION": "PREPAYMENT_INVOICE", "PREPAYMENT_INVOICE": "EXECUTING",
               "EXECUTING": "FINAL_INVOICE", "FINAL_INVOICE": "WON"}


@dataclass(frozen=True)
class PortalChange:
    """What the demo changed on the portal."""

    deleted: int
    moved: int
    from_stage: str
    to_stage: str


def change_the_portal(webhook_url: str) -> PortalChange | None:
    """Delete the newest deal and move the oldest open one of the general pipeline a stage on;
    None when the portal has fewer than two such deals."""
    with Bitrix24Client(webhook_url, requests_per_second=None, share_limits=False) as client:
        newest = client.call("crm.deal.list", {"order": {"ID": "DESC"}, "select": ["ID"], "start": -1}).result
        open_deals = client.call("crm.deal.list", {"order": {"ID": "ASC"}, "select": ["ID", "STAGE_ID"], "start": -1,
                                                   "filter": {"CATEGORY_ID": 0, "@STAGE_ID": list(_NEXT_STAGE)}}).result
        if not newest or not open_deals:
            return None
        deleted = int(newest[0]["ID"])
        mover = next((d for d in open_deals if int(d["ID"]) != deleted), None)
        if mover is None:
            return None
        moved, stage = int(mover["ID"]), mover["STAGE_ID"]
        client.call("crm.deal.update", {"id": moved, "fields": {"STAGE_ID": _NEXT_STAGE[stage]}})
        client.call("crm.deal.delete", {"id": deleted})
    return PortalChange(deleted, moved, stage, _NEXT_STAGE[stage])


def replica_summary(base: Path, duckdb_file: Path, change: PortalChange) -> str:
    """What the replica and dbt show of the change."""
    import duckdb
    import pyarrow.parquet as pq

    replica = pq.read_table(base / "bitrix24" / "replica" / "deals.parquet",
                            columns=["ID", "STAGE_ID", "_deleted", "_deleted_at"]).to_pylist()
    rows = {r["ID"]: r for r in replica}
    gone, moved = rows.get(change.deleted, {}), rows.get(change.moved, {})
    lines = [f"The replica (bitrix24/replica/deals.parquet): deal {change.deleted} _deleted={gone.get('_deleted')} "
             f"(found at {gone.get('_deleted_at')}); deal {change.moved} in {moved.get('STAGE_ID')}."]
    with duckdb.connect(str(duckdb_file), read_only=True) as con:
        deleted = con.execute("select deal_id, title from deleted_deals where deal_id = ?", [change.deleted]).fetchall()
        stages = con.execute("select stage_id, seconds_in_stage, is_current_stage from deal_stage_durations "
                             "where deal_id = ? order by first_entered_at", [change.moved]).fetchall()
    lines.append(f"dbt: deleted_deals has {deleted}; deal_stage_durations of deal {change.moved}: {stages}")
    return "\n".join(lines)
