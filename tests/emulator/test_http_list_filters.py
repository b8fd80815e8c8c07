"""List filters with many values (``@ORIGIN_ID``, a plain list, ``@originId``) over HTTP.

Doc pages: ``api-reference/crm/{leads/crm-lead-list,deals/crm-deal-list,contacts/crm-contact-list,
companies/crm-company-list}.md`` ("``@`` — IN (an array is passed as the value)"; the filter's
fields are those of ``crm.*.fields``, which include ``ORIGINATOR_ID`` and ``ORIGIN_ID``; unknown
fields are not described: the emulator ignores them) and ``api-reference/crm/universal/crm-item-list.md``
(``@`` — IN; 400 ``INVALID_ARG_VALUE`` "Invalid filter: field 'FIELD' is not allowed in filter").
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from b24_dagster.emulator import PortalEmulator
from b24_dagster.emulator._phpquery import build_query

ENTITIES = {"lead": ("TITLE", 1), "deal": ("TITLE", 2), "contact": ("NAME", 3), "company": ("TITLE", 4)}


def post(emu: PortalEmulator, method: str, **kw: Any) -> Any:
    r = requests.post(emu.webhook_url + method, timeout=30, **kw)
    assert r.status_code == 200, r.text
    return r.json()["result"]


def add_many(emu: PortalEmulator, entity: str, n: int) -> dict[str, int]:
    """``n`` records with ORIGIN_ID ``ext-<i>`` and ORIGINATOR_ID ``crm-x``, added by batches of 50."""
    name_field = ENTITIES[entity][0]
    ids: dict[str, int] = {}
    for start in range(0, n, 50):
        cmd = {f"a{i}": {"method": f"crm.{entity}.add",
                         "params": {"fields": {name_field: f"r{i}", "ORIGIN_ID": f"ext-{i}",
                                               "ORIGINATOR_ID": "crm-x"}}}
               for i in range(start, min(n, start + 50))}
        # the JSON form of batch: each command as "method?query"
        body = {"halt": 0, "cmd": {k: v["method"] + "?" + build_query(v["params"]) for k, v in cmd.items()}}
        out = post(emu, "batch", json=body)
        assert out["result_error"] == []
        ids.update({f"ext-{k[1:]}": int(v) for k, v in out["result"].items()})
    return ids


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_legacy_list_in_filter_with_300_values_inside_a_batch(b24_emulator: PortalEmulator, entity: str) -> None:
    ids = add_many(b24_emulator, entity, 310)
    wanted = [f"ext-{i}" for i in range(0, 300)] + ["missing-1", "missing-2"]
    expected = [ids[f"ext-{i}"] for i in range(50)]    # the first page, id order
    # JSON body: "@ORIGIN_ID" and the plain list form (a list value means IN).
    for key in ("@ORIGIN_ID", "ORIGIN_ID"):
        q = {"filter": {key: wanted, "ORIGINATOR_ID": "crm-x"}, "select": ["ID"], "start": 0}
        out = post(b24_emulator, "batch", json={"halt": 0, "cmd": {"x": f"crm.{entity}.list?" + build_query(q)}})
        assert out["result_error"] == []
        assert [int(r["ID"]) for r in out["result"]["x"]] == expected
        assert out["result_total"]["x"] == 300 and out["result_next"]["x"] == 50


def test_php_bracket_form_encoded_batch_with_300_values(b24_emulator: PortalEmulator) -> None:
    ids = add_many(b24_emulator, "lead", 300)
    raw = "&".join(f"filter[@ORIGIN_ID][{i}]=ext-{i}" for i in range(250, 300))
    encoded = "&".join(f"filter%5B%40ORIGIN_ID%5D%5B{i}%5D=ext-{i}" for i in range(0, 300, 3))
    out = post(b24_emulator, "batch", data={
        "halt": "0",
        "cmd[raw]": f"crm.lead.list?{raw}&select[]=ID&start=-1",
        "cmd[enc]": f"crm.lead.list?{encoded}&select[0]=ID&start=-1",
    })
    assert out["result_error"] == []
    assert [int(r["ID"]) for r in out["result"]["raw"]] == [ids[f"ext-{i}"] for i in range(250, 300)]
    assert [int(r["ID"]) for r in out["result"]["enc"]] == [ids[f"ext-{i}"] for i in range(0, 150, 3)]


def test_item_list_in_filter_by_origin_id(b24_emulator: PortalEmulator) -> None:
    ids = add_many(b24_emulator, "deal", 200)
    wanted = [f"ext-{i}" for i in range(100, 200)]
    out = post(b24_emulator, "crm.item.list", json={"entityTypeId": 2, "filter": {"@originId": wanted},
                                                   "select": ["id", "originId"]})
    assert [i["id"] for i in out["items"]] == [ids[f"ext-{i}"] for i in range(100, 150)]
    out = post(b24_emulator, "crm.item.list", json={"entityTypeId": 2, "filter": {"@ORIGIN_ID": wanted[:3],
                                                                                  "originatorId": "crm-x"}})
    assert [i["originId"] for i in out["items"]] == wanted[:3]


def test_unknown_filter_field_legacy_ignored_item_list_400(b24_emulator: PortalEmulator) -> None:
    add_many(b24_emulator, "lead", 3)
    out = post(b24_emulator, "crm.lead.list", json={"filter": {"@XML_ID": ["a"], "NO_SUCH": 1}})
    assert len(out) == 3
    r = requests.post(b24_emulator.webhook_url + "crm.item.list", timeout=10,
                      json={"entityTypeId": 1, "filter": {"@xmlId": ["a"]}})
    assert r.status_code == 400
    assert r.json() == {"error": "INVALID_ARG_VALUE",
                        "error_description": "Invalid filter: field 'xmlId' is not allowed in filter"}


def test_legacy_list_filters_by_multifield_values(b24_emulator: PortalEmulator) -> None:
    # crm-contact-list.md filters by "EMAIL": "special-for@example.com"; crm-lead-list.md says the
    # filter's fields are those of crm.lead.fields, which include PHONE and EMAIL.
    post(b24_emulator, "crm.contact.add", json={"fields": {"NAME": "A", "EMAIL": [{"VALUE": "special-for@example.com"}]}})
    b_id = post(b24_emulator, "crm.contact.add", json={"fields": {"NAME": "B", "EMAIL": [
        {"VALUE": "b@example.com"}, {"VALUE": "b2@example.com", "VALUE_TYPE": "HOME"}],
        "PHONE": [{"VALUE": "+4930111"}]}})
    out = post(b24_emulator, "crm.contact.list", json={"filter": {"EMAIL": "special-for@example.com"}})
    assert [r["NAME"] for r in out] == ["A"]
    out = post(b24_emulator, "crm.contact.list", json={"filter": {"@EMAIL": ["b2@example.com", "x@y.z"]}})
    assert [int(r["ID"]) for r in out] == [b_id]
    out = post(b24_emulator, "crm.contact.list", json={"filter": {"PHONE": "+4930111"}, "select": ["ID", "PHONE"]})
    assert [r["PHONE"][0]["VALUE"] for r in out] == ["+4930111"]
    assert post(b24_emulator, "crm.contact.list", json={"filter": {"EMAIL": "nobody@example.com"}}) == []
