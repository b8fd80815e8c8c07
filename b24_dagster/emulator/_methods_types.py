"""Smart-process types: ``crm.type.{fields,add,update,get,getByEntityTypeId,list,delete}`` (REST v2).

Pages: ``api-reference/crm/universal/user-defined-object-types/crm-type-*.md``. A new type gets
an ``entityTypeId`` (given: an even number from 1030, or 128-192; else the next even one from
1030), a default category "General" with its stages (:mod:`._spa`), and a table of items that
``crm.item.*`` serves with the field set of ``crm-item-fields.md``. The "not found" errors carry
the number ``0`` as code, as the pages show. Relations and ``linkedUserFields`` are kept as given
(each binding ``Y``/``N``); the digital-workplace options are accepted and ignored, and
``customSections`` is always empty **[choice]**. Types and their items
live in memory only, not in the ``--state`` file **[choice]**.
"""

from __future__ import annotations

import re
from typing import Any

from ._filters import FilterError, Schema, compile_filter, compile_order
from ._methods_core import ApiError, Context, Result, method
from ._reference import CrmReference
from ._spa import spa_entity
from ._store import Table

__all__: list[str] = []

_FLAGS = ("isCategoriesEnabled", "isStagesEnabled", "isBeginCloseDatesEnabled", "isClientEnabled",
          "isUseInUserfieldEnabled", "isLinkWithProductsEnabled", "isMycompanyEnabled",
          "isDocumentsEnabled", "isSourceEnabled", "isObserversEnabled", "isRecyclebinEnabled",
          "isAutomationEnabled", "isBizProcEnabled", "isSetOpenPermissions", "isPaymentsEnabled",
          "isCountersEnabled")
_DEFAULT_Y = {"isSetOpenPermissions"}   # crm-type-add.md: every other flag defaults to N
_KINDS = {"id": "int", "createdBy": "int", "entityTypeId": "int", "customSectionId": "int",
          "updatedBy": "int", "createdTime": "date", "updatedTime": "date"}
_FIELDS = ("id", "title", "code", "createdBy", "entityTypeId", "customSectionId", *_FLAGS,
           "createdTime", "updatedTime", "updatedBy")
_SCHEMA = Schema({n: ((lambda k: lambda t: t.get(k))(n), _KINDS.get(n, "str")) for n in _FIELDS}, "id")


def _ref(ctx: Context) -> CrmReference:
    return ctx.store.reference  # type: ignore[no-any-return]


def _not_found(text: str) -> ApiError:
    return ApiError(400, 0, text)  # type: ignore[arg-type]  # the pages' code is the number 0


def _yn(value: Any) -> str:
    return "Y" if str(value).upper() in ("Y", "TRUE", "1") else "N"


def _view(ctx: Context, spa: dict[str, Any]) -> dict[str, Any]:
    out = {k: spa[k] for k in _FIELDS}
    out["createdTime"], out["updatedTime"] = ctx.fmt(spa["createdTime"]), ctx.fmt(spa["updatedTime"])
    out["relations"] = spa["relations"]
    # crm-type-get.md: the bindings of the type's user field to calendar events and tasks, and
    # the digital workplaces (none: they are not emulated)
    out["linkedUserFields"] = dict(spa.get("linkedUserFields") or _linked({}))
    out["customSections"] = []
    return out


_LINKED = ("CALENDAR_EVENT|UF_CRM_CAL_EVENT", "TASKS_TASK|UF_CRM_TASK", "TASKS_TASK_TEMPLATE|UF_CRM_TASK")


def _linked(value: Any, current: dict[str, str] | None = None) -> dict[str, str]:
    """``linkedUserFields`` as crm-type-add.md's answer shows them: every binding ``Y``/``N``."""
    out = dict(current or dict.fromkeys(_LINKED, "N"))
    if isinstance(value, dict):
        out.update({str(k): _yn(v) for k, v in value.items()})
    return out


