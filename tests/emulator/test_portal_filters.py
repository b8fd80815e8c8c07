"""Filters, order, select and paging of the list methods, against a brute-force reference."""

from __future__ import annotations

import json
import operator
import re
from datetime import datetime
from typing import Any

import pytest

from b24_dagster.emulator._entities import ENTITIES, materialize
from b24_dagster.emulator._portal import Portal, PortalRequest
from b24_dagster.emulator._settings import PortalSettings

N = 1200


def _portal(page_size: int = 50) -> Portal:
    p = Portal(PortalSettings(code="c", rate=0, page_size=page_size), clock=lambda: 1_750_000_000.0)
    p.seed("deal", N, rng_seed=7)
    return p


@pytest.fixture(scope="module")
def big() -> Portal:
    """Pages large enough to see every match at once (the operator tests)."""
    return _portal(page_size=10_000)


@pytest.fixture(scope="module")
def paged() -> Portal:
    return _portal()


def call(p: Portal, method: str, params: dict[str, Any]) -> tuple[int, Any]:
    r = p.handle(PortalRequest(2, method, params, "1", "c"))
    return r.status, json.loads(r.body)


def records(p: Portal) -> list[dict[str, Any]]:
    deal = ENTITIES[2]
    return [materialize(deal, row) for _, row in p.store.tables["deal"].iter_from()]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _like(pattern: str, value: str) -> bool:
    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, re.IGNORECASE | re.DOTALL) is not None


# (filter key, value, reference predicate over the canonical record)
CASES: list[tuple[str, Any, Any]] = [
    ("ID", "17", lambda r: r["id"] == 17),
    ("=STAGE_ID", "WON", lambda r: r["stageId"] == "WON"),
    ("STAGE_ID", ["WON", "LOSE"], lambda r: r["stageId"] in ("WON", "LOSE")),
    ("!STAGE_ID", "NEW", lambda r: r["stageId"] != "NEW"),
    ("!=STAGE_ID", ["NEW", "WON"], lambda r: r["stageId"] not in ("NEW", "WON")),
    (">ID", "1100", lambda r: r["id"] > 1100),
    (">=ID", "1100", lambda r: r["id"] >= 1100),
    ("<ID", "30", lambda r: r["id"] < 30),
    ("<=ID", "30", lambda r: r["id"] <= 30),
    (">OPPORTUNITY", "50000.5", lambda r: r["opportunity"] > 50000.5),
    ("<=OPPORTUNITY", "1000", lambda r: r["opportunity"] <= 1000),
    (">=ASSIGNED_BY_ID", "9", lambda r: r["assignedById"] >= 9),
    (">=DATE_CREATE", "2024-01-01T12:00:00+00:00", lambda r: r["createdTime"] >= _ts("2024-01-01T12:00:00+00:00")),
    ("<DATE_MODIFY", "2024-01-15", lambda r: r["updatedTime"] < _ts("2024-01-15T00:00:00+00:00")),
    (">CLOSEDATE", "2024-01-20T03:00:00+03:00", lambda r: r["closedate"] > _ts("2024-01-20T00:00:00+00:00")),
    ("%TITLE", "#11", lambda r: "#11" in r["title"]),
    ("%TITLE", "deal #99", lambda r: "deal #99" in r["title"].lower()),
    ("!%TITLE", "1", lambda r: "1" not in r["title"]),
    ("=%TITLE", "Deal #1_", lambda r: _like("Deal #1_", r["title"])),
    ("%=TITLE", "%7", lambda r: r["title"].endswith("7")),
    ("=%TITLE", "deal #12%", lambda r: r["title"].lower().startswith("deal #12")),
    ("!=%TITLE", "%5", lambda r: not r["title"].endswith("5")),
    ("@ID", ["3", "5", "99999"], lambda r: r["id"] in (3, 5)),
    ("!@TYPE_ID", ["SALE", "GOODS"], lambda r: r["typeId"] not in ("SALE", "GOODS")),
    ("@CURRENCY_ID", "EUR", lambda r: r["currencyId"] == "EUR"),
    ("><ID", ["100", "120"], lambda r: 100 <= r["id"] <= 120),
    ("!><OPPORTUNITY", ["1000", "90000"], lambda r: not 1000 <= r["opportunity"] <= 90000),
    ("STAGE_SEMANTIC_ID", "S", lambda r: r["stageId"] == "WON"),
    ("CLOSED", "Y", lambda r: r["stageId"] in ("WON", "LOSE", "APOLOGY")),
    ("COMPANY_ID", "0", lambda r: r["companyId"] == 0),
    ("LEAD_ID", "", lambda r: r["leadId"] is None),
]


