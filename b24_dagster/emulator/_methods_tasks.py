"""``tasks.task.{add,get,update,delete,list}`` in the v2 shape and the v3 shape.

v2: ``result.task`` / ``result.tasks`` with camelCase keys and string values, ``total``/``next``;
input fields in UPPER (``TITLE``, ``RESPONSIBLE_ID``) or camelCase.
v3 (``/rest/api/``): ``result.item`` / ``result.items`` typed, statuses and priorities as
words, no ``total``/``next``; update and delete answer ``{"result": true}``.
Both read and write the same task rows (dicts of typed values, dates as unix seconds).
"""

from __future__ import annotations

import uuid
import zlib
from typing import Any

from ._entities import USERS
from ._filters import (
    Condition,
    FilterError,
    Query,
    Schema,
    compile_filter,
    compile_order,
    parse_date,
    run_query,
)
from ._methods_core import ApiError, Context, Result, method, v3_error

__all__: list[str] = []

# camel (v2 output), UPPER (v2 input/filter), v3 name, kind, writable
_FIELDS: list[tuple[str, str, str, str, bool]] = [
    ("id", "ID", "id", "int", False),
    ("parentId", "PARENT_ID", "parentId", "int", True),
    ("title", "TITLE", "title", "str", True),
    ("description", "DESCRIPTION", "description", "str", True),
    ("priority", "PRIORITY", "priority", "int", True),
    ("status", "STATUS", "status", "int", True),
    ("responsibleId", "RESPONSIBLE_ID", "responsibleId", "int", True),
    ("createdBy", "CREATED_BY", "creatorId", "int", False),
    ("createdDate", "CREATED_DATE", "created", "date", False),
    ("changedBy", "CHANGED_BY", "changedBy", "int", False),
    ("changedDate", "CHANGED_DATE", "changed", "date", False),
    ("closedDate", "CLOSED_DATE", "closed", "date", False),
    ("deadline", "DEADLINE", "deadline", "date", True),
    ("startDatePlan", "START_DATE_PLAN", "startPlan", "date", True),
    ("endDatePlan", "END_DATE_PLAN", "endPlan", "date", True),
    ("groupId", "GROUP_ID", "groupId", "int", True),
    ("auditors", "AUDITORS", "auditors", "list", True),
    ("accomplices", "ACCOMPLICES", "accomplices", "list", True),
    ("guid", "GUID", "guid", "str", False),
    ("tags", "TAGS", "tags", "strlist", True),
    # CRM bindings (`L_4`, `D_10`): UF_CRM_TASK on v2 (tasks-task-add.md), crmItemIds on v3
    ("ufCrmTask", "UF_CRM_TASK", "crmItemIds", "strlist", True),
]
_BY_NAME: dict[str, tuple[str, str, str, str, bool]] = {}
for _f in _FIELDS:
    _BY_NAME[_f[0]] = _BY_NAME[_f[1]] = _f
_BY_V3 = {f[2]: f for f in _FIELDS}
_STATUS_V3 = {1: "new", 2: "pending", 3: "in_progress", 4: "supposedly_completed", 5: "completed",
              6: "deferred", 7: "declined"}
_STATUS_FROM_V3 = {v: k for k, v in _STATUS_V3.items()}
_PRIORITY_V3 = {0: "low", 1: "average", 2: "high"}
_PRIORITY_FROM_V3 = {v: k for k, v in _PRIORITY_V3.items()}

_V2_ACTION = {"accept": False, "decline": False, "complete": True, "approve": False,
              "disapprove": False, "start": True, "pause": False, "delegate": True, "remove": True,
              "edit": True, "defer": True, "renew": False, "create": True, "changeDeadline": True,
              "checklistAddItems": True, "addFavorite": True, "deleteFavorite": False, "rate": True,
              "take": False, "edit.originator": False, "checklist.reorder": True,
              "elapsedtime.add": True, "dayplan.timer.toggle": False, "edit.plan": True,
              "checklist.add": True, "favorite.add": True, "favorite.delete": False}
