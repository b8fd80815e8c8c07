"""A deal's contact bindings over HTTP: ``crm.deal.contact.{fields,add,delete}`` and
``crm.deal.contact.items.{get,set,delete}``.

Pages: ``api-reference/crm/deals/contacts/crm-deal-contact-*.md``; the bindings are the deal's
``contactIds``/``contactId`` that ``crm.item.get`` shows (``crm/universal/crm-item-get.md``).
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


def test_set_get_and_the_deal_shows_them(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("contact", 60)
    deal = _result(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "bindings"}})
    assert _result(b24_emulator, "crm.deal.contact.items.get", {"id": deal}) == []
    assert _result(b24_emulator, "crm.deal.contact.items.set", {"id": deal, "items": [
        {"CONTACT_ID": 54, "SORT": 200}, {"CONTACT_ID": 55, "SORT": 100, "IS_PRIMARY": "Y"},
        {"CONTACT_ID": 56, "SORT": 400}]}) is True
    assert _result(b24_emulator, "crm.deal.contact.items.get", {"id": deal}) == [
        {"CONTACT_ID": 55, "SORT": 100, "ROLE_ID": 0, "IS_PRIMARY": "Y"},
        {"CONTACT_ID": 54, "SORT": 200, "ROLE_ID": 0, "IS_PRIMARY": "N"},
        {"CONTACT_ID": 56, "SORT": 400, "ROLE_ID": 0, "IS_PRIMARY": "N"}]
    item = _result(b24_emulator, "crm.item.get", {"entityTypeId": 2, "id": deal})["item"]
    assert (item["contactId"], item["contactIds"]) == (55, [55, 54, 56])
    assert _result(b24_emulator, "crm.deal.get", {"id": deal})["CONTACT_ID"] == "55"
    # without IS_PRIMARY the first item is the primary; SORT defaults to (i + 1) * 10
    _result(b24_emulator, "crm.deal.contact.items.set", {"id": deal, "items": [{"CONTACT_ID": 3},
                                                                              {"CONTACT_ID": 4}]})
    assert _result(b24_emulator, "crm.deal.contact.items.get", {"id": deal}) == [
        {"CONTACT_ID": 3, "SORT": 10, "ROLE_ID": 0, "IS_PRIMARY": "Y"},
        {"CONTACT_ID": 4, "SORT": 20, "ROLE_ID": 0, "IS_PRIMARY": "N"}]


def test_add_delete_one_and_delete_all(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("contact", 10)
    deal = _result(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "one by one"}})
    _result(b24_emulator, "crm.deal.contact.add", {"id": deal, "fields": {"CONTACT_ID": 5}})
    _result(b24_emulator, "crm.deal.contact.add", {"id": deal, "fields": {"CONTACT_ID": 6}})
    got = _result(b24_emulator, "crm.deal.contact.items.get", {"id": deal})
    assert [(b["CONTACT_ID"], b["IS_PRIMARY"]) for b in got] == [(5, "Y"), (6, "N")]   # first is primary
    _result(b24_emulator, "crm.deal.contact.add", {"id": deal, "fields": {"CONTACT_ID": 7, "IS_PRIMARY": "Y"}})
    got = _result(b24_emulator, "crm.deal.contact.items.get", {"id": deal})
    assert [b["CONTACT_ID"] for b in got if b["IS_PRIMARY"] == "Y"] == [7]
    _result(b24_emulator, "crm.deal.contact.delete", {"id": deal, "fields": {"CONTACT_ID": 7}})
    got = _result(b24_emulator, "crm.deal.contact.items.get", {"id": deal})
    assert [(b["CONTACT_ID"], b["IS_PRIMARY"]) for b in got] == [(5, "Y"), (6, "N")]   # the first left
    assert _result(b24_emulator, "crm.deal.contact.items.delete", {"id": deal}) is True
    assert _result(b24_emulator, "crm.deal.contact.items.get", {"id": deal}) == []
    assert _result(b24_emulator, "crm.deal.get", {"id": deal})["CONTACT_ID"] == "0"


def test_errors_are_the_pages(b24_emulator: PortalEmulator) -> None:
    deal = _result(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "errors"}})
    cases = [("crm.deal.contact.items.get", {"id": 0}, "The parameter ownerEntityID is invalid or not defined."),
             ("crm.deal.contact.items.get", {"id": 999}, "Not found."),
             ("crm.deal.contact.items.set", {"id": deal, "items": "x"}, "The parameter items must be array."),
             ("crm.deal.contact.items.delete", {"id": 999}, "Not found"),
             ("crm.deal.contact.add", {"fields": {"CONTACT_ID": 1}},
              "The parameter 'ownerEntityID' is invalid or not defined."),
             ("crm.deal.contact.add", {"id": deal, "fields": "x"}, "The parameter 'fields' must be array."),
             ("crm.deal.contact.add", {"id": deal, "fields": {"CONTACT_ID": 0}}, "The parameter 'fields' is not valid."),
             ("crm.deal.contact.delete", {"id": deal, "fields": "x"}, "The parameter 'item' must be array.")]
    for method, params, text in cases:
        r = _call(b24_emulator, method, params)
        assert r.status_code == 400 and r.json() == {"error": "", "error_description": text}, method
    fields = _result(b24_emulator, "crm.deal.contact.fields")
    assert fields["CONTACT_ID"]["isRequired"] is True and fields["IS_PRIMARY"]["type"] == "char"
