"""``crm.duplicate.findbycomm``: the leads, contacts and companies that hold given phones or e-mails.

Follows ``api-reference/crm/duplicates/crm-duplicate-find-by-comm.md`` and the tutorial
``tutorials/crm/how-to-get-lists/search-by-phone-and-email.md``:

* ``type`` is ``EMAIL`` or ``PHONE``; ``values`` an array of at most 20 values; ``entity_type``
  one of ``LEAD``, ``CONTACT``, ``COMPANY`` (none: all three, in that order).
* The answer holds only the types where something was found: ``{"LEAD": [1], "CONTACT": [3]}``;
  nothing found at all is ``[]`` (an empty PHP array), not an object.
* "If 20 or more duplicates are found for one object, the other types are not returned": for
  each value the types are searched in order and the search stops at a type with 20 matches
  (at most 20 ids of a type are taken per value).
* A phone is compared "as a whole, ignoring only the extension": the digits of the number,
  its formatting (spaces, dashes, brackets, ``+``) and an extension (``ext. 12``, ``#12``) left
  out. An e-mail is compared case-insensitively **[choice]**.
* The page says at most 20 values and names no error for more: values after the 20th distinct
  one are not searched **[choice]**; values that are not strings are skipped (the page types
  them ``string[]``).
"""

from __future__ import annotations

import re
from typing import Any

from ._entities import ENTITY_BY_NAME
from ._methods_core import ApiError, Context, Result, method

__all__ = ["normalize"]

#: Types searched when ``entity_type`` is not given, in the order the page gives them.
_TYPES = ("LEAD", "CONTACT", "COMPANY")
#: The page's limit, both on ``values`` and on the matches of one type.
_LIMIT = 20
_EXTENSION = re.compile(r"\s*(?:ext\.?|x|#|;ext=|доб\.?)\s*\d+\s*$", re.IGNORECASE)
_NOT_DIGIT = re.compile(r"\D", re.ASCII)
# Anything but digits and formatting may start an extension (checked first: it is rare).
_EXTENSION_HINT = re.compile(r"[^\d\s()+\-.]", re.ASCII)


def normalize(comm_type: str, value: str) -> str:
    """The form two values of ``comm_type`` are compared in (digits of a phone, lower-case e-mail)."""
    if comm_type == "EMAIL":
        return value.strip().lower()
    if _EXTENSION_HINT.search(value):
        value = _EXTENSION.sub("", value)
    return _NOT_DIGIT.sub("", value)


def _fail(error: str, description: str) -> ApiError:
    # The page's error body carries the message as the code and a sentence as the description.
    return ApiError(400, error, description)


def _comm_type(params: dict[str, Any]) -> str:
    comm_type = str(params.get("type", params.get("TYPE")) or "").strip().upper()
    if comm_type == "":
        raise _fail("Communication type is not defined", "Parameter 'type' is required.")
    if comm_type not in ("EMAIL", "PHONE"):
        raise _fail(f"Communication type '{comm_type}' is not supported in current context",
                    "Parameter 'type' must be EMAIL or PHONE.")
    return comm_type


def _wanted(params: dict[str, Any], comm_type: str) -> list[str]:
    """The distinct normalized values to search, at most 20, in the order given."""
    values = params.get("values", params.get("VALUES"))
    if isinstance(values, dict):
        values = list(values.values())
    if not isinstance(values, list) or not values:
        raise _fail("Communication values is not defined", "Parameter 'values' is required.")
    wanted: list[str] = []
    for value in values:
        if not isinstance(value, str) or value == "":
            continue
        norm = normalize(comm_type, value)
        if norm and norm not in wanted:
            wanted.append(norm)
            if len(wanted) >= _LIMIT:
                break
    return wanted


def _entity_types(params: dict[str, Any]) -> tuple[str, ...]:
    name = next((params[k] for k in ("entity_type", "ENTITY_TYPE", "entityType") if k in params), "")
    name = str(name or "").strip().upper()
    if name == "DEAL":
        raise _fail("Deal is not supported in current context",
                    "Parameter 'entity_type' must be LEAD, CONTACT or COMPANY.")
    return (name,) if name in _TYPES else _TYPES


def _matches(ctx: Context, type_name: str, comm_type: str, wanted: set[str]) -> dict[str, list[int]]:
    """Ids (ascending) of the records of one type holding each wanted value."""
    entity = ENTITY_BY_NAME[type_name.lower()]
    slot = entity.by_camel["fm"].slot
    found: dict[str, list[int]] = {}
    for id_, row in ctx.store.tables[entity.name].iter_from():
        for _mid, typ, _vtype, value in row[slot] or ():
            if typ != comm_type:
                continue
            norm = normalize(comm_type, value)
            if norm in wanted:
                ids = found.setdefault(norm, [])
                if not ids or ids[-1] != id_:
                    ids.append(id_)
    return found


@method("crm.duplicate.findbycomm", "crm")
def crm_duplicate_findbycomm(ctx: Context, params: dict[str, Any]) -> Result:
    """Ids by type (``{"LEAD": [...], ...}``) of the records holding the values; ``[]`` when none."""
    comm_type = _comm_type(params)
    wanted = _wanted(params, comm_type)
    types = _entity_types(params)
    by_type = {t: _matches(ctx, t, comm_type, set(wanted)) for t in types}
    out: dict[str, list[int]] = {}
    for norm in wanted:
        for type_name in types:
            ids = by_type[type_name].get(norm, [])[:_LIMIT]
            if ids:
                kept = out.setdefault(type_name, [])
                kept.extend(i for i in ids if i not in kept)
            if len(ids) >= _LIMIT:
                break
    return Result(out if out else [])