_V3_RIGHTS = {k: True for k in ["read", "watch", "mute", "createResult", "edit", "remove", "complete", "start", "delegate", "defer", "deadline", "datePlan", "changeResponsible", "changeAccomplices", "mark", "changeStatus", "reminder", "addAuditors", "elapsedTime", "favorite", "checklistAdd", "checklistEdit", "checklistSave", "checklistToggle", "automate", "completeResult", "admin", "createSubtask", "copy", "saveAsTemplate", "attachFile", "detachFile", "detachParent", "createGanttDependence"]}
_V3_RIGHTS.update({k: False for k in ["approve", "disapprove", "take", "renew", "changeDirector", "pause", "timeTracking", "resultEdit", "removeResult", "resultRead", "sort"]})

_SCHEMA = Schema({}, "ID")
for _f in _FIELDS:
    _getter = (lambda key: lambda row: row.get(key))(_f[0])
    _kind = {"list": "int", "strlist": "str"}.get(_f[3], _f[3])
    _SCHEMA.fields[_f[1]] = (_getter, _kind)
    _SCHEMA.fields[_f[0]] = (_getter, _kind)
    _SCHEMA.fields[_f[2]] = (_getter, _kind)


def _user(ctx: Context, uid: Any) -> dict[str, str]:
    name, last, _, position = USERS.get(int(uid or 0), ("", "", "", ""))
    return {"id": str(uid), "name": f"{name} {last}".strip(), "link": f"/company/personal/user/{uid}/",
            "icon": "/bitrix/images/tasks/default_avatar.png", "workPosition": position}


def _tag_id(tag: str) -> int:
    return zlib.crc32(tag.encode()) % 1000 + 1


def _s(v: Any) -> Any:
    return None if v is None else str(v)


def v2_view(ctx: Context, t: dict[str, Any]) -> dict[str, Any]:
    """A task as the v2 methods show it: camelCase keys, string values."""
    d = ctx.fmt
    date = lambda k: None if t.get(k) is None else d(t[k])  # noqa: E731
    auditors = [str(a) for a in t.get("auditors") or []]
    accomplices = [str(a) for a in t.get("accomplices") or []]
    return {
        "id": str(t["id"]), "parentId": _s(t.get("parentId")), "title": t["title"],
        "description": t.get("description") or "", "mark": None, "priority": str(t.get("priority", 1)),
        "multitask": "N", "notViewed": "N", "replicate": "N", "stageId": "0",
        "sprintId": None, "backlogId": None,  # tasks-task-update.md's answer
        "createdBy": str(t["createdBy"]), "createdDate": date("createdDate"),
        "responsibleId": str(t["responsibleId"]), "changedBy": _s(t.get("changedBy")),
        "changedDate": date("changedDate"), "statusChangedBy": None, "closedBy": None,
        "closedDate": date("closedDate"), "activityDate": date("changedDate"), "dateStart": None,
        "deadline": date("deadline"), "startDatePlan": date("startDatePlan"),
        "endDatePlan": date("endDatePlan"), "guid": t.get("guid"), "xmlId": None,
        "commentsCount": None, "serviceCommentsCount": None, "allowChangeDeadline": "N",
        "allowTimeTracking": "N", "taskControl": "N", "addInReport": "N",
        "forkedByTemplateId": None, "timeEstimate": "0", "timeSpentInLogs": None,
        "matchWorkTime": "N", "forumTopicId": None, "forumId": None, "siteId": "s1",
        "subordinate": "Y", "exchangeModified": None, "exchangeId": None, "outlookVersion": "1",
        "viewedDate": None, "sorting": None, "durationFact": None, "isMuted": "N", "isPinned": "N",
        "isPinnedInGroup": "N", "flowId": None, "descriptionInBbcode": "Y",
        "status": str(t.get("status", 2)), "subStatus": str(t.get("status", 2)),
        "statusChangedDate": date("changedDate"), "durationPlan": None, "durationType": "days",
        "favorite": "N", "groupId": str(t.get("groupId") or 0), "auditors": auditors,
        "accomplices": accomplices, "checklist": [], "group": [],
        "ufCrmTask": list(t.get("ufCrmTask") or []), "ufTaskWebdavFiles": [], "ufMailMessage": None,
        "creator": _user(ctx, t["createdBy"]), "responsible": _user(ctx, t["responsibleId"]),
        "accomplicesData": {a: _user(ctx, a) for a in accomplices} or [],
        "auditorsData": {a: _user(ctx, a) for a in auditors} or [],
        "newCommentsCount": 0, "action": dict(_V2_ACTION), "lengthDeadline": "",
        "taskRequireResult": "N", "taskHasOpenResult": "N", "taskHasResult": "N",
        "timeElapsed": None, "timerIsRunningForCurrentUser": "N",
        "parsedDescription": t.get("description") or "",
        "counter": {"counters": {"expired": 0, "newComments": 0, "projectExpired": 0,
                                 "projectNewComments": 0, "mutedExpired": 0, "mutedNewComments": 0},
                    "color": "gray", "value": 0},
        "tags": {str(_tag_id(tag)): {"id": _tag_id(tag), "title": tag} for tag in t.get("tags") or []} or [],
        "checkListTree": {
            "nodeId": 0, "fields": {"id": None, "copiedId": None, "entityId": None,
                                    "userId": ctx.user_id, "createdBy": None, "parentId": None,
                                    "title": "", "sortIndex": None, "displaySortIndex": "",
                                    "isComplete": False, "isImportant": False, "completedCount": 0,
                                    "members": [], "attachments": [], "nodeId": None},
            "action": [], "descendants": []},
        "checkListCanAdd": True,
    }


