"""``crm.activity.{add,get,list,update,delete,fields}``: CRM activities (calls, meetings, e-mails).

Pages (bitrix24/b24restdocs, ``api-reference/crm/timeline/activities/activity-base/``):
``crm-activity-add.md`` (``fields`` with ``OWNER_TYPE_ID``, ``OWNER_ID``, ``TYPE_ID``,
``SUBJECT``, ``RESPONSIBLE_ID``, ``COMMUNICATIONS``; answers the new id),
``crm-activity-get.md`` (the activity, every value a string or null, ``SETTINGS`` and
``PROVIDER_PARAMS`` as ``[]``), ``crm-activity-update.md`` and ``crm-activity-delete.md``
(``true``), ``crm-activity-list.md`` (a flat list, 50 a page, ``total``/``next``; the
filter's prefixes; ``order`` by default ``START_TIME`` ascending; ``COMMUNICATIONS`` only when
selected; ``BINDINGS`` filter) and ``crm-activity-fields.md`` (the field descriptions).

Errors are the pages' 400 with an empty code and their texts: "The field SUBJECT is not
defined or empty", "The field RESPONSIBLE_ID is not defined or invalid", "The field TYPE_ID
is not defined or invalid", "The field COMMUNICATIONS is not defined or invalid", "The only
one communication is allowed for activity of specified type", "Could not build binding.
Please ensure that owner info and communications are defined correctly", "The custom
activity without provider is not supported in current context", "Activity is not found",
"Parameter 'filter' must be array.".

Choices where the pages are silent **[choice]**: the owner must exist (else the binding
error); a task activity (``TYPE_ID`` 3) is refused with the ``TYPE_ID`` error, since the
add page sends tasks to ``tasks.task.add``; the only binding kept is the owner (the
``BINDINGS`` filter matches it); ``DEADLINE`` is ``START_TIME`` for meetings and calls and
``END_TIME`` otherwise (the fields page); ``STATUS`` is 2 (completed) when ``COMPLETED`` is
``Y``, else 1; ``OWNER_ID``, ``OWNER_TYPE_ID`` and ``TYPE_ID`` are immutable (the fields
page's ``isImmutable``): an update ignores them; an unknown filter field is ignored, as in the
legacy CRM lists; of a file only its name is kept (``FILES``, shown as the list page's third
example shows them, when ``FILES`` or ``STORAGE_ELEMENT_IDS`` is selected); a communication
with a contact carries the contact's ``ENTITY_SETTINGS`` (the list page's second example),
any other ``[]``. Times are whole seconds, the portal's resolution.
"""

from __future__ import annotations

from typing import Any

from ._entities import ENTITIES, USERS
from ._filters import Query, Schema, compile_filter, compile_order, parse_date, run_query
from ._methods_core import ApiError, Context, Result, method

__all__: list[str] = []

_TABLE = "activity"
_MEETING, _CALL, _TASK, _EMAIL, _CUSTOM = 1, 2, 3, 4, 6
_HOST = "127.0.0.1"   # the host a file's URL names (the emulator serves no files)
#: (PROVIDER_ID, PROVIDER_TYPE_ID) a portal gives each type (the get page's call).
_PROVIDERS = {_MEETING: ("CRM_MEETING", "MEETING"), _CALL: ("VOXIMPLANT_CALL", "CALL"),
              _EMAIL: ("CRM_EMAIL", "EMAIL")}

