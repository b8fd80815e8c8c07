"""The code location both code servers of `test_postgres_queue.py` load (two "hosts").

Two portals, `main` and `branch`, each behind its own webhook
(`BITRIX24_WEBHOOK_URL__MAIN`, `__BRANCH`). Each write asset creates `SCALEOUT_ROWS` leads
keyed by its run id (so every run writes, and a re-execution would resume, not duplicate)
and runs in the pool of its portal (`bitrix24/main`, `bitrix24/branch`).

Every client has its own rate-limit bucket (`share_limits=False`): what one process sends,
no other knows, as when each step runs on its own host or pod. What keeps a portal inside
its limit is then Dagster's: the run queue's per-portal tag limit across runs, the
per-portal pool across the steps of one run.

Jobs (each tagged `bitrix24/portal=<portal>`): `import_main_job`, `import_branch_job`, and
`main_two_steps_job` (two write assets on `main` in one run, on the multiprocess executor).
"""

from __future__ import annotations

import os

import dagster as dg
import pandas as pd

from b24_dagster.integration import (
    PORTAL_TAG,
    Bitrix24Resource,
    Bitrix24Storage,
    build_bitrix24_batch_asset,
)

PORTALS = ("main", "branch")
ROWS = int(os.environ.get("SCALEOUT_ROWS", "400"))
RATE = float(os.environ.get("SCALEOUT_CLIENT_RATE", "2"))
BURST = int(os.environ.get("SCALEOUT_CLIENT_BURST", "4"))


def _rows(name: str):
    def source(context: dg.AssetExecutionContext) -> pd.DataFrame:
        keys = [f"{name}-{context.run_id[:8]}-{i:05d}" for i in range(ROWS)]
        return pd.DataFrame({"external_id": keys, "title": [f"Lead {k}" for k in keys]})

    return source


def _import(name: str, portal: str, method: str = "crm.lead.add", field: str = "TITLE") -> dg.AssetsDefinition:
    return build_bitrix24_batch_asset(
        name=name, method=method, source=_rows(name),
        fields={"title": field, "external_id": "ORIGIN_ID"}, key_column="external_id",
        resource_key=f"bitrix24_{portal}", pool=f"bitrix24/{portal}",
    )  # fmt: skip


import_main = _import("import_main", "main")
# Contacts, not leads: two assets syncing one entity by one key field are one key space and never
# write at once (the key-space lock); these two may, so the pool is what keeps them apart.
import_main_b = _import("import_main_b", "main", "crm.contact.add", "NAME")
import_branch = _import("import_branch", "branch")


def _resource(portal: str) -> Bitrix24Resource:
    return Bitrix24Resource(
        webhook_url=dg.EnvVar(f"BITRIX24_WEBHOOK_URL__{portal.upper()}"),
        requests_per_second=RATE, burst=BURST, share_limits=False,
    )  # fmt: skip


defs = dg.Definitions(
    assets=[import_main, import_main_b, import_branch],
    jobs=[
        dg.define_asset_job("import_main_job", [import_main], tags={PORTAL_TAG: "main"}),
        dg.define_asset_job("import_branch_job", [import_branch], tags={PORTAL_TAG: "branch"}),
        dg.define_asset_job("main_two_steps_job", [import_main, import_main_b], tags={PORTAL_TAG: "main"}),
    ],
    resources={
        **{f"bitrix24_{p}": _resource(p) for p in PORTALS},
        "bitrix24_storage": Bitrix24Storage(),
    },
)
