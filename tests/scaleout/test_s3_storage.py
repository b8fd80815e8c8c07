"""Proof: the Parquet base on object storage, for real. moto's S3 server runs locally; the
assets reach it through s3fs and `UPath`, the base `s3://<bucket>/data`.

- a write asset killed with SIGKILL mid-run (`tests/integration/sigkill_job.py`, 800 leads,
  here a sync: `SIGKILL_SYNC=upsert`) resumes from its journal and sync state on S3 (lease
  lock, `.row_import.parquet.sync/{journal,state.parquet}`) and creates every lead once;
- the same on REST v3 (800 tasks, the one-shot journal `.row_import.parquet.journal/`): the
  interrupted chunk is replayed under its Idempotency-Key, its age read from the in-flight
  marker's own timestamp (object stores give no file ages worth trusting);
- an export asset writes its Parquet with `Bitrix24Storage(base_path="s3://…",
  storage_options={"endpoint_url": …})`, and dbt (dbt-duckdb) builds the models from it,
  reading through an fsspec filesystem registered in DuckDB (the `filesystems:` profile
  setting), since DuckDB's own httpfs extension is downloaded at run time.

The child processes find the endpoint in `AWS_ENDPOINT_URL` (botocore reads it), the test
process and dbt in `storage_options` / the profile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from b24_dagster.client import Bitrix24Client
from b24_dagster.emulator._faults import FaultRule, FaultSettings
from tests.conftest import wait_for

pytestmark = pytest.mark.scaleout

ROOT = Path(__file__).resolve().parents[2]
ROWS, CHUNK, WAIT = 800, 50, 60.0
PLANS = {2: [(0, "committed"), (1, "in_flight"), (2, "recorded")],
         3: [(0, "committed"), (1, "in_flight"), (2, "recorded")]}  # fmt: skip


class Bucket:
    """Fresh listings of the test's bucket (boto3: no cache to go stale)."""

    def __init__(self, name: str, endpoint_url: str) -> None:
        import boto3

        self.name = name
        self.s3 = boto3.client("s3", endpoint_url=endpoint_url)

    def keys(self, prefix: str = "") -> list[str]:
        out: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix):
            out.extend(item["Key"] for item in page.get("Contents", []))
        return out

    def has(self, suffix: str) -> bool:
        return any(k.endswith(suffix) for k in self.keys("data/"))


def _start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(ROOT / "tests" / "integration" / "sigkill_job.py")],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _keys_on_portal(emulator: Any, api: int) -> Counter[str]:
    with Bitrix24Client(emulator.webhook_url) as client:
        if api == 3:
            pages = client.iter_list("tasks.task.list", {"select": ["ID", "TITLE"]})
            return Counter(row["title"].removeprefix("Row ") for page in pages for row in page)
        pages = client.iter_list("crm.lead.list", {"select": ["ID", "ORIGIN_ID"]})
        return Counter(row["ORIGIN_ID"] for page in pages for row in page)


def _held(emulator: Any, logged: int) -> int:
    answered = sum(1 for r in emulator.request_log[logged:] if r.fault == "slow")
    return emulator.stats["faults"]["slow"] - answered


def _kill_at(emulator: Any, env: dict[str, str], bucket: Bucket, entity: str, chunk: int, kind: str) -> str:
    """Start the job, kill it with SIGKILL at (chunk, kind); returns what the portal showed."""
    count = lambda: emulator.counts().get(entity, 0)  # noqa: E731
    emulator.faults.configure(None)
    emulator.configure(latency=0.5 if kind == "committed" else 0.0)
    if kind == "in_flight":
        emulator.faults.configure(FaultSettings(slow=FaultRule(every=1, delay=2.0, methods=frozenset({"batch"}))))
    logged = len(emulator.request_log)
    proc = _start(env)

    def ended() -> str | None:
        if proc.poll() is None:
            return None
        return f"the job ended (rc {proc.returncode}): {proc.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]

    try:
        if kind == "committed":
            wait_for(lambda: count() >= (chunk + 1) * CHUNK, f"chunk {chunk} committed", timeout=WAIT, abort=ended)
            _stop(proc)
            assert not bucket.has(f"chunk-{chunk:06d}.part"), "the answer was read before the kill"
            return f"committed@{chunk}: {count()} {entity}s on the portal, chunk {chunk} not recorded"
        if kind == "in_flight":
            wait_for(lambda: bucket.has(f"inflight-{chunk:06d}") and _held(emulator, logged) > 0,
                     f"chunk {chunk} sent and held", timeout=WAIT, abort=ended)  # fmt: skip
            before = count()
            _stop(proc)
            wait_for(lambda: _held(emulator, logged) == 0, "the held batch to run after the kill", timeout=10)
            return f"in_flight@{chunk}: {before} {entity}s at the kill, {count()} after"
        wait_for(lambda: bucket.has(f"chunk-{chunk:06d}.part"), f"chunk {chunk} recorded", timeout=WAIT, abort=ended)
        _stop(proc)
        return f"recorded@{chunk}: {count()} {entity}s"
    finally:
        _stop(proc)


