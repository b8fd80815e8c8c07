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
import signal
import subprocess
import sys
import time
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


# -- the audit's cases (issue 22): each of these sent records twice or lost them before --------


def _env(emulator, tmp_path: Path, name: str, **extra: str) -> dict[str, str]:
    home = tmp_path / f"home-{name}"
    home.mkdir(exist_ok=True)
    return dict(os.environ, DAGSTER_HOME=str(home), BITRIX24_WEBHOOK_URL=emulator.webhook_url, PYTHONPATH=str(ROOT),
                SIGKILL_JOB_API="2", SIGKILL_SYNC="upsert", **{BASE_ENV: str(tmp_path / "data")}, **extra)  # fmt: skip


def _finish(proc, timeout: float = 120) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err.decode()


def test_two_assets_sharing_keys_never_send_twice_the_second_fails_or_waits(b24_emulator, tmp_path):
    """Before: the lock was per asset and partition, so two assets syncing the same 800 keys
    into leads ran at once and both created them (the audit: 2,000 records for 1,000 keys).
    Now each holds the lock of the key space (portal, crm.lead, ORIGIN_ID). The first is
    paused mid-run (SIGSTOP, so that the others surely meet it): a second asset fails at once
    naming it; a third, with lock_wait_seconds, waits (and says so), then finds every record
    and creates none."""
    b24_emulator.configure(latency=0.2)
    first = _start(_env(b24_emulator, tmp_path, "first", SIGKILL_ASSET="row_import"))
    try:
        _wait_for(first, lambda: _parts(tmp_path / "data") >= 2, "the first asset to record two chunks")
        os.kill(first.pid, signal.SIGSTOP)
        logs = {name: tmp_path / f"{name}.log" for name in ("second", "third")}
        procs = {}
        for name, wait in (("second", "0"), ("third", "120")):
            with open(logs[name], "wb") as out:
                env = _env(b24_emulator, tmp_path, name, SIGKILL_ASSET=f"row_{name}", SIGKILL_LOCK_WAIT=wait)
                procs[name] = subprocess.Popen([sys.executable, str(ROOT / "tests" / "integration" / "sigkill_job.py")],
                                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=out)  # fmt: skip
        assert procs["second"].wait(120) == 1
        wait_for(lambda: "waiting for the lock of" in logs["third"].read_text(errors="replace"),
                 "the third asset to wait", timeout=120)  # fmt: skip
        os.kill(first.pid, signal.SIGCONT)
        assert _finish(first)[0] == 0
        assert procs["third"].wait(120) == 0, logs["third"].read_text()[-3000:]
    finally:
        for proc in (first, *procs.values()):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait()
    assert _keys_on_portal(b24_emulator, 2) == Counter({key: 1 for key in frame(ROWS)["external_id"]})
    second = logs["second"].read_text(errors="replace")
    assert "another execution is writing crm.lead records keyed by ORIGIN_ID on http://127.0.0.1" in second
    assert "asset bitrix24/row_import, on " in second  # named, with its run id, host and pid
    third = logs["third"].read_text(errors="replace")
    assert "waiting for the lock of crm.lead records keyed by ORIGIN_ID" in third
    assert "held by run " in third and "asset bitrix24/row_import" in third


def test_a_chunk_held_past_the_old_reconcile_delay_is_waited_out_then_found(b24_emulator, tmp_path):
    """Before: a run that recovered a dead run's chunk looked its keys up 10 s
    (`reconcile_delay_seconds`) after it was sent; a chunk the portal still ran (the audit: held
    15 s) was not found, created again, then committed: 50 keys twice, reported ok. Now the
    lookup waits until the chunk can no longer commit: the portal's request time limit (here
    15 s, as set on the resource, with a 15 s read timeout) plus a margin, said in the log."""
    rows = 100
    env = _env(b24_emulator, tmp_path, "held", SIGKILL_ROWS=str(rows), SIGKILL_RECONCILE_DELAY="none",
               SIGKILL_REQUEST_LIMIT="15", SIGKILL_READ_TIMEOUT="15")  # fmt: skip
    # the 1st batch is the lookup of the 100 keys; the 2nd, chunk 0, is held 12 s (> 10 s)
    b24_emulator.faults.configure(FaultSettings(slow=FaultRule(requests=(2, 2), delay=12.0, methods=frozenset({"batch"}))))
    logged = len(b24_emulator.request_log)
    proc = _start(env)
    _wait_for(proc, lambda: _held(b24_emulator, logged) > 0, "chunk 0 held by the portal")
    _kill(proc)
    held_at = time.monotonic()
    assert b24_emulator.counts().get("lead", 0) == 0

    b24_emulator.faults.configure(None)
    proc = _start(env)
    rc, err = _finish(proc)
    assert rc == 0, err[-3000:]
    assert _keys_on_portal(b24_emulator, 2) == Counter({key: 1 for key in frame(rows)["external_id"]})
    assert time.monotonic() - held_at >= 12  # the rerun ended after the held chunk committed
    assert "may still be running on the portal" in err and "waiting" in err


def test_keys_of_an_interrupted_chunk_dropped_from_the_source_are_deleted_later(b24_emulator, tmp_path):
    """Before: records a killed run created, but had not journaled, never entered the state,
    so once their keys left the source `delete_missing` never removed them (the audit: 10 left
    for good, every later run green). Now the in-flight marker names the chunk's keys: the
    next run looks them up, puts the records into the state, and deletes them."""
    env = _env(b24_emulator, tmp_path, "del", SIGKILL_ROWS="100", SIGKILL_DELETE_MISSING="1")
    rc, err = _finish(_start(env))
    assert rc == 0, err[-3000:]
    assert b24_emulator.counts()["lead"] == 100

    # 10 more rows: one chunk of 10 creates, held by the portal; the job dies meanwhile.
    b24_emulator.faults.configure(FaultSettings(slow=FaultRule(every=1, delay=2.0, methods=frozenset({"batch"}))))
    logged = len(b24_emulator.request_log)
    proc = _start({**env, "SIGKILL_ROWS": "110"})
    _wait_for(proc, lambda: _held(b24_emulator, logged) > 0 and any(
        p.name.startswith("inflight-") for d in _journals(tmp_path / "data") for p in d.iterdir()), "the chunk held")
    _kill(proc)
    wait_for(lambda: _held(b24_emulator, logged) == 0, "the held chunk to run after the kill", timeout=10)
    b24_emulator.faults.configure(None)
    assert b24_emulator.counts()["lead"] == 110

    # The 10 rows leave the source again: their records are found by key and deleted.
    rc, err = _finish(_start(env))
    assert rc == 0, err[-3000:]
    assert _keys_on_portal(b24_emulator, 2) == Counter({key: 1 for key in frame(100)["external_id"]})
    table = pq.read_table(tmp_path / "data" / "bitrix24" / "row_import.parquet")
    assert Counter(table["action"].to_pylist()) == Counter({"unchanged": 100, "delete": 10})
