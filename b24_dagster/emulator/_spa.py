"""Smart processes (SPAs): the crm.item field set of a smart-process type and its default stages.

The field set and its types are those of ``api-reference/crm/universal/crm-item-fields.md``
(whose example is a smart process), without the relation fields (``contacts``,
``parentIdN``) **[choice]**. Stages of category N of type T are ``DT<T>_<N>:NEW`` ...
``DT<T>_<N>:SUCCESS``/``:FAIL`` in the directory ``DYNAMIC_<T>_STAGE_<N>``, as
``crm-status-get.md`` and ``crm-status-entity-types.md`` show; their names are a cloud portal's
defaults **[choice]**. One :class:`Entity` per type id, shared by every portal (the field set is
the same), with its own table ``dynamic_<T>`` in each portal that creates the type.
"""

from __future__ import annotations

from typing import Any

from ._entities import Entity, _derive_stage

__all__ = ["SPA_STAGES", "spa_entity", "stage_directory", "stage_prefix"]

_SPEC = """
id - integer r
title - string
xmlId - string
createdTime - datetime r
updatedTime - datetime r
createdBy - user r
updatedBy - user r
assignedById - user
opened - boolean
webformId - integer
begindate - date
closedate - date
companyId - crm_company
contactId - crm_contact
contactIds - crm_contact m
contacts - crm_contact mc
observers - user m
categoryId - crm_category
movedTime - datetime r
movedBy - user r
stageId - crm_status
previousStageId - crm_status r
sourceId - crm_status
sourceDescription - text
currencyId - crm_currency
isManualOpportunity - boolean
opportunity - double
taxValue - double
mycompanyId - crm_company
lastActivityBy - user r
lastActivityTime - datetime r
entityTypeId - integer rc
"""
_HOT = "id title stageId categoryId assignedById createdBy updatedBy createdTime updatedTime"
_DEFAULTS: dict[str, Any] = {"opened": "Y", "companyId": 0, "contactId": 0, "currencyId": "USD",
                             "isManualOpportunity": "N", "opportunity": 0, "taxValue": 0,
                             "mycompanyId": 0, "webformId": 0, "sourceId": "", "title": ""}
#: (code, name, colour, semantics P/S/F, system) of a new category's stages.
SPA_STAGES: tuple[tuple[str, str, str, str, bool], ...] = (
    ("NEW", "Start", "#22B9FF", "P", True), ("PREPARATION", "Preparation", "#FFBE00", "P", False),
    ("CLIENT", "Waiting for client", "#FF7B12", "P", False),
    ("SUCCESS", "Success", "#7BD500", "S", True), ("FAIL", "Fail", "#FF5752", "F", True))
_SEMANTICS = {code: sem for code, _, _, sem, _ in SPA_STAGES}
_ENTITIES: dict[int, Entity] = {}


def stage_prefix(entity_type_id: int, category_id: int) -> str:
    """``DT1038_37:``, the stage prefix of category 37 of type 1038."""
    return f"DT{entity_type_id}_{category_id}:"


def stage_directory(entity_type_id: int, category_id: int) -> str:
    """``DYNAMIC_1038_STAGE_37``."""
    return f"DYNAMIC_{entity_type_id}_STAGE_{category_id}"


def spa_entity(entity_type_id: int) -> Entity:
    """The :class:`Entity` of smart-process type ``entity_type_id`` (made once, then shared)."""
    entity = _ENTITIES.get(entity_type_id)
    if entity is None:
        entity = Entity(f"dynamic_{entity_type_id}", entity_type_id, _SPEC, "", _HOT, _DEFAULTS)
        entity.stages = _SEMANTICS   # stages are checked against the category's directory
        entity.derive = lambda rec: _derive_stage(rec, _SEMANTICS, "NEW")
        _ENTITIES[entity_type_id] = entity
    return entity
