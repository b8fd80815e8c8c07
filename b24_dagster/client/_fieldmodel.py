"""The portal's field model of one entity, read from its ``*.fields`` answer.

Every answer of ``crm.<entity>.fields`` and ``crm.item.fields`` describes each field with
``type``, ``isRequired``, ``isReadOnly``, ``isImmutable``, ``isMultiple`` and ``title`` (the
crm-*-fields.md pages), user fields included (``isDynamic``; an ``enumeration`` lists its
``items``; a ``crm_status`` field names its directory in ``statusType``). From it:

* :meth:`EntityFields.check_mapping` says what is wrong with the fields a sync means to write
  (unknown, with the nearest names; read-only; immutable on update; required but not given);
* :func:`comparable` turns a value, as the source gives it or as the portal answers it, into one
  normal form per type, so that "equal" means what the portal means: ``"5"`` and ``5`` for an
  id, ``"Y"`` and ``True`` for a flag, ``"100.00"`` and ``100`` for money, one instant for two
  spellings of a date and time. Multi-fields are compared in :mod:`._multifield`.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["EntityFields", "PortalField", "comparable", "empty"]

_INT_TYPES = {"integer", "int", "user", "employee", "crm_lead", "crm_company", "crm_contact", "crm_deal",
              "crm_quote", "crm_category", "crm_entity", "location", "iblock_element", "iblock_section",
              "enumeration", "file", "group"}  # fmt: skip
_NUMBER_TYPES = {"double", "float", "money", "number"}
_FLAG_TYPES = {"char", "boolean", "bool"}
_TRUE = {"y", "1", "true", "yes"}
_FALSE = {"n", "0", "false", "no", ""}
#: A contact needs one of its names, although crm-contact-fields.md marks all three required
#: (the portal's error: 'The field "First name" or "Last name" is required.').
_ONE_OF = {"crm.contact": (("NAME", "SECOND_NAME", "LAST_NAME"), ("name", "secondName", "lastName"))}


@dataclass(frozen=True)
class PortalField:
    """One field as ``*.fields`` describes it."""

    name: str
    type: str
    title: str = ""
    required: bool = False
    read_only: bool = False
    immutable: bool = False
    multiple: bool = False
    status_type: str | None = None
    items: Mapping[str, str] = field(default_factory=dict)
    """An enumeration's items: id -> text."""

    @classmethod
    def from_description(cls, name: str, d: Mapping[str, Any]) -> PortalField:
        """A field from its entry in a ``*.fields`` answer."""
        items = {str(i.get("ID")): str(i.get("VALUE")) for i in d.get("items") or [] if isinstance(i, Mapping)}
        return cls(name=name, type=str(d.get("type", "string")), title=str(d.get("title") or d.get("formLabel") or name),
                   required=bool(d.get("isRequired")), read_only=bool(d.get("isReadOnly")),
                   immutable=bool(d.get("isImmutable")), multiple=bool(d.get("isMultiple")),
                   status_type=d.get("statusType"), items=items)  # fmt: skip

    @property
    def multifield(self) -> bool:
        """A phone/e-mail/website/messenger field (``crm_multifield``)."""
        return self.type == "crm_multifield"