def _upper(name: str) -> str:
    """``customSectionId`` -> ``CUSTOM_SECTION_ID`` (the fields' ``upperName``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _fields_param(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields")
    if not isinstance(fields, dict):
        raise ApiError(400, "100", "Could not find value for parameter {fields}")
    return fields


def _entity_type_id(ref: CrmReference, wanted: Any) -> int:
    """The type id asked for, or the next free even one from 1030 (crm-type-add.md's ranges)."""
    used = {t["entityTypeId"] for t in ref.types}
    if wanted in (None, ""):
        candidate = 1030
        while candidate in used:
            candidate += 2
        return candidate
    try:
        type_id = int(str(wanted))
    except ValueError:
        type_id = -1
    if not ((type_id >= 1030 and type_id % 2 == 0) or 128 <= type_id <= 192) or type_id in used:
        raise ApiError(400, "INVALID_ARG_VALUE", "entityTypeId is out of allowed range")
    return type_id


def _relations(value: Any) -> dict[str, Any]:
    value = value if isinstance(value, dict) else {}
    return {side: [{"entityTypeId": int(r.get("entityTypeId", 0)),
                    "isChildrenListEnabled": _yn(r.get("isChildrenListEnabled", "false")),
                    "isPredefined": "N"} for r in value.get(side, []) if isinstance(r, dict)]
            for side in ("parent", "child")}


@method("crm.type.fields", "crm")
def type_fields(ctx: Context, params: dict[str, Any]) -> Result:
    """The fields of a type: ``{"fields": {...}}``."""
    kinds = {"int": "integer", "date": "datetime", "str": "string"}
    out = {n: {"type": "boolean" if n in _FLAGS else kinds[_KINDS.get(n, "str")],
               "isRequired": n == "title", "isReadOnly": n in ("id", "createdBy", "createdTime",
                                                                 "updatedTime", "updatedBy"),
               "isImmutable": n == "entityTypeId", "isMultiple": False, "isDynamic": False, "title": n,
               "upperName": _upper(n)}
           for n in _FIELDS}
    return Result({"fields": out})


@method("crm.type.add", "crm", writes=True)
def type_add(ctx: Context, params: dict[str, Any]) -> Result:
    """A new smart process with its default category and stages: ``{"type": {...}}``."""
    fields, ref = _fields_param(params), _ref(ctx)
    type_id = _entity_type_id(ref, fields.get("entityTypeId"))
    now = float(int(ctx.now))
    spa: dict[str, Any] = {"id": ref.next_type_id, "title": str(fields.get("title") or ""), "code": "",
                           "createdBy": ctx.user_id, "entityTypeId": type_id, "customSectionId": None,
                           **{f: _yn(fields.get(f, "Y" if f in _DEFAULT_Y else "N")) for f in _FLAGS},
                           "createdTime": now, "updatedTime": now, "updatedBy": ctx.user_id,
                           "relations": _relations(fields.get("relations")),
                           "linkedUserFields": _linked(fields.get("linkedUserFields"))}
    ref.next_type_id += 1
    ref.types.append(spa)
    entity = spa_entity(type_id)
    ctx.store.tables[entity.name] = Table(entity.name)
    ref.add_spa_category(type_id, "General", 500, True)
    return Result({"type": _view(ctx, spa)}, wrote=True)


def _by_id(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    try:
        id_ = int(str(params.get("id")))
    except ValueError:
        id_ = 0
    spa = next((t for t in _ref(ctx).types if t["id"] == id_), None)
    if spa is None:
        raise _not_found("SPA not found")
    return spa


@method("crm.type.update", "crm", writes=True)
def type_update(ctx: Context, params: dict[str, Any]) -> Result:
    """Change the title, flags or relations (``entityTypeId`` stays)."""
    spa, fields = _by_id(ctx, params), _fields_param(params)
    if "title" in fields:
        spa["title"] = str(fields["title"] or "")
    for flag in _FLAGS:
        if flag in fields:
            spa[flag] = _yn(fields[flag])
    if "relations" in fields:
        spa["relations"] = _relations(fields["relations"])
    if "linkedUserFields" in fields:
        spa["linkedUserFields"] = _linked(fields["linkedUserFields"], spa.get("linkedUserFields"))
    spa["updatedTime"], spa["updatedBy"] = float(int(ctx.now)), ctx.user_id
    return Result({"type": _view(ctx, spa)}, wrote=True)


@method("crm.type.get", "crm")
def type_get(ctx: Context, params: dict[str, Any]) -> Result:
    """One type by its ``id``: ``{"type": {...}}``."""
    return Result({"type": _view(ctx, _by_id(ctx, params))})


@method("crm.type.getByEntityTypeId", "crm")
def type_get_by_entity_type_id(ctx: Context, params: dict[str, Any]) -> Result:
    """One type by its ``entityTypeId``."""
    try:
        spa = _ref(ctx).type_by_entity_type_id(int(str(params.get("entityTypeId"))))
    except ValueError:
        spa = None
    if spa is None:
        raise _not_found("Smart process not found")
    return Result({"type": _view(ctx, spa)})


@method("crm.type.list", "crm")
def type_list(ctx: Context, params: dict[str, Any]) -> Result:
    """``{"types": [...]}`` with ``total``; filter with the usual prefixes, ``order``; unknown
    fields are the page's ``INVALID_ARG_VALUE``. Filter groups (``logic``) are not supported."""
    filt, order = params.get("filter") or {}, params.get("order") or {}
    try:
        conds = compile_filter(_SCHEMA, filt if isinstance(filt, dict) else {}, strict=True)
    except FilterError as exc:
        raise ApiError(400, "INVALID_ARG_VALUE", f"Invalid filter: field '{exc.field}' is not allowed in filter") from None
    try:
        ords = compile_order(_SCHEMA, order if isinstance(order, dict) else {}, strict=True)
    except FilterError as exc:
        raise ApiError(400, "INVALID_ARG_VALUE", f"Invalid order: field '{exc.field}' is not allowed in order") from None
    rows = [t for t in _ref(ctx).types if all(c(t) for c in conds)]
    for getter, desc, _ in reversed(ords):
        rows.sort(key=lambda t, g=getter: (g(t) is None, g(t) or 0), reverse=desc)
    return Result({"types": [_view(ctx, t) for t in rows]}, total=len(rows))


@method("crm.type.delete", "crm", writes=True)
def type_delete(ctx: Context, params: dict[str, Any]) -> Result:
    """Delete a type without items, with its categories and stages; ``result`` is ``[]``, as
    crm-type-delete.md's answer shows."""
    ref = _ref(ctx)
    try:
        spa = next((t for t in ref.types if t["id"] == int(str(params.get("id")))), None)
    except ValueError:
        spa = None
    if spa is None:
        raise _not_found("Smart process not found")
    entity = spa_entity(spa["entityTypeId"])
    if len(ctx.store.tables.get(entity.name, ())):
        raise ApiError(400, "BX_ERROR", "You cannot delete an entity type that has elements")
    prefix = f"DYNAMIC_{spa['entityTypeId']}_STAGE_"
    ref.statuses[:] = [s for s in ref.statuses if not s["ENTITY_ID"].startswith(prefix)]
    ref.categories.pop(spa["entityTypeId"], None)
    ref.types.remove(spa)
    ctx.store.tables.pop(entity.name, None)
    return Result([], wrote=True)
