"""Product rows: ``crm.deal.productrows.{get,set}`` and ``crm.lead.productrows.{get,set}`` (REST v2).

Pages: ``api-reference/crm/deals/crm-deal-productrows-{get,set}.md`` and the lead twins. ``set``
replaces every row of the owner. The prices follow the pages' examples: ``PRICE`` is the
final unit price (discount and tax applied), ``PRICE_EXCLUSIVE = PRICE / (1 + TAX_RATE)``,
``PRICE_NETTO`` the price before the discount, ``PRICE_BRUTTO = PRICE_NETTO * (1 + TAX_RATE)``.
There is no product catalog: a row is named ``PRODUCT_NAME``, else ``[<row id>]``, and
``MEASURE_*`` are as given **[choice]**. Like a portal, the owner's ``OPPORTUNITY`` becomes the
rows' sum unless ``IS_MANUAL_OPPORTUNITY`` is ``Y``. Rows live in memory, not in the
``--state`` file **[choice]**.
"""

from __future__ import annotations

from typing import Any

from ._entities import ENTITY_BY_NAME, Entity, materialize, to_row
from ._methods_core import ApiError, Context, Result, method
from ._reference import CrmReference

__all__: list[str] = []

_OWNER_TYPES = {"deal": "D", "lead": "L"}


def _ref(ctx: Context) -> CrmReference:
    return ctx.store.reference  # type: ignore[no-any-return]


def _num(value: float) -> float | int:
    return int(value) if value == int(value) else value


def _owner(ctx: Context, entity: Entity, params: dict[str, Any]) -> tuple[int, tuple[Any, ...]]:
    try:
        id_ = int(str(params.get("id", params.get("ID"))))
    except ValueError:
        id_ = 0
    if id_ < 1:
        raise ApiError(400, "", "The parameter id is invalid or not defined.")
    row = ctx.store.tables[entity.name].get(id_)
    if row is None:
        raise ApiError(400, "", "Not found")
    return id_, row


def _float(row: dict[str, Any], key: str, default: float) -> float:
    value = row.get(key)
    return default if value in (None, "") else float(value)


def _prices(row: dict[str, Any]) -> dict[str, Any]:
    """The price fields of one input row (the ERROR_CORE texts are the set page's)."""
    discount_type = int(row.get("DISCOUNT_TYPE_ID") or 2)
    if discount_type == 2 and "DISCOUNT_TYPE_ID" in row and "DISCOUNT_RATE" not in row:
        raise ApiError(400, "ERROR_CORE", "Discount Rate (DISCOUNT_RATE) is required if Percentage "
                                          "Discount Type (DISCOUNT_TYPE_ID) is defined<br>")
    price = _float(row, "PRICE", 0.0)
    tax = row.get("TAX_RATE")
    tax_rate = None if tax in (None, "") else float(tax)
    factor = 1 + (tax_rate or 0) / 100
    exclusive = price / factor
    rate, total = _float(row, "DISCOUNT_RATE", 0.0), _float(row, "DISCOUNT_SUM", 0.0)
    if discount_type == 1:
        if "DISCOUNT_SUM" not in row:
            raise ApiError(400, "ERROR_CORE", "Discount Sum (DISCOUNT_SUM) is required if Monetary Discount "
                                              "Type (DISCOUNT_TYPE_ID) is defined<br>")
        netto = exclusive + total
        rate = total / netto * 100 if netto else 0.0
    elif rate >= 100:
        if "DISCOUNT_SUM" not in row:
            raise ApiError(400, "ERROR_CORE", "Discount Sum (DISCOUNT_SUM) is required if Percentage Discount "
                                              "Type (DISCOUNT_TYPE_ID) is defined and Discount Rate "
                                              "(DISCOUNT_RATE) is 100%<br>")
        netto = exclusive + total
    else:
        netto = exclusive / (1 - rate / 100)
        total = netto - exclusive
    return {"PRICE": _num(price), "PRICE_EXCLUSIVE": _num(round(exclusive, 2)),
            "PRICE_NETTO": _num(round(netto, 2)), "PRICE_BRUTTO": _num(round(netto * factor, 2)),
            "PRICE_ACCOUNT": f"{price:.2f}", "QUANTITY": _num(_float(row, "QUANTITY", 1.0)),
            "DISCOUNT_TYPE_ID": discount_type, "DISCOUNT_RATE": _num(round(rate, 2)),
            "DISCOUNT_SUM": _num(round(total, 2)), "TAX_RATE": None if tax_rate is None else _num(tax_rate),
            "TAX_INCLUDED": "Y" if str(row.get("TAX_INCLUDED", "N")).upper() == "Y" else "N"}


def _get(ctx: Context, entity: Entity, params: dict[str, Any]) -> Result:
    id_, _ = _owner(ctx, entity, params)
    rows = _ref(ctx).product_rows.get((entity.name, id_), [])
    return Result(sorted((dict(r) for r in rows), key=lambda r: (r["SORT"], int(r["ID"]))))


def _set(ctx: Context, entity: Entity, params: dict[str, Any]) -> Result:
    id_, stored = _owner(ctx, entity, params)
    given = params.get("rows") or []
    if isinstance(given, dict):
        given = list(given.values())
    ref = _ref(ctx)
    rows: list[dict[str, Any]] = []
    for raw in given:
        row = {str(k).upper(): v for k, v in raw.items()} if isinstance(raw, dict) else {}
        row_id = ref.next_product_row_id + len(rows)
        name = str(row.get("PRODUCT_NAME") or f"[{row_id}]")
        rows.append({"ID": str(row_id), "OWNER_ID": str(id_), "OWNER_TYPE": _OWNER_TYPES[entity.name],
                     "PRODUCT_ID": int(row.get("PRODUCT_ID") or 0), "PRODUCT_NAME": name,
                     "ORIGINAL_PRODUCT_NAME": name, "PRODUCT_DESCRIPTION": row.get("PRODUCT_DESCRIPTION"),
                     **_prices(row), "CUSTOMIZED": "Y", "MEASURE_CODE": int(row.get("MEASURE_CODE") or 0),
                     "MEASURE_NAME": str(row.get("MEASURE_NAME") or ""), "SORT": int(row.get("SORT") or 0),
                     "XML_ID": "", "TYPE": 1, "STORE_ID": None, "RESERVE_ID": None,
                     "DATE_RESERVE_END": None, "RESERVE_QUANTITY": None})
    ref.next_product_row_id += len(rows)   # only once every row is valid
    ref.product_rows[(entity.name, id_)] = rows
    rec = materialize(entity, stored)
    if rec.get("isManualOpportunity") != "Y":
        rec["opportunity"] = round(sum(r["PRICE"] * r["QUANTITY"] for r in rows), 2)
        ctx.store.put(entity.name, id_, to_row(entity, rec))
    return Result(True, wrote=True)


def _register(entity: Entity) -> None:
    prefix = f"crm.{entity.name}.productrows"
    method(f"{prefix}.get", "crm")(lambda ctx, params: _get(ctx, entity, params))
    method(f"{prefix}.set", "crm", writes=True)(lambda ctx, params: _set(ctx, entity, params))


for _name in _OWNER_TYPES:
    _register(ENTITY_BY_NAME[_name])
