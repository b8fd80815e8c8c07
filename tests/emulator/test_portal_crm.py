"""CRM and task methods: answers shaped like the fixtures, validation, persistence, seeding."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from b24_dagster.emulator._portal import Portal, PortalRequest
from b24_dagster.emulator._settings import PortalSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
NOW = 1_750_000_000.0


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def same_shape(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Every key of ``expected`` in ``actual`` with the same JSON type (null matches anything)."""
    if expected is None or actual is None:
        return []
    kinds = [(bool,), (int, float), (str,), (list,), (dict,)]

    def kind(v: Any) -> int:
        return next(i for i, k in enumerate(kinds) if isinstance(v, k))

    if kind(expected) != kind(actual):
        return [f"{path}: {type(expected).__name__} vs {type(actual).__name__}"]
    problems: list[str] = []
    if isinstance(expected, dict) and expected and all(k.isdigit() for k in expected):
        # a map keyed by ids (auditorsData, tags): compare the shape of one entry
        if actual:
            problems += same_shape(next(iter(expected.values())), next(iter(actual.values())), f"{path}.*")
    elif isinstance(expected, dict):
        for k, v in expected.items():
            if k not in actual:
                problems.append(f"{path}.{k}: missing")
            else:
                problems += same_shape(v, actual[k], f"{path}.{k}")
    elif isinstance(expected, list) and expected and actual:
        problems += same_shape(expected[0], actual[0], f"{path}[0]")
    return problems


@pytest.fixture
def portal() -> Portal:
    p = Portal(PortalSettings(code="c", rate=0), clock=lambda: NOW)
    for entity, n in (("deal", 60), ("lead", 10), ("contact", 5), ("company", 5), ("task", 5)):
        p.seed(entity, n)
    return p


def call(p: Portal, method: str, params: Any = None, v: int = 2, **kw: Any) -> tuple[int, Any]:
    r = p.handle(PortalRequest(v, method, params if params is not None else {}, "1", "c", **kw))
    return r.status, json.loads(r.body)


DEAL_FIELDS = {"TITLE": "New Deal #1", "TYPE_ID": "COMPLEX", "STAGE_ID": "PREPARATION", "PROBABILITY": 99,
               "CURRENCY_ID": "EUR", "OPPORTUNITY": 1000000, "LEAD_ID": 1, "COMPANY_ID": 2, "CONTACT_ID": 3,
               "BEGINDATE": "2024-08-30", "CLOSEDATE": "2024-09-09", "ASSIGNED_BY_ID": 1,
               "UF_CRM_1721244482250": "Hello world!", "UTM_SOURCE": "google", "QUOTE_ID": 7,
               "LOCATION_ID": 1, "ORIGINATOR_ID": "x", "ORIGIN_ID": "y", "UTM_MEDIUM": "CPC",
               "UTM_CAMPAIGN": "c", "UTM_CONTENT": "c", "UTM_TERM": "t", "PARENT_ID_1220": 22}