def v3_view(ctx: Context, t: dict[str, Any], select: list[str] | None = None) -> dict[str, Any]:
    """A task as the v3 methods show it: typed values, words for status and priority."""
    d = ctx.fmt
    date = lambda k: None if t.get(k) is None else d(t[k])  # noqa: E731
    full = {
        "id": t["id"], "title": t["title"], "description": t.get("description") or "",
        "creatorId": t["createdBy"], "responsibleId": t["responsibleId"],
        "deadline": date("deadline"), "needsControl": False, "startPlan": date("startDatePlan"),
        "endPlan": date("endDatePlan"), "fileIds": None, "checklist": [], "epicId": None,
        "storyPoints": None, "priority": _PRIORITY_V3.get(t.get("priority", 1), "average"),
        "status": _STATUS_V3.get(t.get("status", 2), "pending"), "statusChanged": date("changedDate"),
        "parentId": t.get("parentId"), "containsChecklist": False, "containsSubTasks": False,
        "containsRelatedTasks": False, "containsGanttLinks": False, "containsPlacements": False,
        "containsResults": False, "numberOfReminders": 0, "chatId": None, "plannedDuration": 0,
        "actualDuration": 0, "durationType": "days", "started": None, "estimatedTime": 0,
        "replicate": False, "created": date("createdDate"), "changed": date("changedDate"),
        "closed": date("closedDate"), "activity": date("changedDate"), "guid": t.get("guid"),
        "xmlId": None, "exchangeId": None, "exchangeModified": None, "outlookVersion": 1,
        "mark": "none", "allowsChangeDeadline": False, "allowsTimeTracking": False,
        "matchesWorkTime": False, "addInReport": None, "isMultitask": False, "siteId": "s1",
        "deadlineCount": None, "declineReason": None, "forumTopicId": None,
        "link": f"/company/personal/user/{t['responsibleId']}/tasks/task/view/{t['id']}/",
        "rights": dict(_V3_RIGHTS), "archiveLink": None, "crmItemIds": list(t.get("ufCrmTask") or []),
        "requireResult": False,
        "matchesSubTasksTime": False, "autocompleteSubTasks": False, "allowsChangeDatePlan": False,
        "maxDeadlineChangeDate": None, "maxDeadlineChanges": None,
        "requireDeadlineChangeReason": False, "inFavorite": [], "inPin": [], "inGroupPin": [],
        "inMute": [], "dependsOn": [], "scenarios": ["default"],
        "groupId": t.get("groupId") or 0, "auditors": list(t.get("auditors") or []),
        "accomplices": list(t.get("accomplices") or []), "tags": list(t.get("tags") or []),
    }
    if not select:
        return full
    # tasks-task-get-rest-v3.md: `["responsible.name","responsible.email"]` answers the basic
    # fields with the `responsible` object added; own fields in `select` narrow the answer
    own = [name for name in select if "." not in name]
    out: dict[str, Any] = dict(full) if "*" in select or not own else {}
    for name in select:
        if "." in name:
            rel, _, sub = name.partition(".")
            uid = {"responsible": t["responsibleId"], "creator": t["createdBy"]}.get(rel)
            if uid is None or sub not in ("id", "name", "email", "workPosition"):
                raise v3_error(400, "UNKNOWNDTOPROPERTYEXCEPTION",
                               f"Unknown field `{sub if uid is not None else rel}` for entity "
                               f"`{'UserDto' if uid is not None else 'TaskDto'}`")
            n, last, email, pos = USERS.get(uid, ("", "", "", ""))
            value = {"id": uid, "name": f"{n} {last}".strip(), "email": email, "workPosition": pos}
            out.setdefault(rel, {})[sub] = value[sub]
        elif name in full:
            out[name] = full[name]
    if "id" not in out:
        out = {"id": t["id"], **out}
    return out