@pytest.mark.parametrize(("key", "value", "ref"), CASES, ids=[f"{c[0]}={c[1]}" for c in CASES])
def test_legacy_operator_matches_brute_force(big: Portal, key: str, value: Any, ref: Any) -> None:
    status, body = call(big, "crm.deal.list", {"filter": {key: value}, "select": ["ID"]})
    assert status == 200, body
    expected = [r["id"] for r in records(big) if ref(r)]
    assert expected, "the case must select something"
    assert [int(x["ID"]) for x in body["result"]] == expected
    assert body["total"] == len(expected)


@pytest.mark.parametrize(("key", "value", "ref"), CASES[:16], ids=[f"{c[0]}" for c in CASES[:16]])
def test_item_operator_with_camel_keys(big: Portal, key: str, value: Any, ref: Any) -> None:
    deal = ENTITIES[2]
    m = re.match(r"^([!<>=%@]*)(.*)$", key)
    assert m
    camel = deal.by_upper[m.group(2)].camel
    status, body = call(big, "crm.item.list", {"entityTypeId": 2, "filter": {m.group(1) + str(camel): value},
                                               "select": ["id"]})
    assert status == 200, body
    assert [x["id"] for x in body["result"]["items"]] == [r["id"] for r in records(big) if ref(r)]


def test_combined_filter_and_multi_key_order(big: Portal) -> None:
    filt = {">OPPORTUNITY": "20000", "@STAGE_ID": ["NEW", "WON"], "<ID": "900"}
    status, body = call(big, "crm.deal.list", {"filter": filt, "order": {"STAGE_ID": "DESC", "OPPORTUNITY": "ASC"},
                                              "select": ["ID", "STAGE_ID", "OPPORTUNITY"]})
    assert status == 200
    ref = [r for r in records(big) if r["opportunity"] > 20000 and r["stageId"] in ("NEW", "WON") and r["id"] < 900]
    ref.sort(key=lambda r: r["opportunity"])
    ref.sort(key=lambda r: r["stageId"], reverse=True)
    assert [int(x["ID"]) for x in body["result"]] == [r["id"] for r in ref]


def test_paging_total_next_and_start_minus_one(paged: Portal) -> None:
    seen: list[int] = []
    start: Any = 0
    while start is not None:
        status, body = call(paged, "crm.deal.list", {"start": start, "select": ["ID"]})
        assert status == 200 and body["total"] == N
        seen += [int(x["ID"]) for x in body["result"]]
        start = body.get("next")
        assert "next" not in body or body["next"] == len(seen)
    assert seen == list(range(1, N + 1))
    status, body = call(paged, "crm.deal.list", {"start": -1, "select": ["ID"]})
    assert body["total"] == 0 and "next" not in body and len(body["result"]) == 50
    status, body = call(paged, "crm.deal.list", {"start": 1150, "select": ["ID"]})
    assert len(body["result"]) == 50 and "next" not in body
    status, body = call(paged, "crm.item.list", {"entityTypeId": 2, "start": 1190, "select": ["id"]})
    assert [x["id"] for x in body["result"]["items"]] == list(range(1191, 1201)) and "next" not in body


def test_keyset_fast_path_equals_slow_path(paged: Portal) -> None:
    """order by id + ``>id`` + start=-1 (bisect, stops after a page) gives what a scan and sort give."""
    last, fast = 0, []
    while True:
        _, body = call(paged, "crm.item.list", {"entityTypeId": 2, "order": {"id": "ASC"},
                                                "filter": {">id": last, "@stageId": ["NEW", "WON", "LOSE"]},
                                                "start": -1, "select": ["id"]})
        page = [x["id"] for x in body["result"]["items"]]
        fast += page
        if len(page) < 50:
            break
        last = page[-1]
    # the slow path: order by another key that sorts the same way
    slow: list[int] = []
    start: Any = 0
    while start is not None:
        _, body = call(paged, "crm.item.list", {"entityTypeId": 2, "order": {"createdTime": "ASC"},
                                                "filter": {"@stageId": ["NEW", "WON", "LOSE"]},
                                                "start": start, "select": ["id"]})
        slow += [x["id"] for x in body["result"]["items"]]
        start = body.get("next")
    assert fast == slow and len(fast) == len(set(fast)) > 100


def test_descending_id_order(paged: Portal) -> None:
    _, body = call(paged, "crm.deal.list", {"order": {"ID": "DESC"}, "filter": {"<ID": 100}, "select": ["ID"]})
    assert [int(x["ID"]) for x in body["result"]] == list(range(99, 49, -1))


