"""Multi-fields written exactly: the change that leaves a record with the source's values.

Phones, e-mails, websites and messengers are lists of values, each with an id the portal gives
it; a value is changed or removed only by that id, and a value sent without one is added
(crm-contact-update.md, "Working with Multiple Fields"; the tutorial
how-to-change-email-or-phone.md for ``crm.item``'s ``fm``). So an update that sends the new
list as it is appends to what the record holds. :func:`diff_values` computes the operations
that replace it instead:

1. values equal in normal form (phones by their digits, e-mails and websites without case)
   stay as they are, unless the source names another ``VALUE_TYPE``;
2. the other source values take the ids of the other portal values in order (a changed value
   keeps its id with the new ``VALUE``);
3. portal values left over are deleted; source values left over are added.

``mode="append"`` only adds the source values the record lacks (the behaviour of a plain
update). Order does not matter: two lists with the same values in another order are equal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["MultiOp", "MultiValue", "MultiValueMode", "diff_values", "item_fm_payload", "legacy_payload",
           "normal_form", "portal_values", "source_values"]

MultiValueMode = Literal["replace", "append"]
_DEFAULT_VALUE_TYPE = "WORK"


@dataclass(frozen=True)
class MultiValue:
    """One value: its portal id (None for a source value), ``VALUE_TYPE`` (None: any), text."""

    type_id: str
    value: str
    value_type: str | None = None
    id: int | None = None

    @property
    def normal(self) -> str:
        """The value in normal form (see :func:`normal_form`)."""
        return normal_form(self.type_id, self.value)


@dataclass(frozen=True)
class MultiOp:
    """One operation: ``add`` (no id), ``change`` (id, new value and type) or ``delete`` (id)."""

    op: Literal["add", "change", "delete"]
    type_id: str
    id: int | None = None
    value: str | None = None
    value_type: str | None = None


def normal_form(type_id: str, value: str) -> str:
    """Phones by their digits; e-mails, websites and messengers stripped and without case."""
    text = str(value).strip()
    if type_id == "PHONE":
        return re.sub(r"\D", "", text)
    if type_id == "WEB":
        text = re.sub(r"^https?://", "", text, flags=re.IGNORECASE).rstrip("/")
    return text.lower()


def source_values(type_id: str, raw: Any) -> list[MultiValue]:
    """The source's values of one type: a string, a list of strings, or ``{VALUE, VALUE_TYPE}``
    (or ``value``/``valueType``) mappings; empty strings and None are no value."""
    items = raw if isinstance(raw, list | tuple) else [] if raw is None else [raw]
    out = []
    for item in items:
        if isinstance(item, Mapping):
            value = item.get("VALUE", item.get("value"))
            vtype = item.get("VALUE_TYPE", item.get("valueType"))
            typ = str(item.get("TYPE_ID", item.get("typeId")) or type_id).upper()
        else:
            value, vtype, typ = item, None, type_id
        if value is None or str(value).strip() == "":
            continue
        out.append(MultiValue(typ, str(value), str(vtype).upper() if vtype else None))
    return out


def portal_values(type_id: str, raw: Any) -> list[MultiValue]:
    """The values a record holds, from a legacy answer's ``PHONE`` list (``ID``, ``VALUE``,
    ``VALUE_TYPE``) or a ``crm.item`` answer's ``fm`` list (``id``, ``typeId``, ...), of one type."""
    out = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping):
            continue
        typ = str(item.get("TYPE_ID", item.get("typeId")) or type_id).upper()
        if typ != type_id:
            continue
        mid = item.get("ID", item.get("id"))
        out.append(MultiValue(typ, str(item.get("VALUE", item.get("value")) or ""),
                              item.get("VALUE_TYPE", item.get("valueType")), int(mid) if mid is not None else None))
    return out


def diff_values(source: Sequence[MultiValue], portal: Sequence[MultiValue],
                mode: MultiValueMode = "replace") -> list[MultiOp]:  # fmt: skip
    """The operations that make ``portal`` hold ``source`` (see the module docstring)."""
    left = list(portal)
    ops: list[MultiOp] = []
    unmatched: list[MultiValue] = []
    for value in source:
        at = next((i for i, p in enumerate(left) if p.normal == value.normal), None)
        if at is None:
            unmatched.append(value)
            continue
        held = left.pop(at)
        if value.value_type and held.value_type and value.value_type != held.value_type and mode == "replace":
            ops.append(MultiOp("change", value.type_id, held.id, value.value, value.value_type))
    if mode == "append":
        return [MultiOp("add", v.type_id, value=v.value, value_type=v.value_type or _DEFAULT_VALUE_TYPE)
                for v in unmatched]  # fmt: skip
    for value in unmatched:
        if left:
            held = left.pop(0)
            ops.append(MultiOp("change", value.type_id, held.id, value.value, value.value_type or held.value_type))
        else:
            ops.append(MultiOp("add", value.type_id, value=value.value,
                               value_type=value.value_type or _DEFAULT_VALUE_TYPE))
    ops.extend(MultiOp("delete", held.type_id, held.id) for held in left)
    return ops


def legacy_payload(ops: Sequence[MultiOp]) -> list[dict[str, Any]]:
    """The operations as a legacy ``PHONE``/``EMAIL``/... list (crm-contact-update.md)."""
    out: list[dict[str, Any]] = []
    for op in ops:
        if op.op == "delete":
            out.append({"ID": op.id, "DELETE": "Y"})
        elif op.op == "change":
            out.append({"ID": op.id, "VALUE": op.value, **({"VALUE_TYPE": op.value_type} if op.value_type else {})})
        else:
            out.append({"VALUE": op.value, "VALUE_TYPE": op.value_type or _DEFAULT_VALUE_TYPE})
    return out


def item_fm_payload(ops: Sequence[MultiOp]) -> dict[str, dict[str, Any]]:
    """The operations as ``crm.item.update``'s ``fm`` object: a value's id changes or (empty
    ``value``) deletes it, ``n0``, ``n1``... add; ``typeId`` in every element (the tutorial)."""
    out: dict[str, dict[str, Any]] = {}
    added = 0
    for op in ops:
        if op.op == "delete":
            out[str(op.id)] = {"typeId": op.type_id, "value": ""}
        elif op.op == "change":
            out[str(op.id)] = {"typeId": op.type_id, "value": op.value,
                               **({"valueType": op.value_type} if op.value_type else {})}
        else:
            out[f"n{added}"] = {"typeId": op.type_id, "valueType": op.value_type or _DEFAULT_VALUE_TYPE,
                                "value": op.value}
            added += 1
    return out
