"""The README's demo command, run whole against an emulator: import, export, dbt, write-back."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from b24_dagster import Bitrix24Client
from tests.demo.helpers import REPO, clean_env

SEEDED_DEALS = 60
# The rows of leads.csv the portal refuses, on purpose, and why.
REFUSED = {
    "WEB-20250017": "invalid_email",
    "WEB-20250038": "unknown_user",
    "WEB-20250061": "unknown_status",
    "WEB-20250084": "invalid_email",
    "WEB-20250102": "unknown_user",
    "WEB-20250125": "unknown_status",
    "WEB-20250143": "invalid_email",
    "WEB-20250166": "unknown_status",
    "WEB-20250181": "unknown_user",
    "WEB-20250197": "invalid_email",
}


def test_demo_command_runs_the_whole_pipeline(b24_emulator: Any, tmp_path: Path) -> None:
    b24_emulator.portal.seed("deal", SEEDED_DEALS)
    webhook = b24_emulator.webhook_url
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, "-m", "b24_dagster.demo", "--home", str(home)],
        cwd=REPO,
        env=clean_env(home, BITRIX24_WEBHOOK_URL=webhook),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    data = home / "data"
    duckdb_file = data / "dbt" / "b24_examples.duckdb"
    # It says where everything is, what the import did and how to open the UI.
    assert str(data / "bitrix24" / "lead_import.parquet") in out
    assert str(duckdb_file) in out
    assert "bitrix24/lead_import: 200 commands: ok 190, error 10, not_run 0, unknown 0" in out
    assert "dagster dev -w " in out and f"DAGSTER_HOME={home}" in out
    assert webhook.rstrip("/").rsplit("/", 1)[-1] not in out + done.stderr  # never the code

    # The import: one row per CSV row, in order, the refused ones joined back by key.
    leads = pq.read_table(data / "bitrix24" / "lead_import.parquet").to_pandas()
    assert list(leads["command_index"]) == list(range(200))
    failed = leads[leads["status"] != "ok"]
    assert set(failed["external_id"]) == set(REFUSED)
    assert set(failed["status"]) == {"error"}
    log = (home / "demo-run.log").read_text()
    assert "check 'failure_rate_below_threshold' on 'bitrix24/lead_import' did not pass" in log
    assert "check 'no_unknown_outcomes' on 'bitrix24/lead_import' passed" in log

    # The export: every deal, typed.
    deals = pq.read_table(data / "bitrix24" / "deals.parquet")
    assert deals.num_rows == SEEDED_DEALS
    assert str(deals.schema.field("ID").type) == "int64"

    # dbt built the marts in the DuckDB file beside the Parquet files.
    with duckdb.connect(str(duckdb_file), read_only=True) as con:
        by_stage = con.execute("select sum(deals) from deals_by_stage_month").fetchone()
        reasons = dict(
            con.execute(
                "select error_category, sum(failed_commands)::int"
                " from import_failures_by_error_code group by 1"
            ).fetchall()
        )
        stale = [r[0] for r in con.execute("select deal_id from stale_deals").fetchall()]
    assert by_stage == (SEEDED_DEALS,)
    assert reasons == dict(Counter(REFUSED.values()))
    with duckdb.connect(str(duckdb_file), read_only=True) as con:  # three causes, in the file's words
        texts = dict(con.execute("select error_reason, error_category from import_failures_by_error_code").fetchall())
    assert set(texts.values()) == set(REFUSED.values()) and len(texts) == 3
    assert stale  # seeded deals date from 2024: every open one is stale

    # The second act: a deal deleted and one moved on the portal; the replica and dbt show both.
    said = re.search(r"On the portal: deal (\d+) deleted, deal (\d+) moved from (\w+) to (\w+)", out)
    assert said, out[-3000:]
    deleted, moved, to_stage = int(said.group(1)), int(said.group(2)), said.group(4)
    assert deleted == SEEDED_DEALS   # the newest deal
    replica = {r["ID"]: r for r in pq.read_table(data / "bitrix24" / "replica" / "deals.parquet").to_pylist()}
    assert replica[deleted]["_deleted"] and replica[moved]["STAGE_ID"] == to_stage
    assert sum(r["_deleted"] for r in replica.values()) == 1
    with duckdb.connect(str(duckdb_file), read_only=True) as con:
        assert con.execute("select deal_id from deleted_deals").fetchall() == [(deleted,)]
        current = con.execute("select stage_id from deal_stage_durations where deal_id = ? and is_current_stage",
                              [moved]).fetchall()
        named = con.execute("select stage_name from stg_replica_deals where deal_id = ?", [moved]).fetchone()
        live = con.execute("select count(*) from stg_replica_deals").fetchone()
    assert current == [(to_stage,)] and named is not None and named[0]   # the stage's name, joined
    assert live == (SEEDED_DEALS - 1,)
    assert f"deal {deleted} _deleted=True" in out

    # The write-back flagged exactly the stale deals in the portal.
    flags = pq.read_table(data / "bitrix24" / "stale_deal_flags.parquet").to_pandas()
    assert len(flags) == len(stale)
    assert set(flags["status"]) == {"ok"}
    client = Bitrix24Client(webhook, requests_per_second=None)
    deal = client.call("crm.deal.get", {"id": stale[0]}).result
    assert deal["COMMENTS"].startswith("Stale: no change for")

    # Run again: a sync, so the portal keeps one record per key and nothing valid is re-sent.
    counts = b24_emulator.counts()
    again = subprocess.run(
        [sys.executable, "-m", "b24_dagster.demo", "--home", str(home)], cwd=REPO,
        env=clean_env(home, BITRIX24_WEBHOOK_URL=webhook), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert b24_emulator.counts()["lead"] == counts["lead"] == 190
    assert b24_emulator.counts()["contact"] == counts["contact"]
    assert "sync: created 0, updated 0, unchanged 190" in again.stdout
