"""The demo pipeline: Bitrix24 -> Parquet -> dbt -> Bitrix24.

- `bitrix24/lead_import`: a shipped CSV of 200 leads sent as `crm.lead.add` in chunked
  batches; about 5% of the rows are refused by the portal on purpose (a malformed e-mail,
  a responsible user or a lead status the portal does not have), so the results asset shows
  partial failure and its WARN check fires.
- `bitrix24/deals`: every deal exported to Parquet, on a daily schedule.
- the dbt project in `dbt_examples/` on top of both (staging views, analyst marts).
- `bitrix24/stale_deal_flags`: a write-back that reads the `stale_deals` mart from DuckDB
  and marks those deals in the portal with `crm.deal.update`.
- `bitrix24/replica/deals` (with its history and stage moves) and the reference tables: the
  deals kept as one current-state table, deletions flagged; a sensor (stopped) runs them when
  the portal changes. dbt names their ids and times each stage (`deal_stage_durations`).
- the YAML Component instances of `b24_dagster/defs/` (the `crm_sync` exports and import).

Loading this module points the resource at the demo's local portal unless
`BITRIX24_WEBHOOK_URL` names a real one (see `_local_portal.py`).
"""

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from b24_dagster.components import shared_resources
from b24_dagster.demo._dbt import dbt_resource, load_dbt_project
from b24_dagster.demo._home import BASE_ENV, data_dir, duckdb_path
from b24_dagster.demo._local_portal import dagster_home, use_local_portal
from b24_dagster.integration import (
    Bitrix24AssetProps,
    Bitrix24Translator,
    build_bitrix24_batch_asset,
    build_bitrix24_export_asset,
    build_bitrix24_export_schedule,
    build_bitrix24_reference_asset,
    build_bitrix24_replica_asset,
    build_bitrix24_replica_sensor,
)

LEADS_CSV = Path(__file__).parent / "data" / "leads.csv"
DEFS_FOLDER = Path(__file__).resolve().parents[1] / "defs"
DEAL_COLUMNS = [
    "ID", "TITLE", "STAGE_ID", "CATEGORY_ID", "OPPORTUNITY", "CURRENCY_ID",
    "ASSIGNED_BY_ID", "DATE_CREATE", "DATE_MODIFY", "CLOSED",
]  # fmt: skip
LEAD_DTYPES = {
    "external_id": "string", "TITLE": "string", "NAME": "string", "LAST_NAME": "string",
    "EMAIL": "string", "PHONE": "string", "STATUS_ID": "string", "SOURCE_ID": "string",
    "OPPORTUNITY": "float64", "CURRENCY_ID": "string", "ASSIGNED_BY_ID": "Int64",
    "COMMENTS": "string",
}  # fmt: skip
STALE_MART = "stale_deals"


def read_leads(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """The shipped CSV of leads (the key column `external_id` joins results back to it).

    `external_id` is also sent as the lead's ORIGIN_ID: a create whose answer is lost is
    then looked up by it instead of staying `unknown` (docs/integration.md).
    """
    frame = pd.read_csv(LEADS_CSV, dtype=LEAD_DTYPES)  # type: ignore[arg-type]
    frame["ORIGIN_ID"] = frame["external_id"]
    context.log.info(f"{len(frame)} leads read from {LEADS_CSV.name}")
    return frame


def read_stale_deals(context: dg.AssetExecutionContext) -> pd.DataFrame:
    """The `stale_deals` mart, as `crm.deal.update` rows: the deal id and a comment."""
    import duckdb

    with duckdb.connect(str(duckdb_path()), read_only=True) as con:
        frame = con.execute(
            f"select deal_id, days_since_modified from {STALE_MART} order by deal_id"
        ).df()
    today = datetime.now(UTC).date().isoformat()
    frame["COMMENTS"] = [
        f"Stale: no change for {days} days (flagged by b24-dagster on {today})."
        for days in frame.pop("days_since_modified")
    ]
    frame["deal_id"] = frame["deal_id"].astype("int64")
    context.log.info(f"{len(frame)} stale deals to flag")
    return frame


class _DependsOnMart(Bitrix24Translator):
    """Draws the write-back after the dbt mart it reads (the loader reads DuckDB directly)."""

    def get_asset_spec(self, props: Bitrix24AssetProps) -> dg.AssetSpec:
        return super().get_asset_spec(props).replace_attributes(deps=[dg.AssetKey(STALE_MART)])


class _DbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Any) -> str | None:
        return "dbt_examples"


def _dbt_assets(project: DbtProject) -> dg.AssetsDefinition:
    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        dagster_dbt_translator=_DbtTranslator(),
    )
    def dbt_examples(context: dg.AssetExecutionContext, dbt: DbtCliResource) -> Any:
        """The dbt project `dbt_examples` (staging views and marts on the Parquet files)."""
        duckdb_path().parent.mkdir(parents=True, exist_ok=True)
        yield from dbt.cli(["build"], context=context).stream()

    return dbt_examples


def build_definitions(home: Path | None = None) -> dg.Definitions:
    """The demo's definitions for the Dagster home `home` (default: `dagster_home()`)."""
    home = home or dagster_home()
    use_local_portal(home)
    # One base location for the Parquet files, the dbt DuckDB file and every process.
    os.environ.setdefault(BASE_ENV, str(data_dir(home)))

    lead_import = build_bitrix24_batch_asset(
        name="lead_import",
        method="crm.lead.add",
        source=read_leads,
        key_column="external_id",
        failure_rate_threshold=0.03,
        entity="lead",
    )
    deals = build_bitrix24_export_asset(name="deals", method="crm.deal.list", select=DEAL_COLUMNS)
    stale_deal_flags = build_bitrix24_batch_asset(
        name="stale_deal_flags",
        method="crm.deal.update",
        source=read_stale_deals,
        id_column="deal_id",
        fields={"COMMENTS": "COMMENTS"},
        entity="deal",
        translator=_DependsOnMart(),
    )
    deal_replica = build_bitrix24_replica_asset(entity="deal", select=DEAL_COLUMNS, history=True)
    reference = build_bitrix24_reference_asset()
    project = load_dbt_project()
    dbt_models = _dbt_assets(project)

    python_defs = dg.Definitions(
        assets=[lead_import, deals, dbt_models, stale_deal_flags, deal_replica, reference],
        schedules=[build_bitrix24_export_schedule(deals, cron_schedule="0 3 * * *")],
        sensors=[build_bitrix24_replica_sensor([deal_replica], reference=reference)],
        jobs=[
            dg.define_asset_job(
                "demo_pipeline",
                selection=dg.AssetSelection.assets(
                    lead_import, deals, dbt_models, stale_deal_flags, deal_replica, reference
                ),
                description="Import the leads, export the deals, build dbt, write back.",
            )
        ],
        resources={**shared_resources(), "dbt": dbt_resource(project)},
        # One process for the whole run: each step of the multiprocess executor would load
        # these definitions (dbt manifest and all) again, which costs more than the steps.
        executor=dg.in_process_executor,
    )
    return dg.Definitions.merge(
        python_defs, dg.load_from_defs_folder(path_within_project=DEFS_FOLDER)
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded lazily by Dagster (`dagster ... -f definitions.py`, `dg check defs`)."""
    return build_definitions()