def _coerce(kind: str, value: Any, ctx: Context) -> Any:
    if value in (None, "") and kind != "str":
        return [] if kind in ("list", "strlist") else None
    if kind == "int":
        return int(str(value))
    if kind == "date":
        ts = parse_date(value, ctx.settings.utc_offset)
        if ts is None:
            raise ValueError(value)
        return int(ts)
    if kind in ("list", "strlist"):
        items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else [value]
        return [int(str(v)) if kind == "list" else str(v) for v in items]
    return str(value)


def _write_task(ctx: Context, task: dict[str, Any], fields: dict[str, Any], v3: bool,
                creating: bool = False) -> None:
    for key, value in fields.items():
        spec = (_BY_V3 if v3 else _BY_NAME).get(str(key)) or (None if v3 else _BY_NAME.get(str(key).upper()))
        if spec is None:
            if v3:
                raise v3_error(400, "UNKNOWNDTOPROPERTYEXCEPTION", f"Unknown field `{key}` for entity `TaskDto`")
            continue
        camel, _, v3name, kind, writable = spec
        # The creator is set when a task is made (tasks-task-add-rest-v3.md: `creatorId` is
        # required, and the example sends it; tasks-task-add.md sends CREATED_BY), and only
        # then: tasks-task-update-rest-v3.md refuses it ("it cannot be modified").
        if not writable and not (creating and camel == "createdBy"):
            if v3:
                raise v3_error(400, "VALIDATION_REQUESTVALIDATIONEXCEPTION",
                               "Error during request object validation",
                               [{"message": f"In DTO `TaskDto`, the field `{v3name}` requires the "
                                            "presence of the `Editable` attribute for such a request",
                                 "field": v3name}])
            continue
        if v3 and camel == "status" and isinstance(value, str) and value in _STATUS_FROM_V3:
            value = _STATUS_FROM_V3[value]
        if v3 and camel == "priority" and isinstance(value, str) and value in _PRIORITY_FROM_V3:
            value = _PRIORITY_FROM_V3[value]
        try:
            task[camel] = _coerce(kind, value, ctx)
        except (ValueError, TypeError):
            if v3:
                dtype = {"date": "DateTime", "int": "int", "list": "array"}.get(kind, "string")
                raise v3_error(400, "VALIDATION_REQUESTVALIDATIONEXCEPTION",
                               "Error during request object validation",
                               [{"message": f"Field `{v3name}` requires data type `{dtype}` for this request",
                                 "field": v3name}]) from None
            raise ApiError(400, "ERROR_CORE", f"Wrong value of field {spec[1]}<br>") from None
    if not str(task.get("title") or "").strip():
        if v3:
            raise v3_error(400, "VALIDATION_REQUESTVALIDATIONEXCEPTION", "Error during request object validation",
                           [{"message": "Required field `title` is missing", "field": "title"}])
        raise ApiError(400, "ERROR_CORE", "Task title is not specified<br>")
    if task.get("responsibleId") not in USERS:
        if v3:  # the texts of tasks-task-add-rest-v3.md and tasks-task-update-rest-v3.md
            text = ('User specified in the "Executor" field not found' if creating else
                    'The user specified in the "Responsible" field was not found')
            raise v3_error(400, "VALIDATION_REQUESTVALIDATIONEXCEPTION", "Error during request object validation",
                           [{"message": text, "field": "responsibleId"}])
        raise ApiError(400, "ERROR_CORE", "Responsible person not found<br>")
    if task.get("createdBy") not in USERS:
        if v3:  # tasks-task-add-rest-v3.md lists an empty description for this one
            raise v3_error(400, "VALIDATION_REQUESTVALIDATIONEXCEPTION", "Error during request object validation",
                           [{"message": "", "field": "creatorId"}])
        raise ApiError(400, "ERROR_CORE", "Creator not found<br>")
    now = int(ctx.now)
    task["changedDate"] = now
    task["changedBy"] = ctx.user_id
    if task.get("status") == 5 and task.get("closedDate") is None:
        task["closedDate"] = now