class EntityFields:
    """The fields of one entity (see the module docstring).

    Args:
        fields: The answer's ``{name: description}`` (``result`` of ``crm.<entity>.fields``, or
            ``result.fields`` of ``crm.item.fields``; both accepted).
        entity: The method prefix, for messages and entity rules (``crm.contact``).
    """

    def __init__(self, answer: Mapping[str, Any], entity: str = "") -> None:
        raw = answer.get("fields") if isinstance(answer.get("fields"), Mapping) else answer
        self.entity = entity
        self.fields: dict[str, PortalField] = {}
        self._aliases: dict[str, str] = {}
        for name, d in (raw or {}).items():
            if isinstance(d, Mapping):
                self.fields[str(name)] = PortalField.from_description(str(name), d)
                if isinstance(d.get("upperName"), str):
                    self._aliases[d["upperName"]] = str(name)

    def __contains__(self, name: object) -> bool:
        return self.get(str(name)) is not None

    def get(self, name: str) -> PortalField | None:
        """The field called ``name`` (crm.item also answers to its ``upperName``)."""
        found = self.fields.get(name)
        if found is None and name in self._aliases:
            found = self.fields[self._aliases[name]]
        return found

    def nearest(self, name: str, n: int = 3) -> list[str]:
        """The known names closest to ``name`` (case and underscores ignored)."""
        def folded(s: str) -> str:
            return s.replace("_", "").lower()
        by_fold = {folded(k): k for k in [*self.fields, *self._aliases]}
        close = difflib.get_close_matches(folded(name), list(by_fold), n=n, cutoff=0.6)
        return [by_fold[c] for c in close]

    def check_mapping(self, targets: Iterable[str], *, creates: bool, updates: bool,
                      given: Iterable[str] = ()) -> list[str]:  # fmt: skip
        """What is wrong with writing ``targets``: one sentence a problem, empty when none.

        Args:
            targets: The fields the rows carry.
            creates: Rows may be created (required fields must be among ``targets``/``given``).
            updates: Rows may be updated (immutable fields are refused).
            given: Fields set otherwise (constant params, the key the sync fills in).
        """
        problems: list[str] = []
        targets = list(targets)
        for name in targets:
            f = self.get(name)
            if f is None:
                near = self.nearest(name)
                hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
                problems.append(f"{name!r} is not a field of {self.entity}{hint} (the portal ignores unknown "
                                "fields, so it would be dropped in silence)")  # fmt: skip
            elif f.read_only:
                problems.append(f"{name!r} ({f.title}) is read-only on {self.entity}: the portal sets it")
            elif f.immutable and updates:
                problems.append(f"{name!r} ({f.title}) is immutable on {self.entity}: it is set on create and an "
                                "update cannot change it")  # fmt: skip
        if creates:
            problems.extend(self._missing_required({*targets, *given}))
        return problems

    def _missing_required(self, present: set[str]) -> list[str]:
        canonical = {f.name for n in present if (f := self.get(n)) is not None}
        groups = [set(g) for g in _ONE_OF.get(self.entity, ()) if set(g) & set(self.fields)]
        out = []
        for f in self.fields.values():
            if not f.required or f.read_only or f.name in canonical:
                continue
            group = next((g for g in groups if f.name in g), None)
            if group is not None:
                if not group & canonical and f.name == min(group & set(self.fields)):
                    out.append(f"{self.entity} needs one of {sorted(group & set(self.fields))} on create; the rows "
                               "carry none")  # fmt: skip
                continue
            out.append(f"{f.name!r} ({f.title}) is required on create and the rows do not carry it")
        return out

    def required_missing_in(self, row: Mapping[str, Any], mapped: Iterable[str] = ()) -> str | None:
        """Why a row to create lacks a required value (a field it maps, in `mapped` or its own
        keys, but leaves empty)."""
        for name in dict.fromkeys([*mapped, *row]):
            value = row.get(name)
            f = self.get(name)
            if f is None or not f.required or not empty(value):
                continue
            group = next((set(g) for g in _ONE_OF.get(self.entity, ()) if f.name in g), None)
            if group is not None:
                if all(empty(row.get(n)) for n in group):
                    return f"one of {sorted(group & set(row))} must have a value on create"
                continue
            return f"{name} ({f.title}) is required on create and is empty"
        return None


def empty(value: Any) -> bool:
    """None, an empty string, an empty list or mapping: the portal keeps no value."""
    return value is None or (isinstance(value, str | list | dict | tuple) and len(value) == 0)


def comparable(f: PortalField | None, value: Any) -> Any:
    """One normal form of ``value`` for field ``f`` (see the module docstring); None for empty.

    A multiple field compares as the sorted list of its items' forms (order does not matter);
    an unknown type compares as stripped text.
    """
    if empty(value):
        return None
    if f is not None and f.multiple and not f.multifield:
        items = value if isinstance(value, list | tuple) else list(value.values()) if isinstance(value, dict) else [value]
        single = PortalField(f.name, f.type, items=f.items)
        forms = [comparable(single, v) for v in items]
        return sorted((v for v in forms if v is not None), key=repr) or None
    kind = f.type if f is not None else ""
    if kind in _INT_TYPES:
        return _int_form(value, f)
    if kind in _NUMBER_TYPES:
        return _number_form(value)
    if kind in _FLAG_TYPES:
        text = str(value).strip().lower() if not isinstance(value, bool) else ("y" if value else "n")
        return True if text in _TRUE else False if text in _FALSE else text
    if kind == "date":
        return _date_form(value)
    if kind == "datetime":
        return _datetime_form(value)
    if isinstance(value, dict | list):
        return repr(value)
    return str(value).strip() or None


def _int_form(value: Any, f: PortalField | None) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit() and text.isascii():
        return int(text)
    if f is not None and f.items:  # an enumeration given by its text
        for item_id, item_text in f.items.items():
            if item_text == text and item_id.isdigit():
                return int(item_id)
    return text


def _number_form(value: Any) -> Any:
    text = str(value).strip()
    amount, _, currency = text.partition("|")  # money: "100.50|USD"
    try:
        number = Decimal(amount)
    except InvalidOperation:
        return text
    number = number.normalize() if number else Decimal(0)
    return (number, currency.upper()) if currency else number


def _date_form(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = str(value).strip()
    return text[:10] if len(text) >= 10 and text[4] == "-" else text


def _datetime_form(value: Any) -> Any:
    when = value
    if not isinstance(when, dt.datetime):
        try:
            when = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            return str(value).strip()
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())
