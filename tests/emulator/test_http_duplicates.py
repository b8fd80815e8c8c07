"""``crm.duplicate.findbycomm`` over HTTP.

Doc pages: ``api-reference/crm/duplicates/crm-duplicate-find-by-comm.md`` (parameters, the
answer ``{"CONTACT": [275, 2297]}``, the error texts, "20 or more duplicates ... the other types
are not returned", "does not consider the phone extension") and
``tutorials/crm/how-to-get-lists/search-by-phone-and-email.md`` (nothing found -> ``"result": []``;
"compares the number as a whole, ignoring only the extension").
"""

from __future__ import annotations

from typing import Any

import requests

from b24_dagster.emulator import PortalEmulator


def call(emu: PortalEmulator, method: str, params: Any) -> requests.Response:
    return requests.post(emu.webhook_url + method, json=params, timeout=10)


def add(emu: PortalEmulator, entity: str, fields: dict[str, Any]) -> int:
    r = call(emu, f"crm.{entity}.add", {"fields": fields})
    assert r.status_code == 200, r.text
    return int(r.json()["result"])


def find(emu: PortalEmulator, **params: Any) -> Any:
    r = call(emu, "crm.duplicate.findbycomm", params)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def test_findbycomm_finds_by_email_and_phone_across_types(b24_emulator: PortalEmulator) -> None:
    # Multi-fields as crm.lead.add / crm.contact.add / crm.company.add take them (crm_multifield).
    lead = add(b24_emulator, "lead", {"TITLE": "L", "EMAIL": [{"VALUE": "Anna@Example.com", "VALUE_TYPE": "WORK"}],
                                      "PHONE": [{"VALUE": "+1 (555) 010-2030", "VALUE_TYPE": "WORK"}]})
    contact = add(b24_emulator, "contact", {"NAME": "C", "PHONE": [{"VALUE": "+15550102030 ext. 7",
                                                                     "VALUE_TYPE": "MOBILE"}]})
    company = add(b24_emulator, "company", {"TITLE": "Co", "EMAIL": [{"VALUE": "anna@example.com",
                                                                       "VALUE_TYPE": "WORK"}]})
    add(b24_emulator, "contact", {"NAME": "Other", "PHONE": [{"VALUE": "8 555 010 2030", "VALUE_TYPE": "WORK"}]})
    # crm.contact.get shows them as the page crm-contact-get.md does.
    got = call(b24_emulator, "crm.contact.get", {"id": contact}).json()["result"]
    assert got["PHONE"][0]["VALUE"] == "+15550102030 ext. 7" and got["PHONE"][0]["VALUE_TYPE"] == "MOBILE"
    assert got["PHONE"][0]["TYPE_ID"] == "PHONE"

    # E-mail: case-insensitive; phone: digits only, the extension ignored, another format differs.
    assert find(b24_emulator, type="EMAIL", values=["ANNA@example.COM"]) == {"LEAD": [lead], "COMPANY": [company]}
    assert find(b24_emulator, type="PHONE", values=["15550102030"]) == {"LEAD": [lead], "CONTACT": [contact]}
    assert find(b24_emulator, type="phone", values=["+1-555-010-2030"], entity_type="CONTACT") == {
        "CONTACT": [contact]}


def test_findbycomm_nothing_found_is_an_empty_array(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("lead", 5)
    assert find(b24_emulator, type="EMAIL", values=["nobody@example.com"]) == []


def test_findbycomm_errors_as_the_page_shows(b24_emulator: PortalEmulator) -> None:
    r = call(b24_emulator, "crm.duplicate.findbycomm", {"values": ["a@b.c"]})
    assert r.status_code == 400
    assert r.json() == {"error": "Communication type is not defined",
                        "error_description": "Parameter 'type' is required."}
    r = call(b24_emulator, "crm.duplicate.findbycomm", {"type": "WEB", "values": ["x"]})
    assert r.status_code == 400
    assert r.json()["error"] == "Communication type 'WEB' is not supported in current context"
    for values in (None, [], "a@b.c"):   # the tutorial: a string instead of an array fails too
        r = call(b24_emulator, "crm.duplicate.findbycomm", {"type": "EMAIL", "values": values})
        assert r.status_code == 400 and r.json()["error"] == "Communication values is not defined"


def test_findbycomm_twenty_matches_of_a_type_hide_the_later_types(b24_emulator: PortalEmulator) -> None:
    phone = [{"VALUE": "+4930123", "VALUE_TYPE": "WORK"}]
    leads = [add(b24_emulator, "lead", {"TITLE": f"L{i}", "PHONE": phone}) for i in range(21)]
    contact = add(b24_emulator, "contact", {"NAME": "C", "PHONE": phone})
    found = find(b24_emulator, type="PHONE", values=["+4930123"])
    assert found == {"LEAD": leads[:20]}
    assert find(b24_emulator, type="PHONE", values=["+4930123"], entity_type="CONTACT") == {"CONTACT": [contact]}


def test_findbycomm_searches_at_most_twenty_values(b24_emulator: PortalEmulator) -> None:
    late = add(b24_emulator, "contact", {"NAME": "Late", "EMAIL": [{"VALUE": "v20@example.com"}]})
    first = add(b24_emulator, "contact", {"NAME": "First", "EMAIL": [{"VALUE": "v0@example.com"}]})
    values = [f"v{i}@example.com" for i in range(21)]
    assert find(b24_emulator, type="EMAIL", values=values) == {"CONTACT": [first]}
    assert find(b24_emulator, type="EMAIL", values=values[20:]) == {"CONTACT": [late]}


def test_findbycomm_inside_a_form_encoded_batch(b24_emulator: PortalEmulator) -> None:
    lead = add(b24_emulator, "lead", {"TITLE": "L", "EMAIL": [{"VALUE": "b@example.com"}]})
    r = requests.post(b24_emulator.webhook_url + "batch", timeout=10, data={
        "halt": "0",
        "cmd[dup]": "crm.duplicate.findbycomm?type=EMAIL&values[0]=B%40example.com&values[1]=x%40y.z",
        "cmd[none]": "crm.duplicate.findbycomm?type=EMAIL&values[]=nobody%40example.com",
    })
    body = r.json()["result"]
    assert body["result"] == {"dup": {"LEAD": [lead]}, "none": []}
    assert body["result_error"] == []
