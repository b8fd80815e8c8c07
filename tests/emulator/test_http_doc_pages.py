"""Answers that third-party clients' suites found different from their doc pages, over HTTP.

Each test names the page (``bitrix24/b24restdocs``) it follows.
"""

from __future__ import annotations

from typing import Any

import requests

from b24_dagster.emulator import PortalEmulator


def _call(emu: PortalEmulator, method: str, params: dict[str, Any]) -> requests.Response:
    return requests.post(emu.webhook_url + method, json=params, timeout=10)


def test_task_get_of_a_missing_task_is_an_empty_result(b24_emulator: PortalEmulator) -> None:
    """``api-reference/tasks/tasks-task-get.md``: ``"result": []`` with 200 when the task
    does not exist; code ``0`` "wrong task id" for an id of the wrong type."""
    b24_emulator.portal.seed("task", 3)
    found = _call(b24_emulator, "tasks.task.get", {"taskId": 2, "select": ["ID", "TITLE"]})
    assert found.status_code == 200 and found.json()["result"]["task"]["id"] == "2"
    missing = _call(b24_emulator, "tasks.task.get", {"taskId": 99, "select": ["ID", "TITLE"]})
    assert missing.status_code == 200
    assert missing.json()["result"] == [] and "operating" in missing.json()["time"]
    for wrong in (-1, "abc"):
        r = _call(b24_emulator, "tasks.task.get", {"taskId": wrong})
        assert r.status_code == 400
        assert r.json() == {"error": "0", "error_description": "wrong task id"}


def test_deal_fields_list_contact_ids_which_get_does_not_show(b24_emulator: PortalEmulator) -> None:
    """``api-reference/crm/deals/crm-deal-fields.md`` lists ``CONTACT_IDS`` (multiple
    ``crm_contact``); ``crm-deal-add.md`` takes it; ``crm-deal-list.md``: list does not
    support it (nor does ``crm.deal.get``'s example show it)."""
    fields = _call(b24_emulator, "crm.deal.fields", {}).json()["result"]
    described = fields["CONTACT_IDS"]
    assert (described["type"], described["isMultiple"], described["isReadOnly"]) == ("crm_contact", True, False)
    b24_emulator.portal.seed("contact", 3)
    deal_id = _call(b24_emulator, "crm.deal.add",
                    {"fields": {"TITLE": "d", "CONTACT_IDS": [2, 3]}}).json()["result"]
    item = requests.post(b24_emulator.webhook_url + "crm.item.get",
                         json={"entityTypeId": 2, "id": deal_id}, timeout=10).json()
    assert item["result"]["item"]["contactIds"] == [2, 3]
    deal = _call(b24_emulator, "crm.deal.get", {"id": deal_id}).json()["result"]
    assert "CONTACT_IDS" not in deal
    listed = _call(b24_emulator, "crm.deal.list", {"select": ["ID", "CONTACT_IDS"]}).json()["result"]
    assert listed == [{"ID": str(deal_id)}]


def test_company_fields_and_get_have_the_address(b24_emulator: PortalEmulator) -> None:
    """``api-reference/crm/companies/crm-company-fields.md`` (``ADDRESS`` ...
    ``REG_ADDRESS_LOC_ADDR_ID``) and ``crm-company-get.md`` (each shown, ``null`` when empty)."""
    fields = _call(b24_emulator, "crm.company.fields", {}).json()["result"]
    assert fields["ADDRESS"]["type"] == "string" and not fields["ADDRESS"]["isReadOnly"]
    assert fields["ADDRESS_LOC_ADDR_ID"]["type"] == "integer"
    assert "REG_ADDRESS_COUNTRY_CODE" in fields
    cid = _call(b24_emulator, "crm.company.add",
                {"fields": {"TITLE": "c", "ADDRESS": "1 Main St", "ADDRESS_CITY": "Berlin"}}).json()["result"]
    company = _call(b24_emulator, "crm.company.get", {"id": cid}).json()["result"]
    assert company["ADDRESS"] == "1 Main St" and company["ADDRESS_CITY"] == "Berlin"
    assert company["ADDRESS_2"] is None and company["REG_ADDRESS"] is None
    keys = list(company)
    assert keys.index("ORIGIN_ID") < keys.index("ADDRESS") < keys.index("UTM_SOURCE")


def test_app_info_has_language_id(b24_emulator: PortalEmulator) -> None:
    """``api-reference/common/system/app-info.md``: ``LANGUAGE_ID`` between ``DAYS`` and
    ``LICENSE``, the language prefix of ``LICENSE``."""
    result = _call(b24_emulator, "app.info", {}).json()["result"]
    keys = list(result)
    assert keys.index("DAYS") + 1 == keys.index("LANGUAGE_ID") == keys.index("LICENSE") - 1
    assert result["LICENSE"].startswith(result["LANGUAGE_ID"] + "_")