# (fixture, method, params, api version, status)
SHAPES: list[tuple[str, str, Any, int, int]] = [
    ("server_time.json", "server.time", {}, 2, 200),
    ("user_current.json", "user.current", {}, 2, 200),
    ("time_object_full.json", "server.time", {}, 2, 200),
    ("crm_item_get.json", "crm.item.get", {"entityTypeId": 1, "id": 3}, 2, 200),
    ("crm_item_get_error_not_found.json", "crm.item.get", {"entityTypeId": 2, "id": 999}, 2, 400),
    ("crm_item_add.json", "crm.item.add", {"entityTypeId": 2, "fields": {
        "title": "New deal", "leadId": 1, "quoteId": 7, "probability": 50, "opportunity": 999.99,
        "ufCrm_1721244707107": 1111.1, "parentId1220": 2, "utmSource": "google", "observers": [2, 3],
        "contactIds": [4, 5]}}, 2, 200),
    ("crm_item_add_error_not_found.json", "crm.item.add", {"entityTypeId": 777, "fields": {"title": "x"}}, 2, 400),
    ("crm_item_update.json", "crm.item.update", {"entityTypeId": 2, "id": 5, "fields": {
        "observers": [1, 2, 3], "ufCrm_1721244707107": 200.05, "parentId1220": 2}}, 2, 200),
    ("crm_item_list.json", "crm.item.list", {"entityTypeId": 1, "select": [
        "id", "assignedById", "stageId", "opportunity", "sourceId", "title", "name", "lastName",
        "isManualOpportunity"]}, 2, 200),
    ("crm_item_list_error_invalid_arg.json", "crm.item.list", {"entityTypeId": 1, "filter": {"FIELD": 1}}, 2, 400),
    ("crm_deal_add.json", "crm.deal.add", {"fields": DEAL_FIELDS}, 2, 200),
    ("crm_deal_add_error.json", "crm.deal.add", {}, 2, 400),
    ("crm_deal_update.json", "crm.deal.update", {"id": 1, "fields": {"TITLE": "x"}}, 2, 200),
    ("crm_deal_list.json", "crm.deal.list", {"select": ["ID", "TITLE", "TYPE_ID", "CATEGORY_ID", "STAGE_ID",
                                                         "OPPORTUNITY", "IS_MANUAL_OPPORTUNITY",
                                                         "ASSIGNED_BY_ID", "DATE_CREATE"]}, 2, 200),
    ("crm_deal_list_error.json", "crm.deal.list", {"filter": "x"}, 2, 400),
    ("tasks_task_add_v2.json", "tasks.task.add", {"fields": {"TITLE": "task for test", "RESPONSIBLE_ID": 1}}, 2, 200),
    ("tasks_task_get_v2.json", "tasks.task.get", {"taskId": 1}, 2, 200),
    ("tasks_task_list_v2.json", "tasks.task.list", {}, 2, 200),
    ("tasks_task_add_v2_error.json", "tasks.task.add", {"fields": {"RESPONSIBLE_ID": 1}}, 2, 400),
    ("tasks_task_get_v2_error.json", "tasks.task.get", {"taskId": 1, "select": {}}, 2, 400),
    ("tasks_task_list_v2_error.json", "tasks.task.list", {"order": {"NOPE": "ASC"}}, 2, 400),
    ("tasks_task_add_v3.json", "tasks.task.add", {"fields": {"title": "Task Title", "deadline": "2026-01-01T00:59:59+03:00"}}, 3, 200),
    ("tasks_task_add_v3_error.json", "tasks.task.add", {"fields": {"title": "T", "deadline": "soon"}}, 3, 400),
    ("tasks_task_get_v3.json", "tasks.task.get", {"id": 1, "select": ["*", "responsible.name",
                                                                      "responsible.email"]}, 3, 200),
    ("tasks_task_get_v3_error.json", "tasks.task.get", {"id": 2000}, 3, 400),
    ("tasks_task_list_v3.json", "tasks.task.list", {"select": ["id", "title", "responsibleId", "deadline", "status"]}, 3, 200),
    ("tasks_task_list_v3_error.json", "tasks.task.list", {"pagination": {"limit": "abc"}}, 3, 400),
    ("tasks_task_update_v3.json", "tasks.task.update", {"id": 1, "fields": {"title": "x"}}, 3, 200),
    ("tasks_task_update_v3_error.json", "tasks.task.update", {"id": 1, "fields": {"creatorId": 2}}, 3, 400),
    ("tasks_task_delete_v3.json", "tasks.task.delete", {"id": 3}, 3, 200),
    ("v3_success_item.json", "tasks.task.get", {"id": 1, "select": ["id", "title"]}, 3, 200),
    ("v3_success_items.json", "tasks.task.list", {"select": ["id"]}, 3, 200),
    ("v3_success_bool.json", "tasks.task.update", {"id": 2, "fields": {"title": "y"}}, 3, 200),
    ("v3_error_validation.json", "tasks.task.get", {}, 3, 400),
    ("v3_error_unknown_dto_property.json", "tasks.task.get", {"id": 1, "select": ["responsible.stageId"]}, 3, 400),
    ("v3_related_fields_item.json", "tasks.task.get", {"id": 1, "select": ["id", "title", "responsible.name",
                                                                           "responsible.email"]}, 3, 200),
    ("batch_v2_success_named_keys.json", "batch", {"halt": 0, "cmd": {
        "get_user": "user.current", "get_department": "department.get?ID=$result[get_user][UF_DEPARTMENT][0]"}}, 2, 200),
    ("batch_v3_success.json", "batch", [{"method": "tasks.task.get", "query": {"id": 1, "select": ["id", "title"]}},
                                        {"method": "tasks.task.get", "query": {"id": 2, "select": ["id", "title"]}}], 3, 200),
    ("derived/batch_v2_numeric_keys_lists_SYNTHETIC.json", "batch", {"cmd": [
        "crm.deal.list?select[]=ID&select[]=TITLE", "crm.deal.list?select[]=ID&select[]=TITLE&start=50"]}, 2, 200),
    ("derived/batch_v3_error_SYNTHETIC.json", "batch", [{"method": "tasks.task.get", "query": {"id": {"$ref": "x.item.id"}}}], 3, 400),
    ("derived/error_batch_length_exceeded.json", "batch", {"cmd": ["server.time"] * 51}, 2, 400),
    ("derived/error_method_not_found.json", "no.such.method", {}, 2, 404),
]