def _add(ctx: Context, fields: dict[str, Any], v3: bool) -> dict[str, Any]:
    now = int(ctx.now)
    task: dict[str, Any] = {"id": 0, "title": "", "description": "", "responsibleId": ctx.user_id,
                            "createdBy": ctx.user_id, "createdDate": now, "status": 2, "priority": 1,
                            "deadline": None, "groupId": 0, "closedDate": None, "auditors": [],
                            "accomplices": [], "guid": "{" + str(uuid.uuid4()) + "}"}
    _write_task(ctx, task, fields, v3, creating=True)
    task["id"] = ctx.store.new_id("task")
    ctx.store.put("task", task["id"], task)
    return task


def _get(ctx: Context, id_: Any, v3: bool) -> dict[str, Any]:
    try:
        key = int(str(id_))
    except ValueError:
        key = -1
    task = ctx.store.tables["task"].get(key)
    if task is None:
        if v3:
            raise v3_error(400, "ENTITYNOTFOUNDEXCEPTION", f"Record with ID = `{id_}` not found")
        raise ApiError(400, "ERROR_CORE", "Task not found or not accessible<br>")
    return task


def _task_id_v2(params: dict[str, Any]) -> Any:
    v = params.get("taskId", params.get("TASKID", params.get("id", params.get("ID"))))
    if v in (None, ""):
        raise ApiError(400, "100", "Could not find value for parameter {taskId} (internal error)")
    return v


def _v2_fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields", params.get("FIELDS"))
    if isinstance(fields, list) and not fields:
        return {}
    if not isinstance(fields, dict):
        raise ApiError(400, "100", "Could not find value for parameter {fields} (internal error)")
    return fields


# ---- v2 -----------------------------------------------------------------------------------

@method("tasks.task.add", "task", writes=True)
def add_v2(ctx: Context, params: dict[str, Any]) -> Result:
    """Create a task: ``{"task": {...}}``."""
    return Result({"task": v2_view(ctx, _add(ctx, _v2_fields(params), False))}, wrote=True)


@method("tasks.task.get", "task")
def get_v2(ctx: Context, params: dict[str, Any]) -> Result:
    """One task: ``{"task": {...}}``; ``[]`` when it does not exist (or is not visible)."""
    select = params.get("select")
    if select is not None and not isinstance(select, list):
        raise ApiError(400, "100", f"Invalid value {select or '{}'} to match with parameter {{select}}. "
                                   "Should be value of type array. (internal error)")
    task_id = _task_id_v2(params)
    try:
        key = int(str(task_id))
    except ValueError:
        key = 0
    if key <= 0:   # tasks-task-get.md: code 0 "wrong task id", a taskId of the wrong type
        raise ApiError(400, "0", "wrong task id")
    task = ctx.store.tables["task"].get(key)
    if task is None:   # tasks-task-get.md: "result": [] when the task does not exist
        return Result([])
    return Result({"task": v2_view(ctx, task)})


@method("tasks.task.update", "task", writes=True)
def update_v2(ctx: Context, params: dict[str, Any]) -> Result:
    """Change a task: ``{"task": {...}}``."""
    task = dict(_get(ctx, _task_id_v2(params), False))
    _write_task(ctx, task, _v2_fields(params), False)
    ctx.store.put("task", task["id"], task)
    return Result({"task": v2_view(ctx, task)}, wrote=True)


