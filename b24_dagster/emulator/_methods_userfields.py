"""``crm.{deal,lead,contact,company}.userfield.{add,get,list,update,delete}`` (REST v2).

Pages: ``api-reference/crm/deals/user-defined-fields/crm-deal-userfield-{add,get,list,update,
delete}.md`` and their lead, contact and company twins. Field names get the ``UF_CRM_``
prefix as the add page says; ``LABEL`` fills the five labels not given; ``list`` shows labels as
strings, ``get`` as language maps (a string given is set for every language). Values and their
views are in :mod:`._userfields`.
"""

from __future__ import annotations

import re
from typing import Any

from ._entities import ENTITY_BY_NAME, Entity
from ._filters import Schema, compile_filter, compile_order
from ._methods_core import ApiError, Context, Result, method
from ._userfields import _FLAGS, _LABELS, _LANGS, _TYPES, _ref

__all__: list[str] = []

_NAME_OK = re.compile(r"[A-Z0-9_]+")
_SCHEMA = Schema({k: ((lambda key: lambda uf: uf.get(key))(k), "int" if k in ("ID", "SORT") else "str")
                  for k in ("ID", "FIELD_NAME", "USER_TYPE_ID", "XML_ID", "SORT", *_FLAGS)}, "ID")


def _full_name(code: str) -> str:
    """``NOTE`` -> ``UF_CRM_NOTE``, ``UF_NOTE`` -> ``UF_CRM_NOTE``, ``UF_CRM_NOTE`` unchanged."""
    code = code.upper()
    if code.startswith("UF_CRM_"):
        return code
    return "UF_CRM_" + (code[3:] if code.startswith("UF_") else code)


def _yn(value: Any) -> str:
    return "Y" if str(value).upper() in ("Y", "1", "TRUE") else "N"


def _enum_items(uf: dict[str, Any], items: Any, ctx: Context) -> None:
    """Apply a ``LIST`` (add: new items; update: ``ID`` changes, ``DEL: Y`` removes, no ID adds)."""
    rows = list(items.values()) if isinstance(items, dict) else items if isinstance(items, list) else []
    current = uf.setdefault("LIST", [])
    ref = _ref(ctx)
    for row in rows:
        if not isinstance(row, dict):
            continue
        old = next((e for e in current if str(e["ID"]) == str(row.get("ID"))), None) if row.get("ID") else None
        if old is not None and _yn(row.get("DEL", "N")) == "Y":
            current.remove(old)
            continue
        xml_id = row.get("XML_ID")
        if xml_id and any(e["XML_ID"] == xml_id and e is not old for e in current):
            raise ApiError(400, "ERROR_CORE", f"List item with value XML_ID={xml_id} already exists.")
        if old is not None:
            old.update({k: row[k] for k in ("VALUE", "SORT", "XML_ID") if k in row})
            if "DEF" in row:
                old["DEF"] = _yn(row["DEF"])
            continue
        if not str(row.get("VALUE") or "").strip():
            continue   # the page: items with an empty VALUE are ignored
        current.append({"ID": ref.next_enum_id, "SORT": int(row.get("SORT") or 10 * (len(current) + 1)),
                        "VALUE": str(row["VALUE"]), "DEF": _yn(row.get("DEF", "N")),
                        "XML_ID": xml_id or f"uf{ref.next_enum_id}"})
        ref.next_enum_id += 1


#: Settings a field gets when ``SETTINGS`` leaves them out (crm-deal-userfield-get.md shows
#: a string field's full set); other types keep what was given **[choice]**.
_SETTINGS_DEFAULTS: dict[str, dict[str, Any]] = {
    "string": {"SIZE": 20, "ROWS": 1, "REGEXP": "", "MIN_LENGTH": 0, "MAX_LENGTH": 0, "DEFAULT_VALUE": ""},
}


def _view(uf: dict[str, Any], *, lang_maps: bool) -> dict[str, Any]:
    out = {"ID": str(uf["ID"]), "ENTITY_ID": uf["ENTITY_ID"], "FIELD_NAME": uf["FIELD_NAME"],
           "USER_TYPE_ID": uf["USER_TYPE_ID"], "XML_ID": uf["XML_ID"], "SORT": str(uf["SORT"]),
           **{k: uf[k] for k in _FLAGS}, "SETTINGS": uf["SETTINGS"]}
    for key in _LABELS:
        text = uf[key]
        out[key] = dict.fromkeys(_LANGS, text) if lang_maps and text is not None else text
    if uf["USER_TYPE_ID"] == "enumeration":
        out["LIST"] = [{"ID": str(e["ID"]), "SORT": str(e["SORT"]), "VALUE": e["VALUE"], "DEF": e["DEF"],
                        "XML_ID": e["XML_ID"]} for e in uf.get("LIST", [])]
    return out


def _fields(params: dict[str, Any]) -> dict[str, Any]:
    fields = params.get("fields", params.get("FIELDS"))
    if not isinstance(fields, dict):
        raise ApiError(400, "", "Parameter 'fields' must be array.")
    return {str(k).upper(): v for k, v in fields.items()}


def _find(ctx: Context, entity: Entity, params: dict[str, Any]) -> dict[str, Any]:
    try:
        id_ = int(str(params.get("id", params.get("ID"))))
    except ValueError:
        id_ = 0
    if id_ <= 0:
        raise ApiError(400, "", "ID is not defined or invalid.")
    uf = next((u for u in _ref(ctx).userfields[entity.name] if u["ID"] == id_), None)
    if uf is None:
        raise ApiError(400, "ERROR_NOT_FOUND", f"The entity with ID '{id_}' is not found.")
    return uf


