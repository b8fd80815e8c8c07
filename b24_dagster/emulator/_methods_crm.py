"""CRM methods: ``crm.item.*`` (typed camelCase) and ``crm.{deal,lead,contact,company}.*`` (legacy).

Both views read and write the same canonical records. Validation fails as a portal does,
so that bulk loads get per-row failures naturally: an unknown ``entityTypeId``, a wrong id,
a responsible user who does not exist, a stage the pipeline does not have, an e-mail that is
not an address, a company without a title, a contact without a name, a value of the wrong type.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from . import _userfields as userfields
from ._entities import (
    ENTITIES,
    ENTITY_BY_NAME,
    USERS,
    Entity,
    Field,
    coerce,
    item_view,
    legacy_view,
    materialize,
    to_row,
)
from ._filters import (
    Condition,
    FilterError,
    Query,
    compile_filter,
    compile_order,
    crm_schema,
    parse_date,
    run_query,
)
from ._jsonout import Raw, dumps
from ._methods_core import ApiError, Context, Result, method
from ._methods_stagehistory import record_stage_move
from ._multifields import TYPES as MULTIFIELD_TYPES
from ._multifields import apply_multifields
from ._spa import spa_entity, stage_directory

__all__ = ["item_text"]

_CACHE_MAX = 100_000
_SCHEMAS: dict[tuple[int, bool, int], Any] = {}


def _schema(entity: Entity, item: bool, tz: int) -> Any:
    key = (entity.type_id, item, tz)
    s = _SCHEMAS.get(key)
    if s is None:
        s = _SCHEMAS[key] = crm_schema(entity, item=item, tz_offset=tz)
    return s


def _int_param(params: dict[str, Any], *names: str) -> int | None:
    for n in names:
        v = params.get(n)
        if v is not None and v != "":
            try:
                return int(str(v).strip())
            except ValueError:
                return None
    return None


def _entity_of(params: dict[str, Any], ctx: Context | None = None) -> Entity:
    """The entity type of ``entityTypeId``: lead, deal, contact, company, or (given ``ctx``)
    one of the portal's smart processes."""
    etid = _int_param(params, "entityTypeId", "ENTITY_TYPE_ID", "entityTypeID")
    entity = ENTITIES.get(etid) if etid is not None else None
    if entity is None and etid is not None and ctx is not None \
            and ctx.store.reference.type_by_entity_type_id(etid) is not None:
        entity = spa_entity(etid)
    if entity is None:
        raise ApiError(400, "NOT_FOUND", "Smart process not found")
    return entity


def item_text(ctx: Context, entity: Entity, id_: int, row: tuple[Any, ...]) -> Raw:
    """The serialized crm.item view of a row, from the cache when it is there."""
    cache = ctx.store.tables[entity.name].cache
    raw = cache.get(id_)
    if raw is None:
        view = item_view(entity, materialize(entity, row), ctx.fmt)
        if ctx.store.reference.userfields.get(entity.name):
            view.update(userfields.item_values(ctx, entity, id_))
        raw = Raw(dumps(view), view)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[id_] = raw
    return raw


# ---- writes -----------------------------------------------------------------------------

def _fail(item: bool, f: Field | None, message: str, required: bool = False) -> ApiError:
    if item:
        code = "CRM_FIELD_ERROR_REQUIRED" if required else "CRM_FIELD_ERROR_VALUE_NOT_VALID"
        return ApiError(400, code, message)
    return ApiError(400, "", message)


