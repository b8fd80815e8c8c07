"""The methods a replica reads, over HTTP, each as its page (bitrix24/b24restdocs) says.

``crm.stagehistory.list`` (``api-reference/crm/crm-stage-history-list.md``), ``crm.activity.*``
(``api-reference/crm/timeline/activities/activity-base/``), ``crm.currency.*``
(``api-reference/crm/currency/``), ``scope`` (``api-reference/common/system/scope.md``), and
modification times at the portal's resolution (whole seconds).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import requests

from b24_dagster import Bitrix24Client
from b24_dagster.emulator import PortalEmulator


def _call(emu: PortalEmulator, method: str, params: dict[str, Any] | None = None) -> requests.Response:
    return requests.post(emu.webhook_url + method, json=params or {}, timeout=10)


def _result(emu: PortalEmulator, method: str, params: dict[str, Any] | None = None) -> Any:
    answer = _call(emu, method, params)
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]


def test_stage_history_records_creations_and_every_kind_of_move(b24_emulator: PortalEmulator) -> None:
    """crm-stage-history-list.md: TYPE_ID 1 creation, 2 intermediate stage, 3 final stage, 5
    pipeline; deals carry CATEGORY_ID/STAGE_*; rows under result.items with total."""
    deal = _result(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "d"}})
    _result(b24_emulator, "crm.deal.update", {"id": deal, "fields": {"STAGE_ID": "PREPARATION"}})
    _result(b24_emulator, "crm.deal.update", {"id": deal, "fields": {"TITLE": "no move"}})
    _result(b24_emulator, "crm.item.update", {"entityTypeId": 2, "id": deal, "fields": {"stageId": "WON"}})
    category = _result(b24_emulator, "crm.category.add", {"entityTypeId": 2, "fields": {"name": "Second"}})
    # CATEGORY_ID is immutable in crm.deal.update (crm-deal-fields.md); crm.item.update moves a deal
    _result(b24_emulator, "crm.item.update", {"entityTypeId": 2, "id": deal,
                                              "fields": {"categoryId": category["category"]["id"]}})
    answer = _call(b24_emulator, "crm.stagehistory.list",
                   {"entityTypeId": 2, "order": {"ID": "ASC"}, "filter": {"OWNER_ID": deal}}).json()
    moves = answer["result"]["items"]
    assert answer["total"] == 4
    assert [(m["TYPE_ID"], m["STAGE_ID"], m["STAGE_SEMANTIC_ID"]) for m in moves] == [
        (1, "NEW", "P"), (2, "PREPARATION", "P"), (3, "WON", "S"),
        (5, f"C{category['category']['id']}:NEW", "P")]
    assert set(moves[0]) == {"ID", "TYPE_ID", "OWNER_ID", "CREATED_TIME", "CATEGORY_ID",
                             "STAGE_SEMANTIC_ID", "STAGE_ID"}
    assert isinstance(moves[0]["ID"], int) and moves[0]["OWNER_ID"] == deal
    datetime.fromisoformat(moves[0]["CREATED_TIME"])
    picked = _result(b24_emulator, "crm.stagehistory.list",
                     {"entityTypeId": 2, "select": ["ID", "STAGE_ID", "CREATED_TIME"]})["items"][0]
    assert set(picked) == {"ID", "STAGE_ID", "CREATED_TIME"}   # the parameter table's select


def test_stage_history_of_leads_and_smart_processes(b24_emulator: PortalEmulator) -> None:
    """Leads carry STATUS_ID and STATUS_SEMANTIC_ID (no CATEGORY_ID); smart processes the
    deal's keys, by their entityTypeId; other types are ENTITY_TYPE_NOT_SUPPORTED."""
    lead = _result(b24_emulator, "crm.lead.add", {"fields": {"TITLE": "l"}})
    _result(b24_emulator, "crm.lead.update", {"id": lead, "fields": {"STATUS_ID": "JUNK"}})
    moves = _result(b24_emulator, "crm.stagehistory.list", {"entityTypeId": 1})["items"]
    assert [(m["TYPE_ID"], m["STATUS_ID"], m["STATUS_SEMANTIC_ID"]) for m in moves] == [
        (1, "NEW", "P"), (3, "JUNK", "F")]
    assert "CATEGORY_ID" not in moves[0]
    spa = _result(b24_emulator, "crm.type.add", {"fields": {"title": "Orders", "entityTypeId": 1032}})["type"]
    item = _result(b24_emulator, "crm.item.add", {"entityTypeId": 1032, "fields": {"title": "o"}})["item"]
    spa_moves = _result(b24_emulator, "crm.stagehistory.list", {"entityTypeId": spa["entityTypeId"]})["items"]
    assert [(m["OWNER_ID"], m["STAGE_ID"]) for m in spa_moves] == [(item["id"], item["stageId"])]
    assert _result(b24_emulator, "crm.stagehistory.list", {"entityTypeId": 2})["items"] == []
    refused = _call(b24_emulator, "crm.stagehistory.list", {"entityTypeId": 3})
    assert refused.status_code == 400
    assert refused.json() == {"error": "ENTITY_TYPE_NOT_SUPPORTED",
                              "error_description": "Entity type `CONTACT` is not supported"}
    bad = _call(b24_emulator, "crm.stagehistory.list", {"entityTypeId": 1, "filter": {"TITLE": "x"}})
    assert bad.json() == {"error": "INVALID_ARG_VALUE",
                          "error_description": "Invalid filter: field 'TITLE' is not allowed in filter"}
    direction = _call(b24_emulator, "crm.stagehistory.list", {"entityTypeId": 1, "order": {"ID": "UP"}})
    assert direction.json()["error"] == "INVALID_ARG_VALUE"