def _add(ctx: Context, entity: Entity, params: dict[str, Any]) -> Result:
    fields, ref = _fields(params), _ref(ctx)
    if not str(fields.get("FIELD_NAME") or "").strip():
        raise ApiError(400, "", "The 'FIELD_NAME' field is not found.")
    name = _full_name(str(fields["FIELD_NAME"]).strip())
    if len(name) > 50:
        raise ApiError(400, "ERROR_CORE", "Field name is too long (more than 50 characters).")
    if not _NAME_OK.fullmatch(name):
        raise ApiError(400, "ERROR_CORE", "Field name contains invalid characters. Allowed characters are: A-Z, 0-9 and _.")
    kind = str(fields.get("USER_TYPE_ID") or "")
    if not kind:
        raise ApiError(400, "", "The 'USER_TYPE_ID' field is not found.")
    if kind not in _TYPES:
        raise ApiError(400, "ERROR_CORE", "Incorrect custom type specified.")
    if name in entity.by_upper or any(u["FIELD_NAME"] == name for u in ref.userfields[entity.name]):
        raise ApiError(400, "ERROR_CORE", f"Field {name} already exists.")   # **[choice]** of text
    label = fields.get("LABEL")
    uf: dict[str, Any] = {"ID": ref.next_userfield_id, "ENTITY_ID": f"CRM_{entity.name.upper()}",
                          "FIELD_NAME": name, "USER_TYPE_ID": kind, "XML_ID": fields.get("XML_ID"),
                          "SORT": int(fields.get("SORT") or 100),
                          **{k: _yn(fields[k]) if k in fields else v for k, v in _FLAGS.items()},
                          "SETTINGS": {**_SETTINGS_DEFAULTS.get(kind, {}), **(
                              fields["SETTINGS"] if isinstance(fields.get("SETTINGS"), dict) else {})}}
    if kind == "boolean":
        uf["MULTIPLE"] = "N"   # the page: a yes/no field cannot be multiple
    for key in _LABELS:
        uf[key] = fields.get(key, label)
    if kind == "enumeration":
        _enum_items(uf, fields.get("LIST"), ctx)
    ref.next_userfield_id += 1
    ref.userfields[entity.name].append(uf)
    ctx.store.tables[entity.name].cache.clear()   # cached crm.item views gain the new key
    return Result(uf["ID"], wrote=True)


def _update(ctx: Context, entity: Entity, params: dict[str, Any]) -> Result:
    uf, fields = _find(ctx, entity, params), _fields(params)
    for key in ("MANDATORY", "SHOW_FILTER", "SHOW_IN_LIST", "EDIT_IN_LIST", "IS_SEARCHABLE"):
        if key in fields:
            uf[key] = _yn(fields[key])
    if "XML_ID" in fields:
        uf["XML_ID"] = fields["XML_ID"]
    if "SORT" in fields and int(fields["SORT"]) > 0:
        uf["SORT"] = int(fields["SORT"])
    if isinstance(fields.get("SETTINGS"), dict):
        uf["SETTINGS"] = {**uf["SETTINGS"], **fields["SETTINGS"]}   # only the values passed
    for key in _LABELS:
        if key in fields:
            uf[key] = fields[key]
    if uf["USER_TYPE_ID"] == "enumeration" and "LIST" in fields:
        _enum_items(uf, fields["LIST"], ctx)
    ctx.store.tables[entity.name].cache.clear()
    return Result(True, wrote=True)


def _list(ctx: Context, entity: Entity, params: dict[str, Any]) -> Result:
    filt, order = params.get("filter") or {}, params.get("order") or {"SORT": "ASC", "ID": "ASC"}
    conds = compile_filter(_SCHEMA, {str(k).upper(): v for k, v in filt.items()} if isinstance(filt, dict) else {},
                           strict=False)
    rows = [u for u in _ref(ctx).userfields[entity.name] if all(c(u) for c in conds)]
    ords = compile_order(_SCHEMA, {str(k).upper(): v for k, v in order.items()} if isinstance(order, dict) else {},
                         strict=False)
    for getter, desc, _ in reversed(ords):
        rows.sort(key=lambda u, g=getter: (g(u) is None, g(u) or 0), reverse=desc)
    return Result([_view(u, lang_maps=False) for u in rows], total=len(rows))


def _delete(ctx: Context, entity: Entity, params: dict[str, Any]) -> Result:
    uf, ref = _find(ctx, entity, params), _ref(ctx)
    ref.userfields[entity.name].remove(uf)
    for values in ref.uf_values[entity.name].values():
        values.pop(uf["FIELD_NAME"], None)
    ctx.store.tables[entity.name].cache.clear()
    return Result(True, wrote=True)


def _register(entity: Entity) -> None:
    prefix = f"crm.{entity.name}.userfield"
    method(f"{prefix}.add", "crm", writes=True)(lambda ctx, params: _add(ctx, entity, params))
    method(f"{prefix}.get", "crm")(lambda ctx, params: Result(_view(_find(ctx, entity, params), lang_maps=True)))
    method(f"{prefix}.list", "crm")(lambda ctx, params: _list(ctx, entity, params))
    method(f"{prefix}.update", "crm", writes=True)(lambda ctx, params: _update(ctx, entity, params))
    method(f"{prefix}.delete", "crm", writes=True)(lambda ctx, params: _delete(ctx, entity, params))


for _entity in ENTITY_BY_NAME.values():
    _register(_entity)
