"""Smart processes over HTTP: ``crm.type.*``, then their items, categories and stages.

Pages: ``api-reference/crm/universal/user-defined-object-types/crm-type-{fields,add,update,get,
get-by-entity-type-id,list,delete}.md``, ``crm/universal/crm-item-fields.md`` (a smart
process's item fields), ``crm/status/crm-status-get.md`` and ``crm-status-entity-types.md``
(``DYNAMIC_<T>_STAGE_<N>``, ``DT<T>_<N>:`` stages), ``crm/universal/category/*``.
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


def test_no_types_on_a_new_portal_and_the_pages_errors(b24_emulator: PortalEmulator) -> None:
    r = _call(b24_emulator, "crm.type.list", {"filter": {">entityTypeId": 1000}, "order": {"id": "ASC"}})
    assert r.status_code == 200 and r.json()["result"] == {"types": []} and r.json()["total"] == 0
    r = _call(b24_emulator, "crm.type.list", {"filter": {"nope": 1}})
    assert r.json() == {"error": "INVALID_ARG_VALUE",
                        "error_description": "Invalid filter: field 'nope' is not allowed in filter"}
    r = _call(b24_emulator, "crm.type.list", {"order": {"nope": "ASC"}})
    assert r.json()["error_description"] == "Invalid order: field 'nope' is not allowed in order"
    r = _call(b24_emulator, "crm.type.get", {"id": 16})
    assert r.status_code == 400 and r.json() == {"error": 0, "error_description": "SPA not found"}
    r = _call(b24_emulator, "crm.type.getByEntityTypeId", {"entityTypeId": 2024})
    assert r.json() == {"error": 0, "error_description": "Smart process not found"}
    r = _call(b24_emulator, "crm.type.add", {"fields": {"title": "x", "entityTypeId": 1031}})
    assert r.json() == {"error": "INVALID_ARG_VALUE", "error_description": "entityTypeId is out of allowed range"}
    r = _call(b24_emulator, "crm.type.add", {})
    assert r.json()["error"] == "100"
    r = _call(b24_emulator, "crm.item.add", {"entityTypeId": 1030, "fields": {"title": "x"}})
    assert r.json() == {"error": "NOT_FOUND", "error_description": "Smart process not found"}


def test_type_lifecycle(b24_emulator: PortalEmulator) -> None:
    spa = _result(b24_emulator, "crm.type.add", {"fields": {"title": "Procurement", "isStagesEnabled": "Y"}})["type"]
    assert (spa["entityTypeId"], spa["title"], spa["isStagesEnabled"], spa["isCategoriesEnabled"],
            spa["isSetOpenPermissions"]) == (1030, "Procurement", "Y", "N", "Y")
    second = _result(b24_emulator, "crm.type.add", {"fields": {"title": "Contracts", "entityTypeId": 130}})["type"]
    assert second["entityTypeId"] == 130
    listed = _call(b24_emulator, "crm.type.list", {"order": {"entityTypeId": "ASC"}}).json()
    assert [t["entityTypeId"] for t in listed["result"]["types"]] == [130, 1030] and listed["total"] == 2
    one = _result(b24_emulator, "crm.type.list", {"filter": {"%title": "procure"}})["types"]
    assert [t["id"] for t in one] == [spa["id"]]
    got = _result(b24_emulator, "crm.type.getByEntityTypeId", {"entityTypeId": 1030})["type"]
    assert got["id"] == spa["id"]
    updated = _result(b24_emulator, "crm.type.update", {"id": spa["id"], "fields": {"title": "Buying"}})["type"]
    assert updated["title"] == "Buying" and updated["entityTypeId"] == 1030
    assert _result(b24_emulator, "crm.type.fields")["fields"]["title"]["isRequired"] is True
    # crm-type-delete.md: "In case of success, result = []"
    assert _result(b24_emulator, "crm.type.delete", {"id": second["id"]}) == []
    r = _call(b24_emulator, "crm.type.get", {"id": second["id"]})
    assert r.json()["error"] == 0


def test_items_of_a_smart_process_with_categories_and_stages(b24_emulator: PortalEmulator) -> None:
    spa = _result(b24_emulator, "crm.type.add", {"fields": {"title": "Procurement"}})["type"]
    etid = spa["entityTypeId"]
    [general] = _result(b24_emulator, "crm.category.list", {"entityTypeId": etid})["categories"]
    assert (general["name"], general["isDefault"]) == ("General", "Y")
    prefix = f"DT{etid}_{general['id']}:"
    stages = _result(b24_emulator, "crm.status.entity.items", {"entityId": f"DYNAMIC_{etid}_STAGE_{general['id']}"})
    assert [s["STATUS_ID"] for s in stages] == [prefix + c for c in ("NEW", "PREPARATION", "CLIENT", "SUCCESS", "FAIL")]
    types = {t["ID"]: t for t in _result(b24_emulator, "crm.status.entity.types")}
    row = types[f"DYNAMIC_{etid}_STAGE_{general['id']}"]
    assert (row["PREFIX"], row["ENTITY_TYPE_ID"], row["IS_DEFAULT_CATEGORY"], row["NAME"]) == (
        prefix[:-1], etid, True, "Procurement (General)")

    fields = _result(b24_emulator, "crm.item.fields", {"entityTypeId": etid})["fields"]
    assert fields["stageId"]["type"] == "crm_status" and fields["opened"]["type"] == "boolean"
    item = _result(b24_emulator, "crm.item.add", {"entityTypeId": etid, "fields": {"title": "Chairs",
                                                                                   "opportunity": 120}})["item"]
    assert (item["categoryId"], item["stageId"], item["entityTypeId"], item["opportunity"]) == (
        general["id"], prefix + "NEW", etid, 120)
    _result(b24_emulator, "crm.item.update", {"entityTypeId": etid, "id": item["id"],
                                              "fields": {"stageId": prefix + "SUCCESS"}})
    listed = _result(b24_emulator, "crm.item.list", {"entityTypeId": etid, "filter": {"stageId": prefix + "SUCCESS"}})
    assert [i["id"] for i in listed["items"]] == [item["id"]]
    r = _call(b24_emulator, "crm.item.update", {"entityTypeId": etid, "id": item["id"], "fields": {"stageId": "WON"}})
    assert r.status_code == 400

    second = _result(b24_emulator, "crm.category.add", {"entityTypeId": etid, "fields": {"name": "Urgent"}})["category"]
    moved = _result(b24_emulator, "crm.item.add", {"entityTypeId": etid, "fields": {
        "title": "Desks", "categoryId": second["id"]}})["item"]
    assert moved["stageId"] == f"DT{etid}_{second['id']}:NEW"
    r = _call(b24_emulator, "crm.category.delete", {"entityTypeId": etid, "id": second["id"]})
    assert r.json() == {"error": "BX_ERROR", "error_description": "Elements related to the funnel found"}
    r = _call(b24_emulator, "crm.category.delete", {"entityTypeId": etid, "id": general["id"]})
    assert r.json() == {"error": "BX_ERROR", "error_description": "This funnel is the default funnel"}
    r = _call(b24_emulator, "crm.type.delete", {"id": spa["id"]})
    assert r.json() == {"error": "BX_ERROR", "error_description": "You cannot delete an entity type that has elements"}
    for item_id in (item["id"], moved["id"]):
        _result(b24_emulator, "crm.item.delete", {"entityTypeId": etid, "id": item_id})
    assert _result(b24_emulator, "crm.type.delete", {"id": spa["id"]}) == []   # crm-type-delete.md
    assert not any(t.startswith(f"DYNAMIC_{etid}_") for t in
                   {t["ID"] for t in _result(b24_emulator, "crm.status.entity.types")})
