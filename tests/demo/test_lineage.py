"""The asset graph runs Bitrix24 -> Parquet -> dbt -> Bitrix24, with no invented sources."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

from b24_dagster.demo.definitions import build_definitions
from tests.demo.helpers import UNUSED_WEBHOOK


@pytest.fixture
def graph(demo_env: Path, monkeypatch: pytest.MonkeyPatch) -> AssetGraph:
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", UNUSED_WEBHOOK)
    return build_definitions(demo_env).resolve_asset_graph()


def _parents(graph: AssetGraph, *path: str) -> set[dg.AssetKey]:
    return set(graph.get(dg.AssetKey(list(path))).parent_keys)


def test_dbt_sources_are_the_bitrix24_assets(graph: AssetGraph) -> None:
    deals = dg.AssetKey(["bitrix24", "deals"])
    lead_import = dg.AssetKey(["bitrix24", "lead_import"])
    assert _parents(graph, "stg_deals") == {deals}
    assert _parents(graph, "stg_lead_import_results") == {lead_import}
    # The sources are the real, materializable Bitrix24 assets, not dbt-made stand-ins.
    assert graph.get(deals).is_materializable
    assert graph.get(lead_import).is_materializable


def test_marts_and_write_back_follow(graph: AssetGraph) -> None:
    assert _parents(graph, "deals_by_stage_month") == {dg.AssetKey("stg_deals")}
    assert _parents(graph, "import_failures_by_error_code") == {
        dg.AssetKey("stg_lead_import_results")
    }
    assert _parents(graph, "stale_deals") == {dg.AssetKey("stg_deals")}
    assert _parents(graph, "bitrix24", "stale_deal_flags") == {dg.AssetKey("stale_deals")}


def test_component_assets_do_not_collide(graph: AssetGraph) -> None:
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "bitrix24/crm_sync/companies",
        "bitrix24/crm_sync/contacts",
        "bitrix24/crm_sync/contact_import",
    } <= keys
