"""v2 and v3 ``batch`` and the v3 ``Idempotency-Key`` (no HTTP)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote_plus

import pytest

from b24_dagster.emulator._portal import Portal, PortalRequest
from b24_dagster.emulator._settings import PortalSettings


@pytest.fixture
def portal() -> Portal:
    p = Portal(PortalSettings(code="c", rate=0), clock=lambda: 1_750_000_000.0)
    p.seed("deal", 120)
    p.seed("task", 10)
    return p


def call(p: Portal, method: str, params: Any, v: int = 2, **kw: Any) -> tuple[int, Any, Any]:
    r = p.handle(PortalRequest(v, method, params, "1", "c", **kw))
    return r.status, json.loads(r.body), r


def test_named_keys_sections_and_list_totals(portal: Portal) -> None:
    status, body, r = call(portal, "batch", {"halt": 0, "cmd": {
        "me": "user.current", "deals": "crm.deal.list?select[]=ID&start=50", "one": "crm.deal.get?id=3"}})
    assert status == 200 and r.commands == 3 and not r.committed
    res = body["result"]
    assert set(res) == {"result", "result_error", "result_total", "result_next", "result_time"}
    assert res["result"]["me"]["ID"] == "1" and res["result"]["one"]["ID"] == "3"
    assert [int(x["ID"]) for x in res["result"]["deals"]] == list(range(51, 101))
    assert res["result_total"] == {"deals": 120} and res["result_next"] == {"deals": 100}
    assert res["result_error"] == []
    assert set(res["result_time"]) == {"me", "deals", "one"}
    assert set(res["result_time"]["me"]) >= {"start", "finish", "duration", "processing", "date_start",
                                            "date_finish", "operating", "operating_reset_at"}
    assert set(body["time"]) >= {"start", "finish", "duration", "processing", "date_start", "date_finish"}


def test_list_cmd_gives_php_arrays(portal: Portal) -> None:
    _, body, _ = call(portal, "batch", {"cmd": ["crm.deal.list?start=0&select[]=ID", "crm.deal.list?start=50&select[]=ID"]})
    res = body["result"]
    assert isinstance(res["result"], list) and len(res["result"]) == 2
    assert res["result_total"] == [120, 120] and res["result_next"] == [50, 100]
    assert isinstance(res["result_time"], list) and res["result_error"] == []
    # keys that are not exactly 0..n-1 stay an object
    _, body, _ = call(portal, "batch", {"cmd": {"1": "server.time", "2": "server.time"}})
    assert body["result"]["result"] == {"1": body["result"]["result"]["1"], "2": body["result"]["result"]["2"]}


def test_halt_and_errors(portal: Portal) -> None:
    cmd = {"a": "crm.deal.get?id=999", "b": "crm.deal.get?id=1", "c": "batch?cmd[x]=server.time"}
    _, body, _ = call(portal, "batch", {"halt": 0, "cmd": cmd})
    res = body["result"]
    assert res["result_error"] == {
        "a": {"error": "", "error_description": "Not found"},
        "c": {"error": "ERROR_BATCH_METHOD_NOT_ALLOWED", "error_description": "Method is not allowed for batch usage"}}
    assert list(res["result"]) == ["b"] and list(res["result_time"]) == ["b"]
    _, body, r = call(portal, "batch", {"halt": "1", "cmd": cmd})
    assert body["result"]["result"] == [] and list(body["result"]["result_error"]) == ["a"] and r.commands == 1
    _, body, _ = call(portal, "batch", {"halt": True, "cmd": {"x": "no.such.method"}})
    assert body["result"]["result_error"]["x"]["error"] == "ERROR_METHOD_NOT_FOUND"


def test_length_limit_and_bad_cmd(portal: Portal) -> None:
    status, body, r = call(portal, "batch", {"cmd": {str(i): "server.time" for i in range(51)}})
    assert (status, body) == (400, {"error": "ERROR_BATCH_LENGTH_EXCEEDED", "error_description": "Max batch length exceeded"})
    assert r.commands == 0
    status, body, _ = call(portal, "batch", {"cmd": {str(i): "server.time" for i in range(50)}})
    assert status == 200 and len(body["result"]["result"]) == 50
    status, body, _ = call(portal, "batch", {})
    assert status == 200 and body["result"]["result"] == []


def test_scope_per_command(portal: Portal) -> None:
    portal.configure(scopes={"task"})
    _, body, _ = call(portal, "batch", {"halt": 0, "cmd": {"get_user": "user.current", "d": "crm.deal.get?id=1",
                                                            "t": "tasks.task.get?taskId=1"}})
    assert body["result"]["result_error"] == {"get_user": {"error": "insufficient_scope", "error_description": ""},
                                              "d": {"error": "insufficient_scope", "error_description": ""}}
    assert list(body["result"]["result"]) == ["t"]
    status, body, _ = call(portal, "crm.deal.get", {"id": 1})
    assert status == 403 and body["error"] == "insufficient_scope" and body["error_description"]


def test_result_references_and_writes(portal: Portal) -> None:
    _, body, r = call(portal, "batch", {"halt": 1, "cmd": {
        "add": "crm.deal.add?fields[TITLE]=Ref&fields[OPPORTUNITY]=10",
        "get": "crm.deal.get?id=$result[add]",
        "upd": "crm.deal.update?id=$result[get][ID]&fields[TITLE]=Ref%20$result[get][ID]%20done",
        "item": "crm.item.get?entityTypeId=2&id=$result[add]",
        "same": "crm.deal.list?filter[TITLE]=$result[item][item][title]&select[]=ID",
    }})
    res = body["result"]
    assert res["result_error"] == [] and r.committed and r.commands == 5
    new_id = res["result"]["add"]
    assert res["result"]["get"]["ID"] == str(new_id)
    assert res["result"]["item"]["item"]["title"] == f"Ref {new_id} done"
    assert res["result"]["same"] == [{"ID": str(new_id)}]


@pytest.mark.parametrize("encoded", [False, True])
def test_fast_export_chain_gets_every_row_once(portal: Portal, encoded: bool) -> None:
    """b24pysdk ``as_list_fast``: keys 1..50, ``>ID = $result[i-1][49][ID]``, start=-1, halt=0.

    b24pysdk percent-encodes the reference (``%24result%5B1%5D...``); both forms work.
    """
    seen: list[int] = []
    last = 0
    while True:
        cmd = {}
        for i in range(1, 51):
            ref = str(last) if i == 1 else f"$result[{i - 1}][49][ID]"
            if encoded:
                ref = quote_plus(ref)
            cmd[str(i)] = f"crm.deal.list?order[ID]=ASC&filter[%3EID]={ref}&start=-1&select[]=ID"
        _, body, _ = call(portal, "batch", {"halt": 0, "cmd": cmd})
        res = body["result"]
        assert res["result_error"] == []
        done = False
        for key in sorted(res["result"], key=int):
            page = [int(x["ID"]) for x in res["result"][key]]
            seen += page
            if len(page) < 50:
                done = True
                break
        if done:
            break
        last = seen[-1]
    assert seen == list(range(1, 121))
    # after the short page the unresolved references give empty pages, not a restart
    assert all(v == [] for k, v in res["result"].items() if int(k) > 3)


def test_v3_batch_refs(portal: Portal) -> None:
    status, body, r = call(portal, "batch", [
        {"method": "tasks.task.list", "query": {"filter": [["id", "<=", 3]], "select": ["id", "title"]}, "as": "few"},
        {"method": "tasks.task.get", "query": {"id": {"$ref": "few.items.1.id"}, "select": ["id", "title"]}},
        {"method": "tasks.task.list", "query": {"filter": [["id", "in", {"$refArray": "few.id"}]], "select": ["id"]}},
        {"method": "tasks.task.update", "query": {"id": {"$ref": "1.item.id"}, "fields": {"title": "Renamed"}}},
    ], v=3)
    assert status == 200, body
    assert body["result"][0] == {"items": [{"id": 1, "title": "Task #1"}, {"id": 2, "title": "Task #2"},
                                           {"id": 3, "title": "Task #3"}]}
    assert body["result"][1] == {"item": {"id": 2, "title": "Task #2"}}
    assert body["result"][2] == {"items": [{"id": 1}, {"id": 2}, {"id": 3}]}
    assert body["result"][3] == {"result": True} and r.committed
    assert set(body["time"]) >= {"start", "finish", "duration", "operating"}


def test_v3_batch_is_all_or_nothing(portal: Portal) -> None:
    before = portal.counts()["task"]
    status, body, r = call(portal, "batch", [
        {"method": "tasks.task.add", "query": {"fields": {"title": "kept?"}}},
        {"method": "tasks.task.update", "query": {"id": 1, "fields": {"title": "changed?"}}},
        {"method": "tasks.task.delete", "query": {"id": 2}},
        {"method": "tasks.task.get", "query": {"id": 404}},
    ], v=3)
    assert status == 400 and not r.committed
    assert body == {"error": {"code": "BITRIX_REST_V3_EXCEPTION_ENTITYNOTFOUNDEXCEPTION",
                              "message": "Record with ID = `404` not found"}}
    assert portal.counts()["task"] == before
    _, body, _ = call(portal, "tasks.task.get", {"id": 1, "select": ["title"]}, v=3)
    assert body["result"]["item"]["title"] == "Task #1"
    _, body, _ = call(portal, "tasks.task.get", {"id": 2}, v=3)
    assert body["result"]["item"]["id"] == 2
    status, body, _ = call(portal, "batch", [{"method": "tasks.task.get", "query": {"id": {"$ref": "nope.item.id"}}}], v=3)
    assert status == 400 and body["error"]["code"] == "BITRIX_REST_V3_EXCEPTION_INVALIDSELECTEXCEPTION"
    status, body, _ = call(portal, "batch", {"cmd": {"a": "server.time"}}, v=3)
    assert body["error"]["code"] == "BITRIX_REST_V3_EXCEPTION_INVALIDSELECTEXCEPTION"
    status, body, _ = call(portal, "batch", [{"method": "crm.item.get", "query": {"entityTypeId": 2, "id": 1}}], v=3)
    assert status == 404 and body["error"]["code"] == "BITRIX_REST_V3_EXCEPTION_METHODNOTFOUNDEXCEPTION"


def test_idempotency_replay_reuse_and_errors(portal: Portal) -> None:
    body = {"fields": {"title": "Once"}}
    s1, b1, r1 = call(portal, "tasks.task.add", body, v=3, headers={"idempotency-key": "k-1"})
    s2, b2, r2 = call(portal, "tasks.task.add", body, v=3, headers={"idempotency-key": "k-1"})
    assert s1 == s2 == 200 and b1 == b2 and r1.committed and not r2.committed
    assert ("Idempotent-Replayed", "true") in r2.headers and ("Idempotency-Key", "k-1") in r2.headers
    assert ("Idempotency-Key", "k-1") in r1.headers and ("Idempotent-Replayed", "true") not in r1.headers
    assert portal.counts()["task"] == 11
    s3, b3, _ = call(portal, "tasks.task.add", {"fields": {"title": "Other"}}, v=3, headers={"idempotency-key": "k-1"})
    assert s3 == 422 and b3["error"]["code"] == "BITRIX_REST_V3_EXCEPTION_IDEMPOTENCYKEYREUSEDEXCEPTION"
    s4, b4, _ = call(portal, "tasks.task.add", body, v=3, headers={"idempotency-key": "bad\u00e9key"})
    assert s4 == 400 and b4["error"]["code"] == "BITRIX_REST_V3_EXCEPTION_INVALIDIDEMPOTENCYKEYEXCEPTION"
    s5, _, _ = call(portal, "tasks.task.get", {"id": 999}, v=3, headers={"idempotency-key": "k-2"})
    s6, _, r6 = call(portal, "tasks.task.get", {"id": 999}, v=3, headers={"idempotency-key": "k-2"})
    assert s5 == s6 == 400 and ("Idempotent-Replayed", "true") not in r6.headers  # errors are not kept


def test_v3_requires_json(portal: Portal) -> None:
    status, body, _ = call(portal, "tasks.task.get", {"id": "1"}, v=3, body_format="form")
    assert status == 400 and body["error"]["code"] == "BITRIX_REST_V3_EXCEPTION_INVALIDJSONEXCEPTION"


def test_v3_ignores_the_query_string(portal: Portal) -> None:
    status, body, _ = call(portal, "tasks.task.get", {"id": "1"}, v=3, body_format="query")
    assert status == 400 and body["error"]["code"] == "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION"
