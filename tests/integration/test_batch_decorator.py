"""`@bitrix24_batch_assets`: a body of one's own over the batch write or sync, materialized
against the emulator: inputs, partitions, pool, check subsetting."""

# No `from __future__ import annotations`: Dagster reads the assets' annotations.

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from b24_dagster.integration import (
    FAILURE_RATE_CHECK,
    SKIPPED_CHECK,
    UNKNOWN_CHECK,
    Bitrix24BatchInvocation,
    bitrix24_batch_assets,
)

KEY = dg.AssetKey(["bitrix24", "consenting_leads"])


@dg.asset(name="leads_csv", partitions_def=dg.StaticPartitionsDefinition(["eu", "us"]))
def leads_csv(context: dg.AssetExecutionContext) -> pd.DataFrame:
    region = context.partition_key
    return pd.DataFrame({"external_id": [f"{region}-{i}" for i in range(6)],
                         "title": [f"Lead {i}" for i in range(6)],
                         "consent": ["yes", "no"] * 3})  # fmt: skip


@bitrix24_batch_assets(name="consenting_leads", method="crm.lead.add", key_column="external_id",
                       fields={"title": "TITLE"}, ins={"leads": dg.AssetIn("leads_csv")},
                       partitions_def=leads_csv.partitions_def, pool="crm_portal",
                       reconcile_delay_seconds=0.0)  # fmt: skip
def consenting_leads(context: dg.AssetExecutionContext, bitrix24: Bitrix24BatchInvocation, leads: pd.DataFrame):
    context.log.info(f"{len(leads)} leads in {context.partition_key}")
    yield from bitrix24.run(leads[leads["consent"] == "yes"])


def _portal_origins(emulator) -> list[str]:
    from b24_dagster.client import Bitrix24Client

    with Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False) as client:
        return sorted(r["ORIGIN_ID"] for page in client.iter_list("crm.lead.list", {"select": ["ID", "ORIGIN_ID"]})
                      for r in page)  # fmt: skip


def test_own_body_filters_rows_and_syncs_each_partition(b24_emulator, resources, base, instance):
    assert consenting_leads.keys == {KEY} and consenting_leads.op.pools == {"crm_portal"}
    assert consenting_leads.op.name == "bitrix24__consenting_leads"
    for region in ("eu", "us"):
        result = dg.materialize([leads_csv, consenting_leads], resources=resources, instance=instance,
                                partition_key=region)  # fmt: skip
        assert result.success
        table = pq.read_table(base / "bitrix24" / "consenting_leads" / f"{region}.parquet")
        assert table["external_id"].to_pylist() == [f"{region}-0", f"{region}-2", f"{region}-4"]
        assert set(table["action"].to_pylist()) == {"create"}
    again = dg.materialize([leads_csv, consenting_leads], resources=resources, instance=instance, partition_key="eu")
    assert {e.check_name for e in again.get_asset_check_evaluations()} == {FAILURE_RATE_CHECK, UNKNOWN_CHECK,
                                                                           SKIPPED_CHECK}  # a sync's three
    assert _portal_origins(b24_emulator) == sorted(f"{r}-{i}" for r in ("eu", "us") for i in (0, 2, 4))


def test_a_subset_without_the_checks_runs_without_them(b24_emulator, resources, base, instance):
    result = dg.materialize([leads_csv, consenting_leads], resources=resources, instance=instance,
                            partition_key="eu", selection=[dg.AssetKey("leads_csv"), KEY])  # fmt: skip
    assert result.success and len(result.get_asset_check_evaluations()) == 3
    only_asset = dg.materialize([leads_csv, consenting_leads], resources=resources, instance=instance,
                                partition_key="us",
                                selection=dg.AssetSelection.assets("leads_csv", KEY).without_checks())  # fmt: skip
    assert only_asset.success and not only_asset.get_asset_check_evaluations()


def test_unknown_arguments_are_refused_by_name():
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="key_colum"):
        bitrix24_batch_assets(name="x", method="crm.lead.add", key_colum="external_id")


@dg.asset(name="all_leads_csv")
def all_leads_csv() -> pd.DataFrame:
    return pd.DataFrame({"external_id": [f"all-{i}" for i in range(3)], "title": ["A", "B", "C"]})


@bitrix24_batch_assets(name="all_leads", method="crm.lead.add", key_column="external_id",
                       fields={"title": "TITLE"}, ins={"leads": dg.AssetIn("all_leads_csv")})  # fmt: skip
def all_leads(context: dg.AssetExecutionContext, bitrix24: Bitrix24BatchInvocation, leads: pd.DataFrame):
    yield from bitrix24.run(leads)


def test_checks_alone_read_the_last_materialization_and_send_nothing(b24_emulator, resources, base, instance):
    # (Dagster cannot select only checks of a partitioned asset: "no PartitionsDefinition shared")
    key, assets = dg.AssetKey(["bitrix24", "all_leads"]), [all_leads_csv, all_leads]
    checks_only = dg.AssetSelection.checks_for_assets(key)
    assert dg.materialize([all_leads_csv], resources=resources, instance=instance).success
    never = dg.materialize(assets, resources=resources, instance=instance, selection=checks_only)
    assert never.success, "a check of an asset never materialized fails, the run does not"
    assert {(e.check_name, e.passed) for e in never.get_asset_check_evaluations()} == {
        (FAILURE_RATE_CHECK, False), (UNKNOWN_CHECK, False), (SKIPPED_CHECK, False)}
    assert _portal_origins(b24_emulator) == []
    done = dg.materialize(assets, resources=resources, instance=instance)
    dry = dg.materialize(assets, resources=resources, instance=instance,
                         run_config={"ops": {"bitrix24__all_leads": {"config": {"dry_run": True}}}})  # fmt: skip
    assert done.success and dry.success
    requests = b24_emulator.stats["requests"]
    result = dg.materialize(assets, resources=resources, instance=instance, selection=checks_only)
    assert result.success
    assert b24_emulator.stats["requests"] == requests, "selecting the checks alone sends nothing"
    assert not result.asset_materializations_for_node("bitrix24__all_leads")
    evaluations = result.get_asset_check_evaluations()
    assert {(e.check_name, e.passed) for e in evaluations} == {(FAILURE_RATE_CHECK, True), (UNKNOWN_CHECK, True),
                                                               (SKIPPED_CHECK, True)}  # fmt: skip
    assert all(e.metadata["commands"].value == 3 for e in evaluations)
    # the outcome of the real run is checked, not the plan of the dry run after it
    assert all(e.metadata["checked_run_id"].value == done.run_id for e in evaluations)
