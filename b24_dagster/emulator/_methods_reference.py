"""``crm.status.*`` (directories and stages) and ``crm.category.*`` (pipelines), REST v2.

Pages: ``api-reference/crm/status/crm-status-{fields,entity-types,entity-items,list,get,add,
update,delete}.md`` and ``api-reference/crm/universal/category/crm-category-{fields,list,get,
add,update,delete}.md``. The data lives in :mod:`._reference`; a deal's stage is checked
against its pipeline's ``DEAL_STAGE``/``DEAL_STAGE_N`` directory (``_methods_crm``).
"""

from __future__ import annotations

from typing import Any

from ._entities import DEAL, ENTITY_BY_NAME, materialize
from ._filters import Schema, compile_filter, compile_order
from ._methods_core import ApiError, Context, Result, method
from ._reference import CATEGORY_ENTITY_TYPES, STAGE_ENTITIES, CrmReference
from ._spa import spa_entity, stage_directory, stage_prefix

__all__: list[str] = []

_STATUS_FIELDS = (  # name, type, required, read-only, immutable, title (crm-status-fields.md)
    ("ID", "integer", False, True, False, "ID"), ("ENTITY_ID", "string", True, False, True, "Entity ID"),
    ("STATUS_ID", "string", True, False, True, "Status"), ("SORT", "integer", False, False, False, "Sorting"),
    ("NAME", "string", True, False, False, "Name"),
    ("NAME_INIT", "string", False, True, False, "Default Name"),
    ("SYSTEM", "char", False, True, False, "System"),
    ("CATEGORY_ID", "integer", False, False, True, "CATEGORY_ID"),
    ("COLOR", "string", False, False, False, "COLOR"), ("SEMANTICS", "char", False, False, True, "SEMANTICS"),
    ("EXTRA", "crm_status_extra", False, False, False, "Additional Fields"),
)
_KINDS = {"ID": "int", "SORT": "int", "CATEGORY_ID": "int"}
_SCHEMA = Schema({name: ((lambda k: lambda s: s.get(k))(name), _KINDS.get(name, "str"))
                  for name, *_ in _STATUS_FIELDS if name != "EXTRA"}, "ID")
_TYPE_NAMES = {1: "LEAD", 2: "DEAL", 3: "CONTACT", 4: "COMPANY"}


def _ref(ctx: Context) -> CrmReference:
    return ctx.store.reference  # type: ignore[no-any-return]


def _is_stage_directory(entity: str) -> bool:
    return entity in STAGE_ENTITIES or entity.startswith(("DEAL_STAGE_", "DYNAMIC_"))


def _spa_directory(entity: str) -> tuple[int, int] | None:
    """(type id, category id) of ``DYNAMIC_<T>_STAGE_<N>``."""
    if not entity.startswith("DYNAMIC_"):
        return None
    type_id, category_id = entity[8:].split("_STAGE_")
    return int(type_id), int(category_id)


def _status_view(status: dict[str, Any], items: list[dict[str, Any]] | None) -> dict[str, Any]:
    """A status as list/get show it: every value a string or null; ``EXTRA`` for stages."""
    out = {"ID": str(status["ID"]), "ENTITY_ID": status["ENTITY_ID"], "STATUS_ID": status["STATUS_ID"],
           "NAME": status["NAME"], "NAME_INIT": status["NAME_INIT"], "SORT": str(status["SORT"]),
           "SYSTEM": status["SYSTEM"],
           "CATEGORY_ID": None if status["CATEGORY_ID"] is None else str(status["CATEGORY_ID"]),
           "COLOR": status["COLOR"], "SEMANTICS": status["SEMANTICS"]}
    if items is not None and _is_stage_directory(status["ENTITY_ID"]):
        sem = status["SEMANTICS"]
        first_failure = next((s["ID"] for s in items if s["SEMANTICS"] == "F"), None)
        word = ("success" if sem == "S" else "process" if sem is None
                else "failure" if status["ID"] == first_failure else "apology")
        out["EXTRA"] = {"SEMANTICS": word, "COLOR": status["COLOR"]}
    return out


def _status_id_param(params: dict[str, Any]) -> int:
    try:
        return int(str(params.get("id", params.get("ID"))))
    except ValueError:
        raise ApiError(400, "Invalid identifier.", "An incorrect identifier was passed.") from None


