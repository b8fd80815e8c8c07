"""Bulk creates: `batch_by_chunk(calls, bulk_import=True)` packs `crm.item.add` creates into
`crm.item.batchImport` calls, against the emulator over HTTP.

Follows `api-reference/crm/universal/import/crm-item-batch-import.md` (bitrix24/b24restdocs):
at most 20 records a call, one answer entry per record in order (`{"item": {"id": N}}` or
that record's own error), 400 `ACCESS_DENIED` without the "import" permission.
"""

from __future__ import annotations

import json

import pytest

from b24_dagster.client import Bitrix24Client
from b24_dagster.client._bulk import BULK_CHUNK, pack
from b24_dagster.client._commands import Command
from b24_dagster.emulator import FaultRule, FaultSettings, PortalEmulator
from b24_dagster.errors import CommandValidationError

BATCH = frozenset({"batch"})


def _deals(n: int, start: int = 0) -> list[tuple[str, dict]]:
    return [("crm.item.add", {"entityTypeId": 2, "fields": {"title": f"Deal {i}", "originId": f"D{i:05d}"}})
            for i in range(start, start + n)]  # fmt: skip


def _client(emulator: PortalEmulator) -> Bitrix24Client:
    return Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False)


def _origins(emulator: PortalEmulator) -> list[str]:
    with _client(emulator) as client:
        pages = client.iter_list("crm.item.list", {"entityTypeId": 2, "select": ["id", "originId"]})
        return sorted(row["originId"] for page in pages for row in page)


def test_pack_groups_creates_by_entity_type_20_a_call_in_source_order() -> None:
    commands = [Command(i, str(i), m, p) for i, (m, p) in enumerate(
        [*_deals(25), ("crm.item.list", {"entityTypeId": 2}),
         ("crm.item.add", {"entityTypeId": 3, "fields": {"name": "C"}}), *_deals(3, 25),
         ("crm.item.add", {"entityTypeId": 2, "fields": {"title": "x"}, "id": 1})])]  # fmt: skip
    wires = pack(commands)
    assert [(w.method, len(w.sources)) for w in wires] == [
        ("crm.item.batchImport", 20), ("crm.item.batchImport", 8), ("crm.item.list", 1),
        ("crm.item.batchImport", 1), ("crm.item.add", 1)]
    assert wires[1].sources == [20, 21, 22, 23, 24, 27, 28, 29]
    assert wires[0].params["data"][0] == {"title": "Deal 0", "originId": "D00000"}


def test_2050_creates_in_three_requests_each_row_answered_once(b24_emulator: PortalEmulator) -> None:
    with _client(b24_emulator) as client:
        run = client.batch_by_chunk(_deals(2050), halt_on_error=False, bulk_import=True)
        table = run.to_arrow()
    assert run.chunk_size == BULK_CHUNK and run.chunks_total == 3
    assert table["status"].to_pylist() == ["ok"] * 2050
    assert table["command_index"].to_pylist() == list(range(2050))
    assert set(table["method"].to_pylist()) == {"crm.item.add"}
    assert [r.commands for r in b24_emulator.request_log] == [50, 50, 3]
    assert run.stats.requests == 3
    last = json.loads(table["result"][2049].as_py())
    assert last["batchImport"] == {"command": 2, "position": 9} and isinstance(last["item"]["id"], int)
    ids = [json.loads(t)["item"]["id"] for t in table["result"].to_pylist()]
    assert len(set(ids)) == 2050
    assert _origins(b24_emulator) == [f"D{i:05d}" for i in range(2050)]


