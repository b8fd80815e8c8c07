"""User fields end to end on the emulator, over HTTP: created, listed in ``*.fields``, written,
read back typed.

Pages: ``api-reference/crm/deals/user-defined-fields/crm-deal-userfield-{add,get,list,update,
delete}.md`` (and the lead, contact and company twins), ``crm-deal-fields.md`` and
``crm/universal/crm-item-fields.md`` (user fields there: ``isDynamic``, labels, ``settings``,
``items``, as ``crm/_include/user-fields-for-examples-cut.md`` shows them).
"""

from __future__ import annotations

from typing import Any

import requests

from b24_dagster.emulator import PortalEmulator


def _call(emu: PortalEmulator, method: str, params: dict[str, Any] | None = None) -> requests.Response:
    return requests.post(emu.webhook_url + method, json=params or {}, timeout=10)


def _result(emu: PortalEmulator, method: str, params: dict[str, Any] | None = None) -> Any:
    r = _call(emu, method, params)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def _add_fields(emu: PortalEmulator) -> dict[str, int]:
    ids = {
        "note": _result(emu, "crm.deal.userfield.add", {"fields": {
            "FIELD_NAME": "manager_note", "USER_TYPE_ID": "string", "LABEL": "Manager note"}}),
        "score": _result(emu, "crm.deal.userfield.add", {"fields": {
            "FIELD_NAME": "UF_SCORE", "USER_TYPE_ID": "double", "LABEL": "Score"}}),
        "signed": _result(emu, "crm.deal.userfield.add", {"fields": {
            "FIELD_NAME": "UF_CRM_SIGNED", "USER_TYPE_ID": "date", "LABEL": "Signed"}}),
        "channel": _result(emu, "crm.deal.userfield.add", {"fields": {
            "FIELD_NAME": "CHANNEL", "USER_TYPE_ID": "enumeration", "LABEL": "Channel", "MULTIPLE": "Y",
            "LIST": [{"VALUE": "Radio"}, {"VALUE": "TV"}, {"VALUE": ""}]}}),
    }
    return ids


def test_add_names_the_field_and_list_get_show_it(b24_emulator: PortalEmulator) -> None:
    ids = _add_fields(b24_emulator)
    listed = _call(b24_emulator, "crm.deal.userfield.list", {"order": {"ID": "ASC"}}).json()
    assert listed["total"] == 4
    names = [u["FIELD_NAME"] for u in listed["result"]]
    assert names == ["UF_CRM_MANAGER_NOTE", "UF_CRM_SCORE", "UF_CRM_SIGNED", "UF_CRM_CHANNEL"]
    first = listed["result"][0]
    assert (first["ENTITY_ID"], first["USER_TYPE_ID"], first["EDIT_FORM_LABEL"]) == ("CRM_DEAL", "string",
                                                                                     "Manager note")
    channel = _result(b24_emulator, "crm.deal.userfield.get", {"id": ids["channel"]})
    assert [e["VALUE"] for e in channel["LIST"]] == ["Radio", "TV"]   # an empty VALUE is ignored
    assert channel["EDIT_FORM_LABEL"]["en"] == channel["EDIT_FORM_LABEL"]["de"] == "Channel"
    enum = _result(b24_emulator, "crm.deal.userfield.list", {"filter": {"USER_TYPE_ID": "enumeration"}})
    assert [u["FIELD_NAME"] for u in enum] == ["UF_CRM_CHANNEL"]
    # not on other entities
    assert _result(b24_emulator, "crm.lead.userfield.list") == []


def test_fields_list_them_typed(b24_emulator: PortalEmulator) -> None:
    _add_fields(b24_emulator)
    legacy = _result(b24_emulator, "crm.deal.fields")
    assert legacy["UF_CRM_SCORE"]["type"] == "double" and legacy["UF_CRM_SCORE"]["isDynamic"] is True
    assert legacy["UF_CRM_CHANNEL"]["isMultiple"] is True
    assert [i["VALUE"] for i in legacy["UF_CRM_CHANNEL"]["items"]] == ["Radio", "TV"]
    item = _result(b24_emulator, "crm.item.fields", {"entityTypeId": 2})["fields"]
    assert item["ufCrmManagerNote"]["upperName"] == "UF_CRM_MANAGER_NOTE"
    assert item["ufCrmSigned"]["type"] == "date" and item["ufCrmSigned"]["title"] == "Signed"


