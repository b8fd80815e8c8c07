"""Proof: a *sync* killed with SIGKILL three times, at different points, then run to the end,
leaves every key once on the portal and every row `ok`.

The job is `sigkill_job.py` with `SIGKILL_SYNC=upsert` (800 `crm.lead.add` keyed by
ORIGIN_ID). Nothing is published by a killed run, so each rerun plans again: the rows its
predecessors recorded in their journals are read into the state, the rows whose chunk was
answered but not recorded (or in flight) are found on the portal by key and updated, never
created again. The three points:

- `committed`: the portal committed a write chunk whose answer the killed job never read;
- `in_flight`: a write chunk held by the emulator (a `slow` fault) when the job died, run by
  the portal afterwards;
- `recorded`: just after a chunk's outcome was journaled.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from b24_dagster.emulator._faults import FaultRule, FaultSettings
from b24_dagster.integration import BASE_ENV
from tests.conftest import wait_for
from tests.integration.sigkill_job import ROWS, frame
from tests.integration.test_sigkill_resume import (
    ROOT,
    _held,
    _keys_on_portal,
    _kill,
    _start,
    _wait_for,
)


def _journals(base: Path) -> list[Path]:
    root = base / "bitrix24" / ".row_import.parquet.sync" / "journal"
    return sorted(d for d in root.iterdir() if d.is_dir()) if root.exists() else []


def _parts(base: Path) -> int:
    return sum(1 for d in _journals(base) for p in d.iterdir() if p.name.endswith(".part"))


def test_sync_killed_three_times_then_every_key_once(b24_emulator, tmp_path):
    base, home = tmp_path / "data", tmp_path / "dagster_home"
    home.mkdir()
    env = dict(os.environ, DAGSTER_HOME=str(home), BITRIX24_WEBHOOK_URL=b24_emulator.webhook_url,
               PYTHONPATH=str(ROOT), SIGKILL_JOB_API="2", SIGKILL_SYNC="upsert", **{BASE_ENV: str(base)})  # fmt: skip
    leads = lambda: b24_emulator.counts().get("lead", 0)  # noqa: E731
    evidence = []

    # 1. committed: the portal answers late; kill once 150 leads exist, before more are recorded.
    b24_emulator.configure(latency=0.4)
    proc = _start(env)
    _wait_for(proc, lambda: leads() >= 150, "three chunks committed")
    recorded = _parts(base)
    _kill(proc)
    assert recorded * 50 < leads(), "every committed chunk was recorded: not the point to prove"
    evidence.append(f"committed: {leads()} leads, {recorded} chunks recorded")

    # 2. in flight: every batch is held 1.5 s before it runs; kill while a write chunk is held.
    b24_emulator.configure(latency=0.0)
    b24_emulator.faults.configure(FaultSettings(slow=FaultRule(every=1, delay=1.5, methods=frozenset({"batch"}))))
    logged, parts, before = len(b24_emulator.request_log), _parts(base), leads()
    proc = _start(env)
    _wait_for(proc, lambda: _parts(base) > parts and _held(b24_emulator, logged) > 0, "a write chunk held")
    _kill(proc)
    wait_for(lambda: _held(b24_emulator, logged) == 0, "the held chunk to run after the kill", timeout=5)
    evidence.append(f"in flight: {before} -> {leads()} leads")

    # 3. recorded: kill right after a chunk of the next run was journaled.
    b24_emulator.faults.configure(None)
    b24_emulator.configure(latency=0.2)
    parts = _parts(base)
    proc = _start(env)
    _wait_for(proc, lambda: _parts(base) > parts, "a chunk recorded")
    _kill(proc)
    evidence.append(f"recorded: {leads()} leads")

    b24_emulator.configure(latency=0.0)
    proc = _start(env)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-3000:]

    on_portal = _keys_on_portal(b24_emulator, 2)
    assert on_portal == Counter({key: 1 for key in frame(ROWS)["external_id"]})  # each key once
    table = pq.read_table(base / "bitrix24" / "row_import.parquet")
    assert table["status"].to_pylist() == ["ok"] * ROWS
    assert table["external_id"].to_pylist() == list(frame(ROWS)["external_id"])
    assert not _journals(base)  # settled into the state, then removed
    print("\nsync: " + "; ".join(evidence) + f"; final actions {Counter(table['action'].to_pylist())}")


def test_two_executions_at_once_never_send_twice(b24_emulator, tmp_path):
    """Before: two executions of one asset at once sent everything twice (1,000 leads for 500
    rows). Two processes (own Dagster homes, one base) start together: one runs, the other
    fails at once naming the first, and every key is on the portal once."""
    base = tmp_path / "data"
    b24_emulator.configure(latency=0.3)  # 17 requests: the first holds the lock for about 5 s
    procs = []
    for n in range(2):
        home = tmp_path / f"home{n}"
        home.mkdir()
        env = dict(os.environ, DAGSTER_HOME=str(home), BITRIX24_WEBHOOK_URL=b24_emulator.webhook_url,
                   PYTHONPATH=str(ROOT), SIGKILL_JOB_API="2", SIGKILL_SYNC="upsert", **{BASE_ENV: str(base)})  # fmt: skip
        procs.append(_start(env))
    outcomes = []
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        outcomes.append((proc.returncode, err.decode()))
    assert sorted(rc for rc, _ in outcomes) == [0, 1]
    loser = next(err for rc, err in outcomes if rc == 1)
    assert "another execution of this asset and partition is running" in loser
    assert _keys_on_portal(b24_emulator, 2) == Counter({key: 1 for key in frame(ROWS)["external_id"]})
