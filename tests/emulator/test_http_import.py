"""``crm.item.import`` and ``crm.item.batchImport`` over HTTP.

Doc pages (``api-reference/crm/universal/import/``): ``crm-item-batch-import.md`` ("A maximum of
20 entities can be imported in a single request"; ``{"items": [{"item": {"id": 15}},
{"error": "CRM_FIELD_ERROR_REQUIRED", ...}]}``; 400 ``MAX_IMPORT_BATCH_SIZE_EXCEEDED`` "You cannot
import more than 20 items"; 400 ``NOT_FOUND`` "Smart process not found"), ``crm-item-import.md``
(``{"item": {"id": 4}}``; "An incorrect field in ``fields`` will be ignored") and ``index.md``
(``createdTime``/``updatedTime``/``movedTime``/``createdBy``/... kept; dates not later than now,
``updatedTime >= createdTime``, ``movedTime`` between them, import in ascending ``createdTime``).
"""

from __future__ import annotations

from typing import Any

import requests

from b24_dagster.emulator import PortalEmulator, start_subprocess


def post(emu: PortalEmulator, method: str, body: Any) -> requests.Response:
    return requests.post(emu.webhook_url + method, json=body, timeout=10)


def test_batch_import_per_item_results_and_records_visible(b24_emulator: PortalEmulator) -> None:
    data = [{"title": "A", "originId": "x-1", "opportunity": 10, "NO_SUCH_FIELD": 1},
            {"title": "B", "stageId": "NO_SUCH_STAGE"},
            {"TITLE": "C", "ORIGIN_ID": "x-3"}]
    r = post(b24_emulator, "crm.item.batchImport", {"entityTypeId": 2, "data": data})
    assert r.status_code == 200, r.text
    items = r.json()["result"]["items"]
    assert items[0] == {"item": {"id": 1}} and items[2] == {"item": {"id": 2}}
    assert set(items[1]) == {"error", "error_description"}
    assert items[1]["error"] == "CRM_FIELD_ERROR_VALUE_NOT_VALID"
    listed = post(b24_emulator, "crm.item.list", {"entityTypeId": 2, "select": ["id", "title", "originId"]})
    assert listed.json()["result"]["items"] == [{"id": 1, "title": "A", "originId": "x-1"},
                                                {"id": 2, "title": "C", "originId": "x-3"}]
    legacy = post(b24_emulator, "crm.deal.list", {"filter": {"@ORIGIN_ID": ["x-1", "x-3"]}, "select": ["ID"]})
    assert [row["ID"] for row in legacy.json()["result"]] == ["1", "2"]


def test_batch_import_required_field_error_as_the_page_shows(b24_emulator: PortalEmulator) -> None:
    r = post(b24_emulator, "crm.item.batchImport", {"entityTypeId": 3, "data": [
        {"name": "Anna", "fm": [{"typeId": "EMAIL", "value": "anna@example.com", "valueType": "WORK"}]},
        {"comments": "no name"}]})
    items = r.json()["result"]["items"]
    assert items[0] == {"item": {"id": 1}}
    assert items[1]["error"] == "CRM_FIELD_ERROR_REQUIRED"
    got = post(b24_emulator, "crm.contact.get", {"id": 1}).json()["result"]
    assert got["EMAIL"][0]["VALUE"] == "anna@example.com"


def test_batch_import_more_than_20_is_refused_whole(b24_emulator: PortalEmulator) -> None:
    r = post(b24_emulator, "crm.item.batchImport", {"entityTypeId": 1,
                                                    "data": [{"title": f"L{i}"} for i in range(21)]})
    assert r.status_code == 400
    assert r.json() == {"error": "MAX_IMPORT_BATCH_SIZE_EXCEEDED",
                        "error_description": "You cannot import more than 20 items"}
    assert b24_emulator.counts()["lead"] == 0
    r = post(b24_emulator, "crm.item.batchImport", {"entityTypeId": 1,
                                                    "data": [{"title": f"L{i}"} for i in range(20)]})
    assert len(r.json()["result"]["items"]) == 20 and b24_emulator.counts()["lead"] == 20
    r = post(b24_emulator, "crm.item.batchImport", {"entityTypeId": 77, "data": [{"title": "x"}]})
    assert r.status_code == 400 and r.json()["error"] == "NOT_FOUND"


