"""The webhook code never reaches Dagster; whole-step failures; unknown outcomes under faults."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
from dagster._serdes import serialize_value

from b24_dagster.integration import UNKNOWN_CHECK, build_bitrix24_export_asset
from tests.integration.test_batch_asset import ASSET, checks, import_assets, leads, run


def _code(webhook_url: str) -> str:
    return re.search(r"/rest/(?:api/)?\d+/([^/]+)/", webhook_url).group(1)


def _event_text(instance: dg.DagsterInstance, run_id: str) -> str:
    return "\n".join(serialize_value(entry) for entry in instance.all_logs(run_id))


def _files_containing(root: Path, needle: str) -> list[Path]:
    data = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def test_webhook_code_never_reaches_event_log_metadata_or_files(
    b24_emulator, resources, base, disk_instance
):
    instance = disk_instance
    code = _code(b24_emulator.webhook_url)
    b24_emulator.portal.seed("deal", 120)
    deals = build_bitrix24_export_asset(name="deals", method="crm.deal.list", select=["ID"])
    result = run([*import_assets(leads(60)), deals], resources, instance)
    assert result.success
    text = _event_text(instance, result.run_id)
    assert "lead_import" in text and "chunk 2/2" in text  # progress is logged per chunk
    assert code not in text
    assert _files_containing(base, code) == []
    assert _files_containing(Path(instance.root_directory), code) == []


def test_wrong_webhook_code_fails_the_step_with_metadata_and_no_code(
    b24_emulator, resources, base, instance, monkeypatch
):
    good = _code(b24_emulator.webhook_url)
    wrong = "wr0ngc0de" + good[:3]
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", b24_emulator.webhook_url.replace(good, wrong))
    result = run(import_assets(leads(5)), resources, instance)
    assert not result.success
    failure = result.failure_data_for_node(ASSET)
    assert "NO_AUTH_FOUND" in failure.error.message or "auth" in failure.error.message.lower()
    text = _event_text(instance, result.run_id)
    assert wrong not in text and good not in text
    assert not (base / "bitrix24" / "lead_import.parquet").exists()  # nothing published


def test_unknown_outcomes_fail_the_error_check_but_not_the_run(b24_emulator, resources, base, instance):
    from b24_dagster.emulator import FaultRule, FaultSettings

    b24_emulator.set_faults(FaultSettings(close_after=FaultRule(rate=1.0, methods={"batch"})))
    result = run(import_assets(leads(20, bad_every=None)), resources, instance)
    b24_emulator.set_faults(None)
    assert any(r.fault == "close_after" for r in b24_emulator.request_log)
    assert result.success
    found = checks(result)[UNKNOWN_CHECK]
    assert not found.passed and found.severity == dg.AssetCheckSeverity.ERROR
    table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
    assert table.num_rows == 20 and set(table["status"].to_pylist()) == {"unknown"}
