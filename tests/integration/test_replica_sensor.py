"""The change probe sensor against the emulator: one request per portal and tick, a run only
when an entity changed (with the reference tables), an observation when it did not."""

from __future__ import annotations

from typing import Any

import dagster as dg
import requests

from b24_dagster.integration import (
    build_bitrix24_reference_asset,
    build_bitrix24_replica_asset,
    build_bitrix24_replica_sensor,
)


def _call(emu: Any, method: str, params: dict[str, Any]) -> Any:
    answer = requests.post(emu.webhook_url + method, json=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def _tick(sensor: dg.SensorDefinition, resources: dict[str, Any], instance: dg.DagsterInstance,
          cursor: str | None, emu: Any) -> tuple[dg.SensorResult, int]:
    before = len(emu.request_log)
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result, len(emu.request_log) - before


def test_the_sensor_runs_only_the_entities_that_changed(b24_emulator, resources, instance) -> None:
    b24_emulator.portal.seed("deal", 50)
    b24_emulator.portal.seed("company", 20)
    deals = build_bitrix24_replica_asset(entity="deal", select=["ID", "TITLE", "DATE_MODIFY"])
    leads = build_bitrix24_replica_asset(entity="lead", filter={"ASSIGNED_BY_ID": 3})
    companies = build_bitrix24_replica_asset(entity="company")
    reference = build_bitrix24_reference_asset()
    sensor = build_bitrix24_replica_sensor([deals, leads, companies], reference=reference)

    first, requests_sent = _tick(sensor, resources, instance, None, b24_emulator)
    assert requests_sent == 1   # every entity's probe in one batch
    assert len(first.run_requests) == 1
    selected = set(first.run_requests[0].asset_selection)
    assert {*deals.keys, *leads.keys, *companies.keys, *reference.keys} == selected

    quiet, requests_sent = _tick(sensor, resources, instance, first.cursor, b24_emulator)
    assert requests_sent == 1 and quiet.run_requests == []
    observed = {e.asset_key: e.metadata for e in quiet.asset_events}
    assert set(observed) == {deals.key, leads.key, companies.key}
    assert observed[deals.key]["total"].value == 50
    assert observed[companies.key]["changed"].value is False

    _call(b24_emulator, "crm.deal.update", {"id": 7, "fields": {"TITLE": "changed"}})
    changed, _ = _tick(sensor, resources, instance, quiet.cursor, b24_emulator)
    assert [set(r.asset_selection) for r in changed.run_requests] == [{*deals.keys, *reference.keys}]
    assert {e.asset_key for e in changed.asset_events} == {leads.key, companies.key}

    _call(b24_emulator, "crm.company.delete", {"id": 3})   # a deletion changes the count
    deleted, _ = _tick(sensor, resources, instance, changed.cursor, b24_emulator)
    assert [set(r.asset_selection) for r in deleted.run_requests] == [{*companies.keys, *reference.keys}]

    # a lead assigned to another user: the filtered count does not move, the unfiltered one does
    lead = _call(b24_emulator, "crm.lead.add", {"fields": {"TITLE": "other's", "ASSIGNED_BY_ID": 4}})
    other, _ = _tick(sensor, resources, instance, deleted.cursor, b24_emulator)
    assert [set(r.asset_selection) for r in other.run_requests] == [{*leads.keys, *reference.keys}]
    assert lead


def test_the_sensor_asks_each_portal_for_its_partition(b24_emulator, resources, instance, monkeypatch) -> None:
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL__MAIN", b24_emulator.webhook_url)
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL__EU", b24_emulator.webhook_url)
    b24_emulator.portal.seed("deal", 5)
    deals = build_bitrix24_replica_asset(entity="deal", portals=["main", "eu"])
    reference = build_bitrix24_reference_asset(portals=["main", "eu"])
    sensor = build_bitrix24_replica_sensor([deals], reference=reference)
    first, requests_sent = _tick(sensor, resources, instance, None, b24_emulator)
    assert requests_sent == 2
    assert sorted(r.partition_key for r in first.run_requests) == ["eu", "main"]
    assert all(r.tags["bitrix24/portal"] == r.partition_key for r in first.run_requests)
    quiet, _ = _tick(sensor, resources, instance, first.cursor, b24_emulator)
    assert quiet.run_requests == [] and sorted(e.partition for e in quiet.asset_events) == ["eu", "main"]
