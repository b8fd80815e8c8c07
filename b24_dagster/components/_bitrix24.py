"""`Bitrix24Component`: Bitrix24 exports and batch writes declared in a `defs.yaml`.

A thin layer over the factories of `b24_dagster.integration`: each entry of `exports`
becomes `build_bitrix24_export_asset` (plus a schedule when it names one), each entry of
`writes` becomes `build_bitrix24_batch_asset` fed by a CSV file beside the YAML.

```yaml
# defs/crm_sync/defs.yaml
type: b24_dagster.components.Bitrix24Component
attributes:
  key_prefix: [bitrix24, crm_sync]
  exports:
    - name: companies
      method: crm.company.list
      schedule: "0 4 * * *"
  writes:
    - name: contact_import
      method: crm.contact.add
      csv: contacts.csv
      key_column: external_id     # a sync by ORIGIN_ID: runs any number of times, sends changes
```
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

import dagster as dg
import pandas as pd

from b24_dagster.integration import (
    Bitrix24AssetProps,
    Bitrix24Resource,
    Bitrix24Storage,
    Bitrix24Translator,
    build_bitrix24_batch_asset,
    build_bitrix24_export_asset,
    build_bitrix24_export_schedule,
)

__all__ = ["Bitrix24BatchWrite", "Bitrix24Component", "Bitrix24Export", "shared_resources"]

Plan = Literal["standard", "enterprise", "on_premise"]


@functools.cache
def _resource(webhook_env: str, plan: Plan | None) -> Bitrix24Resource:
    return Bitrix24Resource(webhook_url=dg.EnvVar(webhook_env), plan=plan)


@functools.cache
def _storage() -> Bitrix24Storage:
    return Bitrix24Storage()


def shared_resources(
    webhook_env: str = "BITRIX24_WEBHOOK_URL",
    plan: Plan | None = None,
    *,
    resource_key: str = "bitrix24",
    storage_key: str = "bitrix24_storage",
) -> dict[str, Any]:
    """The Bitrix24 resources, as the same objects on every call.

    `Definitions.merge` accepts one resource key from two sources only when both hold the
    very same object, so a component instance and Python definitions that both use the
    `bitrix24` key must get it from here.
    """
    return {resource_key: _resource(webhook_env, plan), storage_key: _storage()}


class Bitrix24Export(dg.Model, dg.Resolvable):
    """One list method exported to Parquet."""

    name: str
    method: str
    select: list[str] | None = None
    filter: dict[str, Any] | None = None
    entity_type_id: int | None = None
    incremental: bool = False
    start_date: str | None = None
    schedule: str | None = None
    """A cron expression for a full export (an incremental one runs daily, yesterday's day)."""


class Bitrix24BatchWrite(dg.Model, dg.Resolvable):
    """One command per row of a CSV file, with every outcome recorded in Parquet."""

    name: str
    method: str
    csv: str
    """Path of the CSV file, relative to the folder of the `defs.yaml`."""
    fields: dict[str, str] | list[str] | None = None
    id_column: str | None = None
    key_column: str | None = None
    params: dict[str, Any] | None = None
    failure_rate_threshold: float = 0.05
    reconcile_field: str | None = None
    """The field that identifies a created record (default `ORIGIN_ID` / `originId`): a
    create whose answer was lost is looked up by it before anything is sent again."""
    sync: Literal["upsert", "insert", "update", "send"] | None = None
    """How rows become writes: `upsert` (the default with a key_column and a create method),
    `insert`, `update`, or `send` (every row as a command, a one-shot load)."""
    key_field: str | None = None
    """The portal field that holds the key (default `ORIGIN_ID`, or `originId` on crm.item)."""
    originator_id: str | None = None
    """A constant ORIGINATOR_ID that creates carry and matches require."""
    check_portal: bool = False
    """Look every row up on the portal instead of trusting the sync state."""
    delete_missing: bool = False
    """Delete the records whose keys left the CSV (only those this sync made)."""
    max_delete_share: float = 0.1
    """Refuse to delete more than this share of the synced records in one run."""
    max_attempts: int = 3
    """Skip a row that failed this many times with the same fields, until it changes."""
    match_by: Literal["EMAIL", "PHONE"] | None = None
    """Match leads, contacts or companies by e-mail or phone instead of a key field."""
    bulk_import: bool = False
    """`crm.item.add` only: send the creates 20 a `crm.item.batchImport` call, 1,000 a request.
    No automation rules start, and the webhook's user needs the CRM "import" permission."""


class _Grouped(Bitrix24Translator):
    def __init__(self, group_name: str | None) -> None:
        self._group_name = group_name

    def get_group_name(self, props: Bitrix24AssetProps) -> str | None:
        return self._group_name or super().get_group_name(props)


class Bitrix24Component(dg.Component, dg.Model, dg.Resolvable):
    """Bitrix24 CRM exports and batch writes, declared in YAML.

    Every asset key is `[*key_prefix, name]`; keep the prefix distinct from other Bitrix24
    assets of the same code location. The webhook URL comes from the environment variable
    `webhook_env` and is never shown in the UI.
    """

    key_prefix: list[str] = ["bitrix24"]
    group_name: str | None = None
    webhook_env: str = "BITRIX24_WEBHOOK_URL"
    plan: Plan | None = None
    resource_key: str = "bitrix24"
    storage_key: str = "bitrix24_storage"
    exports: list[Bitrix24Export] = []
    writes: list[Bitrix24BatchWrite] = []

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The assets, checks and schedules of this instance, with its resources."""
        translator = _Grouped(self.group_name)
        common: dict[str, Any] = {
            "key_prefix": tuple(self.key_prefix),
            "translator": translator,
            "resource_key": self.resource_key,
            "storage_key": self.storage_key,
        }
        assets: list[dg.AssetsDefinition] = []
        schedules: list[dg.ScheduleDefinition] = []
        for export in self.exports:
            asset = build_bitrix24_export_asset(
                name=export.name,
                method=export.method,
                select=export.select,
                filter=export.filter,
                entity_type_id=export.entity_type_id,
                incremental=export.incremental,
                start_date=export.start_date,
                **common,
            )
            assets.append(asset)
            if export.schedule or export.incremental:
                schedules.append(
                    build_bitrix24_export_schedule(
                        asset, cron_schedule=export.schedule or "0 3 * * *"
                    )
                )
        for write in self.writes:
            assets.append(
                build_bitrix24_batch_asset(
                    name=write.name,
                    method=write.method,
                    source=_csv_loader(context.path / write.csv),
                    fields=write.fields,
                    id_column=write.id_column,
                    key_column=write.key_column,
                    params=write.params,
                    failure_rate_threshold=write.failure_rate_threshold,
                    reconcile_field=write.reconcile_field,
                    sync=write.sync,
                    key_field=write.key_field,
                    originator_id=write.originator_id,
                    check_portal=write.check_portal,
                    delete_missing=write.delete_missing,
                    max_delete_share=write.max_delete_share,
                    max_attempts=write.max_attempts,
                    match_by=write.match_by,
                    bulk_import=write.bulk_import,
                    **common,
                )
            )
        resources = shared_resources(
            self.webhook_env,
            self.plan,
            resource_key=self.resource_key,
            storage_key=self.storage_key,
        )
        return dg.Definitions(assets=assets, schedules=schedules, resources=resources)


def _csv_loader(path: Path) -> Any:
    def load(context: dg.AssetExecutionContext) -> pd.DataFrame:
        # Strings stay strings (ids, phone numbers); numbers the portal parses itself.
        frame = pd.read_csv(path, dtype="string")
        context.log.info(f"{len(frame)} rows read from {path.name}")
        return frame

    return load
