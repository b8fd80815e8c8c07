"""User fields: ``crm.{deal,lead,contact,company}.userfield.{add,get,list,update,delete}``.

Pages: ``api-reference/crm/deals/user-defined-fields/crm-deal-userfield-*.md`` (and the same
pages of leads, contacts and companies). A field added here is listed by ``crm.<entity>.fields``
and ``crm.item.fields`` (``isDynamic``, labels, ``settings``, enumeration ``items``; the shape
of ``crm/_include/user-fields-for-examples-cut.md``), written by add/update of both method
families and shown by get and list (legacy: ``UF_*`` or its name in ``select``). Values are
typed by ``USER_TYPE_ID``; they are kept in memory beside the record, not in the ``--state``
file, and cannot be filtered on **[choice]**.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._entities import Entity
from ._filters import parse_date
from ._methods_core import ApiError, Context
from ._reference import CrmReference

__all__ = ["add_selected", "describe", "item_values", "keep", "legacy_values", "parse"]

_TYPES = ("string", "integer", "double", "boolean", "datetime", "date", "money", "url", "address",
          "enumeration", "file", "employee", "crm_status", "iblock_section", "iblock_element", "crm")
_INTS = {"integer", "employee", "iblock_section", "iblock_element", "file", "enumeration"}
_LANGS = ("ar", "br", "de", "en", "fr", "hi", "id", "in", "it", "ja", "kz", "la", "ms", "pl", "ru",
          "sc", "tc", "th", "tr", "ua", "vn")
_LABELS = ("EDIT_FORM_LABEL", "LIST_COLUMN_LABEL", "LIST_FILTER_LABEL", "ERROR_MESSAGE", "HELP_MESSAGE")
_FLAGS = {"MULTIPLE": "N", "MANDATORY": "N", "SHOW_FILTER": "N", "SHOW_IN_LIST": "Y",
          "EDIT_IN_LIST": "Y", "IS_SEARCHABLE": "N"}


def _ref(ctx: Context) -> CrmReference:
    return ctx.store.reference  # type: ignore[no-any-return]


def camel_name(field_name: str) -> str:
    """``UF_CRM_1721244707107`` -> ``ufCrm_1721244707107``, ``UF_CRM_44_17218`` -> ``ufCrm44_17218``,
    ``UF_CRM_MANAGER_NOTE`` -> ``ufCrmManagerNote`` (the crm.item names of the fixtures and pages)."""
    parts = field_name.lower().split("_")[2:]
    out = "ufCrm"
    for i, part in enumerate(parts):
        if part.isdigit():
            out += part if i == 0 and len(parts) > 1 else "_" + part
        else:
            out += part.capitalize()
    return out


def _defs(ctx: Context, entity: Entity) -> list[dict[str, Any]]:
    return _ref(ctx).userfields.get(entity.name, [])


# ---- values -----------------------------------------------------------------------------

def _fail(item: bool, message: str, required: bool = False) -> ApiError:
    if item:
        return ApiError(400, "CRM_FIELD_ERROR_REQUIRED" if required else "CRM_FIELD_ERROR_VALUE_NOT_VALID", message)
    return ApiError(400, "", message)


def _coerce_one(uf: dict[str, Any], value: Any, tz: int) -> Any:
    kind = uf["USER_TYPE_ID"]
    if kind in _INTS:
        number = int(str(value).strip())
        if kind == "enumeration" and number not in {e["ID"] for e in uf.get("LIST", [])}:
            raise ValueError(f"no list item {number}")
        return number
    if kind == "double":
        return float(str(value).strip())
    if kind == "boolean":
        text = str(value).strip().upper()
        if text in ("Y", "1", "TRUE"):
            return 1
        if text in ("N", "0", "FALSE", ""):
            return 0
        raise ValueError(f"not a yes/no value: {value!r}")
    if kind in ("date", "datetime"):
        stamp = parse_date(value, tz)
        if stamp is None:
            raise ValueError(f"not a date: {value!r}")
        return stamp
    return str(value)


def parse(ctx: Context, entity: Entity, fields: dict[str, Any], item: bool, *, adding: bool) -> dict[str, Any]:
    """The user-field values among ``fields`` (by ``UF_...`` or, for crm.item, camel name), typed;
    a mandatory field missing from a new record, or a bad value, is the portal's field error."""
    defs = _defs(ctx, entity)
    if not defs:
        return {}
    values: dict[str, Any] = {}
    tz = ctx.settings.utc_offset
    for uf in defs:
        name = uf["FIELD_NAME"]
        key = next((k for k in (name, camel_name(name)) if k in fields), None)
        if key is None:
            if adding and uf["MANDATORY"] == "Y":
                raise _fail(item, f'The field "{uf["EDIT_FORM_LABEL"] or name}" is required.', required=True)
            continue
        raw = fields[key]
        try:
            if uf["MULTIPLE"] == "Y":
                items = list(raw.values()) if isinstance(raw, dict) else raw if isinstance(raw, list) else [raw]
                values[name] = [_coerce_one(uf, v, tz) for v in items if v not in (None, "")]
            else:
                values[name] = None if raw in (None, "") else _coerce_one(uf, raw, tz)
        except (ValueError, TypeError) as exc:
            raise _fail(item, f"Invalid value of field '{key}': {exc}") from None
    return values


