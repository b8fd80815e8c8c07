"""Lost creates settled by the key they carry: `reconcile_creates` and
`batch_by_chunk(reconcile=True)` against the emulator over HTTP."""

from __future__ import annotations

from b24_dagster.client import Bitrix24Client
from b24_dagster.client._reconcile import ReconcileCounts, creation_key, reconcile_creates
from b24_dagster.emulator import FaultRule, FaultSettings, PortalEmulator

BATCH = frozenset({"batch"})


def _deals(n: int, keyed: bool = True) -> list[tuple[str, dict]]:
    return [("crm.item.add", {"entityTypeId": 2, "fields": {
        "title": f"Deal {i}", **({"originId": f"D{i:04d}", "originatorId": "erp"} if keyed else {})}})
        for i in range(n)]  # fmt: skip


def _client(emulator: PortalEmulator) -> Bitrix24Client:
    return Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False)


def _origins(emulator: PortalEmulator) -> list[str]:
    with _client(emulator) as client:
        pages = client.iter_list("crm.item.list", {"entityTypeId": 2, "select": ["id", "originId"]})
        return sorted(row["originId"] for page in pages for row in page)


def test_creation_key() -> None:
    assert creation_key("crm.lead.add", {"fields": {"ORIGIN_ID": "A1"}}) == {"ORIGIN_ID": "A1"}
    assert creation_key("crm.item.add", {"entityTypeId": 2, "fields": {"originId": "A", "originatorId": "erp"}}) \
        == {"originId": "A", "originatorId": "erp"}  # fmt: skip
    assert creation_key("crm.lead.add", {"fields": {"XML": "x"}}, field="XML") == {"XML": "x"}
    assert creation_key("crm.lead.add", {"fields": {"ORIGIN_ID": ""}}) is None
    assert creation_key("crm.lead.update", {"id": 1, "fields": {"ORIGIN_ID": "A1"}}) is None
    assert creation_key("crm.lead.add", {"fields": {"TITLE": "t"}}) is None


def test_chunked_run_settles_lost_creates(b24_emulator: PortalEmulator) -> None:
    """Request 1 (chunk 0) commits and loses its answer, request 3 (chunk 1) is dropped before
    it runs; request 2 is chunk 0's lookup, 4 chunk 1's lookup, 5 its re-send."""
    b24_emulator.faults.configure(FaultSettings(close_after=FaultRule(requests=(1, 1), methods=BATCH),
                                                close_before=FaultRule(requests=(3, 3), methods=BATCH)))  # fmt: skip
    with _client(b24_emulator) as client:
        run = client.batch_by_chunk(_deals(150), halt_on_error=False, reconcile=True,
                                    reconcile_delay_seconds=0.0)  # fmt: skip
        table = run.to_arrow()
    assert table["status"].to_pylist() == ["ok"] * 150
    assert _origins(b24_emulator) == [f"D{i:04d}" for i in range(150)]  # each once
    assert (run.run_stats.reconciled_found, run.run_stats.reconciled_resent) == (50, 50)
    assert run.run_stats.ok == 150 and run.run_stats.unknown == 0
    assert "found by originId, originatorId" in table["error_description"][0].as_py()
    assert b24_emulator.stats["faults"]["close_after"] == b24_emulator.stats["faults"]["close_before"] == 1


def test_without_reconcile_lost_creates_stay_unknown(b24_emulator: PortalEmulator) -> None:
    b24_emulator.faults.configure(FaultSettings(close_after=FaultRule(requests=(1, 1), methods=BATCH)))
    with _client(b24_emulator) as client:
        run = client.batch_by_chunk(_deals(100), halt_on_error=False)
        statuses = run.to_arrow()["status"].to_pylist()
    assert statuses == ["unknown"] * 50 + ["ok"] * 50
    assert run.run_stats.reconciled_found == 0 and b24_emulator.counts()["deal"] == 100


def test_keyless_creates_stay_unknown_and_nothing_is_resent(b24_emulator: PortalEmulator) -> None:
    b24_emulator.faults.configure(FaultSettings(close_after=FaultRule(requests=(1, 1), methods=BATCH)))
    with _client(b24_emulator) as client:
        run = client.batch_by_chunk(_deals(60, keyed=False), halt_on_error=False, reconcile=True,
                                    reconcile_delay_seconds=0.0)  # fmt: skip
        statuses = run.to_arrow()["status"].to_pylist()
    assert statuses == ["unknown"] * 50 + ["ok"] * 10
    assert b24_emulator.counts()["deal"] == 60
    assert len([r for r in b24_emulator.request_log if r.method == "batch"]) == 2  # no lookup, no re-send


def test_settle_wait_once_per_round_and_only_with_a_key(b24_emulator: PortalEmulator) -> None:
    waits: list[float] = []
    counts = ReconcileCounts()
    with _client(b24_emulator) as client:
        out = reconcile_creates(client, [*_deals(2), *_deals(1, keyed=False)], counts=counts,
                                settle_seconds=7.5, sleep=waits.append)  # fmt: skip
        assert reconcile_creates(client, _deals(1, keyed=False), settle_seconds=7.5, sleep=waits.append) == [None]
    assert waits == [7.5]  # one round: both keyed creates were missing, and are sent now
    assert [o.status if o else None for o in out] == ["ok", "ok", None]
    assert (counts.found, counts.resent, counts.left, counts.lookups) == (0, 2, 1, 2)
    assert _origins(b24_emulator) == ["D0000", "D0001"]