def test_stage_history_reads_by_id_cursor_in_chained_pages(b24_emulator: PortalEmulator) -> None:
    """The fast export (``>ID`` keyset, rows under ``items``) reads every move once."""
    b24_emulator.configure(rate=0)
    with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None) as client:
        client.batch_by_chunk([("crm.deal.add", {"fields": {"TITLE": f"d{i}"}}) for i in range(120)]).run()
        client.batch_by_chunk([("crm.deal.update", {"id": i, "fields": {"STAGE_ID": "EXECUTING"}})
                               for i in range(1, 121)]).run()
        ids = [m["ID"] for page in client.iter_list("crm.stagehistory.list", {"entityTypeId": 2})
               for m in page]
        later = [m["ID"] for page in client.iter_list("crm.stagehistory.list",
                                                      {"entityTypeId": 2, "filter": {">ID": 200}})
                 for m in page]
    assert ids == list(range(1, 241)) and later == list(range(201, 241))


def test_activity_add_get_update_list_delete(b24_emulator: PortalEmulator) -> None:
    """crm-activity-add.md answers the id; get shows strings; update and delete answer true;
    list is flat with total and shows COMMUNICATIONS only when selected."""
    contact = _result(b24_emulator, "crm.contact.add", {"fields": {"NAME": "Klaus", "LAST_NAME": "Weber"}})
    deal = _result(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "d"}})
    fields = {"OWNER_TYPE_ID": 2, "OWNER_ID": deal, "TYPE_ID": 2, "SUBJECT": "New call",
              "START_TIME": "2024-05-02T10:00:00+00:00", "END_TIME": "2024-05-02T10:30:00+00:00",
              "RESPONSIBLE_ID": 1, "COMMUNICATIONS": [{"VALUE": "+4930123", "ENTITY_ID": contact,
                                                       "ENTITY_TYPE_ID": 3}]}
    first = _result(b24_emulator, "crm.activity.add", {"fields": fields})
    assert isinstance(first, int)
    got = _result(b24_emulator, "crm.activity.get", {"id": first})
    assert (got["ID"], got["OWNER_ID"], got["SUBJECT"], got["COMPLETED"]) == (str(first), str(deal), "New call", "N")
    assert got["DEADLINE"] == got["START_TIME"] == "2024-05-02T10:00:00+00:00"   # a call: START_TIME
    assert got["PROVIDER_ID"] == "VOXIMPLANT_CALL" and got["SETTINGS"] == []
    assert _result(b24_emulator, "crm.activity.update", {"id": first, "fields": {"COMPLETED": "Y"}}) is True
    assert _result(b24_emulator, "crm.activity.get", {"id": first})["STATUS"] == "2"
    second = _result(b24_emulator, "crm.activity.add", {"fields": {**fields, "SUBJECT": "Second"}})
    listed = _call(b24_emulator, "crm.activity.list", {"order": {"ID": "ASC"}, "select": ["*", "COMMUNICATIONS"],
                                                       "filter": {"OWNER_TYPE_ID": 2, "OWNER_ID": deal}}).json()
    assert listed["total"] == 2 and [a["ID"] for a in listed["result"]] == [str(first), str(second)]
    communication = listed["result"][0]["COMMUNICATIONS"][0]
    assert communication["VALUE"] == "+4930123" and communication["ENTITY_SETTINGS"]["NAME"] == "Klaus"
    plain = _result(b24_emulator, "crm.activity.list", {"select": ["ID", "SUBJECT"]})
    assert plain[0] == {"ID": str(first), "SUBJECT": "New call"}
    bound = _result(b24_emulator, "crm.activity.list", {"filter": {"BINDINGS": [{"OWNER_TYPE_ID": 2}]}})
    assert len(bound) == 2
    assert _result(b24_emulator, "crm.activity.delete", {"id": first}) is True
    missing = _call(b24_emulator, "crm.activity.get", {"id": first})
    assert missing.status_code == 400 and missing.json() == {"error": "", "error_description": "Activity is not found"}


