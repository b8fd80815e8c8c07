"""`build_bitrix24_reference_asset`: the tables that name a replica's ids, refreshed with it.

One `multi_asset` of six small tables, each rewritten whole by every run (two batch requests):

| table                   | from                                             | names                       |
|-------------------------|--------------------------------------------------|-----------------------------|
| `ref_statuses`          | `crm.status.list`                                | stages, lead statuses, sources, types (`ENTITY_ID`, `STATUS_ID`) |
| `ref_categories`        | `crm.category.list` (deals and each smart process) | pipelines (`entityTypeId`, `id`) |
| `ref_userfield_items`   | `crm.<entity>.userfield.list` (`LIST`)           | the items of list user fields |
| `ref_users`             | `user.get`                                       | responsible users and authors |
| `ref_currencies`        | `crm.currency.list`                              | currencies                   |
| `ref_types`             | `crm.type.list`                                  | smart-process types           |

Each is published atomically (`ParquetStreamWriter`); a run that fails publishes none.
"""

# No `from __future__ import annotations`: Dagster reads the compute function's annotations.

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pyarrow as pa
from dagster._utils.warnings import disable_dagster_warnings

from b24_dagster.integration._asset_meta import table_name
from b24_dagster.integration._errors import to_failure
from b24_dagster.integration._parquet import ParquetStreamWriter, uri_of
from b24_dagster.integration._replica_calls import run_reads
from b24_dagster.integration._replica_table import TIMESTAMP
from b24_dagster.integration._typing import ColumnTyper

__all__ = ["REFERENCE_TABLES", "build_bitrix24_reference_asset"]

_I, _S, _F, _B = pa.int64(), pa.string(), pa.float64(), pa.bool_()
REFERENCE_TABLES: dict[str, dict[str, pa.DataType]] = {
    "statuses": {"ID": _I, "ENTITY_ID": _S, "STATUS_ID": _S, "NAME": _S, "NAME_INIT": _S, "SORT": _I,
                 "SYSTEM": _B, "CATEGORY_ID": _I, "COLOR": _S, "SEMANTICS": _S},
    "categories": {"entityTypeId": _I, "id": _I, "name": _S, "sort": _I, "isDefault": _B},
    "userfield_items": {"entity": _S, "FIELD_NAME": _S, "ID": _I, "VALUE": _S, "SORT": _I, "DEF": _B, "XML_ID": _S},
    "users": {"ID": _I, "ACTIVE": _B, "NAME": _S, "LAST_NAME": _S, "EMAIL": _S, "WORK_POSITION": _S},
    "currencies": {"CURRENCY": _S, "FULL_NAME": _S, "AMOUNT_CNT": _I, "AMOUNT": _F, "SORT": _I, "BASE": _B,
                   "DATE_UPDATE": TIMESTAMP},
    "types": {"id": _I, "entityTypeId": _I, "title": _S, "code": _S},
}
"""Each reference table's columns and types."""

_USERFIELD_ENTITIES = ("lead", "deal", "contact", "company")
_PAGE = 50


def _gather(client: Any) -> dict[str, list[dict[str, Any]]]:
    """Every reference row, in two or three batch requests."""
    first = [("crm.type.list", {}), ("crm.status.list", {"order": {"ENTITY_ID": "ASC", "SORT": "ASC"}}),
             ("crm.category.list", {"entityTypeId": 2}), ("crm.currency.list", {"order": {"SORT": "ASC"}}),
             ("user.get", {"sort": "ID", "order": "ASC", "start": 0}),
             *((f"crm.{e}.userfield.list", {"filter": {"USER_TYPE_ID": "enumeration"}}) for e in _USERFIELD_ENTITIES)]
    answers = run_reads(client, first)
    types = (answers[0].result or {}).get("types", []) if isinstance(answers[0].result, Mapping) else []
    users = list(answers[4].result or [])
    more = [("user.get", {"sort": "ID", "order": "ASC", "start": start})
            for start in range(_PAGE, answers[4].total or 0, _PAGE)]
    more += [("crm.category.list", {"entityTypeId": t["entityTypeId"]}) for t in types]
    later = run_reads(client, more) if more else []
    pages = [a for a in later if isinstance(a.result, list)]
    for page in pages:
        users += page.result
    categories = [a.result for a in [answers[2], *later] if isinstance(a.result, Mapping)]
    items = [{"entity": entity, "FIELD_NAME": uf.get("FIELD_NAME"), **item}
             for entity, answer in zip(_USERFIELD_ENTITIES, answers[5:], strict=True)
             for uf in answer.result or [] for item in uf.get("LIST") or []]
    return {"statuses": list(answers[1].result or []), "types": types, "users": users, "userfield_items": items,
            "categories": [c for answer in categories for c in answer.get("categories", [])],
            "currencies": list(answers[3].result or [])}


def build_bitrix24_reference_asset(
    *,
    portals: Sequence[str] = (),
    key_prefix: Sequence[str] = ("bitrix24", "replica"),
    group_name: str | None = "bitrix24",
    resource_key: str = "bitrix24",
    storage_key: str = "bitrix24_storage",
    pool: str | None = "bitrix24",
) -> dg.AssetsDefinition:
    """The reference tables (see the module docstring) as one asset of six keys,
    `[*key_prefix, "ref_<table>"]`, partitioned by portal with `portals=` like the replicas.

    Example:
        ```python
        reference = build_bitrix24_reference_asset()
        deals = build_bitrix24_replica_asset(entity="deal")
        sensor = build_bitrix24_replica_sensor([deals], reference=reference)
        ```
    """
    keys = {name: dg.AssetKey([*key_prefix, f"ref_{name}"]) for name in REFERENCE_TABLES}
    specs = [dg.AssetSpec(key=key, group_name=group_name, kinds={"bitrix24", "parquet"},
                          description=f"Bitrix24 reference table `{name}` (names the ids of the replicas).")
             .with_io_manager_key(storage_key) for name, key in keys.items()]  # fmt: skip
    partitions_def = dg.StaticPartitionsDefinition(list(portals)) if portals else None
    with disable_dagster_warnings():
        decorator = dg.multi_asset(name=dg.AssetKey([*key_prefix, "reference"]).to_python_identifier(), specs=specs,
                                   partitions_def=partitions_def, pool=pool,
                                   required_resource_keys={resource_key, storage_key})  # fmt: skip

    @decorator
    def reference(context: dg.AssetExecutionContext) -> Any:
        portal = context.partition_key if partitions_def is not None else None
        storage = getattr(context.resources, storage_key)
        client = getattr(context.resources, resource_key).get_client(portal)
        try:
            rows = _gather(client)
        except Exception as exc:
            raise to_failure(exc, "the Bitrix24 reference tables could not be read", portal=portal) from None
        for name, columns in REFERENCE_TABLES.items():
            typer = ColumnTyper({}, list(columns), columns)
            table = typer.table(rows[name])
            path = storage.path_for(keys[name], portal)
            with ParquetStreamWriter(path, typer.schema) as writer:
                writer.write(table)
            yield dg.MaterializeResult(asset_key=keys[name], metadata={
                "dagster/row_count": table.num_rows, "dagster/uri": uri_of(path),
                "dagster/table_name": table_name(keys[name]), **({"portal": portal} if portal else {})})

    return reference