def _apply(ctx: Context, entity: Entity, rec: dict[str, Any], fields: dict[str, Any], item: bool,
           *, adding: bool) -> None:
    """Validate ``fields`` and apply them to the canonical record ``rec`` (in place)."""
    tz = ctx.settings.utc_offset
    old_stage, old_category = rec.get("stageId"), rec.get("categoryId")
    for name, value in fields.items():
        f = entity.resolve(str(name), item=item)
        if f is None or f.read_only or f.constant or f.kind == "fm" or f.type == "file":
            continue   # files (PHOTO, LOGO) are not kept: the emulator has no disk [choice]
        if not item and (f.legacy_read_only or (f.legacy_immutable and not adding)):
            continue   # isReadOnly / isImmutable of crm.<entity>.fields: ignored, as unknown fields are
        try:
            v = coerce(f, value, lambda x: parse_date(x, tz))
        except ValueError as exc:
            label = f.camel if item else f.upper
            raise _fail(item, f, f"Invalid value of field '{label}': {exc}") from None
        if f.type == "user" and v is not None and not f.multiple and v not in USERS:
            label = f.camel if item else f.upper
            raise _fail(item, f, f"User with ID {v} not found (field '{label}').")
        if f.camel == "categoryId" and v not in (None, 0) and ctx.store.reference.category(
                entity.type_id, v) is None:
            raise _fail(item, f, f"Category with ID {v} not found.")
        rec[f.camel or f.upper or ""] = v
    if entity.stages is not None:
        _check_stage(ctx, entity, rec, fields, item, adding or rec.get("categoryId") != old_category)
    if "fm" in rec:
        fm = apply_multifields(fields, item, rec.get("fm") or [], lambda: ctx.store.next_counter("fm"),
                               lambda message: _fail(item, None, message))
        if fm is not None:
            rec["fm"] = fm
    if entity.name == "company" and not str(rec.get("title") or "").strip():
        raise _fail(item, entity.by_camel["title"],
                    'The field "Company name" is required.' if item else "Company name is not specified.",
                    required=True)
    if entity.name == "contact" and not any(str(rec.get(k) or "").strip()
                                            for k in ("name", "lastName", "secondName")):
        raise _fail(item, entity.by_camel["name"],
                    'The field "First name" or "Last name" is required.', required=True)
    now = int(ctx.now)
    rec["updatedTime"] = now
    rec["updatedBy"] = ctx.user_id
    if adding:
        rec["createdTime"] = now
        rec["createdBy"] = ctx.user_id
        if rec.get("assignedById") is None:
            rec["assignedById"] = ctx.user_id
    if "movedTime" in rec and (adding or rec.get("stageId") != old_stage):
        rec["movedTime"] = now
        rec["movedBy"] = ctx.user_id


def _check_stage(ctx: Context, entity: Entity, rec: dict[str, Any], fields: dict[str, Any], item: bool,
                 moved: bool) -> None:
    """The stage must be one of its pipeline's (``crm.status`` ``STATUS``, ``DEAL_STAGE``,
    ``DEAL_STAGE_N``); a new record, or one moved to another pipeline, without a stage starts
    at the pipeline's first stage."""
    f = entity.by_camel["stageId"]
    if entity.type_id not in ENTITIES and not rec.get("categoryId"):   # a smart process's default
        rec["categoryId"] = ctx.store.reference.default_category(entity.type_id)
    pipeline = ctx.store.reference.pipeline(entity.type_id, rec.get("categoryId") or 0) or {}
    given = any(entity.resolve(str(name), item=item) is f for name in fields)
    if not given:
        if moved and rec.get("stageId") not in pipeline and pipeline:
            rec["stageId"] = next(iter(pipeline))
        return
    if rec.get("stageId") not in pipeline:
        label = f.camel if item else f.upper
        raise _fail(item, f, f"Stage '{rec.get('stageId')}' does not exist (field '{label}').")


def _fields_param(params: dict[str, Any], item: bool) -> dict[str, Any]:
    fields = params.get("fields", params.get("FIELDS"))
    if isinstance(fields, list) and not fields:
        fields = {}
    if not isinstance(fields, dict):
        if item:
            raise ApiError(400, "100", "Could not find value for parameter {fields}")
        raise ApiError(400, "", "Parameter 'fields' must be array.")
    return fields