def test_activity_errors_are_the_pages(b24_emulator: PortalEmulator) -> None:
    deal = _result(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "d"}})
    good = {"OWNER_TYPE_ID": 2, "OWNER_ID": deal, "TYPE_ID": 2, "SUBJECT": "s", "RESPONSIBLE_ID": 1,
            "COMMUNICATIONS": [{"VALUE": "+1"}]}
    cases = [({"SUBJECT": ""}, "The field SUBJECT is not defined or empty"),
             ({"RESPONSIBLE_ID": 999}, "The field RESPONSIBLE_ID is not defined or invalid"),
             ({"TYPE_ID": 99}, "The field TYPE_ID is not defined or invalid"),
             ({"COMMUNICATIONS": []}, "The field COMMUNICATIONS is not defined or invalid"),
             ({"COMMUNICATIONS": [{"VALUE": "+1"}, {"VALUE": "+2"}]},
              "The only one communication is allowed for activity of specified type"),
             ({"OWNER_ID": 999}, "Could not build binding. Please ensure that owner info and "
                                 "communications are defined correctly"),
             ({"TYPE_ID": 6}, "The custom activity without provider is not supported in current context")]
    for change, text in cases:
        answer = _call(b24_emulator, "crm.activity.add", {"fields": {**good, **change}})
        assert answer.status_code == 400 and answer.json() == {"error": "", "error_description": text}, change
    assert _call(b24_emulator, "crm.activity.list", {"filter": "x"}).json() == {
        "error": "", "error_description": "Parameter 'filter' must be array."}


def test_modification_times_are_whole_seconds_and_filters_include_the_second(b24_emulator: PortalEmulator) -> None:
    """A portal keeps DATE_MODIFY, updatedTime and LAST_UPDATED to the second: a record changed
    in the second a `>=` filter names is found by it."""
    deal = _result(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "d"}})
    modified = _result(b24_emulator, "crm.deal.get", {"id": deal})["DATE_MODIFY"]
    assert datetime.fromisoformat(modified).microsecond == 0
    found = _result(b24_emulator, "crm.deal.list", {"filter": {">=DATE_MODIFY": modified}, "select": ["ID"]})
    assert [d["ID"] for d in found] == [str(deal)]
    item = _result(b24_emulator, "crm.item.get", {"entityTypeId": 2, "id": deal})["item"]
    assert item["updatedTime"] == modified
    activity = _result(b24_emulator, "crm.activity.add", {"fields": {
        "OWNER_TYPE_ID": 2, "OWNER_ID": deal, "TYPE_ID": 1, "SUBJECT": "m", "RESPONSIBLE_ID": 1,
        "COMMUNICATIONS": [{"VALUE": "x@example.com"}]}})
    updated = _result(b24_emulator, "crm.activity.get", {"id": activity})["LAST_UPDATED"]
    assert datetime.fromisoformat(updated).microsecond == 0
    again = _result(b24_emulator, "crm.activity.list", {"filter": {">=LAST_UPDATED": updated}})
    assert [a["ID"] for a in again] == [str(activity)]


