"""A property of replicas, on the emulator over HTTP: after every run, each replica equals the
portal row by row.

Rounds of random creates, updates, stage moves, reassignments (records entering and leaving a
filter) and deletions, each followed by a run of two replicas of the deals: one with a filter
(`@ASSIGNED_BY_ID` in 1..3) and one without (with history). After every run:

- every record the portal shows within the filter is live in the replica, with the portal's
  values (typed as the replica types them);
- every replica row whose record the portal no longer has is `_deleted`, and no row whose
  record exists is;
- every record that left the filter is `_out_of_scope`, with its current values;
- the stage-move file holds every move the portal recorded, once.

The default suite runs 50 rounds on a few hundred deals; the `slow` variant 50 rounds on
5,000 deals with more changes per round.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from upath import UPath

from b24_dagster import Bitrix24Client
from b24_dagster.integration._replica_entities import replica_entity
from b24_dagster.integration._replica_run import ReplicaPaths, ReplicaRun, ReplicaSpec
from b24_dagster.integration._replica_table import SYSTEM_COLUMNS
from b24_dagster.integration._typing import ColumnTyper

SELECT = ("ID", "TITLE", "STAGE_ID", "CATEGORY_ID", "OPPORTUNITY", "ASSIGNED_BY_ID", "DATE_MODIFY")
INSIDE = (1, 2, 3)
STAGES = ("NEW", "PREPARATION", "EXECUTING", "WON", "LOSE")


def _portal_deals(client: Bitrix24Client) -> dict[int, dict[str, Any]]:
    return {int(r["ID"]): r for page in client.iter_list("crm.deal.list", {"select": list(SELECT)}) for r in page}


def _replica(path: UPath) -> dict[int, dict[str, Any]]:
    return {int(r["ID"]): r for r in pq.read_table(path.path).to_pylist()}


def _mutate(client: Bitrix24Client, rnd: random.Random, known: list[int], changes: int) -> None:
    """`changes` random writes (about a fifth each: create, update, stage move, reassign, delete)."""
    calls = []
    for _ in range(changes):
        kind = rnd.choice(("create", "update", "move", "reassign", "delete"))
        if kind == "create" or not known:
            calls.append(("crm.deal.add", {"fields": {"TITLE": f"new {rnd.random():.6f}",
                                                      "ASSIGNED_BY_ID": rnd.randint(1, 6)}}))
            continue
        deal = rnd.choice(known)
        if kind == "update":
            calls.append(("crm.deal.update", {"id": deal, "fields": {"OPPORTUNITY": rnd.randint(1, 10_000)}}))
        elif kind == "move":
            calls.append(("crm.deal.update", {"id": deal, "fields": {"STAGE_ID": rnd.choice(STAGES)}}))
        elif kind == "reassign":
            calls.append(("crm.deal.update", {"id": deal, "fields": {"ASSIGNED_BY_ID": rnd.randint(1, 6)}}))
        else:   # now and then the newest record: above the highest id the portal still shows
            deal = max(known) if rnd.random() < 0.3 else deal
            calls.append(("crm.deal.delete", {"id": deal}))
            known.remove(deal)
    run = client.batch_by_chunk(calls, halt_on_error=False).run()
    for command, call in zip(run.to_arrow().to_pylist(), calls, strict=True):
        if call[0] == "crm.deal.add" and command["status"] == "ok":
            known.append(int(command["result"]))


def _check(client: Bitrix24Client, filtered: UPath, whole: UPath, stages: UPath, typer: ColumnTyper) -> None:
    portal = _portal_deals(client)
    typed = {int(r["ID"]): r for r in typer.table(list(portal.values())).to_pylist()}
    for path, inside in ((filtered, lambda r: r["ASSIGNED_BY_ID"] in INSIDE), (whole, lambda r: True)):
        replica = _replica(path)
        for id_, row in typed.items():
            if inside(row):
                got = replica.get(id_)
                assert got is not None and not got["_deleted"] and not got["_out_of_scope"], (path.name, id_)
                assert {k: v for k, v in got.items() if k not in SYSTEM_COLUMNS} == row, (path.name, id_)
        for id_, got in replica.items():
            if id_ not in portal:
                assert got["_deleted"], (path.name, id_, "gone but not marked")
            else:
                assert not got["_deleted"], (path.name, id_, "marked deleted but exists")
                if not inside(typed[id_]):
                    assert got["_out_of_scope"], (path.name, id_, "left the filter but not marked")
                    assert {k: v for k, v in got.items() if k not in SYSTEM_COLUMNS} == typed[id_]
    moves = [m["ID"] for page in client.iter_list("crm.stagehistory.list", {"entityTypeId": 2}) for m in page]
    kept = pq.read_table(stages.path, columns=["ID"])["ID"].to_pylist()
    assert sorted(kept) == moves and len(set(kept)) == len(kept)


def _run_rounds(emulator: Any, tmp: UPath, *, seed_deals: int, rounds: int, changes: int) -> dict[str, int]:
    emulator.portal.seed("deal", seed_deals)
    rnd = random.Random(20250101)
    deal = replica_entity("deal")
    filtered = ReplicaSpec(deal, SELECT, {"@ASSIGNED_BY_ID": list(INSIDE)})
    whole = ReplicaSpec(deal, SELECT, history=True)
    paths_f = ReplicaPaths(tmp / "filtered.parquet", tmp / "versions" / "filtered")
    paths_w = ReplicaPaths(tmp / "whole.parquet", tmp / "versions" / "whole", tmp / "whole_history.parquet",
                           tmp / "whole_stages.parquet")
    totals = {"deleted": 0, "out_of_scope": 0, "requests": 0}
    with Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False) as client:
        known = list(range(1, seed_deals + 1))
        typer = None
        for round_ in range(rounds + 1):
            if round_:
                _mutate(client, rnd, known, changes)
            for spec, paths in ((filtered, paths_f), (whole, paths_w)):
                meta = ReplicaRun(client, spec, paths).execute().metadata
                totals["requests"] += meta["requests"]
            if typer is None:
                schema = pq.read_schema(paths_w.current.path)
                typer = ColumnTyper({}, list(SELECT), {n: schema.field(n).type for n in SELECT})
            _check(client, paths_f.current, paths_w.current, paths_w.stages, typer)  # type: ignore[arg-type]
        status = pq.read_table(paths_f.current.path, columns=["_deleted", "_out_of_scope"])
        totals["deleted"] = int(np.sum(status["_deleted"].to_numpy()))
        totals["out_of_scope"] = int(np.sum(status["_out_of_scope"].to_numpy()))
    return totals


def test_fifty_rounds_of_random_changes_keep_each_replica_equal_to_the_portal(b24_emulator, tmp_path) -> None:
    totals = _run_rounds(b24_emulator, UPath(tmp_path), seed_deals=400, rounds=50, changes=8)
    # the rounds did exercise what they check
    assert totals["deleted"] >= 20 and totals["out_of_scope"] >= 10


@pytest.mark.slow
def test_fifty_rounds_on_five_thousand_deals(b24_emulator, tmp_path) -> None:
    totals = _run_rounds(b24_emulator, UPath(tmp_path), seed_deals=5_000, rounds=50, changes=60)
    assert totals["deleted"] >= 150 and totals["out_of_scope"] >= 50
