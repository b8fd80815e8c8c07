"""Batch assets with `bulk_import=True`, materialized against the emulator over HTTP: a sync's
creates and a one-shot load ride `crm.item.batchImport`, 1,000 a request, each key once.

Follows `api-reference/crm/universal/import/crm-item-batch-import.md` (bitrix24/b24restdocs).
"""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from b24_dagster.client import Bitrix24Client
from b24_dagster.emulator import FaultRule, FaultSettings
from b24_dagster.integration import build_bitrix24_batch_asset

KEY = dg.AssetKey(["bitrix24", "deal_load"])


def deals(n: int) -> pd.DataFrame:
    return pd.DataFrame({"external_id": [f"D{i:05d}" for i in range(n)], "title": [f"Deal {i}" for i in range(n)]})


def asset(frame: pd.DataFrame, **kwargs) -> dg.AssetsDefinition:
    return build_bitrix24_batch_asset(
        name="deal_load", method="crm.item.add", source=lambda _context: frame, params={"entityTypeId": 2},
        key_column="external_id", reconcile_delay_seconds=0.0, bulk_import=True, **kwargs)  # fmt: skip


def metadata(result: dg.ExecuteInProcessResult) -> dict:
    event = next(e for e in result.get_asset_materialization_events() if e.asset_key == KEY)
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def origins(emulator) -> list[str]:
    with Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False) as b24:
        pages = b24.iter_list("crm.item.list", {"entityTypeId": 2, "select": ["id", "originId"]})
        return sorted(row["originId"] for page in pages for row in page)


def test_a_syncs_creates_ride_batch_import(b24_emulator, resources, base, instance):
    frame = deals(2500)
    first = dg.materialize([asset(frame, fields={"title": "title"})], resources=resources, instance=instance)
    m = metadata(first)
    assert (m["rows_create"], m["ok"], m["lookup_requests"]) == (2500, 2500, 1)
    writes = [r.commands for r in b24_emulator.request_log if r.committed]
    assert writes == [50, 50, 25]  # 2,500 creates in 125 import calls, 3 requests
    assert m["bound_by"] == "none" and m["operating_wait_seconds"] == 0.0
    table = pq.read_table(base / "bitrix24" / "deal_load.parquet")
    assert table["portal_id"].null_count == 0 and len(set(table["portal_id"].to_pylist())) == 2500
    assert origins(b24_emulator) == [f"D{i:05d}" for i in range(2500)]
    again = metadata(dg.materialize([asset(frame, fields={"title": "title"})], resources=resources,
                                    instance=instance))  # fmt: skip
    assert (again["rows_unchanged"], again["requests"]) == (2500, 1)  # crm.item.fields only


def test_a_one_shot_load_settles_a_lost_import_by_key(b24_emulator, resources, base, instance):
    """The first request commits and loses its answer: its 1,000 creates are found by key, not sent again."""
    b24_emulator.faults.configure(FaultSettings(close_after=FaultRule(requests=(1, 1), methods=frozenset({"batch"}))))
    result = dg.materialize([asset(deals(1200), sync="send", fields={"title": "title", "external_id": "originId"})],
                            resources=resources, instance=instance)  # fmt: skip
    m = metadata(result)
    assert (m["ok"], m["unknown"], m["reconciled_found"], m["reconciled_resent"]) == (1200, 0, 1000, 0)
    table = pq.read_table(base / "bitrix24" / "deal_load.parquet")
    assert table["chunk_index"].to_pylist() == [0] * 1000 + [1] * 200
    assert json.loads(table["result"][1199].as_py())["batchImport"] == {"command": 9, "position": 19}
    assert origins(b24_emulator) == [f"D{i:05d}" for i in range(1200)]


def test_without_the_import_permission_each_row_says_what_to_do(b24_emulator, resources, base, instance):
    b24_emulator.configure(import_permission=False)
    result = dg.materialize([asset(deals(30), sync="send", fields={"title": "title"})], resources=resources,
                            instance=instance)  # fmt: skip
    m = metadata(result)
    assert m["error"] == 30
    table = pq.read_table(base / "bitrix24" / "deal_load.parquet")
    assert set(table["error_code"].to_pylist()) == {"ACCESS_DENIED"}
    assert "\"import\" permission" in table["error_description"][0].as_py()


def test_bulk_import_is_for_crm_item_add_only():
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="crm.item.batchImport"):
        build_bitrix24_batch_asset(name="x", method="crm.lead.add", source="s", fields=["TITLE"], bulk_import=True)


def test_an_interrupted_bulk_chunk_is_imported_again_when_missing(b24_emulator):
    """What a resumed step does with the chunk in flight when it died: lookups by key, then the
    missing creates imported (30 in one request of two import calls), not sent one by one."""
    import pyarrow as pa

    from b24_dagster.client._bulk import send_bulk
    from b24_dagster.integration._reconcile import ReconcileCounts, reconcile_table

    calls = [("crm.item.add", {"entityTypeId": 2, "fields": {"title": f"Deal {i}", "originId": f"D{i:05d}"}})
             for i in range(30)]  # fmt: skip
    n = len(calls)
    table = pa.table({"command_index": pa.array(range(n), pa.int64()), "status": ["unknown"] * n,
                      "result": pa.nulls(n, pa.string()), "error_code": ["JOURNAL_INTERRUPTED"] * n,
                      "error_description": pa.nulls(n, pa.string())})  # fmt: skip
    counts = ReconcileCounts()
    with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None, share_limits=False) as client:
        settled = reconcile_table(table, lambda i: calls[i], client, counts=counts, send=send_bulk(client))
    assert settled["status"].to_pylist() == ["ok"] * n and (counts.found, counts.resent) == (0, n)
    assert [r.commands for r in b24_emulator.request_log] == [1, 2]  # one lookup, two import calls
    assert origins(b24_emulator) == [f"D{i:05d}" for i in range(n)]