@method("tasks.task.delete", "task", writes=True)
def delete_v2(ctx: Context, params: dict[str, Any]) -> Result:
    """Delete a task: ``{"task": true}``."""
    task = _get(ctx, _task_id_v2(params), False)
    ctx.store.delete("task", task["id"])
    return Result({"task": True}, wrote=True)


@method("tasks.task.list", "task")
def list_v2(ctx: Context, params: dict[str, Any]) -> Result:
    """A page of tasks: ``{"tasks": [...]}`` with ``total``/``next``; filter and order in UPPER."""
    filt = params.get("filter") or {}
    order = params.get("order") or {}
    select = params.get("select")
    try:
        conds = compile_filter(_SCHEMA, filt if isinstance(filt, dict) else {}, strict=False)
        ords = compile_order(_SCHEMA, order, strict=True)
    except FilterError:
        raise ApiError(400, "0", "Invalid sorting key (internal error)") from None
    try:
        start = int(str(params.get("start") or 0))
    except ValueError:
        start = 0
    rows, total, nxt = run_query(ctx.store.tables["task"], _SCHEMA,
                                 Query(conds, ords, -1 if start < 0 else start, ctx.settings.page_size))
    views = [v2_view(ctx, t) for t in rows]
    if isinstance(select, list) and select and "*" not in select:
        wanted = {_BY_NAME.get(str(s).upper(), (str(s),))[0] for s in select} | {"id", "group"}
        for s in select:
            wanted.update(_V2_SELECT_ALSO.get(str(s).upper(), ()))
        extra = params.get("params") if isinstance(params.get("params"), dict) else {}
        for flag, keys in _V2_LIST_PARAMS.items():
            if str(extra.get(flag, "")).lower() in ("true", "1", "y"):
                wanted.update(keys)
        views = [{k: v for k, v in view.items() if k in wanted} for view in views]
    return Result({"tasks": views}, total=total, next=nxt)


#: What a v2 list adds to a selected field (tasks-task-list.md's answer: a selected
#: RESPONSIBLE_ID brings `responsible`, AUDITORS `auditorsData`, ...; `group` always).
_V2_SELECT_ALSO: dict[str, tuple[str, ...]] = {
    "MARK": ("mark",), "DESCRIPTION": ("descriptionInBbcode",), "DEADLINE": ("lengthDeadline",),
    "RESPONSIBLE_ID": ("responsible",), "CREATED_BY": ("creator",),
    "ACCOMPLICES": ("accomplicesData",), "AUDITORS": ("auditorsData",), "COUNTERS": ("counter",),
}
#: The list's `params` flags and the keys they add (tasks-task-list.md).
_V2_LIST_PARAMS: dict[str, tuple[str, ...]] = {
    "WITH_RESULT_INFO": ("taskRequireResult", "taskHasOpenResult", "taskHasResult"),
    "WITH_TIMER_INFO": ("timeElapsed", "timerIsRunningForCurrentUser"),
    "WITH_PARSED_DESCRIPTION": ("parsedDescription",),
}


# ---- v3 -----------------------------------------------------------------------------------

def _v3_id(params: dict[str, Any]) -> Any:
    if params.get("id") in (None, ""):
        raise v3_error(400, "VALIDATION_REQUESTVALIDATIONEXCEPTION", "Error validating request object",
                       [{"message": "Required field `id` is not specified", "field": "id"}])
    return params["id"]


def _v3_fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields")
    if not isinstance(fields, dict):
        raise v3_error(400, "VALIDATION_REQUESTVALIDATIONEXCEPTION", "Error validating request object",
                       [{"message": "Required field `fields` is not specified", "field": "fields"}])
    return fields


def _v3_select(params: dict[str, Any]) -> list[str] | None:
    select = params.get("select")
    if select is None:
        return None
    if not isinstance(select, list):
        raise v3_error(400, "INVALIDSELECTEXCEPTION", f"Unable to recognize the select parameter `{select}`")
    return [str(s) for s in select]


@method("tasks.task.add", "task", writes=True, versions=(3,))
def add_v3(ctx: Context, params: dict[str, Any]) -> Result:
    """v3: create a task: ``{"item": {...}}``."""
    return Result({"item": v3_view(ctx, _add(ctx, _v3_fields(params), True))}, wrote=True)