def test_a_records_own_error_stays_on_its_row(b24_emulator: PortalEmulator) -> None:
    calls = _deals(40)
    calls[23][1]["fields"]["createdTime"] = "2999-01-01T00:00:00+00:00"  # later than now: refused
    with _client(b24_emulator) as client:
        table = client.batch_by_chunk(calls, halt_on_error=False, bulk_import=True).to_arrow()
    statuses = table["status"].to_pylist()
    assert statuses == ["ok"] * 23 + ["error"] + ["ok"] * 16
    assert table["error_code"][23].as_py() == "CRM_FIELD_ERROR_VALUE_NOT_VALID"
    assert table["error_description"][23].as_py().endswith("[crm.item.batchImport command 1, record 3]")
    assert b24_emulator.counts()["deal"] == 39


def test_other_commands_ride_as_themselves(b24_emulator: PortalEmulator) -> None:
    calls = [*_deals(3), ("crm.item.list", {"entityTypeId": 2, "select": ["id"]}), *_deals(2, 3)]
    with _client(b24_emulator) as client:
        table = client.batch_by_chunk(calls, halt_on_error=False, bulk_import=True).to_arrow()
    assert table["method"].to_pylist() == ["crm.item.add"] * 3 + ["crm.item.list"] + ["crm.item.add"] * 2
    assert table["status"].to_pylist() == ["ok"] * 6
    assert "items" in json.loads(table["result"][3].as_py())


def test_without_the_import_permission_the_error_says_what_to_do(b24_emulator: PortalEmulator) -> None:
    b24_emulator.configure(import_permission=False)
    with _client(b24_emulator) as client:
        table = client.batch_by_chunk(_deals(30), halt_on_error=False, bulk_import=True).to_arrow()
    assert set(table["error_code"].to_pylist()) == {"ACCESS_DENIED"}
    text = table["error_description"][0].as_py()
    assert "\"import\" permission for entityTypeId 2" in text and "without bulk_import" in text
    assert b24_emulator.counts()["deal"] == 0


def test_a_lost_answer_is_settled_by_key_never_sent_twice(b24_emulator: PortalEmulator) -> None:
    """Request 1 (chunk 0) commits and loses its answer; request 3 (chunk 1) is dropped before
    it runs: chunk 0's 1,000 creates are found, chunk 1's 200 are imported again."""
    b24_emulator.faults.configure(FaultSettings(close_after=FaultRule(requests=(1, 1), methods=BATCH),
                                                close_before=FaultRule(requests=(3, 3), methods=BATCH)))  # fmt: skip
    with _client(b24_emulator) as client:
        run = client.batch_by_chunk(_deals(1200), halt_on_error=False, bulk_import=True, reconcile=True,
                                    reconcile_delay_seconds=0.0)  # fmt: skip
        table = run.to_arrow()
    sent = [r.commands for r in b24_emulator.request_log]
    assert table["status"].to_pylist() == ["ok"] * 1200
    assert (run.stats.reconciled_found, run.stats.reconciled_resent) == (1000, 200)
    assert _origins(b24_emulator) == [f"D{i:05d}" for i in range(1200)]  # each once
    # chunk 0, its lookup (20 list commands), chunk 1, its lookup, 4 re-sends of 50 creates in 3 imports
    assert sent == [50, 20, 0, 4, 3, 3, 3, 3]  # a request dropped before it ran counts no command


def test_bulk_import_is_v2_only(b24_emulator: PortalEmulator) -> None:
    with _client(b24_emulator) as client, pytest.raises(CommandValidationError, match="v2 only"):
        client.batch_by_chunk(_deals(2), api_version=3, bulk_import=True)


def test_the_emulators_cost_model_and_permission_from_the_command_line() -> None:
    from b24_dagster.emulator.__main__ import build_parser, settings_from_args

    settings = settings_from_args(build_parser().parse_args(
        ["--command-cost", "0.001", "--write-cost", "0.02", "--import-cost", "0.002", "--operating-limit", "20",
         "--operating-window", "60", "--no-import-permission"]))  # fmt: skip
    assert (settings.command_cost, settings.write_cost, settings.import_cost) == (0.001, 0.02, 0.002)
    assert (settings.operating_limit, settings.operating_window, settings.import_permission) == (20.0, 60, False)
