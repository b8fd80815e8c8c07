"""Proof: a replica run killed with SIGKILL at any point, then run again, leaves the same
tables as a run that was never interrupted.

The emulator runs in this test process; the run (`replica_sigkill_job.py`: deals with
history, after creates, updates, stage moves and deletions since the last run) runs in a
child process that kills itself with SIGKILL at an exact point: before or after any request,
at any row group written, before or after any file is renamed into place, before the
replaced version is kept. Each point starts from the same files; after the kill a second run
(in this process) completes, and its tables must equal those of an uninterrupted run from the same files: the
same rows and values, the same `_deleted` and `_out_of_scope` flags, the same versions and
stage moves (the times a run stamps, `_synced_at`, `_deleted_at`, `_valid_to`, differ between
runs and are compared as present or absent). The default suite kills at four points (an
answer lost mid-run, a history file half written, the history published and the current
table not, the current table complete but not renamed); `-m slow` at every point of the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.integration._replica_run import ReplicaRun
from tests.integration.replica_sigkill_job import SPEC, instrument, paths

ROOT = Path(__file__).resolve().parents[2]
JOB = ROOT / "tests" / "integration" / "replica_sigkill_job.py"
STAMPS = ("_synced_at", "_deleted_at", "_valid_to", "_valid_from")


def _child(env: dict[str, str], kill_at: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(JOB)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**env, "KILL_AT": kill_at, "REPLICA_DIR": str(folder)})


def _tables(folder: Path) -> dict[str, Any]:
    """What must be equal: each file's rows, the run's own times as present or absent."""
    out = {}
    for name in ("deals", "deals_history", "deals_stage_history"):
        rows = pq.read_table(folder / f"{name}.parquet").to_pylist()
        rows = [{k: (v is not None if k in STAMPS else v) for k, v in r.items()} for r in rows]
        out[name] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return out


@pytest.fixture
def prepared(b24_emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
             ) -> tuple[dict[str, str], Path, dict[str, Any], dict[str, int]]:
    """The files of a first run, the portal changed since, an uninterrupted second run's
    tables, and how many of each event that second run had."""
    b24_emulator.portal.seed("deal", 3000)
    env = {**os.environ, "BITRIX24_WEBHOOK_URL": b24_emulator.webhook_url}
    baseline, control = tmp_path / "baseline", tmp_path / "control"
    events: Counter[str] = Counter()
    with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None, share_limits=False) as client:
        ReplicaRun(client, SPEC, paths(baseline)).execute()
        calls = [("crm.deal.add", {"fields": {"TITLE": f"new {i}"}}) for i in range(60)]
        calls += [("crm.deal.update", {"id": i, "fields": {"OPPORTUNITY": i}}) for i in range(100, 3000, 23)]
        calls += [("crm.deal.update", {"id": i, "fields": {"STAGE_ID": "WON"}}) for i in range(7, 3000, 97)]
        calls += [("crm.deal.delete", {"id": i}) for i in range(5, 3000, 61)]
        assert client.batch_by_chunk(calls).run().is_success
        shutil.copytree(baseline, control)
        with monkeypatch.context() as patched:   # count the events of an uninterrupted run
            instrument(patched.setattr, lambda name: events.update([name]))
            ReplicaRun(client, SPEC, paths(control)).execute()
    assert events["send"] >= 5 and events["close"] == 3 and events["link"] == 1
    return env, baseline, _tables(control), dict(events)


def _points(events: dict[str, int], every: bool) -> list[str]:
    if every:
        return [f"{name}:{n}" for name in ("send", "answer", "write", "close", "closed", "link")
                for n in range(1, events.get(name, 0) + 1)]
    # an answer lost mid-run, a history file half written, the history published but not the
    # current table, the current table complete but not yet renamed into place
    return [f"answer:{max(1, events['send'] // 2)}", "write:1", "closed:1", "close:3"]


def _kill_and_rerun(prepared: Any, tmp_path: Path, every: bool) -> int:
    env, baseline, expected, events = prepared
    points = _points(events, every)
    with Bitrix24Client(env["BITRIX24_WEBHOOK_URL"], requests_per_second=None, share_limits=False) as client:
        for i, point in enumerate(points):
            folder = tmp_path / f"point{i}"
            shutil.copytree(baseline, folder)
            killed = _child(env, point, folder)
            assert killed.returncode == -9, (point, killed.returncode, killed.stderr[-2000:])
            ReplicaRun(client, SPEC, paths(folder)).execute()   # the rerun, uninterrupted
            assert _tables(folder) == expected, point
    return len(points)


def test_a_replica_killed_at_four_points_ends_as_an_uninterrupted_run(prepared, tmp_path) -> None:
    assert _kill_and_rerun(prepared, tmp_path, every=False) == 4


@pytest.mark.slow
def test_a_replica_killed_at_every_point_ends_as_an_uninterrupted_run(prepared, tmp_path) -> None:
    assert _kill_and_rerun(prepared, tmp_path, every=True) >= 20
