"""What a ``*.fields`` answer says about target fields, and the zone of naive timestamps."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from b24_dagster.errors import CommandValidationError

__all__ = ["DEFAULT_VALUE_TYPE", "MAX_EXACT", "MULTIFIELD_NAMES", "FieldInfo", "Kind",
           "field_info", "normalize_field_types", "resolve_tz"]

#: Legacy names of the CRM multi-fields (communications).
MULTIFIELD_NAMES = frozenset({"PHONE", "EMAIL", "WEB", "IM", "LINK"})
#: The ``VALUE_TYPE`` given to a multi-field value that arrives as a plain string.
DEFAULT_VALUE_TYPE = "WORK"

Kind = Literal["yn", "int", "float", "date", "datetime", "multi", "any"]

_YN_TYPES = {"char", "boolean"}
_INT_TYPES = {"integer", "int", "user", "employee", "crm_lead", "crm_company", "crm_contact",
              "crm_deal", "crm_quote", "crm_category", "location", "iblock_element",
              "iblock_section"}
_FLOAT_TYPES = {"double", "float"}
MAX_EXACT = 2**53  # floats beyond this are not exact integers


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What the portal's ``*.fields`` answer says about one target field."""

    name: str
    kind: Kind = "any"
    multiple: bool = False
    value_type: str | None = DEFAULT_VALUE_TYPE
    """The ``VALUE_TYPE`` a plain string gets in a multi-field; None sends none (a sync keeps
    the type the portal holds)."""


def normalize_field_types(field_types: Mapping[str, Any] | None) -> dict[str, FieldInfo]:
    """Read a ``*.fields`` answer into ``{field name: FieldInfo}``.

    Accepts the whole response (``{"result": ...}``), the crm.item form (``{"fields": {...}}``),
    a mapping of names to descriptions (``{"OPENED": {"type": "char", ...}}``), or of names to
    type names (``{"OPENED": "char"}``). A description's ``upperName`` is indexed too, so the
    crm.item answer also describes the UPPER_SNAKE names.
    """
    if not field_types:
        return {}
    types: Mapping[str, Any] = field_types
    if isinstance(types.get("result"), Mapping):
        types = types["result"]
    if isinstance(types.get("fields"), Mapping):
        types = types["fields"]
    out: dict[str, FieldInfo] = {}
    aliases: dict[str, FieldInfo] = {}
    for name, desc in types.items():
        if isinstance(desc, str):
            type_name, multiple, upper = desc, False, None
        elif isinstance(desc, Mapping):
            type_name = str(desc.get("type", ""))
            multiple = bool(desc.get("isMultiple", False))
            upper = desc.get("upperName")
        else:
            raise CommandValidationError(
                f"field_types[{name!r}] must be a type name or a field description, "
                f"not {type(desc).__name__}")
        info = FieldInfo(str(name), _kind_of(str(name), type_name.lower()), multiple)
        out[str(name)] = info
        if isinstance(upper, str) and upper:
            aliases[upper] = FieldInfo(upper, info.kind, multiple)
    for upper, info in aliases.items():
        out.setdefault(upper, info)
    return out


def _kind_of(name: str, type_name: str) -> Kind:
    if type_name == "crm_multifield":
        return "any" if name == "fm" else "multi"
    if type_name in _YN_TYPES:
        return "yn"
    if type_name in _INT_TYPES:
        return "int"
    if type_name in _FLOAT_TYPES:
        return "float"
    if type_name == "date":
        return "date"
    if type_name == "datetime":
        return "datetime"
    return "any"


def field_info(name: str, types: Mapping[str, FieldInfo]) -> FieldInfo:
    """The description of target field ``name`` (multi-fields are known without ``field_types``)."""
    info = types.get(name)
    if info is not None:
        return info
    if name in MULTIFIELD_NAMES:
        return FieldInfo(name, "multi", True)
    return FieldInfo(name)


def resolve_tz(timezone: str | dt.tzinfo | None) -> dt.tzinfo:
    """The zone naive timestamps are read in (UTC when ``None``)."""
    if timezone is None:
        return dt.UTC
    if isinstance(timezone, dt.tzinfo):
        return timezone
    try:
        return ZoneInfo(timezone)
    except (KeyError, ValueError) as exc:
        raise CommandValidationError(f"unknown timezone {timezone!r}") from exc
