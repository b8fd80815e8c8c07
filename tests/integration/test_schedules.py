"""Export schedules: daily partitions, and one run per portal tagged with the portal."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from b24_dagster.integration import (
    PORTAL_TAG,
    Bitrix24Resource,
    Bitrix24Storage,
    build_bitrix24_export_asset,
    build_bitrix24_export_schedule,
)

RESOURCES = {"bitrix24": Bitrix24Resource(), "bitrix24_storage": Bitrix24Storage()}
TICK = dt.datetime(2025, 3, 2, 3, 0, tzinfo=dt.UTC)


def _requests(asset: dg.AssetsDefinition) -> list[dg.RunRequest]:
    schedule = build_bitrix24_export_schedule(asset)
    defs = dg.Definitions(assets=[asset], schedules=[schedule], resources=RESOURCES)
    schedule_def = defs.resolve_schedule_def(schedule.name)
    context = dg.build_schedule_context(scheduled_execution_time=TICK, repository_def=defs.get_repository_def())
    return list(schedule_def.evaluate_tick(context).run_requests or [])


def test_incremental_export_schedules_yesterday():
    deals = build_bitrix24_export_asset(
        name="deals", method="crm.deal.list", incremental=True, start_date="2025-01-01"
    )
    assert isinstance(deals.partitions_def, dg.DailyPartitionsDefinition)
    [request] = _requests(deals)
    assert request.partition_key == "2025-03-01"


def test_multi_portal_schedule_tags_each_run_with_its_portal():
    deals = build_bitrix24_export_asset(
        name="deals", method="crm.deal.list", incremental=True, start_date="2025-01-01",
        portals=["main", "eu"],
    )  # fmt: skip
    assert isinstance(deals.partitions_def, dg.MultiPartitionsDefinition)
    requests = _requests(deals)
    assert {r.tags[PORTAL_TAG] for r in requests} == {"main", "eu"}
    for r in requests:
        assert r.partition_key.keys_by_dimension == {"portal": r.tags[PORTAL_TAG], "date": "2025-03-01"}


def test_full_multi_portal_export_is_partitioned_by_portal():
    contacts = build_bitrix24_export_asset(
        name="contacts", method="crm.contact.list", portals=["main", "eu"]
    )
    assert contacts.partitions_def.get_partition_keys() == ["main", "eu"]
    assert [r.partition_key for r in _requests(contacts)] == ["main", "eu"]