def keep(ctx: Context, entity: Entity, id_: int, values: dict[str, Any]) -> None:
    """Store the parsed values of record ``id_`` (the record's cached view is already gone)."""
    if values:
        _ref(ctx).uf_values[entity.name].setdefault(id_, {}).update(values)


def _shown(uf: dict[str, Any], value: Any, ctx: Context, item: bool) -> Any:
    if value is None:
        return [] if uf["MULTIPLE"] == "Y" else None
    if isinstance(value, list):
        return [_shown(uf, v, ctx, item) for v in value]
    kind = uf["USER_TYPE_ID"]
    if kind in ("date", "datetime"):
        return ctx.fmt(value)
    if kind == "boolean":
        return ("Y" if value else "N") if item else str(value)
    return value if item else str(value)


def item_values(ctx: Context, entity: Entity, id_: int, names: Sequence[str] | None = None) -> dict[str, Any]:
    """``{camelName: value}`` of record ``id_`` (every user field, or those in ``names``)."""
    stored = _ref(ctx).uf_values[entity.name].get(id_, {})
    return {camel_name(uf["FIELD_NAME"]): _shown(uf, stored.get(uf["FIELD_NAME"]), ctx, True)
            for uf in _defs(ctx, entity) if names is None or uf["FIELD_NAME"] in names}


def legacy_values(ctx: Context, entity: Entity, id_: int, names: Sequence[str] | None = None) -> dict[str, Any]:
    """``{UF_...: value}`` of record ``id_``, every scalar a string as the legacy methods show."""
    stored = _ref(ctx).uf_values[entity.name].get(id_, {})
    return {uf["FIELD_NAME"]: _shown(uf, stored.get(uf["FIELD_NAME"]), ctx, False)
            for uf in _defs(ctx, entity) if names is None or uf["FIELD_NAME"] in names}


def add_selected(ctx: Context, entity: Entity, views: list[dict[str, Any]], ids: Sequence[int],
                 select: Any, item: bool) -> None:
    """Add to list rows the user fields their ``select`` names (``UF_*``/``*`` for crm.item: all)."""
    defs = _defs(ctx, entity)
    if not defs:
        return
    names = [str(s) for s in (select if isinstance(select, list) else
                              list(select.values()) if isinstance(select, dict) else [] if select in (None, "") else [select])]
    every = "UF_*" in names or (item and (not names or "*" in names))
    wanted = [uf["FIELD_NAME"] for uf in defs
              if every or uf["FIELD_NAME"] in names or (item and camel_name(uf["FIELD_NAME"]) in names)]
    if not wanted:
        return
    values = item_values if item else legacy_values
    for view, id_ in zip(views, ids, strict=True):
        view.update(values(ctx, entity, id_, wanted))


def describe(ctx: Context, entity: Entity, item: bool) -> dict[str, Any]:
    """``*.fields`` entries of the user fields (camel keys with ``upperName`` for crm.item)."""
    out: dict[str, Any] = {}
    for uf in _defs(ctx, entity):
        name = uf["FIELD_NAME"]
        label = uf["EDIT_FORM_LABEL"] or name
        d: dict[str, Any] = {"type": uf["USER_TYPE_ID"], "isRequired": uf["MANDATORY"] == "Y",
                             "isReadOnly": False, "isImmutable": False, "isMultiple": uf["MULTIPLE"] == "Y",
                             "isDynamic": True}
        if uf["USER_TYPE_ID"] == "enumeration":
            d["items"] = [{"ID": str(e["ID"]), "VALUE": e["VALUE"]} for e in uf.get("LIST", [])]
        d.update({"title": label, "listLabel": uf["LIST_COLUMN_LABEL"] or label,
                  "formLabel": label, "filterLabel": uf["LIST_FILTER_LABEL"] or label,
                  "settings": uf["SETTINGS"]})
        if item:
            d["upperName"] = name
        out[camel_name(name) if item else name] = d
    return out
