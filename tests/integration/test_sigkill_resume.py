"""Proof: a batch job killed with SIGKILL at many points, run again each time, creates every
row exactly once and leaves no `unknown` outcome.

The emulator runs in this test process (it outlives the killed job); the job
(`sigkill_job.py`: 800 creates in 16 chunks of 50; v2 leads keyed by ORIGIN_ID, or v3 tasks
behind Idempotency-Keys) runs in a child process with a persistent Dagster instance (a
temporary DAGSTER_HOME). Each round waits for a chosen point, then kills the child with
SIGKILL:

- `committed`: the portal answers after a latency, so the kill comes after the portal
  committed the batch of chunk c (its records are on the portal, the request log marks it
  committed) and before the answer was read (no journal part for chunk c);
- `in_flight`: a `slow` fault holds the batch of chunk c before the portal runs it; the kill
  comes while it is pending (nothing of chunk c on the portal yet); the emulator runs it
  after the client died (the request log shows the `slow` batch, committed);
- `recorded`: the kill comes just after the journal recorded chunk c;
- `reconciling` (v2, right after a `recorded` point): the first batch of the run (chunk c) is
  dropped before the portal runs it (`close_before`), so its answer is lost within the run;
  the step looks its ORIGIN_IDs up, finds none and sends them again; the kill comes after
  the portal committed that re-send and before its answer was read.

Then a last run completes; the portal holds each key once and the results file has every
input row once with status `ok`. The default suite runs four points on v2 and three on v3;
`-m slow` runs thirteen on v2 and eleven on v3.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from b24_dagster.client import Bitrix24Client
from b24_dagster.emulator._faults import FaultRule, FaultSettings
from b24_dagster.integration import BASE_ENV
from tests.conftest import wait_for
from tests.integration.sigkill_job import ROWS, frame

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 50
WAIT = 40.0
#: (chunk, kind): each point lies after the previous one's resume point.
FULL = [(0, "committed"), (1, "in_flight"), (2, "recorded"), (3, "reconciling"), (4, "committed"),
        (5, "in_flight"), (6, "recorded"), (8, "committed"), (9, "in_flight"), (10, "recorded"),
        (11, "reconciling"), (12, "committed"), (13, "in_flight")]  # fmt: skip
SHORT = [(0, "committed"), (1, "in_flight"), (2, "recorded"), (3, "reconciling")]
PLANS = {2: (SHORT, FULL), 3: ([p for p in SHORT if p[1] != "reconciling"],
                               [p for p in FULL if p[1] != "reconciling"])}


def _journal(base: Path) -> list[Path]:
    root = base / "bitrix24" / ".row_import.parquet.journal"
    return [d for d in root.iterdir() if d.is_dir()] if root.exists() else []


def _has(base: Path, name: str) -> bool:
    return any((d / name).exists() for d in _journal(base))


def _start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "integration" / "sigkill_job.py")],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _wait_for(proc: subprocess.Popen[bytes], condition, what: str) -> None:
    """Wait for ``condition`` while the job runs (its stderr tail if it ends first)."""
    def ended() -> str | None:
        if proc.poll() is None:
            return None
        return (f"the job ended (rc {proc.returncode}): "
                f"{proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    wait_for(condition, what, timeout=WAIT, abort=ended)


def _held(emulator, logged: int) -> int:
    """Requests the ``slow`` fault holds right now: decided (counted since the faults were
    configured, when the log had ``logged`` entries) but not yet answered (logged)."""
    answered = sum(1 for r in emulator.request_log[logged:] if r.fault == "slow")
    return emulator.stats["faults"]["slow"] - answered


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL


def _keys_on_portal(emulator, api: int) -> Counter[str]:
    with Bitrix24Client(emulator.webhook_url) as client:
        if api == 3:
            pages = client.iter_list("tasks.task.list", {"select": ["ID", "TITLE"]})
            return Counter(row["title"].removeprefix("Row ") for page in pages for row in page)
        pages = client.iter_list("crm.lead.list", {"select": ["ID", "ORIGIN_ID"]})
        return Counter(row["ORIGIN_ID"] for page in pages for row in page)


def _kill_at(emulator, env, base: Path, entity: str, chunk: int, kind: str) -> str:
    """One round: start the job, kill it at (chunk, kind); returns what the portal showed."""
    count = lambda: emulator.counts().get(entity, 0)  # noqa: E731
    emulator.faults.configure(None)
    emulator.configure(latency=0.5 if kind in ("committed", "reconciling") else 0.0)
    if kind == "reconciling":
        emulator.faults.configure(FaultSettings(close_before=FaultRule(requests=(1, 1), methods=frozenset({"batch"}))))
    if kind == "in_flight":
        emulator.faults.configure(FaultSettings(slow=FaultRule(every=1, delay=1.5, methods=frozenset({"batch"}))))
    logged = len(emulator.request_log)
    proc = _start(env)
    try:
        if kind == "reconciling":
            _wait_for(proc, lambda: count() >= (chunk + 1) * CHUNK, f"the re-send of chunk {chunk} committed")
            _kill(proc)
            assert emulator.stats["faults"]["close_before"] == 1
            assert not _has(base, f"chunk-{chunk:06d}.part"), "the re-send's answer was read before the kill"
            # the re-send is logged once its late answer is sent
            wait_for(lambda: len([r for r in emulator.request_log[logged:] if r.method == "batch"]) >= 3,
                     "the log to show the lost batch, the lookup and the re-send", timeout=5)
            return f"{kind}@{chunk}: lost, looked up, re-sent; killed after the re-send committed ({count()} {entity}s)"
        if kind == "committed":
            _wait_for(proc, lambda: count() >= (chunk + 1) * CHUNK, f"chunk {chunk} committed")
            _kill(proc)
            assert not _has(base, f"chunk-{chunk:06d}.part"), "the answer was read before the kill"
            # the log entry is written once the late answer is sent
            wait_for(lambda: [r for r in emulator.request_log[logged:] if r.method == "batch" and r.committed],
                     "a committed batch in the request log", timeout=5)
            return f"{kind}@{chunk}: {count()} {entity}s on the portal, chunk {chunk} not recorded"
        if kind == "in_flight":
            _wait_for(proc, lambda: _has(base, f"inflight-{chunk:06d}"), f"chunk {chunk} sent")
            _wait_for(proc, lambda: _held(emulator, logged) > 0, f"the batch of chunk {chunk} held by the emulator")
            before = count()
            _kill(proc)
            assert before == chunk * CHUNK, f"chunk {chunk} was not pending ({before} {entity}s)"
            # the emulator runs the held batch after the client died
            wait_for(lambda: _held(emulator, logged) == 0, "the held batch to run after the kill", timeout=5)
            late = [r for r in emulator.request_log[logged:] if r.fault == "slow" and r.committed]
            assert late, "no slow batch committed after the kill"
            assert count() == (chunk + 1) * CHUNK
            return f"{kind}@{chunk}: {before} {entity}s at the kill, {count()} after"
        _wait_for(proc, lambda: _has(base, f"chunk-{chunk:06d}.part"), f"chunk {chunk} recorded")
        _kill(proc)
        return f"{kind}@{chunk}: killed after chunk {chunk} was recorded ({count()} {entity}s)"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _prove(emulator, tmp_path: Path, api: int, plan: list[tuple[int, str]]) -> list[str]:
    base = tmp_path / "data"
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = dict(os.environ, DAGSTER_HOME=str(home), BITRIX24_WEBHOOK_URL=emulator.webhook_url,
               PYTHONPATH=str(ROOT), SIGKILL_JOB_API=str(api), **{BASE_ENV: str(base)})  # fmt: skip
    entity = "task" if api == 3 else "lead"
    evidence = [_kill_at(emulator, env, base, entity, chunk, kind) for chunk, kind in plan]

    emulator.faults.configure(None)
    emulator.configure(latency=0.0)
    proc = _start(env)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()[-3000:]

    expected = list(frame(ROWS)["external_id"])
    on_portal = _keys_on_portal(emulator, api)
    assert set(on_portal) == set(expected)
    assert max(on_portal.values()) == 1  # nothing created twice
    assert sum(on_portal.values()) == ROWS
    table = pq.read_table(base / "bitrix24" / "row_import.parquet")
    assert table.num_rows == ROWS
    assert table["external_id"].to_pylist() == expected
    assert table["status"].to_pylist() == ["ok"] * ROWS  # no unknown left
    assert table["command_index"].to_pylist() == list(range(ROWS))
    assert not _journal(base)
    if api == 3:  # each interrupted chunk was replayed by the portal, not run again
        assert emulator.stats["replays"] >= sum(kind != "recorded" for _, kind in plan)
    print(f"\nv{api}: " + "; ".join(evidence))
    return evidence


@pytest.mark.parametrize("api", [2, 3])
def test_sigkill_at_a_few_points_then_every_row_exactly_once(b24_emulator, tmp_path, api):
    plan = PLANS[api][0]
    assert len(_prove(b24_emulator, tmp_path, api, plan)) == len(plan) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("api", [2, 3])
def test_sigkill_at_eleven_or_more_points_then_every_row_exactly_once(b24_emulator, tmp_path, api):
    plan = PLANS[api][1]
    assert len(_prove(b24_emulator, tmp_path, api, plan)) == len(plan) >= 11