def test_values_written_by_both_families_and_read_back(b24_emulator: PortalEmulator) -> None:
    _add_fields(b24_emulator)
    channel = _result(b24_emulator, "crm.deal.userfield.list", {"filter": {"FIELD_NAME": "UF_CRM_CHANNEL"}})[0]
    radio, tv = (int(e["ID"]) for e in channel["LIST"])
    deal = _result(b24_emulator, "crm.deal.add", {"fields": {
        "TITLE": "uf", "UF_CRM_MANAGER_NOTE": "call back", "UF_CRM_SCORE": "4.5",
        "UF_CRM_SIGNED": "2026-03-01", "UF_CRM_CHANNEL": [radio, tv]}})
    got = _result(b24_emulator, "crm.deal.get", {"id": deal})
    assert (got["UF_CRM_MANAGER_NOTE"], got["UF_CRM_SCORE"], got["UF_CRM_CHANNEL"]) == (
        "call back", "4.5", [str(radio), str(tv)])
    assert got["UF_CRM_SIGNED"].startswith("2026-03-01T00:00:00")
    item = _result(b24_emulator, "crm.item.get", {"entityTypeId": 2, "id": deal})["item"]
    assert (item["ufCrmScore"], item["ufCrmChannel"]) == (4.5, [radio, tv])
    _result(b24_emulator, "crm.item.update", {"entityTypeId": 2, "id": deal, "fields": {"ufCrmScore": 5}})
    assert _result(b24_emulator, "crm.deal.get", {"id": deal})["UF_CRM_SCORE"] == "5.0"
    # legacy list: only when selected (UF_* or the name); crm.item.list: by default
    plain = _result(b24_emulator, "crm.deal.list", {"select": ["ID"]})[0]
    assert "UF_CRM_SCORE" not in plain
    assert _result(b24_emulator, "crm.deal.list", {"select": ["ID", "UF_*"]})[0]["UF_CRM_SCORE"] == "5.0"
    assert _result(b24_emulator, "crm.deal.list", {"select": ["ID", "UF_CRM_SCORE"]})[0] == {
        "ID": str(deal), "UF_CRM_SCORE": "5.0"}
    items = _result(b24_emulator, "crm.item.list", {"entityTypeId": 2})["items"]
    assert items[0]["ufCrmManagerNote"] == "call back"
    r = _call(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "bad", "UF_CRM_SCORE": "lots"}})
    assert r.status_code == 400 and "UF_CRM_SCORE" in r.json()["error_description"]
    r = _call(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "bad", "UF_CRM_CHANNEL": [999]}})
    assert r.status_code == 400


def test_update_mandatory_and_delete(b24_emulator: PortalEmulator) -> None:
    ids = _add_fields(b24_emulator)
    assert _result(b24_emulator, "crm.deal.userfield.update", {"id": ids["note"], "fields": {
        "MANDATORY": "Y", "EDIT_FORM_LABEL": "Note"}}) is True
    r = _call(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "no note"}})
    assert r.status_code == 400 and r.json()["error_description"] == 'The field "Note" is required.'
    assert _result(b24_emulator, "crm.deal.userfield.delete", {"id": ids["note"]}) is True
    assert "UF_CRM_MANAGER_NOTE" not in _result(b24_emulator, "crm.deal.fields")
    r = _call(b24_emulator, "crm.deal.userfield.get", {"id": ids["note"]})
    assert r.json() == {"error": "ERROR_NOT_FOUND",
                        "error_description": f"The entity with ID '{ids['note']}' is not found."}


def test_add_errors_are_the_pages(b24_emulator: PortalEmulator) -> None:
    cases = [({"USER_TYPE_ID": "string"}, "", "The 'FIELD_NAME' field is not found."),
             ({"FIELD_NAME": "X"}, "", "The 'USER_TYPE_ID' field is not found."),
             ({"FIELD_NAME": "X", "USER_TYPE_ID": "nope"}, "ERROR_CORE", "Incorrect custom type specified."),
             ({"FIELD_NAME": "A" * 44, "USER_TYPE_ID": "string"}, "ERROR_CORE",
              "Field name is too long (more than 50 characters)."),
             ({"FIELD_NAME": "BAD-NAME", "USER_TYPE_ID": "string"}, "ERROR_CORE",
              "Field name contains invalid characters. Allowed characters are: A-Z, 0-9 and _.")]
    for fields, code, text in cases:
        r = _call(b24_emulator, "crm.company.userfield.add", {"fields": fields})
        assert r.status_code == 400 and r.json() == {"error": code, "error_description": text}, fields
    r = _call(b24_emulator, "crm.company.userfield.get", {"id": 0})
    assert r.json()["error_description"] == "ID is not defined or invalid."
