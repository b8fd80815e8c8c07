"""Directories and pipelines over HTTP: ``crm.status.*`` and ``crm.category.*``.

Pages: ``api-reference/crm/status/crm-status-{fields,entity-types,entity-items,list,get,add,
update,delete}.md`` and ``api-reference/crm/universal/category/crm-category-{fields,list,get,
add,update,delete}.md``.
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


def test_deal_stages_as_the_list_page_shows_them(b24_emulator: PortalEmulator) -> None:
    r = _call(b24_emulator, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE"}})
    body = r.json()
    assert body["total"] == 8
    stages = body["result"]
    assert [s["STATUS_ID"] for s in stages] == ["NEW", "PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING",
                                               "FINAL_INVOICE", "WON", "LOSE", "APOLOGY"]
    assert {k: v for k, v in stages[0].items() if k != "ID"} == {
        "ENTITY_ID": "DEAL_STAGE", "STATUS_ID": "NEW", "NAME": "New", "NAME_INIT": "New",
        "SORT": "10", "SYSTEM": "Y", "CATEGORY_ID": None, "COLOR": "#39A8EF", "SEMANTICS": None,
        "EXTRA": {"SEMANTICS": "process", "COLOR": "#39A8EF"}}
    assert [s["EXTRA"]["SEMANTICS"] for s in stages[5:]] == ["success", "failure", "apology"]
    items = _result(b24_emulator, "crm.status.entity.items", {"entityId": "DEAL_STAGE"})
    assert items[1] == {"NAME": "Document preparation", "SORT": 20, "STATUS_ID": "PREPARATION"}
    one = _result(b24_emulator, "crm.status.get", {"id": stages[5]["ID"]})
    assert one["STATUS_ID"] == "WON" and one["SEMANTICS"] == "S" and "EXTRA" not in one
    fields = _result(b24_emulator, "crm.status.fields")
    assert fields["STATUS_ID"]["isRequired"] and fields["EXTRA"]["type"] == "crm_status_extra"
    # the values the seeder uses are in their directories
    sources = {s["STATUS_ID"] for s in _result(b24_emulator, "crm.status.entity.items", {"entityId": "SOURCE"})}
    assert {"CALL", "WEB", "OTHER"} <= sources


def test_status_add_update_delete_and_their_errors(b24_emulator: PortalEmulator) -> None:
    new_id = _result(b24_emulator, "crm.status.add", {"fields": {
        "ENTITY_ID": "SOURCE", "STATUS_ID": "PODCAST", "NAME": "Podcast", "SORT": 15}})
    assert isinstance(new_id, int)
    r = _call(b24_emulator, "crm.status.add", {"fields": {"ENTITY_ID": "SOURCE", "STATUS_ID": "PODCAST",
                                                          "NAME": "Again"}})
    assert r.json() == {"error": "ERROR_CORE", "error_description": "The specified status ID already exists."}
    r = _call(b24_emulator, "crm.status.add", {"fields": {"NAME": "x"}})
    assert r.json()["error_description"] == "The field ENTITY_ID is required.<br>The field STATUS_ID is required."
    r = _call(b24_emulator, "crm.status.add", {"fields": {"ENTITY_ID": "NOPE", "STATUS_ID": "A", "NAME": "a"}})
    assert r.json()["error_description"] == "Specified entity type is not supported."
    r = _call(b24_emulator, "crm.status.add", {"fields": {"ENTITY_ID": "DEAL_STAGE", "STATUS_ID": "LATE",
                                                          "NAME": "Late", "SORT": 65}})
    assert r.status_code == 400 and "after the final stage" in r.json()["error_description"]
    assert _result(b24_emulator, "crm.status.update", {"id": new_id, "fields": {"NAME": "Podcasts"}}) is True
    assert _result(b24_emulator, "crm.status.get", {"id": new_id})["NAME"] == "Podcasts"
    assert _result(b24_emulator, "crm.status.delete", {"id": new_id}) is True
    r = _call(b24_emulator, "crm.status.get", {"id": new_id})
    assert r.json() == {"error": "Status is not found.", "error_description": "Directory item not found."}
    won = _result(b24_emulator, "crm.status.list", {"filter": {"ENTITY_ID": "DEAL_STAGE", "STATUS_ID": "WON"}})[0]
    r = _call(b24_emulator, "crm.status.delete", {"id": won["ID"]})
    assert r.status_code == 400 and "FORCED" in r.json()["error"]


def test_a_new_stage_is_accepted_by_deals_and_an_unused_one_deleted(b24_emulator: PortalEmulator) -> None:
    stage_id = _result(b24_emulator, "crm.status.add", {"fields": {
        "ENTITY_ID": "DEAL_STAGE", "STATUS_ID": "NEGOTIATION", "NAME": "Negotiation", "SORT": 45}})
    deal = _result(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "d", "STAGE_ID": "NEGOTIATION"}})
    assert _result(b24_emulator, "crm.deal.get", {"id": deal})["STAGE_ID"] == "NEGOTIATION"
    r = _call(b24_emulator, "crm.status.delete", {"id": stage_id})
    assert r.json()["error"] == "There are active items in this status."
    r = _call(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "d", "STAGE_ID": "NO_SUCH"}})
    assert r.status_code == 400


def test_pipelines_of_deals(b24_emulator: PortalEmulator) -> None:
    listed = _call(b24_emulator, "crm.category.list", {"entityTypeId": 2}).json()
    assert listed["result"]["categories"] == [
        {"id": 0, "name": "General", "sort": 300, "entityTypeId": 2, "isDefault": "Y"}]
    assert listed["total"] == 1
    added = _result(b24_emulator, "crm.category.add", {"entityTypeId": 2, "fields": {"name": "Wholesale",
                                                                                    "sort": 200}})
    cat = added["category"]
    assert cat == {"id": cat["id"], "name": "Wholesale", "sort": 200, "entityTypeId": 2, "isDefault": "N",
                   "originId": "", "originatorId": ""}
    # its stages: DEAL_STAGE_<id>, prefixed C<id>: (crm-status-add.md, crm-status-entity-types.md)
    prefix = f"C{cat['id']}:"
    stages = _result(b24_emulator, "crm.status.entity.items", {"entityId": f"DEAL_STAGE_{cat['id']}"})
    assert stages[0]["STATUS_ID"] == prefix + "NEW"
    types = {t["ID"]: t for t in _result(b24_emulator, "crm.status.entity.types")}
    assert types[f"DEAL_STAGE_{cat['id']}"]["PREFIX"] == f"C{cat['id']}"
    assert types["DEAL_STAGE"]["SEMANTIC_INFO"]["FINAL_SUCCESS_FIELD"] == "WON"
    # a stage added without the prefix gets it
    _result(b24_emulator, "crm.status.add", {"fields": {"ENTITY_ID": f"DEAL_STAGE_{cat['id']}",
                                                        "STATUS_ID": "DECISION", "NAME": "Decision", "SORT": 25}})
    assert prefix + "DECISION" in {s["STATUS_ID"] for s in _result(
        b24_emulator, "crm.status.entity.items", {"entityId": f"DEAL_STAGE_{cat['id']}"})}
    # a deal in the pipeline starts at its first stage; a stage of another pipeline is refused
    deal = _result(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "w", "CATEGORY_ID": cat["id"]}})
    got = _result(b24_emulator, "crm.deal.get", {"id": deal})
    assert (got["CATEGORY_ID"], got["STAGE_ID"], got["IS_NEW"]) == (str(cat["id"]), prefix + "NEW", "Y")
    _result(b24_emulator, "crm.deal.update", {"id": deal, "fields": {"STAGE_ID": prefix + "WON"}})
    assert _result(b24_emulator, "crm.deal.get", {"id": deal})["STAGE_SEMANTIC_ID"] == "S"
    r = _call(b24_emulator, "crm.deal.update", {"id": deal, "fields": {"STAGE_ID": "WON"}})
    assert r.status_code == 400
    r = _call(b24_emulator, "crm.category.delete", {"entityTypeId": 2, "id": cat["id"]})
    assert r.json() == {"error": "0", "error_description": "Deals related to the funnel `Wholesale` found"}
    _result(b24_emulator, "crm.deal.delete", {"id": deal})
    renamed = _result(b24_emulator, "crm.category.update", {"entityTypeId": 2, "id": cat["id"],
                                                            "fields": {"name": "Retail", "sort": -5}})
    assert (renamed["category"]["name"], renamed["category"]["sort"]) == ("Retail", 0)
    r = _call(b24_emulator, "crm.category.delete", {"entityTypeId": 2, "id": cat["id"]})
    assert r.status_code == 200 and r.json()["result"] is None
    assert f"DEAL_STAGE_{cat['id']}" not in {t["ID"] for t in _result(b24_emulator, "crm.status.entity.types")}


def test_category_errors(b24_emulator: PortalEmulator) -> None:
    r = _call(b24_emulator, "crm.category.list", {"entityTypeId": 999})
    assert r.json() == {"error": "NOT_FOUND", "error_description": "Smart process not found"}
    r = _call(b24_emulator, "crm.category.list", {"entityTypeId": 1})
    assert r.json()["error"] == "ENTITY_TYPE_NOT_SUPPORTED"
    r = _call(b24_emulator, "crm.category.get", {"entityTypeId": 2, "id": 77})
    assert r.json() == {"error": "NOT_FOUND", "error_description": "Element not found"}
    r = _call(b24_emulator, "crm.category.add", {"entityTypeId": 2, "fields": {"sort": 1}})
    assert r.json() == {"error": "0", "error_description": "Field 'NAME' is required"}
    r = _call(b24_emulator, "crm.category.delete", {"entityTypeId": 2, "id": 0})
    assert r.json()["error_description"] == "Default deal category cannot be deleted"
    r = _call(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "x", "CATEGORY_ID": 77}})
    assert r.status_code == 400
    fields = _result(b24_emulator, "crm.category.fields", {"entityTypeId": 2})["fields"]
    assert fields["isDefault"]["isReadOnly"] and fields["name"]["upperName"] == "NAME"