def _add(ctx: Context, entity: Entity, fields: dict[str, Any], item: bool,
         stamp: Callable[[dict[str, Any]], None] | None = None) -> tuple[int, tuple[Any, ...]]:
    """Create a record; ``stamp`` may then change the validated record (an import's history)."""
    rec = {entity.key(f): (list(f.default) if isinstance(f.default, list) else f.default)
           for f in entity.fields}
    _apply(ctx, entity, rec, fields, item, adding=True)
    uf_values = userfields.parse(ctx, entity, fields, item, adding=True)
    if stamp is not None:
        stamp(rec)
    id_ = ctx.store.new_id(entity.name)
    rec["id"] = id_
    if entity.name in ("deal", "lead") and not str(rec.get("title") or "").strip():
        rec["title"] = f"{entity.name.capitalize()} #{id_}"
    entity.derive(rec)
    row = to_row(entity, rec)
    ctx.store.put(entity.name, id_, row)
    userfields.keep(ctx, entity, id_, uf_values)
    # crm-stage-history-list.md: a creation is a move into the first stage (an import's
    # history keeps its own creation time)
    record_stage_move(ctx, entity.type_id, id_, None, rec, rec.get("createdTime"))
    return id_, row


#: The legacy "no such record" errors where a page gives its own (crm-company-update.md's
#: error example, crm-company-delete.md's and crm-contact-delete.md's tables,
#: crm-contact-update.md's example); elsewhere an empty code and "Not found".
_LEGACY_NOT_FOUND = {("company", "update"): ("", "Company is not found"),
                     ("company", "delete"): ("", "Company is not found"),
                     ("contact", "update"): ("", "Contact is not found"),
                     ("contact", "delete"): ("ERROR_CORE", "Element not found")}


def _legacy_not_found(entity: Entity, op: str) -> ApiError:
    code, text = _LEGACY_NOT_FOUND.get((entity.name, op), ("", "Not found"))
    return ApiError(400, code, text)


def _update(ctx: Context, entity: Entity, id_: int, fields: dict[str, Any], item: bool) -> tuple[Any, ...]:
    row = ctx.store.tables[entity.name].get(id_)
    if row is None:
        raise ApiError(400, "NOT_FOUND", "Element not found") if item else _legacy_not_found(entity, "update")
    rec = materialize(entity, row)
    before = dict(rec)
    _apply(ctx, entity, rec, fields, item, adding=False)
    uf_values = userfields.parse(ctx, entity, fields, item, adding=False)
    entity.derive(rec)
    new_row = to_row(entity, rec)
    ctx.store.put(entity.name, id_, new_row)
    userfields.keep(ctx, entity, id_, uf_values)
    record_stage_move(ctx, entity.type_id, id_, before, rec)
    return new_row


# ---- crm.item.* --------------------------------------------------------------------------

def _id_param(params: dict[str, Any], item: bool) -> int:
    id_ = _int_param(params, "id", "ID")
    if id_ is None:
        if item:
            raise ApiError(400, "100", "Could not find value for parameter {id}")
        raise ApiError(400, "", "ID is not defined or invalid.")
    return id_


@method("crm.item.add", "crm", writes=True)
def crm_item_add(ctx: Context, params: dict[str, Any]) -> Result:
    """Create an item; answers ``{"item": {...}}``."""
    entity = _entity_of(params, ctx)
    id_, row = _add(ctx, entity, _fields_param(params, True), True)
    return Result({"item": item_text(ctx, entity, id_, row)}, wrote=True)


@method("crm.item.get", "crm")
def crm_item_get(ctx: Context, params: dict[str, Any]) -> Result:
    """One item; 400 ``NOT_FOUND`` for a wrong id."""
    etid, id_text = params.get("entityTypeId"), params.get("id")
    if type(etid) is str and type(id_text) is str and etid.isascii() and etid.isdigit() \
            and id_text.isascii() and id_text.isdigit():
        entity = ENTITIES.get(int(etid)) or _entity_of(params, ctx)   # the common form, decoded fast
        id_ = int(id_text)
    else:
        entity = _entity_of(params, ctx)
        id_ = _id_param(params, True)
    table = ctx.store.tables[entity.name]
    raw = table.cache.get(id_)
    if raw is None:
        row = table.rows.get(id_)
        if row is None:
            raise ApiError(400, "NOT_FOUND", "Element not found")
        raw = item_text(ctx, entity, id_, row)
    wrapped = raw.wrapped
    if wrapped is None:
        item = raw
        wrapped = raw.wrapped = Raw('{"item":' + raw.text + "}", factory=lambda: {"item": item.value})
    return Result(wrapped)