@pytest.mark.parametrize(("fixture", "method", "params", "version", "status"), SHAPES,
                         ids=[s[0] for s in SHAPES])
def test_answer_has_the_fixture_shape(portal: Portal, fixture: str, method: str, params: Any,
                                      version: int, status: int) -> None:
    got_status, body = call(portal, method, params, version)
    assert got_status == status, body
    assert same_shape(load(fixture), body) == []


def test_scope_and_halt_fixture_shape(portal: Portal) -> None:
    portal.configure(scopes={"crm"})
    _, body = call(portal, "batch", {"halt": 0, "cmd": {
        "get_user": "user.current", "get_department": "department.get?ID=$result[get_user][UF_DEPARTMENT][0]"}})
    assert body["result"] == load("batch_v2_errors_halt0.json")["result"]
    status, body = call(portal, "user.current")
    assert status == 403 and body == load("derived/error_insufficient_scope.json")


def test_views_of_one_record(portal: Portal) -> None:
    _, added = call(portal, "crm.deal.add", {"fields": DEAL_FIELDS})
    assert isinstance(added["result"], int)
    _, legacy = call(portal, "crm.deal.get", {"id": added["result"]})
    _, item = call(portal, "crm.item.get", {"entityTypeId": 2, "id": added["result"]})
    d, i = legacy["result"], item["result"]["item"]
    assert d["OPPORTUNITY"] == "1000000.00" and i["opportunity"] == 1000000
    assert d["PROBABILITY"] == "99" and i["probability"] == 99
    assert d["ID"] == str(i["id"]) and d["STAGE_SEMANTIC_ID"] == i["stageSemanticId"] == "P"
    assert d["DATE_CREATE"] == i["createdTime"] == "2025-06-15T15:06:40+00:00"
    assert d["BEGINDATE"] == i["begindate"] == "2024-08-30T00:00:00+00:00"
    assert d["UF_CRM_1721244482250"] == i["ufCrm_1721244482250"] == "Hello world!"
    assert all(v is None or isinstance(v, str) for v in d.values())


def test_write_stamps_and_update(portal: Portal) -> None:
    clock = [NOW]
    p = Portal(PortalSettings(code="c", rate=0), clock=lambda: clock[0])
    _, body = call(p, "crm.item.add", {"entityTypeId": 2, "fields": {"title": "A", "stageId": "NEW"}})
    item = body["result"]["item"]
    assert item["createdTime"] == item["updatedTime"] == item["movedTime"]
    clock[0] += 3600
    _, body = call(p, "crm.item.update", {"entityTypeId": 2, "id": item["id"], "fields": {"stageId": "WON"}})
    upd = body["result"]["item"]
    assert upd["createdTime"] == item["createdTime"] and upd["updatedTime"] == "2025-06-15T16:06:40+00:00"
    assert upd["stageSemanticId"] == "S" and upd["closed"] == "Y" and upd["movedTime"] == upd["updatedTime"]
    assert call(p, "crm.item.delete", {"entityTypeId": 2, "id": item["id"]}) [1]["result"] == []
    assert call(p, "crm.item.get", {"entityTypeId": 2, "id": item["id"]})[0] == 400


