"""Writes of the CRM multi-fields (phones, e-mails, websites, messengers), as the pages say.

A record holds its values as ``(id, TYPE_ID, VALUE_TYPE, VALUE)`` tuples; each value gets its
own id from the portal, and a value is changed or removed only by that id (the portal never
matches by text). Two request forms:

* legacy ``crm.{lead,contact,company}.add/update``: ``PHONE``/``EMAIL``/``WEB``/``IM`` arrays
  (crm-contact-update.md, "Working with Multiple Fields"): an element with ``ID`` and a
  ``VALUE`` changes that value in place (``VALUE_TYPE`` too when given); ``ID`` with
  ``DELETE: "Y"``, with an empty ``VALUE`` or with nothing else deletes it; an element
  without ``ID`` is added. Values not named are left as they are.
* ``crm.item.add/update``: ``fm`` (tutorial how-to-change-email-or-phone.md): on add an array
  of ``{typeId, valueType, value}``; on update an object whose key decides the operation:
  ``n0``, ``n1``, ... add, a value's numeric id with a new ``value`` changes it, with an empty
  ``value`` deletes it. ``typeId`` is required in every element, deletion included: without it
  the call succeeds and nothing changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["TYPES", "apply_multifields"]

TYPES = ("PHONE", "EMAIL", "WEB", "IM")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NEW_KEY = re.compile(r"n\d+")

Fail = Callable[[str], Exception]


def apply_multifields(fields: dict[str, Any], item: bool, old: list[Any], next_id: Callable[[], int],
                      fail: Fail) -> list[Any] | None:
    """The record's values after ``fields`` are applied to ``old``; None when ``fields`` names
    no multi-field. ``fail(message)`` makes the portal's error for a value it refuses."""
    ops = _operations(fields, item)
    if ops is None:
        return None
    kept = list(old)
    for typ, mid, v in ops:
        if typ not in TYPES:
            raise fail(f"Unknown multi-field type '{typ}'")
        value = v.get("value", v.get("VALUE"))
        deleting = str(v.get("DELETE", "")).upper() == "Y" or value in (None, "")
        if mid is not None:
            at = next((i for i, m in enumerate(kept) if m[0] == mid), None)
            if at is not None:
                if deleting:
                    del kept[at]
                    continue
                vtype = v.get("valueType", v.get("VALUE_TYPE")) or kept[at][2]
                kept[at] = (mid, kept[at][1], str(vtype).upper(), _checked(typ, value, fail))
                continue
        if deleting:
            continue  # nothing to delete, or an empty new value
        vtype = str(v.get("valueType", v.get("VALUE_TYPE")) or "WORK").upper()
        kept.append((next_id(), typ, vtype, _checked(typ, value, fail)))
    return kept


def _operations(fields: dict[str, Any], item: bool) -> list[tuple[str, int | None, dict[str, Any]]] | None:
    """(TYPE_ID, value id or None, element) of each element the fields carry, in order."""
    ops: list[tuple[str, int | None, dict[str, Any]]] = []
    present = False
    if item and "fm" in fields:
        present = True
        raw = fields["fm"]
        if isinstance(raw, dict):   # the update form: the key decides the operation
            for key, v in raw.items():
                if not isinstance(v, dict) or not v.get("typeId"):
                    continue   # the tutorial: no typeId, no operation (and no error)
                mid = _id(key) if not _NEW_KEY.fullmatch(str(key)) else None
                ops.append((str(v["typeId"]).upper(), mid, v))
        else:
            for v in raw if isinstance(raw, list) else [raw]:
                if isinstance(v, dict):
                    ops.append((str(v.get("typeId", "")).upper(), _id(v.get("id")), v))
    for typ in TYPES:   # crm-lead-add.md sends WEB too
        key = typ if typ in fields else typ.lower() if item and typ.lower() in fields else None
        if key is None:
            continue
        present = True
        for v in _values(fields[key]):
            element = v if isinstance(v, dict) else {"VALUE": v}
            ops.append((typ, _id(element.get("ID", element.get("id"))), element))
    return ops if present else None


def _id(value: Any) -> int | None:
    text = str(value) if value is not None else ""
    return int(text) if text.isascii() and text.lstrip("-").isdigit() else None


def _values(v: Any) -> list[Any]:
    if isinstance(v, list):
        return v
    if isinstance(v, dict):
        return list(v.values()) if all(str(k).isascii() and str(k).isdigit() for k in v) else [v]
    return [v]


def _checked(typ: str, value: Any, fail: Fail) -> str:
    text = str(value).strip()
    if typ == "EMAIL" and not _EMAIL.match(text):
        raise fail(f"E-mail address '{text}' is invalid.")
    if typ == "PHONE" and not re.search(r"\d", text):
        raise fail(f"Phone number '{text}' is invalid.")
    return text