# name, type, required, read-only, immutable, multiple, title: crm-activity-fields.md's answer
_FIELDS: tuple[tuple[str, str, bool, bool, bool, bool, str], ...] = (
    ("ID", "integer", False, True, False, False, "ID"),
    ("OWNER_ID", "integer", False, False, True, False, "Owner ID"),
    ("OWNER_TYPE_ID", "crm_enum_ownertype", False, False, True, False, "Owner Type"),
    ("TYPE_ID", "crm_enum_activitytype", True, False, True, False, "Type"),
    ("PROVIDER_ID", "string", False, False, False, False, "Provider ID"),
    ("PROVIDER_TYPE_ID", "string", False, False, False, False, "Provider Type"),
    ("PROVIDER_GROUP_ID", "string", False, False, False, False, "Connector Type"),
    ("ASSOCIATED_ENTITY_ID", "integer", False, True, False, False, "Associated Entity ID"),
    ("SUBJECT", "string", True, False, False, False, "Subject"),
    ("START_TIME", "datetime", False, False, False, False, "Start"),
    ("END_TIME", "datetime", False, False, False, False, "Deadline"),
    ("DEADLINE", "datetime", False, False, False, False, "Execution Deadline"),
    ("COMPLETED", "char", False, False, False, False, "Completed"),
    ("STATUS", "crm_enum_activitystatus", False, False, False, False, "Status"),
    ("RESPONSIBLE_ID", "user", True, False, False, False, "Responsible"),
    ("PRIORITY", "crm_enum_activitypriority", False, False, False, False, "Priority"),
    ("NOTIFY_TYPE", "crm_enum_activitynotifytype", False, False, False, False, "Notification Type"),
    ("NOTIFY_VALUE", "integer", False, False, False, False, "Notification Parameter"),
    ("DESCRIPTION", "string", False, False, False, False, "Description"),
    ("DESCRIPTION_TYPE", "crm_enum_contenttype", False, False, False, False, "Description Type"),
    ("DIRECTION", "crm_enum_activitydirection", False, False, False, False, "Direction"),
    ("LOCATION", "string", False, False, False, False, "Location"),
    ("CREATED", "datetime", False, True, False, False, "Creation Date"),
    ("AUTHOR_ID", "user", False, True, False, False, "Created By"),
    ("LAST_UPDATED", "datetime", False, True, False, False, "Last Updated Date"),
    ("EDITOR_ID", "user", False, True, False, False, "Edited By"),
    ("SETTINGS", "object", False, False, False, False, "Settings"),
    ("ORIGIN_ID", "string", False, False, False, False, "External Code"),
    ("ORIGINATOR_ID", "string", False, False, False, False, "External Source"),
    ("RESULT_STATUS", "integer", False, False, False, False, "RESULT_STATUS"),
    ("RESULT_STREAM", "integer", False, False, False, False, "RESULT_STREAM"),
    ("RESULT_SOURCE_ID", "string", False, False, False, False, "RESULT_SOURCE_ID"),
    ("PROVIDER_PARAMS", "object", False, False, False, False, "Provider Parameters"),
    ("PROVIDER_DATA", "string", False, False, False, False, "Provider Data"),
    ("RESULT_MARK", "integer", False, False, False, False, "RESULT_MARK"),
    ("RESULT_VALUE", "double", False, False, False, False, "RESULT_VALUE"),
    ("RESULT_SUM", "double", False, False, False, False, "RESULT_SUM"),
    ("RESULT_CURRENCY_ID", "string", False, False, False, False, "RESULT_CURRENCY_ID"),
    ("AUTOCOMPLETE_RULE", "integer", False, False, False, False, "Autocomplete"),
    ("BINDINGS", "crm_activity_binding", False, True, False, True, "Bindings"),
    ("COMMUNICATIONS", "crm_activity_communication", True, False, False, True, "Communication Channel"),
    ("FILES", "diskfile", False, False, False, True, "Files"),
    ("WEBDAV_ELEMENTS", "diskfile", False, False, False, True, "Added Files"),
    ("IS_INCOMING_CHANNEL", "char", False, True, False, False, "IS_INCOMING_CHANNEL"),
)
_INT = {"ID", "OWNER_ID", "OWNER_TYPE_ID", "TYPE_ID", "ASSOCIATED_ENTITY_ID", "STATUS", "RESPONSIBLE_ID",
        "PRIORITY", "NOTIFY_TYPE", "NOTIFY_VALUE", "DESCRIPTION_TYPE", "DIRECTION", "AUTHOR_ID", "EDITOR_ID",
        "RESULT_STATUS", "RESULT_STREAM", "RESULT_MARK", "AUTOCOMPLETE_RULE"}
