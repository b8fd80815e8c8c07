"""Smart-process types, read-only: ``crm.type.list``, ``crm.type.get``, ``crm.type.getByEntityTypeId``.

Pages: ``api-reference/crm/universal/user-defined-object-types/crm-type-{list,get,
get-by-entity-type-id}.md``. The emulator has no smart processes, so the portal is one where
none was created: the list is empty and every lookup is the pages' "not found" (whose code is
the number ``0``). ``crm.type.add``/``update``/``delete``/``fields`` are not served.
"""

from __future__ import annotations

from typing import Any

from ._methods_core import ApiError, Context, Result, method

__all__: list[str] = []

# The fields of a type object (crm-type-list.md's example), allowed in filter and order.
_TYPE_FIELDS = frozenset({
    "id", "title", "code", "createdBy", "entityTypeId", "customSectionId", "isCategoriesEnabled",
    "isStagesEnabled", "isBeginCloseDatesEnabled", "isClientEnabled", "isUseInUserfieldEnabled",
    "isLinkWithProductsEnabled", "isMycompanyEnabled", "isDocumentsEnabled", "isSourceEnabled",
    "isObserversEnabled", "isRecyclebinEnabled", "isAutomationEnabled", "isBizProcEnabled",
    "isSetOpenPermissions", "isPaymentsEnabled", "isCountersEnabled", "createdTime", "updatedTime",
    "updatedBy"})
_PREFIX = ("!=%", "!%=", "!@", "!%", "!=", ">=", "<=", "=%", "%=", "@", "%", ">", "<", "=", "!")


def _check(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        return
    for key, value in part.items():
        name = str(key)
        if where == "filter" and (name.upper() == "LOGIC" or name.isdigit()):
            _check(value, where)   # a nested group, {"logic": "OR", "0": {...}}
            continue
        bare = next((name[len(p):] for p in _PREFIX if where == "filter" and name.startswith(p)), name)
        if bare not in _TYPE_FIELDS:
            raise ApiError(400, "INVALID_ARG_VALUE", f"Invalid {where}: field '{bare}' is not allowed in {where}")


@method("crm.type.list", "crm")
def type_list(ctx: Context, params: dict[str, Any]) -> Result:
    """``{"types": []}`` with ``total`` 0; unknown filter or order fields are the page's errors."""
    _check(params.get("filter"), "filter")
    _check(params.get("order"), "order")
    return Result({"types": []}, total=0)


@method("crm.type.get", "crm")
def type_get(ctx: Context, params: dict[str, Any]) -> Result:
    """No type exists."""
    raise ApiError(400, 0, "SPA not found")  # type: ignore[arg-type]  # the page's code is a number


@method("crm.type.getByEntityTypeId", "crm")
def type_get_by_entity_type_id(ctx: Context, params: dict[str, Any]) -> Result:
    """No type exists."""
    raise ApiError(400, 0, "Smart process not found")  # type: ignore[arg-type]