def test_select_variants(paged: Portal) -> None:
    _, body = call(paged, "crm.deal.list", {"filter": {"ID": 1}})
    row = body["result"][0]
    assert "TITLE" in row and "UF_CRM_1721244482250" not in row and all(
        v is None or isinstance(v, str) for v in row.values())
    _, body = call(paged, "crm.deal.list", {"filter": {"ID": 1}, "select": ["*", "UF_*"]})
    assert "UF_CRM_1721244482250" in body["result"][0]
    _, body = call(paged, "crm.deal.list", {"filter": {"ID": 1}, "select": ["TITLE", "NOPE"]})
    assert body["result"][0] == {"ID": "1", "TITLE": "Deal #1"}
    _, body = call(paged, "crm.item.list", {"entityTypeId": 2, "filter": {"id": 1}})
    item = body["result"]["items"][0]
    assert item["entityTypeId"] == 2 and isinstance(item["opportunity"], (int, float))
    _, body = call(paged, "crm.item.list", {"entityTypeId": 2, "filter": {"id": 1}, "select": ["title", "stageId"]})
    assert list(body["result"]["items"][0]) == ["id", "title", "stageId"]


def test_unknown_fields(paged: Portal) -> None:
    status, body = call(paged, "crm.item.list", {"entityTypeId": 2, "filter": {"FIELD": 1}})
    assert (status, body) == (400, {"error": "INVALID_ARG_VALUE",
                                    "error_description": "Invalid filter: field 'FIELD' is not allowed in filter"})
    status, body = call(paged, "crm.deal.list", {"filter": {"NOPE": 1}, "start": -1})
    assert status == 200 and len(body["result"]) == 50  # the legacy methods ignore unknown keys
    status, body = call(paged, "crm.deal.list", {"filter": "x"})
    assert (status, body) == (400, {"error": "", "error_description": "Parameter 'filter' must be array."})


@pytest.mark.slow
def test_million_deal_export_does_not_scan() -> None:
    import time

    p = Portal(PortalSettings(code="c", rate=0))
    p.seed("deal", 1_000_000)
    t = time.perf_counter()
    _, body = call(p, "crm.deal.list", {"order": {"ID": "ASC"}, "filter": {">ID": 999_900}, "start": -1,
                                        "select": ["ID"]})
    assert [int(x["ID"]) for x in body["result"]] == list(range(999_901, 999_951))
    assert time.perf_counter() - t < 0.05


@pytest.mark.parametrize("order", ["ASC", "DESC"])
@pytest.mark.parametrize("filt", [{}, {">ID": 100}, {"<=ID": 1150, ">=ID": 3}, {"ID": 7}, {">ID": 5000}])
def test_counted_id_range_by_bisection_equals_scan(paged: Portal, order: str, filt: dict[str, Any]) -> None:
    """Filters of id bounds only are counted by bisection; pages equal the brute-force ones."""
    ops = {"": operator.eq, ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
    ref = [r["id"] for r in records(paged) if all(ops[k[:-2]](r["id"], int(v)) for k, v in filt.items())]
    ref = ref[::-1] if order == "DESC" else ref
    got: list[int] = []
    start: Any = 0
    while start is not None:
        _, body = call(paged, "crm.deal.list", {"filter": filt, "order": {"ID": order}, "start": start,
                                                "select": ["ID"]})
        assert body["total"] == len(ref)
        got += [int(x["ID"]) for x in body["result"]]
        start = body.get("next")
    assert got == ref


@pytest.mark.parametrize("start", [-1, 0])
@pytest.mark.parametrize(("method", "key", "rows"), [("crm.deal.list", ">ID", "result"),
                                                     ("crm.item.list", ">id", "items")])
def test_empty_id_bound_matches_nothing(paged: Portal, start: int, method: str, key: str,
                                        rows: str) -> None:
    """An unresolved `$result[...]` (after a short page) arrives as "": an empty page."""
    params: dict[str, Any] = {"order": {key[1:]: "ASC"}, "filter": {key: ""}, "start": start}
    if method == "crm.item.list":
        params["entityTypeId"] = 2
    status, body = call(paged, method, params)
    page = body["result"][rows] if rows == "items" else body["result"]
    assert (status, page, body["total"], "next" in body) == (200, [], 0, False)


@pytest.mark.slow
def test_empty_id_bound_over_a_million_deals_does_not_scan() -> None:
    import time

    p = Portal(PortalSettings(code="c", rate=0))
    p.seed("deal", 1_000_000)
    t = time.perf_counter()
    for _ in range(49):  # the rest of a chained export batch after the last short page
        call(p, "crm.deal.list", {"order": {"ID": "ASC"}, "filter": {">ID": ""}, "start": -1})
    assert time.perf_counter() - t < 0.5