_DATES = {"START_TIME", "END_TIME", "DEADLINE", "CREATED", "LAST_UPDATED"}
_FLOATS = {"RESULT_VALUE", "RESULT_SUM"}
#: The keys of get/list, in crm-activity-get.md's order.
_SHOWN = ("ID", "OWNER_ID", "OWNER_TYPE_ID", "TYPE_ID", "PROVIDER_ID", "PROVIDER_TYPE_ID", "PROVIDER_GROUP_ID",
          "ASSOCIATED_ENTITY_ID", "SUBJECT", "CREATED", "LAST_UPDATED", "START_TIME", "END_TIME", "DEADLINE",
          "COMPLETED", "STATUS", "RESPONSIBLE_ID", "PRIORITY", "NOTIFY_TYPE", "NOTIFY_VALUE", "DESCRIPTION",
          "DESCRIPTION_TYPE", "DIRECTION", "LOCATION", "SETTINGS", "ORIGINATOR_ID", "ORIGIN_ID", "AUTHOR_ID",
          "EDITOR_ID", "PROVIDER_PARAMS", "PROVIDER_DATA", "RESULT_MARK", "RESULT_VALUE", "RESULT_SUM",
          "RESULT_CURRENCY_ID", "RESULT_STATUS", "RESULT_STREAM", "RESULT_SOURCE_ID", "AUTOCOMPLETE_RULE")
_WRITABLE = {"PROVIDER_ID", "PROVIDER_TYPE_ID", "PROVIDER_GROUP_ID", "SUBJECT", "START_TIME", "END_TIME",
             "COMPLETED", "STATUS", "RESPONSIBLE_ID", "PRIORITY", "NOTIFY_TYPE", "NOTIFY_VALUE", "DESCRIPTION",
             "DESCRIPTION_TYPE", "DIRECTION", "LOCATION", "SETTINGS", "ORIGIN_ID", "ORIGINATOR_ID",
             "PROVIDER_PARAMS", "PROVIDER_DATA", "RESULT_STATUS", "RESULT_STREAM", "RESULT_SOURCE_ID",
             "RESULT_MARK", "RESULT_VALUE", "RESULT_SUM", "RESULT_CURRENCY_ID", "AUTOCOMPLETE_RULE"}
_KIND = {n: ("int" if n in _INT else "date" if n in _DATES else "float" if n in _FLOATS else "str")
         for n, *_ in _FIELDS}
_SCHEMA = Schema({n: ((lambda k: lambda row: row.get(k))(n), _KIND[n]) for n, *_ in _FIELDS
                  if n not in ("BINDINGS", "COMMUNICATIONS", "FILES", "WEBDAV_ELEMENTS", "SETTINGS",
                               "PROVIDER_PARAMS")}, "ID")


def _error(text: str) -> ApiError:
    return ApiError(400, "", text)


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _owner_exists(ctx: Context, type_id: int | None, owner_id: int | None) -> bool:
    if type_id is None or owner_id is None:
        return False
    entity = ENTITIES.get(type_id)
    name = entity.name if entity is not None else f"dynamic_{type_id}"
    table = ctx.store.tables.get(name)
    return table is not None and table.get(owner_id) is not None


def _communications(ctx: Context, value: Any, type_id: int) -> list[dict[str, Any]]:
    items = list(value.values()) if isinstance(value, dict) else value
    if not isinstance(items, list) or not items or not all(isinstance(c, dict) and c.get("VALUE")
                                                           for c in items):
        raise _error("The field COMMUNICATIONS is not defined or invalid")
    if type_id == _CALL and len(items) > 1:
        raise _error("The only one communication is allowed for activity of specified type")
    out = []
    for c in items:
        out.append({"ID": ctx.store.next_counter("activity_communication"),
                    "TYPE": str(c.get("TYPE") or ("PHONE" if type_id == _CALL else "EMAIL" if type_id == _EMAIL else "")),
                    "VALUE": str(c["VALUE"]), "ENTITY_ID": _int(c.get("ENTITY_ID")) or 0,
                    "ENTITY_TYPE_ID": _int(c.get("ENTITY_TYPE_ID")) or 0})
    return out


