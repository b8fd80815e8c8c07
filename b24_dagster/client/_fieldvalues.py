"""Each value a row writes, checked (and where the portal means it, converted) by its field's type.

A row that would be refused, or worse, accepted with another meaning, is stopped with its reason
before any request: an enumeration item that does not exist (given by id or by its text, which
becomes the id), a ``crm_status`` value its directory lacks (``crm.status.list``), a user the
portal does not have, a CRM link that is not a positive id, a flag that is not Y/N, a number or
date that does not parse, a ``crm.item`` multi-field value without its ``typeId``.

The directories and users come from the portal once per run (:func:`reference_calls` names the
reads; :class:`References` holds the answers).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ._fieldmodel import EntityFields, PortalField, empty

__all__ = ["References", "check_row", "reference_calls", "status_directory"]

_LINK_TYPES = {"crm_lead", "crm_company", "crm_contact", "crm_deal", "crm_quote", "crm_category"}
_USER_TYPES = {"user", "employee"}
_INT_TYPES = {"integer", "int"}
_NUMBER_TYPES = {"double", "float", "number"}
_FLAGS = {"y": "Y", "n": "N", "1": "Y", "0": "N", "true": "Y", "false": "N", "yes": "Y", "no": "N"}
_STAGE_OF_CATEGORY = re.compile(r"C(\d+):")
_DOTTED_DATE = re.compile(r"(\d{2})\.(\d{2})\.(\d{4})")


@dataclass
class References:
    """What the portal holds that values point at: directory -> status ids, and user ids."""

    statuses: dict[str, set[str]] = field(default_factory=dict)
    users: set[int] | None = None


def status_directory(f: PortalField, value: Any, entity: str) -> str | None:
    """The ``crm.status`` directory a value of ``f`` belongs to (a deal's stage of pipeline N is in
    ``DEAL_STAGE_N``: crm-deal-fields.md); None when the field names none."""
    if f.status_type is None:
        return None
    if f.status_type == "DEAL_STAGE" and isinstance(value, str) and (m := _STAGE_OF_CATEGORY.match(value)):
        return f"DEAL_STAGE_{m.group(1)}"
    return str(f.status_type)


def reference_calls(model: EntityFields, rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The reads that :class:`References` needs for these rows: one ``crm.status.list`` per
    directory their status values fall in, and ``user.get`` of the users they name."""
    directories: set[str] = set()
    users: set[int] = set()
    for row in rows:
        for name, value in row.items():
            f = model.get(name)
            if f is None or empty(value):
                continue
            values = value if isinstance(value, list) else [value]
            if f.type == "crm_status":
                directories.update(d for v in values if (d := status_directory(f, v, model.entity)))
            elif f.type in _USER_TYPES:
                users.update(int(v) for v in values if _positive_int(v) is not None)
    calls = [("crm.status.list", {"filter": {"ENTITY_ID": d}}) for d in sorted(directories)]
    ids = sorted(users)
    calls += [("user.get", {"FILTER": {"@ID": ids[i : i + 50]}}) for i in range(0, len(ids), 50)]  # user-get.md
    return calls


def check_row(row: dict[str, Any], model: EntityFields, refs: References) -> str | None:
    """Check (and convert in place) the values of one row; the first reason it is refused, or None."""
    for name, value in list(row.items()):
        f = model.get(name)
        if f is None or empty(value):
            continue
        if f.multifield:
            reason = _check_multifield(f, value)
        elif f.multiple:
            items = value if isinstance(value, list) else [value]
            converted = []
            reason = None
            for item in items:
                item, reason = _check_one(name, f, item, refs, model.entity)
                if reason:
                    break
                converted.append(item)
            row[name] = converted
        else:
            row[name], reason = _check_one(name, f, value, refs, model.entity)
        if reason:
            return reason if "(field '" in reason else f"{name}: {reason}"
    return None


def _check_one(name: str, f: PortalField, value: Any, refs: References, entity: str) -> tuple[Any, str | None]:
    """The value as sent and the reason it is refused (the portal's own words where it has them:
    an unknown user or stage reads as the portal's answer would)."""
    kind = f.type
    if kind == "enumeration" and f.items:
        text = str(value).strip()
        if text in f.items:
            return int(text) if text.isdigit() else text, None
        by_text = [i for i, v in f.items.items() if v == text]
        if by_text:
            return int(by_text[0]) if by_text[0].isdigit() else by_text[0], None
        return value, f"{value!r} is not an item of {f.title} (items: {', '.join(sorted(f.items.values())[:10])})"
    if kind == "crm_status":
        directory = status_directory(f, value, entity)
        known = refs.statuses.get(directory or "")
        if known is not None and str(value) not in known:
            if directory and "STAGE" in directory or f.name in ("STATUS_ID", "stageId"):
                return value, f"Stage '{value}' does not exist (field '{name}')."
            return value, f"Value '{value}' is not in the {directory} directory of crm.status.list (field '{name}')."
        return value, None
    if kind in _USER_TYPES:
        user = _positive_int(value)
        if user is None:
            return value, f"{value!r} is not a user id"
        if refs.users is not None and user not in refs.users:
            return value, f"User with ID {user} not found (field '{name}')."
        return user, None
    if kind in _LINK_TYPES or kind in _INT_TYPES:
        number = _positive_int(value) if kind in _LINK_TYPES else _int(value)
        if number is None:
            return value, f"{value!r} is not {'a record id' if kind in _LINK_TYPES else 'a whole number'}"
        return number, None
    if kind in _NUMBER_TYPES or kind == "money":
        amount = str(value).partition("|")[0] if kind == "money" else value
        try:
            Decimal(str(amount).strip())
        except InvalidOperation:
            return value, f"{value!r} is not a number"
        return value, None
    if kind in ("char", "boolean"):
        flag = _FLAGS.get(str(value).strip().lower()) if not isinstance(value, bool) else ("Y" if value else "N")
        if flag is None:
            return value, f"{value!r} is not a yes/no value (Y or N)"
        return (flag if kind == "char" else flag == "Y"), None
    if kind in ("date", "datetime"):
        if isinstance(value, dt.date):
            return value, None
        if m := _DOTTED_DATE.fullmatch(str(value).strip()):  # the pages' own "11.11.2001"
            return f"{m.group(3)}-{m.group(2)}-{m.group(1)}", None
        if not _parses_as_date(str(value)):
            return value, f"{value!r} is not a {kind} (ISO 8601, e.g. 2024-07-18 or 2024-07-18T14:00:14+02:00)"
        return value, None
    return value, None


def _check_multifield(f: PortalField, value: Any) -> str | None:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if f.name == "fm" and not (isinstance(item, Mapping) and item.get("typeId")):
            return "each fm value needs its typeId (PHONE, EMAIL, WEB, IM, LINK)"
        if isinstance(item, Mapping) and empty(item.get("VALUE", item.get("value"))):
            return "a value without text"
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() and text.isascii() else None


def _positive_int(value: Any) -> int | None:
    number = _int(value)
    return number if number is not None and number > 0 else None


def _parses_as_date(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
