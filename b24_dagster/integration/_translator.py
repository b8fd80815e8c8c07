"""`Bitrix24Translator`: how a Bitrix24 batch or export becomes a Dagster asset spec.

Subclass it and pass an instance as `translator=` to the factories to change asset keys,
groups, descriptions, metadata, tags or kinds, as with dagster-dbt's `DagsterDbtTranslator`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg

__all__ = ["Bitrix24AssetProps", "Bitrix24Translator"]


@dataclass(frozen=True)
class Bitrix24AssetProps:
    """What the factories know about an asset before Dagster does.

    Attributes:
        name: the factory's `name` (e.g. "deals", "lead_import").
        kind: "batch" (commands sent in chunks), "export" (a list method read out) or
            "replica" (a list method kept as one current-state table).
        method: the REST method, e.g. "crm.lead.add" or "crm.deal.list".
        entity: the CRM entity when known ("deal", "lead", ...), else None.
        key_prefix: the factory's `key_prefix`.
        portals: the portal names of a multi-portal asset (empty for one portal).
        extra: free for a subclass's own data (the factories leave it empty).
    """

    name: str
    kind: Literal["batch", "export", "replica"]
    method: str
    entity: str | None = None
    key_prefix: Sequence[str] = ("bitrix24",)
    portals: Sequence[str] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


class Bitrix24Translator:
    """Maps `Bitrix24AssetProps` to an `AssetSpec`; override any `get_*` method.

    Example: put every Bitrix24 asset under a `crm` prefix in the group `crm_raw`:

        ```python
        class MyTranslator(Bitrix24Translator):
            def get_asset_key(self, props):
                return dg.AssetKey(["crm", props.name])

            def get_group_name(self, props):
                return "crm_raw"

        deals = build_bitrix24_export_asset(
            name="deals", method="crm.deal.list", translator=MyTranslator()
        )
        ```

    Example: add an owner and a tag, keeping the defaults:

        ```python
        class Owned(Bitrix24Translator):
            def get_asset_spec(self, props):
                return super().get_asset_spec(props).replace_attributes(
                    owners=["team:crm"], tags={"tier": "gold"}
                )
        ```
    """

    def get_asset_key(self, props: Bitrix24AssetProps) -> dg.AssetKey:
        """`[*key_prefix, name]`, e.g. `bitrix24/deals`."""
        return dg.AssetKey([*props.key_prefix, props.name])

    def get_group_name(self, props: Bitrix24AssetProps) -> str | None:
        """`"bitrix24"` by default."""
        return "bitrix24"

    def get_description(self, props: Bitrix24AssetProps) -> str:
        """A sentence on what the asset holds."""
        if props.kind == "replica":
            return (
                f"Bitrix24 `{props.method}` kept as one current-state table: deleted records "
                "marked `_deleted`, records out of the filter `_out_of_scope`, each run reading "
                "only what changed."
            )
        if props.kind == "export":
            return (
                f"Bitrix24 `{props.method}` exported to Parquet (typed columns from the "
                "entity's field descriptions)."
            )
        return (
            f"Outcome of every `{props.method}` command sent to Bitrix24 in chunked batches: "
            "one Parquet row per input row, with status ok / error / not_run / unknown."
        )

    def get_metadata(self, props: Bitrix24AssetProps) -> Mapping[str, Any]:
        """Definition metadata: the method (and entity, portals)."""
        meta: dict[str, Any] = {"bitrix24/method": props.method}
        if props.entity:
            meta["bitrix24/entity"] = props.entity
        if props.portals:
            meta["bitrix24/portals"] = ", ".join(props.portals)
        return meta

    def get_tags(self, props: Bitrix24AssetProps) -> Mapping[str, str]:
        """Asset tags (none by default)."""
        return {}

    def get_kinds(self, props: Bitrix24AssetProps) -> set[str]:
        """`{"bitrix24", "parquet"}` (the icons in the asset graph)."""
        return {"bitrix24", "parquet"}

    def get_asset_spec(self, props: Bitrix24AssetProps) -> dg.AssetSpec:
        """The whole spec; override to change several attributes at once."""
        return dg.AssetSpec(
            key=self.get_asset_key(props),
            group_name=self.get_group_name(props),
            description=self.get_description(props),
            metadata=self.get_metadata(props),
            tags=self.get_tags(props),
            kinds=self.get_kinds(props),
        )
