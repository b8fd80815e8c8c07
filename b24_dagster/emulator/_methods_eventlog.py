"""``main.eventlog.{list,get,tail}`` and ``main.eventlog.field.{list,get}``: REST v3 only.

Pages: ``api-reference/event-log/main-eventlog-list.md`` (``select``, ``filter`` triples,
``order``, ``pagination {page, limit, offset}``), ``main-eventlog-tail.md`` (keyset
``cursor {field, value, order, limit}``; the cursor field may not be filtered on),
``main-eventlog-get.md`` and ``main-eventlog-field-list.md``/``-field-get.md`` (which fields
are filterable and sortable). Scope ``main``. The entries come from :mod:`._eventlog`.
"""

from __future__ import annotations

import json
from typing import Any

from ._filters import (
    Condition,
    FilterError,
    Query,
    Schema,
    compile_filter,
    compile_order,
    run_query,
)
from ._methods_core import ApiError, Context, Result, method, v3_error

__all__: list[str] = []

# name, field.list type, filter kind, filterable and sortable (main-eventlog-field-list.md)
_FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("id", "int", "int", True), ("timestampX", "object", "date", True),
    ("severity", "string", "str", False), ("auditTypeId", "string", "str", True),
    ("moduleId", "string", "str", False), ("itemId", "string", "str", False),
    ("remoteAddr", "string", "str", False), ("userAgent", "string", "str", False),
    ("requestUri", "string", "str", False), ("siteId", "string", "str", False),
    ("userId", "int", "int", True), ("guestId", "int", "int", True),
    ("description", "string", "str", False),
)
_NAMES = [f[0] for f in _FIELDS]
_SCHEMA = Schema({name: ((lambda k: lambda row: row.get(k))(name), kind)
                  for name, _, kind, usable in _FIELDS if usable}, "id")
_OPS = {"=": "=", "!=": "!", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "in": "@",
        "between": "><"}
_TITLES = {"timestampX": ("DATE_CREATE", "Date and time of the event")}


def _view(ctx: Context, row: dict[str, Any], select: list[str]) -> dict[str, Any]:
    return {k: (ctx.fmt(row[k]) if k == "timestampX" else row[k]) for k in select}


def _select(params: dict[str, Any]) -> list[str]:
    """The fields to show, in the page's order; unknown names are dropped **[choice]**."""
    select = params.get("select")
    if select in (None, [], "*") or (isinstance(select, list) and "*" in select):
        return _NAMES
    if not isinstance(select, list):
        raise v3_error(400, "INVALIDSELECTEXCEPTION", f"Unable to recognize the select parameter `{select}`")
    wanted = {str(s) for s in select}
    return [n for n in _NAMES if n in wanted] or _NAMES


def _conditions(filt: Any, forbidden: str | None = None) -> list[Condition]:
    """Filter triples ``[field, op, value]`` or pairs ``[field, value]`` (``=``, a list: ``in``)."""
    if filt in (None, [], {}):
        return []
    if not isinstance(filt, list):
        raise v3_error(400, "INVALIDFILTEREXCEPTION", f"Unable to recognize filter expression `{filt}`")
    conds: list[Condition] = []
    for entry in filt:
        if not isinstance(entry, list) or len(entry) not in (2, 3):
            raise v3_error(400, "INVALIDFILTEREXCEPTION", f"Unable to recognize filter expression `{entry}`")
        field, op, value = (entry[0], "=", entry[1]) if len(entry) == 2 else entry
        if len(entry) == 2 and isinstance(value, list):
            op = "in"
        if forbidden is not None and field == forbidden:
            raise v3_error(400, "INVALIDFILTEREXCEPTION", "Unable to recognize filter expression "
                           f"`Cursor field {field} cannot be used at filter.`")
        prefix = _OPS.get(str(op).lower())
        if prefix is None:
            raise v3_error(400, "UNKNOWNFILTEROPERATOREXCEPTION", f"Unknown filter operator `{op}`")
        try:
            conds.extend(compile_filter(_SCHEMA, {prefix + str(field): value}, strict=True))
        except FilterError:
            raise v3_error(400, "INVALIDFILTEREXCEPTION",
                           f"Unable to recognize filter expression `{field}`") from None
    return conds


def _count(value: Any, default: int, *, minimum: int) -> int:
    number = default if value is None else int(value)   # ValueError/TypeError: the caller's error
    if isinstance(value, bool) or number < minimum:
        raise ValueError
    return number


def _pagination(params: dict[str, Any]) -> tuple[int, int]:
    """(offset, limit) of ``pagination``; page 0 is the first page, as page 1 **[choice]**."""
    pag = params.get("pagination") or {}
    try:
        if not isinstance(pag, dict):
            raise ValueError
        limit = _count(pag.get("limit"), 50, minimum=1)
        page = _count(pag.get("page"), 1, minimum=0)
        offset = _count(pag.get("offset"), 0, minimum=0)
    except (ValueError, TypeError):
        raise v3_error(400, "INVALIDPAGINATIONEXCEPTION", "Cannot recognize pagination parameter "
                       f"`{json.dumps(pag, separators=(',', ':'))}`") from None
    limit = min(limit, 1000)   # the limit of tasks.task.list v3 **[choice]**
    return (max(page, 1) - 1) * limit + offset, limit


