"""Multi-fields and field flags over HTTP, each as its doc page (``bitrix24/b24restdocs``,
tutorials in ``bitrix-tools/b24-rest-docs``) shows them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from b24_dagster.emulator import PortalEmulator

DOC_EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "doc_examples"
FLAGS = ("type", "isRequired", "isReadOnly", "isImmutable", "isMultiple")


def _call(emu: PortalEmulator, method: str, params: dict[str, Any]) -> Any:
    answer = requests.post(emu.webhook_url + method, json=params, timeout=10).json()
    assert "error" not in answer, answer
    return answer["result"]


def _phones(emu: PortalEmulator, contact_id: int) -> list[dict[str, str]]:
    return _call(emu, "crm.contact.get", {"id": contact_id}).get("PHONE", [])


@pytest.mark.parametrize("entity", ["deal", "lead", "contact", "company"])
def test_fields_flags_are_those_of_the_fields_page(b24_emulator: PortalEmulator, entity: str) -> None:
    """``crm-<entity>-fields.md``: every field the page's answer lists that the emulator has
    carries the page's type, isRequired, isReadOnly, isImmutable and isMultiple (the page's
    custom fields, ``UF_CRM_*`` and ``PARENT_ID_*`` of the author's portal, aside)."""
    page = json.loads((DOC_EXAMPLES / f"crm.{entity}.fields.json").read_text(encoding="utf-8"))
    body = page["responses"][0]["body"]
    documented = (json.loads(body) if isinstance(body, str) else body)["result"]
    ours = _call(b24_emulator, f"crm.{entity}.fields", {})
    compared = 0
    for name, described in documented.items():
        if name.startswith(("UF_CRM_", "PARENT_ID_")):
            continue
        assert name in ours, f"crm.{entity}.fields lacks {name}"
        got = {flag: ours[name].get(flag) for flag in FLAGS}
        assert got == {flag: described.get(flag) for flag in FLAGS}, name
        compared += 1
    assert compared > 30


def test_legacy_read_only_and_immutable_fields_are_ignored_on_write(b24_emulator: PortalEmulator) -> None:
    """``crm-deal-fields.md``: ``LEAD_ID`` is read-only and ``CATEGORY_ID`` immutable in the
    legacy methods; a write of them is ignored as the page's "incorrect field" is."""
    deal = _call(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "d", "LEAD_ID": 5}})
    assert _call(b24_emulator, "crm.deal.get", {"id": deal})["LEAD_ID"] is None
    _call(b24_emulator, "crm.category.add", {"entityTypeId": 2, "fields": {"name": "Second"}})
    assert _call(b24_emulator, "crm.deal.update", {"id": deal, "fields": {"CATEGORY_ID": 1, "TITLE": "e"}}) is True
    got = _call(b24_emulator, "crm.deal.get", {"id": deal})
    assert (got["CATEGORY_ID"], got["TITLE"]) == ("0", "e")


def test_legacy_update_changes_deletes_and_adds_values_by_id(b24_emulator: PortalEmulator) -> None:
    """``crm-contact-update.md``, "Working with Multiple Fields": ``ID`` with a new value (and
    type) changes that value and keeps its id; ``ID`` with ``DELETE: "Y"``, an empty ``VALUE``
    or nothing else deletes it; a value without ``ID`` is added; values not named stay."""
    contact = _call(b24_emulator, "crm.contact.add", {"fields": {"NAME": "a", "PHONE": [
        {"VALUE": "111111", "VALUE_TYPE": "WORK"}, {"VALUE": "222222", "VALUE_TYPE": "WORK"},
        {"VALUE": "333333", "VALUE_TYPE": "WORK"}, {"VALUE": "44444", "VALUE_TYPE": "WORK"},
        {"VALUE": "55555", "VALUE_TYPE": "HOME"}]}})
    ids = [int(p["ID"]) for p in _phones(b24_emulator, contact)]
    _call(b24_emulator, "crm.contact.update", {"id": contact, "fields": {"PHONE": [
        {"ID": ids[0], "DELETE": "Y"}, {"ID": ids[1], "VALUE": ""}, {"ID": ids[2]},
        {"ID": ids[3], "VALUE": "444444", "VALUE_TYPE": "MOBILE"}, {"VALUE": "66666", "VALUE_TYPE": "WORK"}]}})
    after = [(int(p["ID"]), p["VALUE"], p["VALUE_TYPE"]) for p in _phones(b24_emulator, contact)]
    assert after[:2] == [(ids[3], "444444", "MOBILE"), (ids[4], "55555", "HOME")]
    assert [(v, t) for _, v, t in after[2:]] == [("66666", "WORK")] and after[2][0] not in ids


def test_legacy_list_returns_the_multi_fields_its_select_names(b24_emulator: PortalEmulator) -> None:
    """``crm-contact-list.md``: multi-fields come back when ``select`` names them."""
    _call(b24_emulator, "crm.contact.add", {"fields": {"NAME": "a", "EMAIL": "a@example.com",
                                                       "PHONE": "123", "WEB": "example.com"}})
    row = _call(b24_emulator, "crm.contact.list", {"select": ["ID", "EMAIL", "WEB"]})[0]
    assert set(row) == {"ID", "EMAIL", "WEB"}
    assert row["WEB"][0]["VALUE"] == "example.com" and row["EMAIL"][0]["TYPE_ID"] == "EMAIL"


def test_item_update_fm_object_keys_decide_the_operation(b24_emulator: PortalEmulator) -> None:
    """Tutorial ``how-to-change-email-or-phone.md``: on add ``fm`` is an array; on update an
    object whose key is a value's id (new ``value``: changed, same id; empty ``value``:
    deleted) or ``n0``, ``n1`` (added); an element without ``typeId`` changes nothing."""
    item = _call(b24_emulator, "crm.item.add", {"entityTypeId": 3, "fields": {"name": "Ivan", "fm": [
        {"typeId": "EMAIL", "valueType": "WORK", "value": "work_email@nomail.com"},
        {"typeId": "EMAIL", "valueType": "HOME", "value": "home_email@nomail.com"},
        {"typeId": "PHONE", "valueType": "WORK", "value": "+79991234567"},
        {"typeId": "PHONE", "valueType": "MOBILE", "value": "+79997654321"}]}})["item"]
    work, home, phone, mobile = (v["id"] for v in item["fm"])
    _call(b24_emulator, "crm.item.update", {"entityTypeId": 3, "id": item["id"], "fields": {"fm": {
        str(work): {"typeId": "EMAIL", "valueType": "WORK", "value": "new_work_email@nomail.com"},
        str(home): {"typeId": "EMAIL", "value": ""},
        str(mobile): {"typeId": "PHONE", "valueType": "MOBILE", "value": "+79995554433"},
        str(phone): {"value": ""},   # no typeId: the tutorial says nothing happens
        "n0": {"typeId": "WEB", "valueType": "WORK", "value": "example.com"}}}})
    fm = _call(b24_emulator, "crm.item.get", {"entityTypeId": 3, "id": item["id"]})["item"]["fm"]
    got = [(v["id"], v["typeId"], v["valueType"], v["value"]) for v in fm]
    assert got[:3] == [(work, "EMAIL", "WORK", "new_work_email@nomail.com"), (phone, "PHONE", "WORK", "+79991234567"),
                       (mobile, "PHONE", "MOBILE", "+79995554433")]
    assert got[3][1:] == ("WEB", "WORK", "example.com") and got[3][0] not in (work, home, phone, mobile)