@pytest.mark.parametrize(("method", "params", "error"), [
    ("crm.deal.add", {"fields": {"TITLE": "x", "ASSIGNED_BY_ID": 999}}, ""),
    ("crm.deal.add", {"fields": {"TITLE": "x", "STAGE_ID": "NO_SUCH"}}, ""),
    ("crm.deal.add", {"fields": {"TITLE": "x", "OPPORTUNITY": "lots"}}, ""),
    ("crm.contact.add", {"fields": {"NAME": "A", "EMAIL": [{"VALUE": "not-an-email", "VALUE_TYPE": "WORK"}]}}, ""),
    ("crm.contact.add", {"fields": {"POST": "nobody"}}, ""),
    ("crm.company.add", {"fields": {"COMPANY_TYPE": "CUSTOMER"}}, ""),
    ("crm.item.add", {"entityTypeId": 4, "fields": {"industry": "IT"}}, "CRM_FIELD_ERROR_REQUIRED"),
    ("crm.item.add", {"entityTypeId": 1, "fields": {"assignedById": 12345}}, "CRM_FIELD_ERROR_VALUE_NOT_VALID"),
    ("crm.item.add", {"entityTypeId": 3, "fields": {"name": "A", "fm": [{"typeId": "EMAIL", "value": "x@"}]}},
     "CRM_FIELD_ERROR_VALUE_NOT_VALID"),
    ("crm.item.update", {"entityTypeId": 2, "id": 1, "fields": {"stageId": "C9:NEW"}}, "CRM_FIELD_ERROR_VALUE_NOT_VALID"),
    ("crm.deal.update", {"id": 999999, "fields": {"TITLE": "x"}}, ""),
    ("crm.deal.get", {"id": 999999}, ""),
    ("crm.item.get", {"entityTypeId": 2}, "100"),
    ("tasks.task.add", {"fields": {"TITLE": "t", "RESPONSIBLE_ID": 999}}, "ERROR_CORE"),
])
def test_validation_failures(portal: Portal, method: str, params: Any, error: str) -> None:
    before = portal.counts()
    status, body = call(portal, method, params)
    assert status == 400 and body["error"] == error and body["error_description"], body
    assert portal.counts() == before


def test_multifields_both_views(portal: Portal) -> None:
    _, body = call(portal, "crm.contact.add", {"fields": {"NAME": "Ann", "PHONE": [{"VALUE": "+1 555 0100",
                                                                                      "VALUE_TYPE": "WORK"}],
                                                           "EMAIL": [{"VALUE": "ann@example.com"}]}})
    cid = body["result"]
    _, legacy = call(portal, "crm.contact.get", {"id": cid})
    assert legacy["result"]["HAS_EMAIL"] == "Y" and legacy["result"]["EMAIL"][0]["VALUE"] == "ann@example.com"
    _, item = call(portal, "crm.item.get", {"entityTypeId": 3, "id": cid})
    assert {m["typeId"] for m in item["result"]["item"]["fm"]} == {"PHONE", "EMAIL"}


def test_fields_methods(portal: Portal) -> None:
    _, body = call(portal, "crm.item.fields", {"entityTypeId": 2})
    f = body["result"]["fields"]
    assert f["stageId"]["type"] == "crm_status" and f["stageId"]["upperName"] == "STAGE_ID"
    assert f["id"]["isReadOnly"] is True and f["observers"]["isMultiple"] is True
    _, body = call(portal, "crm.company.fields")
    assert body["result"]["TITLE"]["isRequired"] is True and body["result"]["PHONE"]["type"] == "crm_multifield"
    assert body["result"]["DATE_CREATE"]["type"] == "datetime"