@method("main.eventlog.list", "main", versions=(3,))
def eventlog_list(ctx: Context, params: dict[str, Any]) -> Result:
    """A page of entries: ``{"items": [...]}``, no total (REST v3)."""
    start, limit = _pagination(params)
    conds = _conditions(params.get("filter"))
    order = params.get("order") or {}
    try:
        ords = compile_order(_SCHEMA, order if isinstance(order, dict) else {}, strict=True)
    except FilterError as exc:
        raise v3_error(400, "INVALIDORDEREXCEPTION", f"Unknown field `{exc.field}`") from None
    rows, _, _ = run_query(ctx.store.eventlog.table, _SCHEMA, Query(conds, ords, start, limit, count=False))
    select = _select(params)
    return Result({"items": [_view(ctx, row, select) for row in rows]})


@method("main.eventlog.tail", "main", versions=(3,))
def eventlog_tail(ctx: Context, params: dict[str, Any]) -> Result:
    """Entries after ``cursor.value`` by ``cursor.field`` (``>`` ascending, ``<`` descending)."""
    cursor = params.get("cursor") or {}
    if not isinstance(cursor, dict):
        cursor = {}
    field = str(cursor.get("field") or "id")
    if field not in _SCHEMA.fields:
        raise v3_error(400, "INVALIDORDEREXCEPTION", f"Unknown field `{field}`")
    descending = str(cursor.get("order") or "ASC").upper() == "DESC"
    try:
        limit = min(_count(cursor.get("limit"), 50, minimum=1), 1000)
    except (ValueError, TypeError):
        raise v3_error(400, "INVALIDPAGINATIONEXCEPTION", "Unable to recognize pagination parameter "
                       f"`{json.dumps(cursor, separators=(',', ':'))}`") from None
    conds = _conditions(params.get("filter"), forbidden=field)
    value = cursor.get("value", 0)
    conds += compile_filter(_SCHEMA, {("<" if descending else ">") + field: value}, strict=True)
    ords = compile_order(_SCHEMA, {field: "DESC" if descending else "ASC"}, strict=True)
    rows, _, _ = run_query(ctx.store.eventlog.table, _SCHEMA, Query(conds, ords, 0, limit, count=False))
    select = _select(params)
    return Result({"items": [_view(ctx, row, select) for row in rows]})


@method("main.eventlog.get", "main", versions=(3,))
def eventlog_get(ctx: Context, params: dict[str, Any]) -> Result:
    """One entry: ``{"item": {...}}``."""
    id_ = params.get("id")
    if id_ in (None, ""):
        raise v3_error(400, "VALIDATION_REQUESTVALIDATIONEXCEPTION", "Error during request object validation",
                       [{"field": "id", "message": "Required field `id` is not specified"}])
    try:
        row = ctx.store.eventlog.table.get(int(str(id_)))
    except ValueError:
        row = None
    if row is None:
        raise v3_error(400, "ENTITYNOTFOUNDEXCEPTION", f"Entry with ID = `{id_}` not found")
    return Result({"item": _view(ctx, row, _select(params))})


def _describe(name: str, ftype: str, usable: bool) -> dict[str, Any]:
    title, description = _TITLES.get(name, (name, None))
    return {"name": name, "type": ftype, "title": title, "description": description,
            "validationRules": [], "requiredGroups": None, "filterable": usable,
            "sortable": usable, "editable": False, "multiple": False, "elementType": None}


def _select_keys(described: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    select = params.get("select")
    if not isinstance(select, list) or not select:
        return described
    return {k: v for k, v in described.items() if k in {str(s) for s in select}}


@method("main.eventlog.field.list", "main", versions=(3,))
def eventlog_field_list(ctx: Context, params: dict[str, Any]) -> Result:
    """The fields of an entry: ``{"items": [{name, type, title, ...}]}``."""
    return Result({"items": [_select_keys(_describe(n, t, u), params) for n, t, _, u in _FIELDS]})


@method("main.eventlog.field.get", "main", versions=(3,))
def eventlog_field_get(ctx: Context, params: dict[str, Any]) -> Result:
    """One field: ``{"item": {...}}``."""
    name = params.get("name")
    if name in (None, ""):
        raise v3_error(400, "VALIDATION_REQUESTVALIDATIONEXCEPTION", "Error during request object validation",
                       [{"field": "name", "message": "Required field `name` is not specified"}])
    for n, t, _, u in _FIELDS:
        if n == name:
            # main-eventlog-field-get.md's example selects seven keys and its answer shows all
            # eleven: the answer is followed, `select` is accepted and ignored [choice]
            return Result({"item": _describe(n, t, u)})
    code = "BITRIX_REST_V3_REALISATION_EXCEPTION_FIELDNOTFOUNDEXCEPTION"   # as the page spells it
    raise ApiError(400, code, f"Field `{name}` not found", v3_code=code)
