"""A deal's contacts: ``crm.deal.contact.{fields,add,delete}`` and ``crm.deal.contact.items.{get,set,
delete}`` (REST v2).

Pages: ``api-reference/crm/deals/contacts/crm-deal-contact-*.md``. The bindings are the deal's
own ``contactIds`` (in ``SORT`` order) and ``contactId`` (the primary one; 0 when there is
none), so ``crm.item.get`` and ``crm.deal.get`` show what these methods set; the ``SORT`` a
binding was given is kept beside (default ``(i + 1) * 10``). A binding change does not stamp
the deal's ``DATE_MODIFY`` **[choice]**; contact ids are not checked to exist **[choice]**.
"""

from __future__ import annotations

from typing import Any

from ._entities import DEAL, materialize, to_row
from ._methods_core import ApiError, Context, Result, method
from ._reference import CrmReference

__all__: list[str] = []


def _ref(ctx: Context) -> CrmReference:
    return ctx.store.reference  # type: ignore[no-any-return]


def _deal(ctx: Context, params: dict[str, Any], *, quoted: bool, not_found: str = "Not found.") -> tuple[int, dict[str, Any]]:
    try:
        id_ = int(str(params.get("id", params.get("ID"))))
    except ValueError:
        id_ = 0
    if id_ < 1:
        name = "'ownerEntityID'" if quoted else "ownerEntityID"
        raise ApiError(400, "", f"The parameter {name} is invalid or not defined.")
    row = ctx.store.tables["deal"].get(id_)
    if row is None:
        raise ApiError(400, "", not_found)
    return id_, materialize(DEAL, row)


def _bindings(ctx: Context, id_: int, rec: dict[str, Any]) -> list[dict[str, Any]]:
    sorts = _ref(ctx).contact_sorts.get(id_, {})
    ids = list(rec.get("contactIds") or [])
    primary = rec.get("contactId") if rec.get("contactId") in ids else (ids[0] if ids else None)
    return [{"CONTACT_ID": c, "SORT": sorts.get(c, (i + 1) * 10), "ROLE_ID": 0,
             "IS_PRIMARY": "Y" if c == primary else "N"} for i, c in enumerate(ids)]


def _save(ctx: Context, id_: int, rec: dict[str, Any], bindings: list[dict[str, Any]]) -> None:
    """Write the bindings into the deal: ids by sort, the primary (else the first) as ``contactId``."""
    bindings = sorted(bindings, key=lambda b: b["SORT"])
    primary = next((b["CONTACT_ID"] for b in bindings if b["IS_PRIMARY"] == "Y"),
                   bindings[0]["CONTACT_ID"] if bindings else 0)
    rec["contactIds"] = [b["CONTACT_ID"] for b in bindings]
    rec["contactId"] = primary
    ctx.store.put("deal", id_, to_row(DEAL, rec))
    _ref(ctx).contact_sorts[id_] = {b["CONTACT_ID"]: b["SORT"] for b in bindings}


def _contact_id(fields: Any) -> int:
    try:
        contact = int(str(fields.get("CONTACT_ID")))
    except (ValueError, AttributeError):
        contact = 0
    if contact <= 0:
        raise ApiError(400, "", "The parameter 'fields' is not valid.")
    return contact


@method("crm.deal.contact.fields", "crm")
def deal_contact_fields(ctx: Context, params: dict[str, Any]) -> Result:
    """The fields of a binding."""
    spec = (("SORT", "integer", False, "Sorting"), ("IS_PRIMARY", "char", False, "Primary"),
            ("CONTACT_ID", "integer", True, "Contact"))
    return Result({n: {"type": t, "isRequired": req, "isReadOnly": False, "isImmutable": False,
                       "isMultiple": False, "isDynamic": False, "title": title} for n, t, req, title in spec})


@method("crm.deal.contact.items.get", "crm")
def deal_contact_items_get(ctx: Context, params: dict[str, Any]) -> Result:
    """The bindings in ``SORT`` order: ``[{CONTACT_ID, SORT, ROLE_ID, IS_PRIMARY}]``."""
    id_, rec = _deal(ctx, params, quoted=False)
    return Result(_bindings(ctx, id_, rec))


@method("crm.deal.contact.items.set", "crm", writes=True)
def deal_contact_items_set(ctx: Context, params: dict[str, Any]) -> Result:
    """Replace the bindings; the first ``IS_PRIMARY: Y`` (else the first item) is the primary."""
    id_, rec = _deal(ctx, params, quoted=False)
    items = params.get("items")
    if isinstance(items, dict):
        items = list(items.values())
    if not isinstance(items, list):
        raise ApiError(400, "", "The parameter items must be array.")
    bindings: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        contact = _contact_id(item if isinstance(item, dict) else {})
        if any(b["CONTACT_ID"] == contact for b in bindings):
            continue
        bindings.append({"CONTACT_ID": contact, "SORT": int(item.get("SORT") or (i + 1) * 10),
                         "IS_PRIMARY": "Y" if str(item.get("IS_PRIMARY", "N")).upper() == "Y" else "N"})
    first = next((b for b in bindings if b["IS_PRIMARY"] == "Y"), bindings[0] if bindings else None)
    for b in bindings:
        b["IS_PRIMARY"] = "Y" if b is first else "N"
    _save(ctx, id_, rec, bindings)
    return Result(True, wrote=True)


@method("crm.deal.contact.items.delete", "crm", writes=True)
def deal_contact_items_delete(ctx: Context, params: dict[str, Any]) -> Result:
    """Remove every binding."""
    id_, rec = _deal(ctx, params, quoted=False, not_found="Not found")
    _save(ctx, id_, rec, [])
    return Result(True, wrote=True)


@method("crm.deal.contact.add", "crm", writes=True)
def deal_contact_add(ctx: Context, params: dict[str, Any]) -> Result:
    """Add one binding (primary when asked, or when the deal has none)."""
    id_, rec = _deal(ctx, params, quoted=True)
    fields = params.get("fields")
    if not isinstance(fields, dict):
        raise ApiError(400, "", "The parameter 'fields' must be array.")
    contact = _contact_id(fields)
    bindings = [b for b in _bindings(ctx, id_, rec) if b["CONTACT_ID"] != contact]
    primary = str(fields.get("IS_PRIMARY", "")).upper() == "Y" or not bindings
    if primary:
        for b in bindings:
            b["IS_PRIMARY"] = "N"
    last = max((b["SORT"] for b in bindings), default=0)
    bindings.append({"CONTACT_ID": contact, "SORT": int(fields.get("SORT") or last + 10),
                     "IS_PRIMARY": "Y" if primary else "N"})
    _save(ctx, id_, rec, bindings)
    return Result(True, wrote=True)


@method("crm.deal.contact.delete", "crm", writes=True)
def deal_contact_delete(ctx: Context, params: dict[str, Any]) -> Result:
    """Remove one binding; when it was the primary, the first left becomes the primary."""
    id_, rec = _deal(ctx, params, quoted=True)
    fields = params.get("fields")
    if not isinstance(fields, dict):
        raise ApiError(400, "", "The parameter 'item' must be array.")
    contact = _contact_id(fields)
    bindings = [b for b in _bindings(ctx, id_, rec) if b["CONTACT_ID"] != contact]
    if bindings and not any(b["IS_PRIMARY"] == "Y" for b in bindings):
        bindings[0]["IS_PRIMARY"] = "Y"
    _save(ctx, id_, rec, bindings)
    return Result(True, wrote=True)
