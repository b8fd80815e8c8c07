"""What a replica knows of each entity it can keep: the list method and its keys.

One `ReplicaEntity` per kind of record: deals, leads, contacts and companies (the legacy
`crm.<entity>.list`, UPPER keys), smart-process items (`crm.item.list` by `entityTypeId`,
camelCase keys), tasks (`tasks.task.list`: camelCase rows, UPPER filter keys) and CRM
activities (`crm.activity.list`). Each names the field the replica reads modifications by
(`DATE_MODIFY`, `updatedTime`, `CHANGED_DATE`, `LAST_UPDATED`) and, for leads, deals and
smart processes, the `entityTypeId` of their moves in `crm.stagehistory.list`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

__all__ = ["ReplicaEntity", "replica_entity"]


@dataclass(frozen=True)
class ReplicaEntity:
    """How one kind of record is listed, filtered and recognised.

    Attributes:
        name: "deal", "lead", "contact", "company", "task", "activity", "dynamic_<T>".
        plural: the default asset name ("deals", "items_1038", ...).
        method: the list method.
        params: constant params of every call (`entityTypeId` of a smart process).
        fields_method, fields_params: the `*.fields` call typing the columns.
        id_field: the id key of a row (`ID`, `id`).
        cursor_field: the id key of filter, order and select (`ID`, `id`; tasks: `ID`).
        modified_field: the modification key of filter, order and select.
        modified_column: the modification key of a row (tasks answer `changedDate`).
        wrapper: the key rows sit under (`items`, `tasks`), None for a flat list.
        stage_type_id: `entityTypeId` of its moves in `crm.stagehistory.list`, if any.
        column_types: Arrow types of columns no `*.fields` method describes (tasks).
    """

    name: str
    plural: str
    method: str
    params: Mapping[str, Any] = field(default_factory=dict)
    fields_method: str | None = None
    fields_params: Mapping[str, Any] = field(default_factory=dict)
    id_field: str = "ID"
    cursor_field: str = "ID"
    modified_field: str = "DATE_MODIFY"
    modified_column: str = "DATE_MODIFY"
    wrapper: str | None = None
    stage_type_id: int | None = None
    column_types: Mapping[str, Any] = field(default_factory=dict)

    def rows_of(self, result: Any) -> list[dict[str, Any]]:
        """The rows of one list answer's `result` (flat, or under `wrapper`)."""
        if self.wrapper is not None:
            result = result.get(self.wrapper) if isinstance(result, Mapping) else []
        if isinstance(result, Mapping):  # a PHP array with keys other than 0..n-1
            result = list(result.values())
        return [r for r in result or [] if isinstance(r, Mapping)]

    def list_params(self, flt: Mapping[str, Any], **params: Any) -> dict[str, Any]:
        """The params of one list call: the constant ones, `flt` (left out when empty: an empty
        array does not survive a batch command's query string), and `params`."""
        return {**self.params, **({"filter": dict(flt)} if flt else {}), **params}


_LEGACY = {
    "deal": ("deals", 2), "lead": ("leads", 1), "contact": ("contacts", None), "company": ("companies", None),
}


def replica_entity(entity: str | int) -> ReplicaEntity:
    """The `ReplicaEntity` of "deal", "lead", "contact", "company", "task", "activity", or of a
    smart process by its `entityTypeId` (an int, or "dynamic_<T>")."""
    if isinstance(entity, str) and entity.startswith("dynamic_") and entity[8:].isdigit():
        entity = int(entity[8:])
    if isinstance(entity, int):
        if entity in (1, 2, 3, 4):
            return replica_entity({1: "lead", 2: "deal", 3: "contact", 4: "company"}[entity])
        return ReplicaEntity(
            name=f"dynamic_{entity}", plural=f"items_{entity}", method="crm.item.list",
            params={"entityTypeId": entity}, fields_method="crm.item.fields",
            fields_params={"entityTypeId": entity}, id_field="id", cursor_field="id",
            modified_field="updatedTime", modified_column="updatedTime", wrapper="items",
            stage_type_id=entity,
        )  # fmt: skip
    if entity in _LEGACY:
        plural, stage = _LEGACY[entity]
        return ReplicaEntity(name=entity, plural=plural, method=f"crm.{entity}.list",
                             fields_method=f"crm.{entity}.fields", stage_type_id=stage)  # fmt: skip
    if entity == "task":
        return ReplicaEntity(
            name="task", plural="tasks", method="tasks.task.list", fields_method=None, id_field="id",
            cursor_field="ID", modified_field="CHANGED_DATE", modified_column="changedDate", wrapper="tasks",
            # the emulator, like some portals, has no tasks.task.getFields: type what the replica reads
            column_types={"id": pa.int64(), "changedDate": pa.timestamp("us", tz="UTC")},
        )  # fmt: skip
    if entity == "activity":
        return ReplicaEntity(name="activity", plural="activities", method="crm.activity.list",
                             fields_method="crm.activity.fields", modified_field="LAST_UPDATED",
                             modified_column="LAST_UPDATED")  # fmt: skip
    raise ValueError(
        f"unknown replica entity {entity!r}: one of deal, lead, contact, company, task, activity, "
        "or a smart process's entityTypeId (an int)"
    )