def test_tasks_v2_and_v3_share_rows(portal: Portal) -> None:
    _, body = call(portal, "tasks.task.add", {"fields": {"TITLE": "Both", "DEADLINE": "2025-07-01T10:00:00+00:00"}})
    tid = int(body["result"]["task"]["id"])
    _, v3 = call(portal, "tasks.task.get", {"id": tid}, 3)
    assert v3["result"]["item"]["title"] == "Both" and v3["result"]["item"]["deadline"] == "2025-07-01T10:00:00+00:00"
    call(portal, "tasks.task.update", {"id": tid, "fields": {"status": "completed"}}, 3)
    _, v2 = call(portal, "tasks.task.get", {"taskId": tid})
    assert v2["result"]["task"]["status"] == "5" and v2["result"]["task"]["closedDate"]
    _, lst = call(portal, "tasks.task.list", {"filter": {"STATUS": 5, ">=ID": tid}})
    assert [t["id"] for t in lst["result"]["tasks"]] == [str(tid)] and lst["total"] == 1
    _, body = call(portal, "tasks.task.delete", {"taskId": tid})
    assert body["result"] == {"task": True}


def test_sqlite_persistence_across_instances(tmp_path: Path) -> None:
    path = str(tmp_path / "portal.sqlite")
    p1 = Portal(PortalSettings(code="c", rate=0, state_path=path), clock=lambda: NOW)
    p1.seed("deal", 100)
    _, added = call(p1, "crm.deal.add", {"fields": {"TITLE": "Persisted", "PHONE": "x"}})
    call(p1, "crm.deal.update", {"id": 5, "fields": {"TITLE": "Changed"}})
    call(p1, "crm.deal.delete", {"id": 7})
    call(p1, "tasks.task.add", {"fields": {"TITLE": "T"}})
    call(p1, "batch", [{"method": "tasks.task.add", "query": {"fields": {"title": "rolled back"}}},
                       {"method": "tasks.task.get", "query": {"id": 99}}], 3)
    _, before = call(p1, "crm.deal.list", {"select": ["ID", "TITLE"], "start": 0})
    p1.close()
    p2 = Portal(PortalSettings(code="c", rate=0, state_path=path), clock=lambda: NOW)
    # the added deal's creation is its one stage move (crm-stage-history-list.md), kept too
    assert p2.counts() == {"lead": 0, "deal": 100, "contact": 0, "company": 0, "task": 1,
                           "stagehistory": 1, "activity": 0}
    _, after = call(p2, "crm.deal.list", {"select": ["ID", "TITLE"], "start": 0})
    assert after["result"] == before["result"] and after["total"] == 100
    assert call(p2, "crm.deal.get", {"id": 5})[1]["result"]["TITLE"] == "Changed"
    assert call(p2, "crm.deal.get", {"id": 7})[0] == 400
    assert call(p2, "crm.deal.get", {"id": added["result"]})[1]["result"]["TITLE"] == "Persisted"
    _, again = call(p2, "crm.deal.add", {"fields": {"TITLE": "next"}})
    assert again["result"] == added["result"] + 1            # ids never reused
    p2.reset()
    assert sum(p2.counts().values()) == 0
    p2.close()
    p3 = Portal(PortalSettings(code="c", rate=0, state_path=path))
    assert sum(p3.counts().values()) == 0
    p3.close()


def test_seed_is_deterministic() -> None:
    a, b = Portal(PortalSettings(code="c", rate=0)), Portal(PortalSettings(code="c", rate=0))
    a.seed("deal", 500)
    b.seed("deal", 500)
    assert a.store.tables["deal"].rows == b.store.tables["deal"].rows
    a.seed("lead", 50, rng_seed=3)
    b.seed("lead", 50, rng_seed=4)
    assert a.store.tables["lead"].rows != b.store.tables["lead"].rows


@pytest.mark.slow
def test_a_million_deals() -> None:
    p = Portal(PortalSettings(code="c", rate=0))
    p.seed("deal", 1_000_000)
    assert p.counts()["deal"] == 1_000_000
    status, body = call(p, "crm.item.get", {"entityTypeId": 2, "id": 1_000_000})
    assert status == 200 and body["result"]["item"]["title"] == "Deal #1000000"