@method("tasks.task.get", "task", versions=(3,))
def get_v3(ctx: Context, params: dict[str, Any]) -> Result:
    """v3: one task: ``{"item": {...}}``."""
    return Result({"item": v3_view(ctx, _get(ctx, _v3_id(params), True), _v3_select(params))})


@method("tasks.task.update", "task", writes=True, versions=(3,))
def update_v3(ctx: Context, params: dict[str, Any]) -> Result:
    """v3: change a task: ``{"result": true}``."""
    task = dict(_get(ctx, _v3_id(params), True))
    _write_task(ctx, task, _v3_fields(params), True)
    ctx.store.put("task", task["id"], task)
    return Result({"result": True}, wrote=True)


@method("tasks.task.delete", "task", writes=True, versions=(3,))
def delete_v3(ctx: Context, params: dict[str, Any]) -> Result:
    """v3: delete a task: ``{"result": true}``."""
    task = _get(ctx, _v3_id(params), True)
    ctx.store.delete("task", task["id"])
    return Result({"result": True}, wrote=True)


_V3_OPS = {"=": "=", "!=": "!", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "in": "@",
           "between": "><"}


def _v3_conditions(filt: Any) -> list[Condition]:
    conds: list[Condition] = []
    if filt in (None, [], {}):
        return conds
    if not isinstance(filt, list):
        raise v3_error(400, "INVALIDFILTEREXCEPTION", "Unable to recognize the filter parameter")
    for entry in filt:
        if isinstance(entry, dict):
            raise v3_error(400, "INVALIDFILTEREXCEPTION", "Filter groups are not supported by the emulator")
        if not isinstance(entry, list) or len(entry) not in (2, 3):
            raise v3_error(400, "INVALIDFILTEREXCEPTION", f"Unable to recognize the filter condition `{entry}`")
        field, op, value = (entry[0], "in", entry[1]) if len(entry) == 2 else entry
        if str(field) not in _BY_V3:
            raise v3_error(400, "INVALIDFILTEREXCEPTION", f"Unknown field `{field}` for entity `TaskDto`")
        prefix = _V3_OPS.get(str(op).lower())
        if prefix is None:
            raise v3_error(400, "UNKNOWNFILTEROPERATOREXCEPTION", f"Unknown filter operator `{op}`")
        if field == "status" and isinstance(value, str):
            value = _STATUS_FROM_V3.get(value, value)
        if field == "status" and isinstance(value, list):
            value = [_STATUS_FROM_V3.get(v, v) if isinstance(v, str) else v for v in value]
        conds.extend(compile_filter(_SCHEMA, {prefix + _BY_V3[str(field)][0]: value}, strict=True))
    return conds


@method("tasks.task.list", "task", versions=(3,))
def list_v3(ctx: Context, params: dict[str, Any]) -> Result:
    """v3: a page of tasks: ``{"items": [...]}`` (pagination ``{page, limit, offset}``)."""
    pag = params.get("pagination") or {}
    try:
        if not isinstance(pag, dict):
            raise ValueError
        limit = int(pag.get("limit", 50))
        page = int(pag.get("page", 1))
        offset = int(pag.get("offset", 0))
        if limit < 1 or page < 1 or offset < 0:
            raise ValueError
    except (ValueError, TypeError):
        import json

        raise v3_error(400, "INVALIDPAGINATIONEXCEPTION",
                       f"Unable to recognize the pagination parameter `{json.dumps(pag)}`") from None
    limit = min(limit, 1000)
    conds = _v3_conditions(params.get("filter"))
    order = params.get("order") or {}
    try:
        ords = compile_order(_SCHEMA, {(_BY_V3.get(str(k)) or (k,))[0]: v for k, v in order.items()}
                             if isinstance(order, dict) else {}, strict=True)
    except FilterError as exc:
        raise v3_error(400, "INVALIDORDEREXCEPTION", f"Unknown field `{exc.field}`") from None
    rows, _, _ = run_query(ctx.store.tables["task"], _SCHEMA,
                           Query(conds, ords, (page - 1) * limit + offset, limit, count=False))
    select = _v3_select(params)
    return Result({"items": [v3_view(ctx, t, select) for t in rows]})
