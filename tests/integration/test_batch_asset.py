"""The chunked-batch asset against the emulator: results file, metadata, checks, re-drive."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from b24_dagster.integration import (
    FAILURE_RATE_CHECK,
    RESULT_SCHEMA,
    UNKNOWN_CHECK,
    build_bitrix24_batch_asset,
    build_bitrix24_batch_op,
)

ASSET = "bitrix24__lead_import"
KEY = dg.AssetKey(["bitrix24", "lead_import"])
METADATA_KEYS = {
    "commands", "ok", "error", "not_run", "unknown", "chunks", "failed_chunks", "failure_rate",
    "requests", "retries", "refusals", "throttle_wait_seconds", "duration_seconds",
    "commands_per_second", "error_codes", "error_reasons", "first_failures", "dagster/row_count",
    "dagster/column_schema", "dagster/uri",
}


def leads(n: int, bad_every: int | None = 10) -> pd.DataFrame:
    """`n` leads keyed `L0000...`; every `bad_every`-th has an invalid e-mail."""
    return pd.DataFrame({
        "external_id": [f"L{i:04d}" for i in range(n)],
        "title": [f"Lead {i}" for i in range(n)],
        "email": [
            "not-an-email" if bad_every and i % bad_every == 0 else f"lead{i}@example.com"
            for i in range(n)
        ],
    })  # fmt: skip


def import_assets(frame: pd.DataFrame, **kwargs) -> list:
    kwargs.setdefault("sync", "send")  # the one-shot path: every row sent (test_sync.py: the sync)
    @dg.asset(name="leads_csv")
    def source() -> pd.DataFrame:
        return frame

    asset = build_bitrix24_batch_asset(
        name="lead_import", method="crm.lead.add", source="leads_csv",
        fields={"title": "TITLE", "email": "EMAIL"}, key_column="external_id", **kwargs,
    )  # fmt: skip
    return [source, asset]


def run(assets, resources, instance, mode: str = "all", **config) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets, resources=resources, instance=instance, raise_on_error=False,
        run_config={"ops": {ASSET: {"config": {"mode": mode, **config}}}},
    )  # fmt: skip


def results(base) -> pa.Table:
    return pq.read_table(base / "bitrix24" / "lead_import.parquet")


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_import_records_every_row_with_metadata_and_checks(b24_emulator, resources, base, instance):
    result = run(import_assets(leads(120)), resources, instance)
    assert result.success  # failed rows do not fail the materialization

    table = results(base)
    assert table.schema == RESULT_SCHEMA.append(pa.field("external_id", pa.string())).append(
        pa.field("error_reason", pa.string()))  # the contract, the key, then the cause of a failure
    assert table["command_index"].to_pylist() == list(range(120))
    assert table["external_id"].to_pylist() == [f"L{i:04d}" for i in range(120)]
    statuses = table["status"].to_pylist()
    assert [i for i, s in enumerate(statuses) if s != "ok"] == list(range(0, 120, 10))
    bad = table.filter(pa.compute.equal(table["status"], "error")).to_pylist()
    assert all("mail" in row["error_description"].lower() for row in bad)
    ok = table.filter(pa.compute.equal(table["status"], "ok")).to_pylist()
    assert all(isinstance(json.loads(row["result"]), int) for row in ok)
    assert pq.ParquetFile(str(base / "bitrix24" / "lead_import.parquet")).num_row_groups == 1

    [mat] = result.asset_materializations_for_node(ASSET)
    meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    assert set(meta) >= METADATA_KEYS
    assert (meta["commands"], meta["ok"], meta["error"], meta["not_run"], meta["unknown"]) == (120, 108, 12, 0, 0)
    assert (meta["chunks"], meta["failed_chunks"], meta["dagster/row_count"]) == (3, 3, 120)
    assert meta["failure_rate"] == pytest.approx(0.1)
    assert meta["requests"] >= 3
    assert meta["dagster/uri"].endswith("bitrix24/lead_import.parquet")
    codes = mat.metadata["error_codes"].records
    assert sum(r.data["count"] for r in codes) == 12
    first = mat.metadata["first_failures"].records
    assert [r.data["external_id"] for r in first] == [f"L{i:04d}" for i in range(0, 120, 10)]
    assert [c.name for c in mat.metadata["dagster/column_schema"].schema.columns][-2:] == ["external_id", "error_reason"]

    found = checks(result)
    assert not found[FAILURE_RATE_CHECK].passed
    assert found[FAILURE_RATE_CHECK].severity == dg.AssetCheckSeverity.WARN
    assert found[UNKNOWN_CHECK].passed


def test_failure_rate_check_passes_under_threshold(b24_emulator, resources, base, instance):
    result = run(import_assets(leads(60), failure_rate_threshold=0.2), resources, instance)
    assert checks(result)[FAILURE_RATE_CHECK].passed


def test_redrive_sends_only_failed_and_not_run(b24_emulator, resources, base, instance):
    frame = leads(120)
    assert run(import_assets(frame), resources, instance).success
    first = results(base)
    before = _lead_count(b24_emulator)

    fixed = frame.assign(email=[f"lead{i}@example.com" for i in range(120)])
    sent_before = _commands_sent(b24_emulator)
    result = run(import_assets(fixed), resources, instance, mode="redrive")
    assert result.success
    assert _commands_sent(b24_emulator) - sent_before == 12  # exactly the failed ones
    assert _lead_count(b24_emulator) == before + 12

    second = results(base)
    assert second["status"].to_pylist() == ["ok"] * 120
    assert second["external_id"].to_pylist() == first["external_id"].to_pylist()
    kept = [i for i in range(120) if i % 10]
    assert [second["result"][i].as_py() for i in kept] == [first["result"][i].as_py() for i in kept]
    [mat] = result.asset_materializations_for_node(ASSET)
    assert mat.metadata["redriven"].value == 12 and mat.metadata["ok"].value == 120
    assert checks(result)[FAILURE_RATE_CHECK].passed

    # Nothing left to re-drive: nothing is sent.
    sent_before = _commands_sent(b24_emulator)
    assert run(import_assets(fixed), resources, instance, mode="redrive").success
    assert _commands_sent(b24_emulator) == sent_before


def test_redrive_refuses_a_changed_source(b24_emulator, resources, base, instance):
    assert run(import_assets(leads(30)), resources, instance).success
    result = run(import_assets(leads(31)), resources, instance, mode="redrive")
    assert not result.success
    assert "changed" in str(result.failure_data_for_node(ASSET).error.message)


def test_empty_frame_gives_empty_parquet_with_schema(b24_emulator, resources, base, instance):
    result = run(import_assets(leads(0)), resources, instance)
    assert result.success
    table = results(base)
    assert table.num_rows == 0 and table.schema.names[-2:] == ["external_id", "error_reason"]
    assert all(checks(result)[name].passed for name in (FAILURE_RATE_CHECK, UNKNOWN_CHECK))


def test_bad_input_fails_the_step_before_any_request(b24_emulator, resources, base, instance):
    frame = leads(10)
    frame.loc[3, "external_id"] = "L0001"  # duplicate key
    sent_before = _commands_sent(b24_emulator)
    result = run(import_assets(frame), resources, instance)
    assert not result.success
    assert "L0001" in result.failure_data_for_node(ASSET).error.message
    assert _commands_sent(b24_emulator) == sent_before


def test_op_factory_in_a_job(b24_emulator, resources, base, instance):
    send = build_bitrix24_batch_op(name="send_leads", method="crm.lead.add",
                                   fields={"title": "TITLE"}, key_column="external_id", sync="send")  # fmt: skip

    @dg.op
    def rows() -> pd.DataFrame:
        return leads(7, bad_every=None)

    @dg.job(resource_defs=resources)
    def import_job():
        send(rows())

    result = import_job.execute_in_process(instance=instance)
    assert result.success
    uri = result.output_for_node("send_leads")
    table = pq.read_table(uri)
    assert table["status"].to_pylist() == ["ok"] * 7
    assert uri.endswith("bitrix24_ops/send_leads.parquet")


def _lead_count(emulator) -> int:
    return emulator.counts().get("lead", 0)


def _commands_sent(emulator) -> int:
    """Commands the emulator executed inside batch requests (its request log says)."""
    return sum(r.commands for r in emulator.request_log if r.method == "batch")


def test_halt_on_error_leaves_not_run_rows_that_redrive_sends(b24_emulator, resources, base, instance):
    frame = leads(70)  # rows 0 and 10 (chunk 0) and 50, 60 (chunk 1) are invalid
    result = run(import_assets(frame), resources, instance, halt_on_error=True)
    assert result.success
    statuses = results(base)["status"].to_pylist()
    assert statuses[0] == "error" and set(statuses[1:50]) == {"not_run"}
    assert statuses[50] == "error" and set(statuses[51:70]) == {"not_run"}
    sent_before = _commands_sent(b24_emulator)
    fixed = frame.assign(email=[f"lead{i}@example.com" for i in range(70)])
    assert run(import_assets(fixed), resources, instance, mode="redrive").success
    assert _commands_sent(b24_emulator) - sent_before == 70
    assert results(base)["status"].to_pylist() == ["ok"] * 70
