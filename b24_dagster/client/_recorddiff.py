"""What an update must send so that a record holds a row's values, field by field.

:func:`diff_record` compares each field a row writes with the record as the portal answers it
(a list or get row), in the portal's own meaning of the field (:mod:`._fieldmodel`,
:mod:`._multifield`), and returns the ``fields`` of the update that makes them equal, with one
:class:`FieldChange` per field it changes (old and new value, for the changelog). A field the
row leaves empty is cleared when the record holds a value: a cleared field is a change. Equal
records give no fields at all: no write.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._fieldmodel import EntityFields, PortalField, comparable, empty
from ._multifield import (
    MultiValueMode,
    diff_values,
    item_fm_payload,
    legacy_payload,
    portal_values,
    source_values,
)

__all__ = ["FieldChange", "RecordDiff", "diff_record", "display"]

_FM_TYPES = ("PHONE", "EMAIL", "WEB", "IM", "LINK")


@dataclass(frozen=True)
class FieldChange:
    """One field an update changes: its name, the value it held and the value sent."""

    field: str
    old: Any
    new: Any


@dataclass
class RecordDiff:
    """The update's ``fields`` (empty: the record already holds the row) and its changes."""

    fields: dict[str, Any]
    changes: list[FieldChange]


def diff_record(row: Mapping[str, Any], record: Mapping[str, Any], model: EntityFields,
                *, multi_value: MultiValueMode = "replace", skip: Sequence[str] = ()) -> RecordDiff:  # fmt: skip
    """The update that makes ``record`` hold ``row`` (see the module docstring).

    Args:
        row: The fields the row writes (a mapped field left empty is in it as None).
        record: The record as the portal lists it (legacy or crm.item names, as ``model``).
        model: The entity's fields.
        multi_value: ``replace`` (the record ends with exactly the row's values) or ``append``.
        skip: Fields never compared (the key the record was found by).
    """
    out = RecordDiff({}, [])
    for name, value in row.items():
        if name in skip:
            continue
        f = model.get(name)
        held = record.get(f.name if f is not None else name, record.get(name))
        if f is not None and f.multifield:
            _diff_multifield(out, name, f, value, held, multi_value)
            continue
        if f is not None and f.multiple and multi_value == "append" and not empty(value):
            value = _union(f, value, held)
        if comparable(f, value) == comparable(f, held):
            continue
        sent = value
        if empty(value):  # clear it, the way an empty form field clears it
            sent = [] if f is not None and f.multiple else ""
        out.fields[name] = sent
        out.changes.append(FieldChange(name, None if empty(held) else held, None if empty(value) else value))
    return out


def _union(f: PortalField, value: Any, held: Any) -> list[Any]:
    """The record's values plus the row's that it lacks (a multiple user field, append)."""
    mine = list(value) if isinstance(value, list | tuple) else [value]
    theirs = list(held) if isinstance(held, list | tuple) else [] if empty(held) else [held]
    known = {repr(comparable(PortalField(f.name, f.type, items=f.items), v)) for v in theirs}
    return theirs + [v for v in mine if repr(comparable(PortalField(f.name, f.type, items=f.items), v)) not in known]


def _diff_multifield(out: RecordDiff, name: str, f: PortalField, value: Any, held: Any,
                     mode: MultiValueMode) -> None:  # fmt: skip
    if f.name == "fm":  # crm.item: one list of every type, written as an object of operations
        ops = []
        for typ in _FM_TYPES:
            mine = [v for v in source_values(typ, value) if v.type_id == typ]
            ops.extend(diff_values(mine, portal_values(typ, held), mode))
        payload: Any = item_fm_payload(ops)
    else:
        ops = diff_values(source_values(f.name, value), portal_values(f.name, held), mode)
        payload = legacy_payload(ops)
    if not ops:
        return
    out.fields[name] = payload
    old = [v.value for v in portal_values(f.name, held)] if f.name != "fm" else _fm_texts(held)
    new = [v.value for v in source_values(f.name, value)] if f.name != "fm" else _fm_texts(value)
    out.changes.append(FieldChange(name, old or None, new or None))


def _fm_texts(raw: Any) -> list[str]:
    return [f"{v.type_id}:{v.value}" for typ in _FM_TYPES for v in portal_values(typ, raw)]


def display(value: Any) -> str | None:
    """A value as changelog text: None stays None, text as it is, anything else as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