def test_import_keeps_history_and_checks_its_dates(b24_emulator: PortalEmulator) -> None:
    r = post(b24_emulator, "crm.item.import", {"entityTypeId": 2, "fields": {
        "title": "Old deal", "createdTime": "2024-01-10T09:00:00+00:00", "createdBy": 3,
        "updatedTime": "2024-02-01T00:00:00+00:00", "stageId": "WON"}})
    assert r.status_code == 200, r.text
    assert r.json()["result"] == {"item": {"id": 1}}
    item = post(b24_emulator, "crm.item.get", {"entityTypeId": 2, "id": 1}).json()["result"]["item"]
    assert item["createdTime"] == "2024-01-10T09:00:00+00:00" and item["createdBy"] == 3
    assert item["updatedTime"] == "2024-02-01T00:00:00+00:00" and item["updatedBy"] == 3
    assert item["movedTime"] == "2024-01-10T09:00:00+00:00" and item["stageId"] == "WON"
    deal = post(b24_emulator, "crm.deal.get", {"id": 1}).json()["result"]
    assert deal["DATE_CREATE"] == "2024-01-10T09:00:00+00:00"

    bad = [{"createdTime": "2099-01-01T00:00:00+00:00"},                                 # later than now
           {"createdTime": "2024-03-01T00:00:00+00:00", "updatedTime": "2024-02-01T00:00:00+00:00"},
           {"createdTime": "2024-03-01T00:00:00+00:00", "updatedTime": "2024-04-01T00:00:00+00:00",
            "movedTime": "2024-05-01T00:00:00+00:00"},                                   # moved after updated
           {"createdTime": "2023-12-31T00:00:00+00:00"},                                 # older than deal 1
           {"createdBy": 999}]
    r = post(b24_emulator, "crm.item.batchImport", {"entityTypeId": 2, "data": bad})
    assert [i.get("error") for i in r.json()["result"]["items"]] == ["CRM_FIELD_ERROR_VALUE_NOT_VALID"] * 5
    assert b24_emulator.counts()["deal"] == 1
    r = post(b24_emulator, "crm.item.import", {"entityTypeId": 2, "fields": {"createdTime": "2023-01-01"}})
    assert r.status_code == 400 and r.json()["error"] == "CRM_FIELD_ERROR_VALUE_NOT_VALID"


def test_batch_import_inside_a_form_encoded_batch(b24_emulator: PortalEmulator) -> None:
    r = requests.post(b24_emulator.webhook_url + "batch", timeout=10, data={
        "halt": "0",
        "cmd[imp]": "crm.item.batchImport?entityTypeId=1&data[0][title]=One&data[0][originId]=o-1"
                    "&data[1][TITLE]=Two&data[1][PHONE][0][VALUE]=%2B4930555&data[1][PHONE][0][VALUE_TYPE]=WORK",
        "cmd[one]": "crm.item.import?entityTypeId=1&fields[title]=Three",
        "cmd[dup]": "crm.duplicate.findbycomm?type=PHONE&values[0]=4930555",
    })
    body = r.json()["result"]
    assert body["result_error"] == []
    assert body["result"]["imp"] == {"items": [{"item": {"id": 1}}, {"item": {"id": 2}}]}
    assert body["result"]["one"] == {"item": {"id": 3}}
    assert body["result"]["dup"] == {"LEAD": [2]}


def test_import_cost_is_charged_per_record(b24_emulator: PortalEmulator) -> None:
    b24_emulator.configure(import_cost=1.5)
    r = post(b24_emulator, "crm.item.batchImport", {"entityTypeId": 1, "data": [{"title": "a"}] * 4})
    assert r.json()["time"]["operating"] == 6.0
    r = post(b24_emulator, "crm.item.import", {"entityTypeId": 1, "fields": {"title": "b"}})
    assert r.json()["time"]["operating"] == 1.5


def test_import_cost_flag_of_the_command_line() -> None:
    with start_subprocess(["--rate", "0", "--import-cost", "0.25"]) as emu:
        r = requests.post(emu.webhook_url + "crm.item.batchImport", timeout=10,
                          json={"entityTypeId": 1, "data": [{"title": "a"}, {"title": "b"}]})
        assert r.json()["time"]["operating"] == 0.5
