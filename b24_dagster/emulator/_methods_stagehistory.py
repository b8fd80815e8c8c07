"""``crm.stagehistory.list``: the stage moves of leads, deals and smart-process items.

Page: ``api-reference/crm/crm-stage-history-list.md`` (bitrix24/b24restdocs). Every creation
and every stage move of a lead, deal or smart-process item made through the emulator's
methods (``crm.item.*``, ``crm.{lead,deal}.*``, imports) is recorded here, with the page's
``TYPE_ID``: ``1`` creation, ``2`` a move to an intermediate stage, ``3`` a move to a final
stage, ``5`` a change of pipeline (funnel). Records seeded with ``--seed-deals`` and the
like have no history **[choice]**: a million creation rows would cost more memory than the
seeder's whole table.

The answer is the page's: ``{"result": {"items": [...]}, "total": N}``, typed values (``ID``,
``TYPE_ID``, ``OWNER_ID``, ``CATEGORY_ID`` integers, ``CREATED_TIME`` ISO 8601); deals and
smart processes carry ``CATEGORY_ID``, ``STAGE_SEMANTIC_ID``, ``STAGE_ID``, leads
``STATUS_SEMANTIC_ID`` and ``STATUS_ID``. Filters take the page's prefixes; a field that
cannot be filtered or ordered is the page's 400 ``INVALID_ARG_VALUE``. The default order is
``ID`` ascending **[choice]** (the page's examples all ask for it). The moves of one portal
share one id sequence, whatever the entity type **[choice]**; a deleted record's moves stay
**[choice]**.
"""

from __future__ import annotations

from typing import Any

from ._filters import FilterError, Query, Schema, compile_filter, compile_order, run_query
from ._methods_core import ApiError, Context, Result, method

__all__ = ["record_stage_move"]

# A stored move: (ID, TYPE_ID, OWNER_TYPE_ID, OWNER_ID, CREATED_TIME, CATEGORY_ID,
# STAGE_SEMANTIC_ID, STAGE_ID): one tuple, like the CRM rows of ``_store``.
_TABLE = "stagehistory"
_CREATED, _INTERMEDIATE, _FINAL, _FUNNEL = 1, 2, 3, 5
_TYPE_NAMES = {3: "CONTACT", 4: "COMPANY", 7: "QUOTE", 8: "REQUISITE"}
_ORDER_DIRECTIONS = ("ASC", "DESC")


def record_stage_move(ctx: Context, entity_type_id: int, owner_id: int, old: dict[str, Any] | None,
                      new: dict[str, Any], when: float | None = None) -> None:
    """Record the creation (``old`` None) or the stage move of a lead, deal or smart-process
    item, if its stage or pipeline changed; ``new`` and ``old`` are canonical records."""
    if entity_type_id not in (1, 2) and entity_type_id < 128:
        return
    stage, category = new.get("stageId"), new.get("categoryId") or 0
    if old is None:
        kind = _CREATED
    elif (old.get("categoryId") or 0) != category and entity_type_id != 1:
        kind = _FUNNEL
    elif old.get("stageId") != stage:
        kind = _INTERMEDIATE if (new.get("stageSemanticId") or "P") == "P" else _FINAL
    else:
        return
    store = ctx.store
    id_ = store.new_id(_TABLE)
    created = int(ctx.now if when is None else when)   # the portal's resolution: seconds
    store.put(_TABLE, id_, (id_, kind, entity_type_id, owner_id, created, int(category),
                            new.get("stageSemanticId") or "P", stage or ""))


def _schema(lead: bool) -> Schema:
    names = ("STATUS_SEMANTIC_ID", "STATUS_ID") if lead else ("STAGE_SEMANTIC_ID", "STAGE_ID")
    fields: dict[str, Any] = {"ID": (lambda r: r[0], "int"), "TYPE_ID": (lambda r: r[1], "int"),
                              "OWNER_ID": (lambda r: r[3], "int"), "CREATED_TIME": (lambda r: r[4], "date"),
                              names[0]: (lambda r: r[6], "str"), names[1]: (lambda r: r[7], "str")}
    if not lead:
        fields["CATEGORY_ID"] = (lambda r: r[5], "int")
    return Schema(fields, "ID")