@method("crm.item.update", "crm", writes=True)
def crm_item_update(ctx: Context, params: dict[str, Any]) -> Result:
    """Change an item; answers the whole changed item."""
    entity = _entity_of(params, ctx)
    id_ = _id_param(params, True)
    row = _update(ctx, entity, id_, _fields_param(params, True), True)
    return Result({"item": item_text(ctx, entity, id_, row)}, wrote=True)


@method("crm.item.delete", "crm", writes=True)
def crm_item_delete(ctx: Context, params: dict[str, Any]) -> Result:
    """Delete an item; answers ``[]`` as the portal does."""
    entity = _entity_of(params, ctx)
    id_ = _id_param(params, True)
    if not ctx.store.delete(entity.name, id_):
        raise ApiError(400, "NOT_FOUND", "Element not found")
    return Result([], wrote=True)


def _list_args(params: dict[str, Any], item: bool) -> tuple[dict[str, Any], Any, Any, int]:
    filt = params.get("filter", params.get("FILTER", {}))
    order = params.get("order", params.get("ORDER", {}))
    select = params.get("select", params.get("SELECT"))
    for name, value in (("filter", filt), ("order", order)):
        if isinstance(value, list) and not value:
            continue
        if not isinstance(value, dict):
            if item:
                raise ApiError(400, "INVALID_ARG_VALUE", f"Invalid {name}: must be an array")
            raise ApiError(400, "", f"Parameter '{name}' must be array.")
    start_raw = params.get("start", params.get("START", 0))
    try:
        start = int(str(start_raw or 0))
    except ValueError:
        start = 0
    start = -1 if start < 0 else start
    return (filt if isinstance(filt, dict) else {}), (order or {}), select, start


def _select_fields(entity: Entity, select: Any, item: bool) -> list[Field] | None:
    """Fields to show (None = all of the view); unknown names are dropped."""
    if select is None or select == "" or select == []:
        return None if item else [f for f in entity.legacy_shown if not f.upper.startswith("UF_")]  # type: ignore[union-attr]
    names = [str(s) for s in (select if isinstance(select, list) else
                              list(select.values()) if isinstance(select, dict) else [select])]
    pool = entity.item_fields if item else entity.legacy_shown
    if "*" in names and item:
        return None
    chosen: set[str] = set()
    for n in names:
        if n == "*":
            chosen.update(entity.key(f) for f in pool if not (f.upper or "").startswith("UF_"))
        elif n.upper() == "UF_*":
            chosen.update(entity.key(f) for f in pool if (f.upper or "").startswith("UF_"))
        else:
            f = entity.resolve(n, item=item)
            if f is not None:
                chosen.add(entity.key(f))
    chosen.add("id")
    return [f for f in pool if entity.key(f) in chosen]


def _is_group(key: Any, value: Any) -> bool:
    return str(key).isdigit() and isinstance(value, dict)


def _group_test(schema: Any, group: dict[str, Any]) -> Callable[[Any], bool]:
    """A nested filter of crm-item-list.md (``{"logic": "OR", "0": {...}, "1": {...}}``): its
    conditions and sub-filters joined by AND, or by OR with ``logic`` ``OR``; any depth."""
    either = str(group.get("logic", "AND")).upper() == "OR"
    plain = {k: v for k, v in group.items() if k != "logic" and not _is_group(k, v)}
    parts: list[Callable[[Any], bool]] = list(compile_filter(schema, plain, strict=True))
    parts += [_group_test(schema, v) for k, v in group.items() if _is_group(k, v)]
    if either:
        return lambda row: any(p(row) for p in parts)
    return lambda row: all(p(row) for p in parts)


def _compile_item_filter(schema: Any, filt: dict[str, Any]) -> list[Condition]:
    """crm.item's filter: plain conditions, plus nested filters under numeric keys."""
    if str(filt.get("logic", "AND")).upper() == "OR":
        groups = {"": filt}
        plain: dict[str, Any] = {}
    else:
        groups = {k: v for k, v in filt.items() if _is_group(k, v)}
        plain = {k: v for k, v in filt.items() if k != "logic" and k not in groups}
    conds = compile_filter(schema, plain, strict=True)
    # a group is one condition over the whole row, on a field name no fast path or index knows
    conds += [Condition("(group)", lambda row: row, "group", g, _group_test(schema, g), False)
              for g in groups.values()]
    return conds