def _existing_status(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    status = _ref(ctx).status(_status_id_param(params))
    if status is None:
        raise ApiError(400, "Status is not found.", "Directory item not found.")
    return status


def _fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields", params.get("FIELDS"))
    if not isinstance(fields, dict):
        raise ApiError(400, "", "Parameter 'fields' must be array.")
    return {str(k).upper(): v for k, v in fields.items()}


@method("crm.status.fields", "crm")
def status_fields(ctx: Context, params: dict[str, Any]) -> Result:
    """The fields of a status."""
    return Result({name: {"type": t, "isRequired": req, "isReadOnly": ro, "isImmutable": imm,
                          "isMultiple": False, "isDynamic": False, "title": title}
                   for name, t, req, ro, imm, title in _STATUS_FIELDS})


def _first(items: list[dict[str, Any]], semantics: str) -> str:
    return next((s["STATUS_ID"] for s in items if s["SEMANTICS"] == semantics), "")


@method("crm.status.entity.types", "crm")
def status_entity_types(ctx: Context, params: dict[str, Any]) -> Result:
    """The directories, with the stage semantics of the stage ones."""
    ref = _ref(ctx)
    out = []
    for entity in ref.entity_ids():
        row: dict[str, Any] = {"ID": entity, "NAME": ref.entity_name(entity)}
        spa = _spa_directory(entity)
        if spa is not None:   # the shape of the page's DYNAMIC_177_STAGE_7 row
            category = ref.category(*spa) or {}
            row.update({"SEMANTIC_INFO": [], "PREFIX": stage_prefix(*spa)[:-1],
                        "FIELD_ATTRIBUTE_SCOPE": f"category_{spa[1]}", "ENTITY_TYPE_ID": spa[0],
                        "IS_ENABLED": True, "CATEGORY_ID": spa[1], "CATEGORY_NAME": category.get("name"),
                        "CATEGORY_SORT": category.get("sort"),
                        "IS_DEFAULT_CATEGORY": category.get("isDefault") == "Y"})
        elif _is_stage_directory(entity):
            items = ref.items(entity)
            if entity.startswith("DEAL_STAGE_"):
                row["PARENT_ID"] = "DEAL_STAGE"
            row["SEMANTIC_INFO"] = {"START_FIELD": items[0]["STATUS_ID"] if items else "",
                                    "FINAL_SUCCESS_FIELD": _first(items, "S"),
                                    "FINAL_UNSUCCESS_FIELD": _first(items, "F"),
                                    "FINAL_SORT": 0}
            if entity.startswith("DEAL_STAGE_"):
                number = entity.rsplit("_", 1)[1]
                row.update({"PREFIX": f"C{number}", "FIELD_ATTRIBUTE_SCOPE": f"category_{number}",
                            "ENTITY_TYPE_ID": 2, "CATEGORY_ID": number})
            elif entity == "DEAL_STAGE":
                row.update({"FIELD_ATTRIBUTE_SCOPE": "", "ENTITY_TYPE_ID": 2, "CATEGORY_ID": 0})
            else:
                row["ENTITY_TYPE_ID"] = STAGE_ENTITIES[entity]
        out.append(row)
    return Result(out)


@method("crm.status.entity.items", "crm")
def status_entity_items(ctx: Context, params: dict[str, Any]) -> Result:
    """The values of one directory: ``[{NAME, SORT, STATUS_ID}]`` in sort order."""
    entity = params.get("entityId", params.get("ENTITYID"))
    ref = _ref(ctx)
    if not isinstance(entity, str) or entity not in ref.entity_ids():
        raise ApiError(400, "The parameter entityId is not defined or invalid.",
                       "The directory ID is not specified or is incorrect.")
    return Result([{"NAME": s["NAME"], "SORT": s["SORT"], "STATUS_ID": s["STATUS_ID"]}
                   for s in ref.items(entity)])


@method("crm.status.list", "crm")
def status_list(ctx: Context, params: dict[str, Any]) -> Result:
    """Statuses by ``filter`` (unknown fields ignored) and ``order`` (default ``SORT``, then ``ID``
    **[choice]**); every match in one answer with ``total``."""
    filt, order = params.get("filter") or {}, params.get("order") or {"SORT": "ASC"}
    if not isinstance(filt, dict) or not isinstance(order, dict):
        raise ApiError(400, "Invalid parameters.", "Incorrect parameters passed.")
    conds = compile_filter(_SCHEMA, {str(k).upper(): v for k, v in filt.items()}, strict=False)
    rows = sorted((s for s in _ref(ctx).statuses if all(c(s) for c in conds)), key=lambda s: s["ID"])
    for getter, desc, _ in reversed(compile_order(_SCHEMA, {str(k).upper(): v for k, v in order.items()},
                                                  strict=False)):
        rows.sort(key=lambda s, g=getter: (g(s) is None, g(s) or 0), reverse=desc)
    ref = _ref(ctx)
    return Result([_status_view(s, ref.items(s["ENTITY_ID"])) for s in rows], total=len(rows))


@method("crm.status.get", "crm")
def status_get(ctx: Context, params: dict[str, Any]) -> Result:
    """One status (no ``EXTRA``, as the page's example)."""
    return Result(_status_view(_existing_status(ctx, params), None))


@method("crm.status.add", "crm", writes=True)
def status_add(ctx: Context, params: dict[str, Any]) -> Result:
    """Add a value to a directory; returns its ``ID``."""
    fields, ref = _fields(params), _ref(ctx)
    missing = [f"The field {k} is required." for k in ("ENTITY_ID", "STATUS_ID") if not fields.get(k)]
    if missing:
        raise ApiError(400, "", "<br>".join(missing))
    entity, status_id = str(fields["ENTITY_ID"]), str(fields["STATUS_ID"])
    if entity not in ref.entity_ids():
        raise ApiError(400, "", "Specified entity type is not supported.")
    if not str(fields.get("NAME") or "").strip():
        raise ApiError(400, "", "The field Title is required.")
    category = int(entity.rsplit("_", 1)[1]) if entity.startswith(("DEAL_STAGE_", "DYNAMIC_")) else None
    prefix = "" if category is None else f"C{category}:" if entity.startswith("DEAL") else \
        stage_prefix(*(_spa_directory(entity) or (0, 0)))
    if prefix and not status_id.startswith(prefix):
        status_id = prefix + status_id   # crm-status-add.md: the pipeline's prefix is added
    if any(s["STATUS_ID"] == status_id for s in ref.items(entity)):
        raise ApiError(400, "ERROR_CORE", "The specified status ID already exists.")
    sort = int(fields.get("SORT") or 10)
    semantics = str(fields.get("SEMANTICS") or "") or None
    if _is_stage_directory(entity) and semantics is None:
        success = next((s["SORT"] for s in ref.items(entity) if s["SEMANTICS"] == "S"), None)
        if success is not None and sort > success:
            raise ApiError(400, "", "Cannot create more stages after the final stage because the final "
                           "successful stage already exists. Try using sort order values less than that "
                           "of the final stage.")
    status = ref.add_status({"ENTITY_ID": entity, "STATUS_ID": status_id, "NAME": str(fields["NAME"]),
                             "NAME_INIT": "", "SORT": sort, "SYSTEM": "N", "CATEGORY_ID": category,
                             "COLOR": fields.get("COLOR"), "SEMANTICS": semantics})
    return Result(status["ID"], wrote=True)


@method("crm.status.update", "crm", writes=True)
def status_update(ctx: Context, params: dict[str, Any]) -> Result:
    """Change ``NAME``, ``SORT`` or ``COLOR`` of a status (other fields are ignored)."""
    status, fields = _existing_status(ctx, params), _fields(params)
    if "NAME" in fields:
        status["NAME"] = str(fields["NAME"])
    if "SORT" in fields:
        status["SORT"] = int(fields["SORT"])
    if "COLOR" in fields:
        status["COLOR"] = fields["COLOR"]
    return Result(True, wrote=True)


@method("crm.status.delete", "crm", writes=True)
def status_delete(ctx: Context, params: dict[str, Any]) -> Result:
    """Delete a status: a system one only with ``params[FORCED]=Y``, a stage only when unused."""
    status = _existing_status(ctx, params)
    flags = params.get("params") or {}
    forced = isinstance(flags, dict) and str(flags.get("FORCED", "N")).upper() == "Y"
    if status["SYSTEM"] == "Y" and not forced:
        text = 'CRM System Status can be deleted only if parameter FORCED is specified and equal to "Y".'
        raise ApiError(400, text, text)
    entity = status["ENTITY_ID"]
    spa = _spa_directory(entity)
    table = "lead" if entity == "STATUS" else "deal" if entity.startswith("DEAL_STAGE") else \
        f"dynamic_{spa[0]}" if spa else None
    if table is not None:
        crm = spa_entity(spa[0]) if spa else ENTITY_BY_NAME[table]
        if any(materialize(crm, row).get("stageId") == status["STATUS_ID"]
               for _, row in ctx.store.tables[table].iter_from()):
            raise ApiError(400, "There are active items in this status.", "There are active items in this status.")
    _ref(ctx).statuses.remove(status)
    return Result(True, wrote=True)


# ---- crm.category.* ----------------------------------------------------------------------

def _entity_type(ctx: Context, params: dict[str, Any], missing: str = "Smart process not found") -> int:
    """The ``entityTypeId`` of a pipeline method; ``missing`` is the text of its page for an
    unknown one (add, fields, get, delete: "SPA not found"; list, update: "Smart process not
    found")."""
    try:
        type_id = int(str(params.get("entityTypeId", params.get("ENTITYTYPEID"))))
    except ValueError:
        type_id = 0
    if type_id in CATEGORY_ENTITY_TYPES or _ref(ctx).type_by_entity_type_id(type_id) is not None:
        return type_id
    if type_id in _TYPE_NAMES:
        raise ApiError(400, "ENTITY_TYPE_NOT_SUPPORTED", f"Entity type `{_TYPE_NAMES[type_id]}` is not supported")
    raise ApiError(400, "NOT_FOUND", missing)


def _category(ctx: Context, params: dict[str, Any], missing: str = "SPA not found") -> dict[str, Any]:
    type_id = _entity_type(ctx, params, missing)
    try:
        category = _ref(ctx).category(type_id, int(str(params.get("id", params.get("ID")))))
    except ValueError:
        category = None
    if category is None:
        raise ApiError(400, "NOT_FOUND", "Element not found")
    return category


def _category_fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields")
    if not isinstance(fields, dict):
        raise ApiError(400, "0", "Field 'NAME' is required")
    return fields


def _sort(value: Any) -> int:
    return max(int(value), 0)   # crm-category-add.md: a negative sort is stored as 0


@method("crm.category.fields", "crm")
def category_fields(ctx: Context, params: dict[str, Any]) -> Result:
    """The fields of a pipeline: ``{"fields": {...}}``."""
    _entity_type(ctx, params, "SPA not found")
    spec = (("id", "integer", False, True, "ID"), ("name", "string", False, False, "NAME"),
            ("sort", "integer", False, False, "SORT"), ("entityTypeId", "integer", True, True, "ENTITY_TYPE_ID"),
            ("isDefault", "boolean", False, True, "IS_DEFAULT"), ("originId", "string", False, False, "ORIGIN_ID"),
            ("originatorId", "string", False, False, "ORIGINATOR_ID"))
    return Result({"fields": {n: {"type": t, "isRequired": req, "isReadOnly": ro, "isImmutable": False,
                                  "isMultiple": False, "isDynamic": False, "title": up, "upperName": up}
                              for n, t, req, ro, up in spec}})


@method("crm.category.list", "crm")
def category_list(ctx: Context, params: dict[str, Any]) -> Result:
    """The pipelines of a CRM type by ``sort``, then ``id``: ``{"categories": [...]}`` + ``total``."""
    rows = sorted(_ref(ctx).categories[_entity_type(ctx, params)], key=lambda c: (c["sort"], c["id"]))
    return Result({"categories": [dict(c) for c in rows]}, total=len(rows))


@method("crm.category.get", "crm")
def category_get(ctx: Context, params: dict[str, Any]) -> Result:
    """One pipeline: ``{"category": {...}}``."""
    return Result({"category": dict(_category(ctx, params))})


@method("crm.category.add", "crm", writes=True)
def category_add(ctx: Context, params: dict[str, Any]) -> Result:
    """A new pipeline; a deal pipeline N gets the default stages as ``DEAL_STAGE_N`` (``CN:NEW``...)."""
    type_id, fields, ref = _entity_type(ctx, params, "SPA not found"), _category_fields(params), _ref(ctx)
    name = str(fields.get("name") or "").strip()
    if not name:
        raise ApiError(400, "0", "Field 'NAME' is required")
    is_default = str(fields.get("isDefault", "N")).upper() == "Y"
    if type_id in (3, 4) and is_default:
        raise ApiError(400, "0", "Default client category does not support updating default state")
    if type_id not in CATEGORY_ENTITY_TYPES:   # a smart process: a new default replaces the old
        if is_default:
            for old in ref.categories[type_id]:
                old["isDefault"] = "N"
        spa_category = ref.add_spa_category(type_id, name[:255], _sort(fields.get("sort", 500)), is_default)
        return Result({"category": dict(spa_category)}, wrote=True)
    category = {"id": ref.next_category_id, "name": name[:255], "sort": _sort(fields.get("sort", 500)),
                "entityTypeId": type_id, "isDefault": "N",
                "originId": str(fields.get("originId") or ""), "originatorId": str(fields.get("originatorId") or "")}
    ref.next_category_id += 1
    ref.categories[type_id].append(category)
    if type_id == 2:
        ref.add_stages(f"DEAL_STAGE_{category['id']}", f"C{category['id']}:", category["id"])
    return Result({"category": dict(category)}, wrote=True)


@method("crm.category.update", "crm", writes=True)
def category_update(ctx: Context, params: dict[str, Any]) -> Result:
    """Rename or re-sort a pipeline (``isDefault`` of deals cannot change)."""
    category, fields = _category(ctx, params, "Smart process not found"), _category_fields(params)
    if "name" in fields:
        name = str(fields["name"] or "").strip()
        if not name:
            raise ApiError(400, "0", "Field 'NAME' is required")
        category["name"] = name[:255]
    if "sort" in fields:
        category["sort"] = _sort(fields["sort"])
    for key in ("originId", "originatorId"):
        if key in fields and category["id"]:
            category[key] = str(fields[key] or "")
    return Result({"category": dict(category)}, wrote=True)


@method("crm.category.delete", "crm", writes=True)
def category_delete(ctx: Context, params: dict[str, Any]) -> Result:
    """Delete an empty pipeline other than the default; ``result`` is null."""
    category, ref = _category(ctx, params), _ref(ctx)
    type_id = category["entityTypeId"]
    if type_id not in CATEGORY_ENTITY_TYPES:
        return _delete_spa_category(ctx, category)
    if category["id"] == 0:
        if type_id == 2:
            raise ApiError(400, "0", "Default deal category cannot be deleted")
        raise ApiError(400, "REMOVING_DISABLED", "Deletion of system category is prohibited")
    if type_id == 2:
        if any(materialize(DEAL, row).get("categoryId") == category["id"]
               for _, row in ctx.store.tables["deal"].iter_from()):
            raise ApiError(400, "0", f"Deals related to the funnel `{category['name']}` found")
        ref.statuses[:] = [s for s in ref.statuses if s["ENTITY_ID"] != f"DEAL_STAGE_{category['id']}"]
    ref.categories[type_id].remove(category)
    return Result(None, wrote=True)


def _delete_spa_category(ctx: Context, category: dict[str, Any]) -> Result:
    """A smart process's category: not the default, not one with items (the page's BX_ERRORs)."""
    type_id, ref = category["entityTypeId"], _ref(ctx)
    if category["isDefault"] == "Y":
        raise ApiError(400, "BX_ERROR", "This funnel is the default funnel")
    entity = spa_entity(type_id)
    if any(materialize(entity, row).get("categoryId") == category["id"]
           for _, row in ctx.store.tables[entity.name].iter_from()):
        raise ApiError(400, "BX_ERROR", "Elements related to the funnel found")
    directory = stage_directory(type_id, category["id"])
    ref.statuses[:] = [s for s in ref.statuses if s["ENTITY_ID"] != directory]
    ref.categories[type_id].remove(category)
    return Result(None, wrote=True)
