"""Proof on a real S3 endpoint (moto's server, started by the fixtures): the lease excludes,
it is taken over only when its holder is provably gone, a holder that can no longer prove
it holds the lease stops sending, and a publish cannot half-happen.

- 8 processes race for one lease for 1,000 rounds, every S3 request delayed a little on its
  way out and back, 1% of them by 0.1-0.4 s: a shared counter of holders never passes 1;
- a holder killed with SIGKILL is taken over at once when it ran on this host (its pid is
  gone), and only once its lease expired when it says it ran on another host; never while
  it lives (its heartbeat keeps the lease, longer than `lease_seconds`);
- a sync (`sigkill_job.py`, base on S3, lease 20 s) holds the lease of its key space: paused
  with SIGSTOP mid-run, while its lease lasts a one-shot send into the same leads is refused
  naming it; past its lease its rival takes over and completes, and once resumed the paused
  one sends nothing more;
- a results file and a sync state published on S3, the publishing process killed with
  SIGKILL after each of its S3 calls: the previous or the new file is there, whole.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.scaleout.lease_child import publish as publish_version
from tests.scaleout.lease_child import race

pytestmark = pytest.mark.scaleout

ROOT = Path(__file__).resolve().parents[2]
RACERS, ROUNDS = 8, 1_000
LEASE = 20  # the paused sync's: long enough for a Dagster process to start and try meanwhile


def _child(*args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.scaleout.lease_child", *args], cwd=ROOT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, **popen)  # fmt: skip


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_eight_processes_race_for_one_lease_and_never_two_hold_it(s3_env: dict[str, str], s3_bucket: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    holders, peak, done, lost = (ctx.Value("i", 0) for _ in range(4))
    started = time.monotonic()
    racers = [ctx.Process(target=race, args=(s3_env["AWS_ENDPOINT_URL"], s3_bucket, 5.0, ROUNDS, holders, peak,
                                              done, lost, seed)) for seed in range(RACERS)]  # fmt: skip
    for racer in racers:
        racer.start()
    try:
        for racer in racers:
            racer.join(timeout=240)
            assert racer.exitcode == 0, f"racer {racer.pid} ended with {racer.exitcode}"
    finally:
        for racer in racers:
            if racer.is_alive():
                racer.kill()
                racer.join()
    took = time.monotonic() - started
    print(f"\n{RACERS} racers, {done.value} rounds in {took:.1f} s; most holders at once: {peak.value}; "
          f"conditional writes refused (a rival's won): {lost.value}")
    assert done.value >= ROUNDS
    assert peak.value == 1  # never two holders
    assert lost.value > 0  # they did race




@pytest.mark.parametrize("host", ["this host", "another host"])
def test_a_sigkilled_holder_is_taken_over_once_provably_gone_never_while_it_lives(
        s3_env: dict[str, str], s3_bucket: str, host: str) -> None:  # fmt: skip
    from upath import UPath

    from b24_dagster.integration._lock import LockHeldError, StepLock

    lease = 3.0
    endpoint = s3_env["AWS_ENDPOINT_URL"]
    url = f"s3://{s3_bucket}/.locks/held"
    path = UPath(url, endpoint_url=endpoint)
    holder = _child("hold", url, endpoint, str(lease), *(["elsewhere"] if host == "another host" else []),
                    stdout=subprocess.PIPE)  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        # alive: refused for twice its lease (the heartbeat keeps it)
        until = time.monotonic() + 2 * lease
        tries = 0
        while time.monotonic() < until:
            with pytest.raises(LockHeldError, match=r"holder-\d+"):
                StepLock(path, owner="rival", lease_seconds=lease).acquire()
            tries += 1
        os.kill(holder.pid, signal.SIGKILL)
        killed = time.time()
        holder.wait(10)
        expires = json.loads(path.read_text())["expires"]  # the holder's last refresh + its lease
        rival = StepLock(path, owner="rival", wait_seconds=3 * lease, lease_seconds=lease, poll_seconds=0.05)
        rival.acquire()
        taken = time.time()
        rival.release()
    finally:
        _stop(holder)
    print(f"\n{host}: refused {tries} times in {2 * lease:g} s while the holder lived; taken over "
          f"{taken - killed:.2f} s after the SIGKILL ({taken - expires:+.2f} s from the lease's end)")
    if host == "this host":
        assert taken - killed < 1.0 < expires - killed  # at once, long before the lease ran out
    else:
        assert taken >= expires  # never before it expired
        assert taken - expires < 1.5


def test_a_paused_sync_stops_sending_its_rival_proceeds_and_a_send_is_refused(
        b24_emulator: Any, s3_env: dict[str, str], s3_bucket: str, tmp_path: Path) -> None:  # fmt: skip
    from tests.integration.sigkill_job import frame
    from tests.integration.test_sigkill_resume import _keys_on_portal
    from tests.scaleout.test_s3_storage import Bucket

    bucket = Bucket(s3_bucket, s3_env["AWS_ENDPOINT_URL"])
    jobs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def start(name: str, **extra: str) -> subprocess.Popen[bytes]:
        home = tmp_path / name
        home.mkdir()
        env = {**os.environ, **s3_env, "DAGSTER_HOME": str(home), "BITRIX24_WEBHOOK_URL": b24_emulator.webhook_url,
               "PYTHONPATH": str(ROOT), "SIGKILL_SYNC": "upsert", "SIGKILL_LEASE_SECONDS": str(LEASE),
               "B24_DAGSTER_BASE": f"s3://{s3_bucket}/data", **extra}  # fmt: skip
        log = tmp_path / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "integration" / "sigkill_job.py")],
                                    env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=out)  # fmt: skip
        jobs[name] = (proc, log)
        return proc

    def finish(name: str) -> tuple[int, str]:
        proc, log = jobs[name]
        proc.wait(180)
        return proc.returncode, log.read_text(errors="replace")

    def lease() -> dict[str, Any]:
        [key] = [k for k in bucket.keys("data/.locks/") if "keys-" in k]
        return json.loads(bucket.s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read())

    b24_emulator.configure(latency=0.5)  # 17 requests: about 9 s of sending
    first = start("first")
    try:
        part = ".row_import.parquet.sync/journal/"
        wait_for(lambda: sum(k.endswith(".part") for k in bucket.keys(f"data/bitrix24/{part}")) >= 2,
                 "the first sync to record two chunks", timeout=90, abort=lambda: None if first.poll() is None else
                 f"it ended: {finish('first')[1][-2000:]}")  # fmt: skip
        os.kill(first.pid, signal.SIGSTOP)  # paused mid-run: its lease runs out LEASE s after its last refresh
        paused = time.monotonic()
        b24_emulator.configure(latency=0.0)
        holder = lease()
        assert holder["asset"] == "bitrix24/row_import" and not holder["released"]

        # 1. while its lease lasts, the one-shot send path into the same leads is refused, naming it
        start("send", SIGKILL_SYNC="send", SIGKILL_ASSET="row_send")
        rc, err = finish("send")
        assert time.monotonic() - paused < LEASE, "the lease ran out before the send tried: not the point"
        assert rc == 1, err[-3000:]
        assert f"another execution is writing crm.lead records keyed by ORIGIN_ID on {b24_emulator.webhook_url[:21]}" in err
        assert f"(run {holder['owner']}, asset bitrix24/row_import, on " in err
        assert not [r for r in b24_emulator.request_log if r.request_id and "row_send" in r.request_id]

        # 2. paused past its lease: the rival waits for the lease to end, takes it, completes
        start("second", SIGKILL_LOCK_WAIT="90")
        rc, err = finish("second")
        waited = time.monotonic() - paused
        assert rc == 0, err[-3000:]
        rival = lease()
        assert rival["owner"] != holder["owner"] and rival["released"]
        assert rival["since"] >= holder["expires"]  # taken over after the paused one's lease ended, not before
        expected = Counter({key: 1 for key in frame()["external_id"]})
        assert _keys_on_portal(b24_emulator, 2) == expected

        # 3. resumed: it finds the lease gone and sends nothing more
        resumed = time.time()
        os.kill(first.pid, signal.SIGCONT)
        rc, err = finish("first")
        assert rc == 1
        assert "the lease of crm.lead records keyed by ORIGIN_ID" in err or "the lease of this asset" in err
        assert "stopped before sending more" in err
        late = [r for r in b24_emulator.request_log if r.committed and r.time > resumed
                and (r.request_id or "").startswith(holder["owner"][:8])]  # fmt: skip
        assert not late
        assert _keys_on_portal(b24_emulator, 2) == expected
    finally:
        for proc, _ in jobs.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
            _stop(proc)
    print(f"\nsend refused naming run {holder['owner'][:8]}; rival done {waited:.1f} s after the pause "
          f"(lease {LEASE} s), every key once; the paused sync, resumed, sent nothing")


@pytest.mark.parametrize("kind", ["results", "state"])
def test_a_publish_killed_after_each_s3_call_leaves_the_old_or_the_new_file_whole(
        s3_env: dict[str, str], s3_bucket: str, kind: str, tmp_path: Path) -> None:  # fmt: skip
    from upath import UPath

    from b24_dagster.integration._parquet import read_parquet
    from b24_dagster.integration._sync_state import SyncState
    from tests.scaleout.lease_child import table

    endpoint = s3_env["AWS_ENDPOINT_URL"]
    url = f"s3://{s3_bucket}/data/bitrix24/row_import.parquet"
    target = UPath(url, endpoint_url=endpoint)
    if kind == "state":
        target = SyncState(target).path

    ctx = multiprocessing.get_context("forkserver")  # each publisher forked with the imports done
    ctx.set_forkserver_preload(["tests.scaleout.lease_child", "b24_dagster.integration._sync_state", "s3fs"])
    report = tmp_path / "calls.txt"

    def publish(version: int, kill: int | None = None) -> list[str]:
        proc = ctx.Process(target=publish_version, args=(url, endpoint, kind, version, kill, str(report)))
        proc.start()
        proc.join(120)
        assert proc.exitcode == (0 if kill is None else -signal.SIGKILL)
        return report.read_text().split() if kill is None else []

    def version() -> int:
        data = read_parquet(target)  # whole, or this raises
        if kind == "results":
            found = data["version"][0].as_py()
            assert data.equals(table(found))
            return int(found)
        found = 1 if data.num_rows == 2_010 else 0
        assert data.num_rows == 2_000 + 10 * found and set(data["fields_hash"].to_pylist()) == {f"h{found}"}
        return found

    publish(0)
    calls = publish(1)
    publish(0)
    assert version() == 0
    seen = []
    for kill in range(len(calls) + 1):  # 0: before the first call; n: after the nth answered
        publish(1, kill)
        seen.append(version())
        if seen[-1] == 1:
            publish(0)
    print(f"\n{kind}: S3 calls of a publish: {' '.join(calls)}; killed after each: versions found {seen}")
    assert seen[-1] == 1 and seen[0] == 0  # the new file appears with the last call, not before
    assert "CompleteMultipartUpload" in calls and "DeleteObject" not in calls and "CopyObject" not in calls