def _query(ctx: Context, entity: Entity, params: dict[str, Any], item: bool) -> tuple[list[Any], int, int | None, Any]:
    filt, order, select, start = _list_args(params, item)
    schema = _schema(entity, item, ctx.settings.utc_offset)
    try:
        conds = _compile_item_filter(schema, filt) if item else compile_filter(schema, filt, strict=False)
        ords = compile_order(schema, order, strict=item)
    except FilterError as exc:
        raise ApiError(400, "INVALID_ARG_VALUE",
                       f"Invalid {exc.where}: field '{exc.field}' is not allowed in {exc.where}") from None
    rows, total, nxt = run_query(ctx.store.tables[entity.name], schema,
                                 Query(conds, ords, start, ctx.settings.page_size))
    return rows, total, nxt, select


@method("crm.item.list", "crm")
def crm_item_list(ctx: Context, params: dict[str, Any]) -> Result:
    """A page of items: ``{"items": [...]}`` with ``total``/``next``."""
    entity = _entity_of(params, ctx)
    rows, total, nxt, select = _query(ctx, entity, params, True)
    fields = _select_fields(entity, select, True)
    if fields is None:
        items: list[Any] = [item_text(ctx, entity, row[0], row) for row in rows]
    else:
        items = [item_view(entity, materialize(entity, row), ctx.fmt, fields) for row in rows]
        userfields.add_selected(ctx, entity, items, [row[0] for row in rows], select, True)
    return Result({"items": items}, total=total, next=nxt)


@method("crm.item.fields", "crm")
def crm_item_fields(ctx: Context, params: dict[str, Any]) -> Result:
    """Field descriptions keyed by camelCase name, with ``upperName``."""
    entity = _entity_of(params, ctx)
    out = {}
    spa_stages = None
    if entity.type_id > 4:   # a smart process: its default category's stage directory
        default = next((c for c in ctx.store.reference.categories.get(entity.type_id, [])
                        if c["isDefault"] == "Y"), None)
        spa_stages = stage_directory(entity.type_id, default["id"]) if default else None
    for f in entity.item_fields:
        d = _describe(f, entity)
        if spa_stages and f.camel in ("stageId", "previousStageId"):
            d = {**{k: v for k, v in d.items() if k != "title"}, "statusType": spa_stages,
                 "title": d["title"]}
        d["upperName"] = f.upper or _upper(f.camel or "")
        out[f.camel] = d
    out.update(userfields.describe(ctx, entity, True))
    return Result({"fields": out})


def _upper(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).upper()


#: The directory (``crm.status`` ``ENTITY_ID``) of a ``crm_status`` field, as the
#: ``crm.<entity>.fields`` pages give it in ``statusType``.
_STATUS_TYPES = {"SOURCE_ID": "SOURCE", "HONORIFIC": "HONORIFIC", "COMPANY_TYPE": "COMPANY_TYPE",
                 "INDUSTRY": "INDUSTRY", "EMPLOYEES": "EMPLOYEES", "STATUS_ID": "STATUS",
                 "STAGE_ID": "DEAL_STAGE"}
#: Parent entity types of link fields (their ``settings``, crm-deal-fields.md).
_PARENT_TYPES = {"crm_lead": 1, "crm_contact": 3, "crm_company": 4, "crm_quote": 7}
#: Links kept for old integrations (``isDeprecated``): a deal's or lead's one contact, a
#: contact's one company (crm-deal-fields.md, crm-lead-fields.md, crm-contact-fields.md).
_DEPRECATED = {("deal", "contactId"), ("lead", "contactId"), ("contact", "companyId")}