def test_currencies_as_the_pages_show_them(b24_emulator: PortalEmulator) -> None:
    """crm-currency-list.md (total always 0), -get.md (LANG), -add.md (the code; required fields),
    -update.md, -delete.md (not the base one), -base-get.md and -base-set.md."""
    listed = _call(b24_emulator, "crm.currency.list", {"order": {"sort": "asc"}}).json()
    assert listed["total"] == 0
    assert [c["CURRENCY"] for c in listed["result"]] == ["USD", "EUR", "RUB", "GBP"]
    assert listed["result"][0]["BASE"] == "Y" and listed["result"][0]["AMOUNT"] == "1.0000"
    assert _result(b24_emulator, "crm.currency.add", {"fields": {"CURRENCY": "CNY", "AMOUNT": 12.2251,
                                                                 "AMOUNT_CNT": 1, "SORT": 9000}}) == "CNY"
    cny = _result(b24_emulator, "crm.currency.get", {"id": "CNY"})
    assert cny["AMOUNT"] == "12.2251" and "en" in cny["LANG"]
    assert _result(b24_emulator, "crm.currency.update", {"ID": "CNY", "fields": {"AMOUNT": 15.3449}}) is True
    assert _result(b24_emulator, "crm.currency.get", {"id": "CNY"})["AMOUNT"] == "15.3449"
    missing = _call(b24_emulator, "crm.currency.add", {"fields": {"CURRENCY": "JPY", "AMOUNT_CNT": 1}})
    assert missing.json() == {"error": "ERROR_CORE", "error_description": 'Undefined array key "AMOUNT"'}
    base = _call(b24_emulator, "crm.currency.delete", {"id": "USD"})
    assert base.json() == {"error": "", "error_description": "Cannot delete base currency."}
    assert _result(b24_emulator, "crm.currency.base.get") == "USD"
    assert _result(b24_emulator, "crm.currency.base.set", {"id": "EUR"}) is True
    assert _result(b24_emulator, "crm.currency.base.get") == "EUR"
    assert _result(b24_emulator, "crm.currency.delete", {"id": "CNY"}) is True
    assert _call(b24_emulator, "crm.currency.get", {"id": "CNY"}).json() == {"error": "", "error_description": "Not found"}


def test_scope_lists_only_the_scopes_whose_methods_are_served(b24_emulator: PortalEmulator) -> None:
    """scope.md: the webhook's scopes (full=true: all the portal knows). A scope whose every
    method would answer 404 here (im, disk, calendar, telephony, ...) is not listed."""
    scopes = _result(b24_emulator, "scope")
    assert {"crm", "task", "user"} <= set(scopes)
    assert not {"im", "disk", "lists", "calendar", "telephony", "timeman"} & set(scopes)
    full = _result(b24_emulator, "scope", {"full": True})
    assert set(scopes) <= set(full) and "im" not in full
    methods = _result(b24_emulator, "methods")
    for scope in scopes:   # every listed scope has a method that answers
        prefix = {"crm": "crm.", "task": "tasks.", "tasks": "tasks.", "user": "user.",
                  "user_basic": "user.", "department": "department.", "main": ""}.get(scope, f"{scope}.")
        assert scope == "main" or any(m.startswith(prefix) for m in methods), scope
    b24_emulator.configure(scopes=frozenset({"crm", "im"}))
    assert _result(b24_emulator, "scope") == ["crm"]
