"""``main.eventlog.*`` on REST v3, over HTTP.

Pages: ``api-reference/event-log/main-eventlog-list.md`` (select, filter, order, pagination),
``main-eventlog-tail.md`` (cursor paging, the cursor field refused in the filter; its example
shows the hourly ``USER_AUTHORIZE`` entry of a REST authorization), ``main-eventlog-get.md``,
``main-eventlog-field-list.md`` and ``main-eventlog-field-get.md``. Scope ``main``.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from b24_dagster.emulator import PortalEmulator


def _v3(emu: PortalEmulator, method: str, params: dict[str, Any]) -> requests.Response:
    return requests.post(emu.webhook_url_v3 + method, json=params, timeout=10)


def _ids(r: requests.Response) -> list[int]:
    assert r.status_code == 200, r.text
    return [row["id"] for row in r.json()["result"]["items"]]


def test_list_pages_filters_and_orders(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("eventlog", 30)
    base = {"filter": [["id", "<=", 30]], "select": ["id"]}
    first = _ids(_v3(b24_emulator, "main.eventlog.list", {**base, "order": {"id": "DESC"},
                                                          "pagination": {"page": 1, "limit": 4}}))
    assert first == [30, 29, 28, 27]
    second = _ids(_v3(b24_emulator, "main.eventlog.list", {**base, "order": {"id": "DESC"},
                                                           "pagination": {"page": 2, "limit": 4}}))
    assert second == [26, 25, 24, 23]
    # page 0 is the first page (the JS SDK's fetchList sends it); offset moves within the page
    assert _ids(_v3(b24_emulator, "main.eventlog.list",
                    {**base, "pagination": {"page": 0, "limit": 2, "offset": 1}})) == [2, 3]
    assert len(_ids(_v3(b24_emulator, "main.eventlog.list", base))) == 30   # default limit 50
    r = _v3(b24_emulator, "main.eventlog.list", {
        "select": ["id", "timestampX", "userId"],
        "filter": [["timestampX", ">=", "2024-01-01T00:10:00+00:00"], ["userId", "in", [1, 2]],
                   ["id", "<=", 30]]})
    rows = r.json()["result"]["items"]
    assert rows and all(x["userId"] in (1, 2) and x["timestampX"] >= "2024-01-01T00:10:00" for x in rows)
    assert set(rows[0]) == {"id", "timestampX", "userId"}


def test_list_errors_are_the_pages(b24_emulator: PortalEmulator) -> None:
    r = _v3(b24_emulator, "main.eventlog.list", {"pagination": {"limit": "abc"}})
    assert r.status_code == 400
    assert r.json()["error"] == {"code": "BITRIX_REST_V3_EXCEPTION_INVALIDPAGINATIONEXCEPTION",
                                 "message": 'Cannot recognize pagination parameter `{"limit":"abc"}`'}
    assert _v3(b24_emulator, "main.eventlog.list", {"pagination": {"limit": 0}}).status_code == 400
    # severity is neither filterable nor sortable (main-eventlog-field-list.md)
    r = _v3(b24_emulator, "main.eventlog.list", {"filter": [["severity", "=", "SECURITY"]]})
    assert r.json()["error"]["code"] == "BITRIX_REST_V3_EXCEPTION_INVALIDFILTEREXCEPTION"
    r = _v3(b24_emulator, "main.eventlog.list", {"order": {"severity": "ASC"}})
    assert r.status_code == 400
    # the method is REST v3 only
    r = requests.post(b24_emulator.webhook_url + "main.eventlog.list", json={}, timeout=10)
    assert r.status_code == 404


def test_tail_walks_by_cursor_and_refuses_the_cursor_field_in_filter(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("eventlog", 12)
    seen: list[int] = []
    cursor = 0
    while True:
        page = _ids(_v3(b24_emulator, "main.eventlog.tail", {
            "select": ["id"], "filter": [["userId", ">", 0]],
            "cursor": {"field": "id", "value": cursor, "order": "ASC", "limit": 5}}))
        if not page:
            break
        seen += page
        cursor = page[-1]
    assert seen == sorted(set(seen)) and seen[:12] == list(range(1, 13))
    down = _ids(_v3(b24_emulator, "main.eventlog.tail",
                    {"cursor": {"value": 5, "order": "DESC", "limit": 10}, "select": ["id"]}))
    assert down == [4, 3, 2, 1]
    r = _v3(b24_emulator, "main.eventlog.tail", {"filter": [["id", ">", 3]], "cursor": {"field": "id"}})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "code": "BITRIX_REST_V3_EXCEPTION_INVALIDFILTEREXCEPTION",
        "message": "Unable to recognize filter expression `Cursor field id cannot be used at filter.`"}
    r = _v3(b24_emulator, "main.eventlog.tail", {"cursor": {"limit": 0}})
    assert r.json()["error"]["code"] == "BITRIX_REST_V3_EXCEPTION_INVALIDPAGINATIONEXCEPTION"


def test_webhook_authorization_is_logged_once_an_hour(b24_emulator: PortalEmulator) -> None:
    for _ in range(3):
        requests.post(b24_emulator.webhook_url + "server.time", timeout=10)
    items = _v3(b24_emulator, "main.eventlog.list", {"filter": [["auditTypeId", "=", "USER_AUTHORIZE"]]})
    rows = items.json()["result"]["items"]
    assert len(rows) == 1
    entry = rows[0]
    assert (entry["severity"], entry["moduleId"], entry["userId"]) == ("SECURITY", "rest", 1)
    description = json.loads(entry["description"])
    assert description["method"] == "rest" and description["applicationType"] == "apauth"
    assert b24_emulator.portal.settings.code not in json.dumps(entry)


def test_get_and_field_methods(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("eventlog", 2)
    item = _v3(b24_emulator, "main.eventlog.get", {"id": 2}).json()["result"]["item"]
    assert list(item) == ["id", "timestampX", "severity", "auditTypeId", "moduleId", "itemId",
                          "remoteAddr", "userAgent", "requestUri", "siteId", "userId", "guestId",
                          "description"]
    r = _v3(b24_emulator, "main.eventlog.get", {"id": 999999})
    assert r.json()["error"] == {"code": "BITRIX_REST_V3_EXCEPTION_ENTITYNOTFOUNDEXCEPTION",
                                 "message": "Entry with ID = `999999` not found"}
    fields = _v3(b24_emulator, "main.eventlog.field.list",
                 {"select": ["name", "filterable", "sortable"]}).json()["result"]["items"]
    assert {f["name"] for f in fields if f["filterable"]} == {"id", "timestampX", "auditTypeId",
                                                              "userId", "guestId"}
    one = _v3(b24_emulator, "main.eventlog.field.get", {"name": "timestampX"}).json()["result"]["item"]
    assert (one["type"], one["title"], one["sortable"]) == ("object", "DATE_CREATE", True)
    r = _v3(b24_emulator, "main.eventlog.field.get", {})
    assert r.json()["error"]["validation"] == [{"field": "name",
                                                "message": "Required field `name` is not specified"}]
