"""Materialize an 800-row import once, against `BITRIX24_WEBHOOK_URL`, with the persistent
instance of `DAGSTER_HOME` and the Parquet base of `B24_DAGSTER_BASE`.

`SIGKILL_JOB_API=2` (default): 800 `crm.lead.add`, each with a unique ORIGIN_ID (v2 batch;
a lost answer is reconciled by looking the ORIGIN_ID up). `SIGKILL_JOB_API=3`: 800
`tasks.task.add` on v3 (a chunk whose answer was lost is sent again under its
Idempotency-Key and replayed).

Run by `test_sigkill_resume.py` as a child process that the test kills with SIGKILL; run
again, it resumes from the journal. Exit code 0 when the materialization succeeded.

More knobs, each read from the environment (unset: the default):
`SIGKILL_ROWS` (800), `SIGKILL_SKIP_ROWS` (keys `K<first>..` start there), `SIGKILL_ASSET`
(`row_import`), `SIGKILL_DELETE_MISSING` (1: `delete_missing=True, max_delete_share=0.5`),
`SIGKILL_RECONCILE_DELAY` (0.5; `none`: the portal's bound), `SIGKILL_REQUEST_LIMIT` and
`SIGKILL_READ_TIMEOUT` (the resource's, seconds), `SIGKILL_LOCK_WAIT` (lock_wait_seconds),
`SIGKILL_LEASE_SECONDS` (the storage's lease).
"""

from __future__ import annotations

import os
import sys

import dagster as dg
import pandas as pd

from b24_dagster.integration import Bitrix24Resource, Bitrix24Storage, build_bitrix24_batch_asset

ROWS = 800
API = int(os.environ.get("SIGKILL_JOB_API", "2"))
_ENV = os.environ.get
_DELAY = _ENV("SIGKILL_RECONCILE_DELAY", "0.5")


def frame(rows: int = ROWS, first: int = 0) -> pd.DataFrame:
    """`rows` source rows, each with a unique key (`K<first>` on)."""
    return pd.DataFrame({
        "external_id": [f"K{i:05d}" for i in range(first, first + rows)],
        "title": [f"Row K{i:05d}" for i in range(first, first + rows)],
    })  # fmt: skip


@dg.asset(name="rows_csv")
def rows_csv() -> pd.DataFrame:
    """The source rows."""
    return frame(int(_ENV("SIGKILL_ROWS", ROWS)), int(_ENV("SIGKILL_SKIP_ROWS", 0)))


if API == 3:
    target = build_bitrix24_batch_asset(
        name="row_import", method="tasks.task.add", source="rows_csv", fields=["title"],
        key_column="external_id",
    )  # fmt: skip
else:
    target = build_bitrix24_batch_asset(
        name=_ENV("SIGKILL_ASSET", "row_import"), method="crm.lead.add", source="rows_csv",
        reconcile_delay_seconds=None if _DELAY == "none" else float(_DELAY),
        fields={"title": "TITLE", "external_id": "ORIGIN_ID"}, key_column="external_id",
        sync=os.environ.get("SIGKILL_SYNC", "send"),  # type: ignore[arg-type]
        lock_wait_seconds=float(_ENV("SIGKILL_LOCK_WAIT", 0)),
        **({"delete_missing": True, "max_delete_share": 0.5} if _ENV("SIGKILL_DELETE_MISSING") else {}),
    )  # fmt: skip


def main() -> int:
    """Materialize both assets with the persistent instance; 0 on success."""
    resources = {
        "bitrix24": Bitrix24Resource(webhook_url=dg.EnvVar("BITRIX24_WEBHOOK_URL"), api_version=API,
                                     requests_per_second=None, share_limits=False, max_retries=2,
                                     backoff_seconds=0.01, read_timeout=float(_ENV("SIGKILL_READ_TIMEOUT", 60)),
                                     request_time_limit_seconds=float(_ENV("SIGKILL_REQUEST_LIMIT", 60))),
        "bitrix24_storage": Bitrix24Storage(lease_seconds=float(_ENV("SIGKILL_LEASE_SECONDS", 600))),
    }  # fmt: skip
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([rows_csv, target], resources=resources, instance=instance,
                                raise_on_error=False)  # fmt: skip
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