def _typed(ctx: Context, name: str, value: Any) -> Any:
    if name in _INT:
        number = _int(value)
        if number is None and value not in (None, ""):
            raise _error(f"The field {name} is not defined or invalid")
        return number
    if name in _DATES:
        if value in (None, ""):
            return None
        ts = parse_date(value, ctx.settings.utc_offset)
        if ts is None:
            raise _error(f"The field {name} is not defined or invalid")
        return int(ts)
    if name in _FLOATS:
        return None if value in (None, "") else float(value)
    if name == "COMPLETED":
        return "Y" if str(value).upper() in ("Y", "1", "TRUE") else "N"
    if name in ("SETTINGS", "PROVIDER_PARAMS"):
        return value if isinstance(value, dict | list) else []
    return None if value is None else str(value)


def _apply(ctx: Context, row: dict[str, Any], fields: dict[str, Any], *, adding: bool) -> None:
    for raw_name, value in fields.items():
        name = str(raw_name).upper()
        if name in _WRITABLE:
            row[name] = _typed(ctx, name, value)
    if not str(row.get("SUBJECT") or "").strip():
        raise _error("The field SUBJECT is not defined or empty")
    if row.get("RESPONSIBLE_ID") not in USERS:
        raise _error("The field RESPONSIBLE_ID is not defined or invalid")
    if "COMMUNICATIONS" in {str(k).upper() for k in fields} or adding:
        given = next((v for k, v in fields.items() if str(k).upper() == "COMMUNICATIONS"), None)
        row["COMMUNICATIONS"] = _communications(ctx, given, row["TYPE_ID"])
    files = next((v for k, v in fields.items() if str(k).upper() == "FILES"), None)
    if isinstance(files, list):
        row["FILES"] = [{"id": ctx.store.next_counter("activity_file"),
                         "name": str((f.get("fileData") or ["file"])[0]) if isinstance(f, dict) else "file"}
                        for f in files]
    if "COMPLETED" in {str(k).upper() for k in fields} and "STATUS" not in {str(k).upper() for k in fields}:
        row["STATUS"] = 2 if row["COMPLETED"] == "Y" else 1
    row["DEADLINE"] = row["START_TIME"] if row["TYPE_ID"] in (_MEETING, _CALL) else row["END_TIME"]
    now = int(ctx.now)
    row["LAST_UPDATED"], row["EDITOR_ID"] = now, ctx.user_id
    if adding:
        row["CREATED"], row["AUTHOR_ID"] = now, ctx.user_id