_SCHEMAS = {True: _schema(True), False: _schema(False)}


def _entity_type(ctx: Context, params: dict[str, Any]) -> int:
    raw = params.get("entityTypeId", params.get("ENTITY_TYPE_ID"))
    try:
        type_id = int(str(raw).strip())
    except ValueError:
        type_id = 0
    if type_id in (1, 2) or ctx.store.reference.type_by_entity_type_id(type_id) is not None:
        return type_id
    name = _TYPE_NAMES.get(type_id, str(raw))
    raise ApiError(400, "ENTITY_TYPE_NOT_SUPPORTED", f"Entity type `{name}` is not supported")


def _view(row: tuple[Any, ...], lead: bool, ctx: Context, select: set[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"ID": row[0], "TYPE_ID": row[1], "OWNER_ID": row[3], "CREATED_TIME": ctx.fmt(row[4])}
    if lead:
        out.update({"STATUS_SEMANTIC_ID": row[6], "STATUS_ID": row[7]})
    else:
        out.update({"CATEGORY_ID": row[5], "STAGE_SEMANTIC_ID": row[6], "STAGE_ID": row[7]})
    if select:
        out = {k: v for k, v in out.items() if k in select}
    return out


@method("crm.stagehistory.list", "crm")
def stagehistory_list(ctx: Context, params: dict[str, Any]) -> Result:
    """A page of stage moves of one entity type: ``{"items": [...]}`` with ``total``/``next``."""
    type_id = _entity_type(ctx, params)
    lead = type_id == 1
    schema = _SCHEMAS[lead]
    filt = params.get("filter") or {}
    order = params.get("order") or {"ID": "ASC"}
    if not isinstance(filt, dict):
        filt = {}
    if not isinstance(order, dict):
        order = {"ID": "ASC"}
    for name, direction in order.items():
        if str(direction).upper() not in _ORDER_DIRECTIONS:
            raise ApiError(400, "INVALID_ARG_VALUE", "Invalid order: allowed sort directions are "
                           f"`ASC, DESC`. But got '{direction}' for field '{name}'")
    try:
        conds = compile_filter(schema, {str(k): v for k, v in filt.items()}, strict=True)
        ords = compile_order(schema, {str(k).upper(): v for k, v in order.items()}, strict=True)
    except FilterError as exc:
        raise ApiError(400, "INVALID_ARG_VALUE",
                       f"Invalid {exc.where}: field '{exc.field}' is not allowed in {exc.where}") from None
    # the owner's type is a condition of every query (one table for every entity type)
    owner = _TypeCondition(type_id)
    start_raw = params.get("start", 0)
    try:
        start = int(str(start_raw or 0))
    except ValueError:
        start = 0
    rows, total, nxt = run_query(ctx.store.tables[_TABLE], schema,
                                 Query([*conds, owner], ords, -1 if start < 0 else start,
                                       ctx.settings.page_size))
    select = params.get("select")
    wanted = {str(s).upper() for s in select} if isinstance(select, list) and select and "*" not in select else None
    return Result({"items": [_view(r, lead, ctx, wanted) for r in rows]}, total=total, next=nxt)


class _TypeCondition:
    """The rows of one owner type (a condition run_query treats like a filter's)."""

    __slots__ = ("field", "negate", "op", "test", "type_id", "value")

    def __init__(self, type_id: int) -> None:
        self.type_id = type_id
        self.field, self.op, self.value, self.negate = "(owner type)", "=", type_id, False
        self.test = None

    def __call__(self, row: tuple[Any, ...]) -> bool:
        return row[2] == self.type_id  # type: ignore[no-any-return]