@pytest.mark.parametrize("api", [2, 3])
def test_sigkill_on_s3_then_every_row_exactly_once(b24_emulator: Any, s3_env: dict[str, str],
                                                    s3_bucket: str, tmp_path: Path, api: int) -> None:
    import pyarrow.parquet as pq
    import s3fs

    from tests.integration.sigkill_job import frame

    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, **s3_env, "DAGSTER_HOME": str(home), "BITRIX24_WEBHOOK_URL": b24_emulator.webhook_url,
           "PYTHONPATH": str(ROOT), "SIGKILL_JOB_API": str(api), "SIGKILL_SYNC": "upsert",
           "B24_DAGSTER_BASE": f"s3://{s3_bucket}/data"}  # fmt: skip
    bucket = Bucket(s3_bucket, s3_env["AWS_ENDPOINT_URL"])
    entity = "task" if api == 3 else "lead"
    started = time.monotonic()
    evidence = [_kill_at(b24_emulator, env, bucket, entity, c, k) for c, k in PLANS[api]]
    # what the killed runs left on S3: the journal, and on v2 the sync folder with its lease
    left = sorted({k.split("/")[3] for k in bucket.keys("data/bitrix24/") if k.count("/") >= 3})

    b24_emulator.faults.configure(None)
    b24_emulator.configure(latency=0.0)
    requests_before = b24_emulator.stats["requests"]
    proc = _start(env)
    try:
        _, err = proc.communicate(timeout=180)
    finally:
        _stop(proc)
    assert proc.returncode == 0, err.decode()[-3000:]

    expected = list(frame(ROWS)["external_id"])
    on_portal = _keys_on_portal(b24_emulator, api)
    assert set(on_portal) == set(expected)
    assert max(on_portal.values()) == 1  # nothing created twice
    fs = s3fs.S3FileSystem(endpoint_url=s3_env["AWS_ENDPOINT_URL"], skip_instance_cache=True)
    table = pq.read_table(f"{s3_bucket}/data/bitrix24/row_import.parquet", filesystem=fs)
    assert table.num_rows == ROWS
    assert table["external_id"].to_pylist() == expected
    assert set(table["status"].to_pylist()) == {"ok"}
    keys = bucket.keys("data/")
    assert not [k for k in keys if "/journal" in k or ".journal/" in k], keys  # journals settled
    if api == 2:
        assert "data/bitrix24/.row_import.parquet.sync/state.parquet" in keys
        assert not [k for k in keys if k.endswith("/lock")], keys  # the lease was released
    else:  # the interrupted chunks were replayed by the portal, not run again
        assert b24_emulator.stats["replays"] >= sum(kind != "recorded" for _, kind in PLANS[api])
    print(f"\nS3 v{api}: " + "; ".join(evidence) + f"; left on S3 after the kills: {left}; "
          f"last run {b24_emulator.stats['requests'] - requests_before} requests; "
          f"replays {b24_emulator.stats.get('replays', 0)}; wall {time.monotonic() - started:.1f} s")


DBT_PROFILE = """\
b24_examples:
  target: s3
  outputs:
    s3:
      type: duckdb
      path: "{duckdb}"
      threads: 1
      # DuckDB's httpfs extension is downloaded at run time; an fsspec filesystem registered
      # in DuckDB reads s3:// through s3fs instead (dbt-duckdb's `filesystems` setting).
      filesystems:
        - fs: s3
          endpoint_url: "{endpoint}"
          key: "{key}"
          secret: "{secret}"
"""


def test_export_to_s3_then_dbt_reads_it(b24_emulator: Any, s3_env: dict[str, str], s3_bucket: str,
                                        tmp_path: Path) -> None:
    import dagster as dg
    import duckdb

    from b24_dagster.demo.definitions import DEAL_COLUMNS
    from b24_dagster.integration import (
        Bitrix24Resource,
        Bitrix24Storage,
        build_bitrix24_export_asset,
    )

    b24_emulator.portal.seed("deal", 3000)
    storage = Bitrix24Storage(base_path=f"s3://{s3_bucket}/data", storage_options={
        "endpoint_url": s3_env["AWS_ENDPOINT_URL"], "key": s3_env["AWS_ACCESS_KEY_ID"],
        "secret": s3_env["AWS_SECRET_ACCESS_KEY"]})  # fmt: skip
    deals = build_bitrix24_export_asset(name="deals", method="crm.deal.list", select=DEAL_COLUMNS)
    started = time.monotonic()
    result = dg.materialize([deals], resources={
        "bitrix24": Bitrix24Resource(webhook_url=b24_emulator.webhook_url, requests_per_second=None),
        "bitrix24_storage": storage})  # fmt: skip
    assert result.success
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["dagster/uri"].value == f"s3://{s3_bucket}/data/bitrix24/deals.parquet"
    assert meta["rows"].value == 3000
    exported = time.monotonic() - started

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    duckdb_file = tmp_path / "dbt.duckdb"
    (profiles / "profiles.yml").write_text(DBT_PROFILE.format(
        duckdb=duckdb_file, endpoint=s3_env["AWS_ENDPOINT_URL"], key=s3_env["AWS_ACCESS_KEY_ID"],
        secret=s3_env["AWS_SECRET_ACCESS_KEY"]))  # fmt: skip
    env = {**os.environ, "B24_DAGSTER_BASE": f"s3://{s3_bucket}/data", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    started = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "run", "--project-dir", str(ROOT / "dbt_examples"),
         "--profiles-dir", str(profiles), "--target-path", str(tmp_path / "target"),
         "--log-path", str(tmp_path / "logs"), "--select", "stg_deals", "deals_by_stage_month", "stale_deals"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:]
    built = time.monotonic() - started
    with duckdb.connect(str(duckdb_file), read_only=True) as con:
        total = con.execute("select sum(deals) from deals_by_stage_month").fetchall()[0][0]
        loaded = [r[0] for r in con.execute("select extension_name from duckdb_extensions() where loaded").fetchall()]
    assert total == 3000  # every exported deal reached the mart, read from S3
    assert "httpfs" not in loaded
    print(f"\nS3 export: 3000 deals to s3://{s3_bucket}/data/bitrix24/deals.parquet in {exported:.1f} s; "
          f"dbt run (3 models, read through s3fs) {built:.1f} s")
