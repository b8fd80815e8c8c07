"""``python -m b24_dagster.bench.replica``: a replica's incremental run against the full export.

One emulated portal (in this process, no rate limit, so that the figures are requests and
this machine's time; the standard plan's time is modelled from the requests: a burst of 50,
then 2 a second), seeded with ``--deals`` deals. Then, in one run of this command:

1. the full export of the deals (the export assets' engine, ``Bitrix24Client.iter_list``);
2. the replica's first run (everything, like the export);
3. ``--changed`` of the deals updated and ``--deleted`` deleted, through the REST API;
4. the replica's incremental run: its requests by step and its wall time, and a check that
   every change and every deletion was found (no deal that exists marked deleted).

Examples::

    python -m b24_dagster.bench.replica                      # 1,000,000 deals, 1% changed, 100 deleted
    python -m b24_dagster.bench.replica --deals 20000 --deleted 10
    python -m b24_dagster.bench.replica --deletions sweep    # the full id sweep instead of counts
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from b24_dagster import Bitrix24Client
from b24_dagster.emulator import PortalEmulator, PortalSettings
from b24_dagster.integration._replica_entities import replica_entity
from b24_dagster.integration._replica_run import ReplicaPaths, ReplicaRun, ReplicaSpec

__all__ = ["main", "run_benchmark"]

SELECT = ("ID", "TITLE", "STAGE_ID", "CATEGORY_ID", "OPPORTUNITY", "CURRENCY_ID", "ASSIGNED_BY_ID",
          "DATE_CREATE", "DATE_MODIFY", "CLOSED")
GOAL_REQUESTS = 80


def standard_plan_seconds(requests: int, rate: float = 2.0, burst: int = 50) -> float:
    """The least time `requests` take on a standard plan's leaky bucket (burst, then `rate`/s)."""
    return max(0.0, (requests - burst) / rate)


def _timed(client: Bitrix24Client, fn: Any) -> tuple[Any, int, float]:
    before, started = client.stats.requests, time.perf_counter()
    value = fn()
    return value, int(client.stats.requests - before), time.perf_counter() - started


def run_benchmark(deals: int, changed: float, deleted: int, *, deletions: str = "counts", seed: int = 7,
                  workdir: Path | None = None) -> dict[str, Any]:
    """Run the scenario (see the module docstring); returns its figures."""
    rnd = random.Random(seed)
    spec = ReplicaSpec(replica_entity("deal"), SELECT, deletions=deletions)
    out: dict[str, Any] = {"deals": deals, "changed": int(deals * changed), "deleted": deleted, "deletions": deletions}
    with PortalEmulator(PortalSettings(rate=0)) as emu, tempfile.TemporaryDirectory(dir=workdir) as tmp:
        started = time.perf_counter()
        emu.portal.seed("deal", deals)
        out["seed_seconds"] = round(time.perf_counter() - started, 1)
        base = UPath(tmp)
        paths = ReplicaPaths(base / "deals.parquet", base / "versions")
        with Bitrix24Client(emu.webhook_url, requests_per_second=None, share_limits=False) as client:
            rows, requests, seconds = _timed(client, lambda: sum(
                len(page) for page in client.iter_list("crm.deal.list", {"select": list(SELECT)})))
            out["full_export"] = {"rows": rows, "requests": requests, "seconds": round(seconds, 2),
                                  "standard_plan_seconds": standard_plan_seconds(requests)}
            meta, requests, seconds = _timed(client, lambda: ReplicaRun(client, spec, paths).execute().metadata)
            out["replica_first_run"] = {"rows": meta["rows"], "requests": requests, "seconds": round(seconds, 2),
                                        "standard_plan_seconds": standard_plan_seconds(requests)}
            ids = list(range(1, deals + 1))
            updated = sorted(rnd.sample(ids, out["changed"]))
            gone = sorted(rnd.sample(sorted(set(ids) - set(updated)), deleted))
            calls = [("crm.deal.update", {"id": i, "fields": {"OPPORTUNITY": 1_000_000 + i}}) for i in updated]
            calls += [("crm.deal.delete", {"id": i}) for i in gone]
            _, requests, seconds = _timed(client, lambda: client.batch_by_chunk(calls).run())
            out["changes_made"] = {"requests": requests, "seconds": round(seconds, 2)}
            commands = emu.portal.stats["commands"]
            meta, requests, seconds = _timed(client, lambda: ReplicaRun(client, spec, paths).execute().metadata)
            steps = {k[len("requests_"):]: v for k, v in meta.items() if k.startswith("requests_")}
            timing = {k[len("seconds_"):]: v for k, v in meta.items() if k.startswith("seconds_")}
            out["replica_incremental_run"] = {
                "requests": requests, "requests_by_step": steps, "seconds": round(seconds, 2),
                "seconds_by_step": timing, "commands": emu.portal.stats["commands"] - commands,
                "standard_plan_seconds": standard_plan_seconds(requests), "rows_read": meta["changed"],
                "deletion_check": meta.get("deletion_check"), "deletion_commands": meta.get("deletion_commands"),
                "new_deletions": meta["new_deletions"], "goal_requests": GOAL_REQUESTS}
        out["verified"] = _verify(paths.current, updated, gone, deals)
    return out


def _verify(path: UPath, updated: Sequence[int], gone: Sequence[int], deals: int) -> dict[str, Any]:
    """Every change read, every deletion marked, nothing else marked."""
    table = pq.read_table(path.path, columns=["ID", "OPPORTUNITY", "_deleted"])
    deleted = set(table.filter(table["_deleted"])["ID"].to_pylist())
    changed = table.filter(pc.greater_equal(table["OPPORTUNITY"], 1_000_000))
    seen = dict(zip(changed["ID"].to_pylist(), changed["OPPORTUNITY"].to_pylist(), strict=True))
    return {"rows": table.num_rows, "deletions_found": deleted == set(gone),
            "changes_found": all(seen.get(i) == 1_000_000 + i for i in updated) and len(seen) == len(updated),
            "none_marked_wrongly": not deleted - set(gone), "ok": deleted == set(gone) and all(
                seen.get(i) == 1_000_000 + i for i in updated) and table.num_rows == deals}


def markdown(result: dict[str, Any]) -> str:
    """The figures as a table."""
    rows = [("full export", result["full_export"]), ("replica, first run", result["replica_first_run"]),
            ("replica, incremental run", result["replica_incremental_run"])]
    lines = [f"{result['deals']:,} deals; {result['changed']:,} changed and {result['deleted']} deleted since the "
             f"last run (deletions found by {result['deletions']})", "",
             "| run | requests | wall time here (s) | standard plan (s) |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {r['requests']} | {r['seconds']} | {r['standard_plan_seconds']:.0f} |" for name, r in rows]
    inc = result["replica_incremental_run"]
    lines += ["", f"incremental run by step: {inc['requests_by_step']} (goal: at most {inc['goal_requests']}); "
              f"{inc['commands']} commands ({inc['deletion_commands']} to find the deletions)",
              f"seconds by step (waiting for the portal; `local`: this process's own work): {inc['seconds_by_step']}",
              f"verified: {result['verified']}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m b24_dagster.bench.replica", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deals", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of the deals updated (default 0.01)")
    parser.add_argument("--deleted", type=int, default=100)
    parser.add_argument("--deletions", choices=("counts", "sweep"), default="counts")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    result = run_benchmark(args.deals, args.changed, args.deleted, deletions=args.deletions)
    print(markdown(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["verified"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
