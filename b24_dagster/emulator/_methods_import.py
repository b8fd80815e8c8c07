"""``crm.item.import`` and ``crm.item.batchImport``: create items keeping their history.

Follows ``api-reference/crm/universal/import/index.md``, ``crm-item-import.md`` and
``crm-item-batch-import.md``:

* The fields are those of ``crm.item.add`` (the same code path, so the same validation; an
  unknown field is ignored), plus the history an import may keep: ``createdTime``,
  ``updatedTime``, ``movedTime``, ``createdBy``, ``updatedBy``, ``movedBy``. The dates must
  not be later than now, ``updatedTime >= createdTime``, ``movedTime`` between the two, and an
  item may not be older than the newest item of its type already there ("import items in
  ascending order of ``createdTime``"); otherwise 400 ``CRM_FIELD_ERROR_VALUE_NOT_VALID``.
* ``crm.item.import`` answers ``{"item": {"id": 4}}``; ``crm.item.batchImport`` takes at most
  20 items in ``data`` (more: 400 ``MAX_IMPORT_BATCH_SIZE_EXCEEDED``, nothing created) and
  answers ``{"items": [{"item": {"id": 15}}, {"error": ..., "error_description": ...}]}``, one
  entry per item in order, a failed item not stopping the others.
* Each call is charged ``import_cost`` simulated seconds per record it was given.
* The portal checks the "import" permission, not "add": with ``import_permission`` off, both
  methods answer the page's 400 ``ACCESS_DENIED`` "Access denied" and create nothing.
"""

from __future__ import annotations

from typing import Any

from ._entities import USERS, Entity
from ._filters import parse_date
from ._methods_core import ApiError, Context, Result, method
from ._methods_crm import _add, _entity_of, _fields_param

__all__ = ["MAX_IMPORT_BATCH_SIZE"]

#: Most items one ``crm.item.batchImport`` takes.
MAX_IMPORT_BATCH_SIZE = 20
_DATES = ("createdTime", "updatedTime", "movedTime")
_USERS = ("createdBy", "updatedBy", "movedBy")


def _invalid(name: str, why: str) -> ApiError:
    return ApiError(400, "CRM_FIELD_ERROR_VALUE_NOT_VALID", f'Invalid value for field "{name}": {why}')


def _history(ctx: Context, entity: Entity, fields: dict[str, Any]) -> dict[str, Any]:
    """The history fields given (camelCase or UPPER names), typed and checked."""
    given: dict[str, Any] = {}
    for name, value in fields.items():
        f = entity.resolve(str(name), item=True)
        if f is None or f.camel not in _DATES + _USERS or value in (None, ""):
            continue
        if f.camel in _DATES:
            ts = parse_date(value, ctx.settings.utc_offset)
            if ts is None:
                raise _invalid(f.camel, f"'{value}' is not a date")
            given[f.camel] = int(ts)
        else:
            text = str(value).strip()
            if not (text.isascii() and text.isdigit()) or int(text) not in USERS:
                raise _invalid(f.camel, f"user '{value}' not found")
            given[f.camel] = int(text)
    return given


def _check_dates(ctx: Context, entity: Entity, rec: dict[str, Any]) -> None:
    now = int(ctx.now)
    created, updated = rec["createdTime"], rec["updatedTime"]
    for name in ("createdTime", "updatedTime"):
        if rec[name] > now:
            raise _invalid(name, "the date is later than now")
    if updated < created:
        raise _invalid("updatedTime", "the date is earlier than createdTime")
    moved = rec.get("movedTime")
    if moved is not None and not created <= moved <= updated:
        raise _invalid("movedTime", "the date is not between createdTime and updatedTime")
    table = ctx.store.tables[entity.name]
    if table.ids:
        newest = table.rows[table.ids[-1]][entity.by_camel["createdTime"].slot]
        if newest is not None and created < newest:
            raise _invalid("createdTime", "an item of this type was created later; import in order of createdTime")


def _import_one(ctx: Context, entity: Entity, fields: Any) -> int:
    """Create one imported item through crm.item.add's path; its id."""
    if not isinstance(fields, dict):
        raise ApiError(400, "100", "Could not find value for parameter {fields}")
    history = _history(ctx, entity, fields)

    def stamp(rec: dict[str, Any]) -> None:
        # Only the creation given: not changed nor moved since, by the same user [choice].
        for given, implied in (("createdTime", ("updatedTime", "movedTime")),
                               ("createdBy", ("updatedBy", "movedBy"))):
            if given in history:
                rec.update((k, history[given]) for k in implied if k in rec)
        rec.update((k, v) for k, v in history.items() if k in rec)
        _check_dates(ctx, entity, rec)

    id_, _ = _add(ctx, entity, fields, True, stamp)
    return id_


@method("crm.item.import", "crm", writes=True)
def crm_item_import(ctx: Context, params: dict[str, Any]) -> Result:
    """Import one item: ``{"item": {"id": N}}``."""
    entity = _entity_of(params, ctx)   # smart processes too (the pages' second example)
    _check_permission(ctx)
    id_ = _import_one(ctx, entity, _fields_param(params, True))
    return Result({"item": {"id": id_}}, wrote=True, cost=ctx.settings.import_cost)


def _check_permission(ctx: Context) -> None:
    if not ctx.settings.import_permission:
        raise ApiError(400, "ACCESS_DENIED", "Access denied")


def _data(params: dict[str, Any]) -> list[Any]:
    data = params.get("data", params.get("DATA"))
    if isinstance(data, dict) and all(str(k).isascii() and str(k).isdigit() for k in data):
        data = list(data.values())   # a PHP array from a form body: data[0][title]=...
    if data == "" or data is None or not isinstance(data, list):
        raise ApiError(400, "100", "Could not find value for parameter {data}")
    return data


@method("crm.item.batchImport", "crm", writes=True)
def crm_item_batch_import(ctx: Context, params: dict[str, Any]) -> Result:
    """Import up to 20 items: ``{"items": [{"item": {"id": N}} | {"error": ..., ...}]}``."""
    entity = _entity_of(params, ctx)   # smart processes too (the pages' second example)
    _check_permission(ctx)
    data = _data(params)
    if len(data) > MAX_IMPORT_BATCH_SIZE:
        raise ApiError(400, "MAX_IMPORT_BATCH_SIZE_EXCEEDED", "You cannot import more than 20 items")
    items: list[dict[str, Any]] = []
    for fields in data:
        try:
            items.append({"item": {"id": _import_one(ctx, entity, fields)}})
        except ApiError as err:
            items.append(err.body_v2())
    wrote = any("item" in i for i in items)
    return Result({"items": items}, wrote=wrote, cost=ctx.settings.import_cost * len(data))