def _fields_param(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields", params.get("FIELDS"))
    if not isinstance(fields, dict):
        raise _error("The field SUBJECT is not defined or empty")
    return fields


def _new_row(ctx: Context, fields: dict[str, Any]) -> dict[str, Any]:
    upper = {str(k).upper(): v for k, v in fields.items()}
    type_id = _int(upper.get("TYPE_ID"))
    if type_id not in (_MEETING, _CALL, _EMAIL, _CUSTOM):
        raise _error("The field TYPE_ID is not defined or invalid")
    owner_type, owner_id = _int(upper.get("OWNER_TYPE_ID", "")), _int(upper.get("OWNER_ID", ""))
    if not _owner_exists(ctx, owner_type, owner_id):
        raise _error("Could not build binding. Please ensure that owner info and communications are "
                     "defined correctly")
    provider = _PROVIDERS.get(type_id)
    if provider is None and not upper.get("PROVIDER_ID"):
        raise _error("The custom activity without provider is not supported in current context")
    provider = provider or ("", "")
    return {"OWNER_ID": owner_id, "OWNER_TYPE_ID": owner_type, "TYPE_ID": type_id, "PROVIDER_ID": provider[0],
            "PROVIDER_TYPE_ID": provider[1], "PROVIDER_GROUP_ID": None, "ASSOCIATED_ENTITY_ID": 0,
            "SUBJECT": "", "START_TIME": None, "END_TIME": None, "DEADLINE": None, "COMPLETED": "N",
            "STATUS": 1, "RESPONSIBLE_ID": None, "PRIORITY": 2, "NOTIFY_TYPE": 0, "NOTIFY_VALUE": 0,
            "DESCRIPTION": "", "DESCRIPTION_TYPE": 1, "DIRECTION": 0, "LOCATION": "", "SETTINGS": [],
            "ORIGINATOR_ID": None, "ORIGIN_ID": None, "PROVIDER_PARAMS": [], "PROVIDER_DATA": None,
            "RESULT_MARK": 0, "RESULT_VALUE": None, "RESULT_SUM": None, "RESULT_CURRENCY_ID": None,
            "RESULT_STATUS": 0, "RESULT_STREAM": 0, "RESULT_SOURCE_ID": None, "AUTOCOMPLETE_RULE": 0,
            "COMMUNICATIONS": []}


def _entity_settings(ctx: Context, c: dict[str, Any]) -> Any:
    """A contact's names and company, as crm-activity-list.md shows them; ``[]`` otherwise."""
    if c["ENTITY_TYPE_ID"] != 3:
        return []
    from ._entities import CONTACT, materialize

    row = ctx.store.tables["contact"].get(c["ENTITY_ID"])
    if row is None:
        return []
    rec = materialize(CONTACT, row)
    company_id = rec.get("companyId") or 0
    company = ctx.store.tables["company"].get(company_id) if company_id else None
    return {"HONORIFIC": rec.get("honorific") or "", "NAME": rec.get("name") or "",
            "SECOND_NAME": rec.get("secondName") or "", "LAST_NAME": rec.get("lastName") or "",
            "COMPANY_TITLE": company[1] if company is not None else "", "COMPANY_ID": str(company_id)}


def _view(ctx: Context, row: dict[str, Any], communications: bool = False,
          select: set[str] | None = None, files: bool = False) -> dict[str, Any]:
    """The get/list shape: every scalar a string (dates ISO 8601), null stays null."""
    out: dict[str, Any] = {}
    for name in _SHOWN:
        if select is not None and name not in select and name != "ID":
            continue
        value = row.get(name)
        if value is None or name in ("SETTINGS", "PROVIDER_PARAMS"):
            out[name] = value
        elif name in _DATES:
            out[name] = ctx.fmt(value)
        else:
            out[name] = str(value)
    if communications:
        out["COMMUNICATIONS"] = [{"ID": str(c["ID"]), "TYPE": c["TYPE"], "VALUE": c["VALUE"],
                                  "ENTITY_ID": str(c["ENTITY_ID"]), "ENTITY_TYPE_ID": str(c["ENTITY_TYPE_ID"]),
                                  "ENTITY_SETTINGS": _entity_settings(ctx, c)}
                                 for c in row.get("COMMUNICATIONS") or []]
    if files:
        out["FILES"] = [{"id": f["id"], "url": f"http://{_HOST}/bitrix/tools/crm_show_file.php?fileId={f['id']}"
                                               f"&ownerTypeId=6&ownerId={row['ID']}&auth="}
                        for f in row.get("FILES") or []]
    return out


def _existing(ctx: Context, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    id_ = _int(params.get("id", params.get("ID", "")))
    row = ctx.store.tables[_TABLE].get(id_) if id_ is not None else None
    if row is None:
        raise _error("Activity is not found")
    return id_, row  # type: ignore[return-value]


@method("crm.activity.fields", "crm")
def activity_fields(ctx: Context, params: dict[str, Any]) -> Result:
    """The field descriptions of crm-activity-fields.md."""
    out = {n: {"type": t, "isRequired": req, "isReadOnly": ro, "isImmutable": imm, "isMultiple": mult,
               "isDynamic": False, "title": title} for n, t, req, ro, imm, mult, title in _FIELDS}
    out["WEBDAV_ELEMENTS"]["isDeprecated"] = True   # as the page shows it
    return Result(out)


@method("crm.activity.add", "crm", writes=True)
def activity_add(ctx: Context, params: dict[str, Any]) -> Result:
    """Create an activity; answers its id."""
    fields = _fields_param(params)
    row = _new_row(ctx, fields)
    _apply(ctx, row, fields, adding=True)
    id_ = ctx.store.new_id(_TABLE)
    row["ID"] = id_
    ctx.store.put(_TABLE, id_, row)
    return Result(id_, wrote=True)


@method("crm.activity.get", "crm")
def activity_get(ctx: Context, params: dict[str, Any]) -> Result:
    """One activity."""
    _, row = _existing(ctx, params)
    return Result(_view(ctx, row))


@method("crm.activity.update", "crm", writes=True)
def activity_update(ctx: Context, params: dict[str, Any]) -> Result:
    """Change an activity's fields; answers ``true``."""
    id_, row = _existing(ctx, params)
    fields = params.get("fields", params.get("FIELDS"))
    if not isinstance(fields, dict):
        fields = {}
    changed = dict(row)
    _apply(ctx, changed, fields, adding=False)
    ctx.store.put(_TABLE, id_, changed)
    return Result(True, wrote=True)


@method("crm.activity.delete", "crm", writes=True)
def activity_delete(ctx: Context, params: dict[str, Any]) -> Result:
    """Delete an activity; answers ``true``."""
    id_, _ = _existing(ctx, params)
    ctx.store.delete(_TABLE, id_)
    return Result(True, wrote=True)


class _Bindings:
    """The ``BINDINGS`` filter: the activity's owner matches one of the given pairs."""

    __slots__ = ("field", "negate", "op", "pairs", "test", "value")

    def __init__(self, value: Any) -> None:
        items = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else []
        self.pairs = [(_int(b.get("OWNER_TYPE_ID", "")), _int(b.get("OWNER_ID", ""))) for b in items
                      if isinstance(b, dict)]
        self.field, self.op, self.value, self.negate, self.test = "BINDINGS", "=", value, False, None

    def __call__(self, row: dict[str, Any]) -> bool:
        return any((t is None or row["OWNER_TYPE_ID"] == t) and (o is None or row["OWNER_ID"] == o)
                   for t, o in self.pairs)


@method("crm.activity.list", "crm")
def activity_list(ctx: Context, params: dict[str, Any]) -> Result:
    """A page of activities (50), ``total``/``next``; ``COMMUNICATIONS`` when selected."""
    filt = params.get("filter", params.get("FILTER", {}))
    order = params.get("order", params.get("ORDER", {"START_TIME": "ASC"}))
    for name, value in (("order", order), ("filter", filt)):
        if not isinstance(value, dict) and value not in ([], ""):
            raise _error(f"Parameter '{name}' must be array.")
    filt = {str(k).upper(): v for k, v in (filt or {}).items()} if isinstance(filt, dict) else {}
    order = {str(k).upper(): v for k, v in order.items()} if isinstance(order, dict) and order else {"START_TIME": "ASC"}
    bindings = filt.pop("BINDINGS", None)
    conds: list[Any] = compile_filter(_SCHEMA, filt, strict=False)
    if bindings is not None:
        conds.append(_Bindings(bindings))
    try:
        start = int(str(params.get("start", params.get("START", 0)) or 0))
    except ValueError:
        start = 0
    rows, total, nxt = run_query(ctx.store.tables[_TABLE], _SCHEMA,
                                 Query(conds, compile_order(_SCHEMA, order, strict=False),
                                       -1 if start < 0 else start, ctx.settings.page_size))
    select = params.get("select", params.get("SELECT"))
    names = {str(s).upper() for s in select} if isinstance(select, list) else set()
    plain = None if not names or "*" in names else names
    files = bool(names & {"FILES", "STORAGE_ELEMENT_IDS"})
    return Result([_view(ctx, r, "COMMUNICATIONS" in names, plain, files) for r in rows], total=total, next=nxt)
