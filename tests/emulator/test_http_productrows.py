"""Product rows over HTTP: ``crm.deal.productrows.{get,set}`` and ``crm.lead.productrows.{get,set}``.

Pages: ``api-reference/crm/deals/crm-deal-productrows-{get,set}.md`` and
``api-reference/crm/leads/crm-lead-productrows-{get,set}.md`` (their examples give the price
arithmetic checked here).
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


def test_set_replaces_rows_with_the_pages_prices(b24_emulator: PortalEmulator) -> None:
    lead = _result(b24_emulator, "crm.lead.add", {"fields": {"TITLE": "rows"}})
    assert _result(b24_emulator, "crm.lead.productrows.set", {"id": lead, "rows": [
        {"PRODUCT_NAME": "Product #2", "PRICE": 22175.328, "DISCOUNT_TYPE_ID": 2, "DISCOUNT_RATE": 40,
         "TAX_RATE": 12, "SORT": 30, "MEASURE_CODE": 796, "MEASURE_NAME": "pcs"},
        {"PRODUCT_NAME": "Product Variation #1", "PRICE": 10, "SORT": 10}]}) is True
    rows = _result(b24_emulator, "crm.lead.productrows.get", {"id": lead})
    assert [r["PRODUCT_NAME"] for r in rows] == ["Product Variation #1", "Product #2"]   # by SORT
    second = rows[1]
    # the lead page's second example row
    assert {k: second[k] for k in ("PRICE", "PRICE_EXCLUSIVE", "PRICE_NETTO", "PRICE_BRUTTO", "DISCOUNT_RATE",
                                   "DISCOUNT_SUM", "TAX_RATE", "OWNER_TYPE", "OWNER_ID")} == {
        "PRICE": 22175.328, "PRICE_EXCLUSIVE": 19799.4, "PRICE_NETTO": 32999, "PRICE_BRUTTO": 36958.88,
        "DISCOUNT_RATE": 40, "DISCOUNT_SUM": 13199.6, "TAX_RATE": 12, "OWNER_TYPE": "L",
        "OWNER_ID": str(lead)}
    assert set(second) >= {"ID", "PRODUCT_ID", "ORIGINAL_PRODUCT_NAME", "PRICE_ACCOUNT", "QUANTITY",
                           "TAX_INCLUDED", "CUSTOMIZED", "XML_ID", "TYPE", "RESERVE_QUANTITY"}
    # the owner's opportunity is the rows' sum
    assert _result(b24_emulator, "crm.lead.get", {"id": lead})["OPPORTUNITY"] == "22185.33"
    _result(b24_emulator, "crm.lead.productrows.set", {"id": lead, "rows": [{"PRICE": 5, "QUANTITY": 2}]})
    rows = _result(b24_emulator, "crm.lead.productrows.get", {"id": lead})
    assert len(rows) == 1 and rows[0]["PRODUCT_NAME"] == f"[{rows[0]['ID']}]"


def test_deal_rows_discounts_and_errors(b24_emulator: PortalEmulator) -> None:
    deal = _result(b24_emulator, "crm.deal.add", {"fields": {"TITLE": "rows"}})
    _result(b24_emulator, "crm.deal.productrows.set", {"id": deal, "rows": [
        {"PRODUCT_ID": 450, "PRODUCT_NAME": "Product #2", "PRICE": 899.1, "DISCOUNT_TYPE_ID": 2,
         "DISCOUNT_RATE": 10, "TAX_INCLUDED": "Y"},
        {"PRODUCT_NAME": "Money off", "PRICE": 90, "DISCOUNT_TYPE_ID": 1, "DISCOUNT_SUM": 10}]})
    first, second = _result(b24_emulator, "crm.deal.productrows.get", {"id": deal})
    # the deal page's first example row
    assert (first["PRICE_NETTO"], first["DISCOUNT_SUM"], first["PRICE_ACCOUNT"], first["OWNER_TYPE"]) == (
        999, 99.9, "899.10", "D")
    assert (second["PRICE_NETTO"], second["DISCOUNT_RATE"]) == (100, 10)
    for row, text in (({"PRICE": 1, "DISCOUNT_TYPE_ID": 2}, "Discount Rate (DISCOUNT_RATE) is required"),
                      ({"PRICE": 1, "DISCOUNT_TYPE_ID": 1}, "Discount Sum (DISCOUNT_SUM) is required if Monetary"),
                      ({"PRICE": 0, "DISCOUNT_TYPE_ID": 2, "DISCOUNT_RATE": 100}, "is 100%")):
        r = _call(b24_emulator, "crm.deal.productrows.set", {"id": deal, "rows": [row]})
        assert r.status_code == 400 and r.json()["error"] == "ERROR_CORE" and text in r.json()["error_description"]
    assert len(_result(b24_emulator, "crm.deal.productrows.get", {"id": deal})) == 2   # unchanged
    r = _call(b24_emulator, "crm.deal.productrows.get", {"id": 0})
    assert r.json() == {"error": "", "error_description": "The parameter id is invalid or not defined."}
    assert _call(b24_emulator, "crm.deal.productrows.get", {"id": 999}).json()["error_description"] == "Not found"
