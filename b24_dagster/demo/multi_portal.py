"""Several portals: one partition per portal, and at most one run per portal at a time.

    DAGSTER_HOME=.b24_dagster_home .venv/bin/dagster dev -m b24_dagster.demo.multi_portal

The deal export is partitioned by portal and day (`MultiPartitionsDefinition` of `portal`
x `date`); each portal's webhook comes from `BITRIX24_WEBHOOK_URL__<PORTAL>` (in the demo,
a variable left unset gets a local emulator of its own under `<home>/portals/<portal>/`).
The schedule asks for one run per portal, tagged `bitrix24/portal=<portal>`, and Dagster
tags every run of a partition `dagster/partition/portal=<portal>` whoever launches it; the
demo home's `dagster.yaml` limits both tags to one run per value, so a second run for the
same portal waits in the queue while other portals proceed. Portals are named by
`B24_DAGSTER_PORTALS` (comma-separated; default `main,branch`).
"""

import os
from pathlib import Path

import dagster as dg

from b24_dagster.demo._home import BASE_ENV, data_dir
from b24_dagster.demo._local_portal import dagster_home, use_local_portal
from b24_dagster.integration import (
    Bitrix24Resource,
    Bitrix24Storage,
    build_bitrix24_export_asset,
    build_bitrix24_export_schedule,
    portal_env_var,
)

PORTALS_ENV = "B24_DAGSTER_PORTALS"
DEFAULT_PORTALS = ("main", "branch")
DEAL_COLUMNS = ["ID", "TITLE", "STAGE_ID", "OPPORTUNITY", "CURRENCY_ID", "DATE_MODIFY", "CLOSED"]


def portal_names() -> tuple[str, ...]:
    """The portals: `$B24_DAGSTER_PORTALS` (comma-separated) or `main,branch`."""
    raw = os.environ.get(PORTALS_ENV, "")
    names = tuple(p.strip() for p in raw.split(",") if p.strip())
    return names or DEFAULT_PORTALS


def build_multi_portal_definitions(
    portals: tuple[str, ...] | None = None, home: Path | None = None
) -> dg.Definitions:
    """The per-portal deal export, its schedule and resources."""
    portals = portals or portal_names()
    home = home or dagster_home()
    for portal in portals:
        use_local_portal(home, env_var=portal_env_var(portal), portal=portal)
    os.environ.setdefault(BASE_ENV, str(data_dir(home)))
    deals = build_bitrix24_export_asset(
        name="deals",
        method="crm.deal.list",
        select=DEAL_COLUMNS,
        incremental=True,
        start_date="2024-01-01",
        portals=portals,
        key_prefix=("bitrix24_portals",),
    )
    return dg.Definitions(
        assets=[deals],
        schedules=[build_bitrix24_export_schedule(deals, hour_of_day=3)],
        # No webhook_url: each portal's client reads BITRIX24_WEBHOOK_URL__<PORTAL> at run time.
        resources={"bitrix24": Bitrix24Resource(), "bitrix24_storage": Bitrix24Storage()},
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded lazily by Dagster (`dagster dev -m b24_dagster.demo.multi_portal`)."""
    return build_multi_portal_definitions()