def _describe(f: Field, entity: Entity | None = None, *, item: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": f.type, "isRequired": f.required,
        "isReadOnly": f.read_only or (not item and f.legacy_read_only),
        "isImmutable": not item and f.legacy_immutable, "isMultiple": f.multiple,
        "isDynamic": (f.upper or "").startswith("UF_"),
    }
    name = entity.name if entity is not None else ""
    if f.type == "crm_status":
        status_type = _STATUS_TYPES.get(f.upper or _upper(f.camel or ""))
        if f.upper == "TYPE_ID":
            status_type = f"{name.upper()}_TYPE"
        elif f.camel == "stageId" and f.upper is None:
            status_type = "STATUS"
        if status_type:
            d["statusType"] = status_type
    if (name, f.camel) in _DEPRECATED or (entity is not None and entity.type_id > 4
                                           and f.camel == "contactId"):
        d["isDeprecated"] = True
    d["title"] = f.title
    if f.camel == "mycompanyId":   # crm-item-fields.md: the seller's details
        d["settings"] = {"isMyCompany": True, "parentEntityTypeId": 4, "isEmbeddedEditorEnabled": True}
    elif f.type in _PARENT_TYPES and not f.multiple and "isDeprecated" not in d:
        d["settings"] = {"parentEntityTypeId": _PARENT_TYPES[f.type]}
    return d



# ---- legacy crm.<entity>.* ---------------------------------------------------------------

def _register_legacy(entity: Entity) -> None:
    prefix = f"crm.{entity.name}"

    @method(f"{prefix}.add", "crm", writes=True)
    def add(ctx: Context, params: dict[str, Any]) -> Result:
        id_, _ = _add(ctx, entity, _fields_param(params, False), False)
        return Result(id_, wrote=True)

    @method(f"{prefix}.get", "crm")
    def get(ctx: Context, params: dict[str, Any]) -> Result:
        row = ctx.store.tables[entity.name].get(_id_param(params, False))
        if row is None:
            raise ApiError(400, "", "Not found")
        view = legacy_view(entity, materialize(entity, row), ctx.fmt)
        view.update(userfields.legacy_values(ctx, entity, row[0]))
        return Result(view)

    @method(f"{prefix}.update", "crm", writes=True)
    def update(ctx: Context, params: dict[str, Any]) -> Result:
        _update(ctx, entity, _id_param(params, False), _fields_param(params, False), False)
        return Result(True, wrote=True)

    @method(f"{prefix}.delete", "crm", writes=True)
    def delete(ctx: Context, params: dict[str, Any]) -> Result:
        if not ctx.store.delete(entity.name, _id_param(params, False)):
            raise _legacy_not_found(entity, "delete")
        return Result(True, wrote=True)

    @method(f"{prefix}.list", "crm")
    def list_(ctx: Context, params: dict[str, Any]) -> Result:
        rows, total, nxt, select = _query(ctx, entity, params, False)
        fields = _select_fields(entity, select, False)
        names = {str(s).upper() for s in (select if isinstance(select, list) else [])}
        # crm-contact-list.md: a multi-field comes back when the select names it
        multi = MULTIFIELD_TYPES if "FM" in names else tuple(t for t in MULTIFIELD_TYPES if t in names)
        out = [legacy_view(entity, materialize(entity, row), ctx.fmt, fields, multifields=multi)
               for row in rows]
        userfields.add_selected(ctx, entity, out, [row[0] for row in rows], select, False)
        return Result(out, total=total, next=nxt)

    @method(f"{prefix}.fields", "crm")
    def fields_(ctx: Context, params: dict[str, Any]) -> Result:
        out = {f.upper: _describe(f, entity, item=False) for f in entity.legacy_fields}
        if "fm" in entity.by_camel:
            for typ, title in (("PHONE", "Phone"), ("EMAIL", "E-mail"), ("WEB", "Website"),
                               ("IM", "Messenger"), ("LINK", "LINK")):
                out[typ] = {"type": "crm_multifield", "isRequired": False, "isReadOnly": False,
                            "isImmutable": False, "isMultiple": True, "isDynamic": False,
                            "title": title}
        out.update(userfields.describe(ctx, entity, False))
        return Result(out)


for _entity in ENTITY_BY_NAME.values():
    _register_legacy(_entity)
