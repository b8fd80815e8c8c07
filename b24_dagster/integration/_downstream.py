"""An export and the assets downstream of it that can run in the export's own runs.

An export's schedule targets this selection, so the assets that read the export (dbt models,
your own assets, a write-back) are materialized by the same run, after it, instead of waiting
for a trigger of their own. The selection is resolved against the whole asset graph of the
code location when the job is built, so it finds downstream assets defined anywhere (another
module, a Component, a dbt project).

A downstream asset joins the run only when it can: it is materializable and has the export's
partitions definition, or none (an unpartitioned asset reads every partition); an unpartitioned
one does not join a schedule that emits one run per portal (it would run once per portal). Its
own downstream assets are followed only through assets that joined. Assets that cannot join
keep their own triggers (a schedule, or `AutomationCondition.eager()`).
"""

# No `from __future__ import annotations`: Dagster's `record` checks the fields' types at run time.

from collections.abc import Set

import dagster as dg
from dagster import AssetKey
from dagster._core.definitions.assets.graph.base_asset_graph import BaseAssetGraph
from dagster._record import record

__all__ = ["ExportAndDownstream"]


@record
class ExportAndDownstream(dg.AssetSelection):
    """The export `key` and the downstream assets that can run in its runs (module doc).

    Args:
        key: The export asset's key.
        one_run_per_tick: False when the schedule emits one run per partition (multi-portal):
            unpartitioned downstream assets are then left out.
    """

    key: AssetKey
    one_run_per_tick: bool

    def resolve_inner(self, asset_graph: BaseAssetGraph, allow_missing: bool) -> Set[AssetKey]:
        if not asset_graph.has(self.key):
            if allow_missing:
                return set()
            raise dg.DagsterInvalidDefinitionError(f"no asset {self.key.to_user_string()} to schedule")
        partitions = asset_graph.get(self.key).partitions_def
        selected, todo = {self.key}, [self.key]
        while todo:
            for child in asset_graph.get(todo.pop()).child_keys:
                node = asset_graph.get(child)
                if child in selected or not node.is_materializable:
                    continue
                if node.partitions_def is None and not self.one_run_per_tick:
                    continue
                if node.partitions_def is not None and node.partitions_def != partitions:
                    continue
                # A multi-asset that cannot be subset runs whole or not at all.
                together = node.execution_set_asset_keys
                if any(asset_graph.get(k).partitions_def not in (None, partitions) for k in together):
                    continue
                selected |= together
                todo.extend(together)
        return selected

    def to_selection_str(self) -> str:
        return f"{self.key.to_user_string()} and its downstream assets of the same partitions"
