"""Materialize an 800-row import once, against `BITRIX24_WEBHOOK_URL`, with the persistent
instance of `DAGSTER_HOME` and the Parquet base of `B24_DAGSTER_BASE`.

`SIGKILL_JOB_API=2` (default): 800 `crm.lead.add`, each with a unique ORIGIN_ID (v2 batch;
a lost answer is reconciled by looking the ORIGIN_ID up). `SIGKILL_JOB_API=3`: 800
`tasks.task.add` on v3 (a chunk whose answer was lost is sent again under its
Idempotency-Key and replayed).

Run by `test_sigkill_resume.py` as a child process that the test kills with SIGKILL; run
again, it resumes from the journal. Exit code 0 when the materialization succeeded.
"""

from __future__ import annotations

import os
import sys

import dagster as dg
import pandas as pd

from b24_dagster.integration import Bitrix24Resource, Bitrix24Storage, build_bitrix24_batch_asset

ROWS = 800
API = int(os.environ.get("SIGKILL_JOB_API", "2"))


def frame(rows: int = ROWS) -> pd.DataFrame:
    """`rows` source rows, each with a unique key."""
    return pd.DataFrame({
        "external_id": [f"K{i:05d}" for i in range(rows)],
        "title": [f"Row K{i:05d}" for i in range(rows)],
    })  # fmt: skip


@dg.asset(name="rows_csv")
def rows_csv() -> pd.DataFrame:
    """The source rows."""
    return frame()


if API == 3:
    target = build_bitrix24_batch_asset(
        name="row_import", method="tasks.task.add", source="rows_csv", fields=["title"],
        key_column="external_id",
    )  # fmt: skip
else:
    target = build_bitrix24_batch_asset(
        name="row_import", method="crm.lead.add", source="rows_csv", reconcile_delay_seconds=0.5,
        fields={"title": "TITLE", "external_id": "ORIGIN_ID"}, key_column="external_id",
        sync=os.environ.get("SIGKILL_SYNC", "send"),  # type: ignore[arg-type]
    )  # fmt: skip


def main() -> int:
    """Materialize both assets with the persistent instance; 0 on success."""
    resources = {
        "bitrix24": Bitrix24Resource(webhook_url=dg.EnvVar("BITRIX24_WEBHOOK_URL"), api_version=API,
                                     requests_per_second=None, share_limits=False, max_retries=2,
                                     backoff_seconds=0.01),
        "bitrix24_storage": Bitrix24Storage(),
    }  # fmt: skip
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize([rows_csv, target], resources=resources, instance=instance,
                                raise_on_error=False)  # fmt: skip
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
