"""Records found by the exact key they carry, in bulk (`find_by_keys`), and lost creates settled
only on an exact, unique match, against the emulator over HTTP."""

from __future__ import annotations

import pytest

from b24_dagster.client import Bitrix24Client
from b24_dagster.client._lookup import find_by_comm, find_by_keys, normalize_comm
from b24_dagster.client._reconcile import ReconcileCounts, reconcile_creates
from b24_dagster.emulator import FaultRule, FaultSettings, PortalEmulator
from b24_dagster.errors import ConfigurationError


def _client(emulator: PortalEmulator) -> Bitrix24Client:
    return Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False)


def _batches(emulator: PortalEmulator) -> int:
    return len([r for r in emulator.request_log if r.method == "batch"])


def test_many_keys_a_command_and_exact_matches(b24_emulator: PortalEmulator) -> None:
    with _client(b24_emulator) as client:
        client.batch_by_chunk([("crm.lead.add", {"fields": {"TITLE": f"L{i}", "ORIGIN_ID": f"K{i}"}})
                               for i in range(120)], halt_on_error=False).run()  # fmt: skip
        client.call("crm.lead.add", {"fields": {"TITLE": "twin", "ORIGIN_ID": "K7"}})
        before = _batches(b24_emulator)
        found = find_by_keys(client, "crm.lead.list", [f"K{i}" for i in range(0, 130)], key_field="ORIGIN_ID")
    # 130 keys: 3 list commands in one batch; the first holds 51 records (K7 twice), so its
    # second page is asked for in a second request.
    assert (found.commands, found.requests) == (4, 2)
    assert _batches(b24_emulator) - before == 2
    assert found.ids("K0") == [1] and found.ids("K119") == [120]
    assert found.ids("K7") == [8, 121]  # two records carry K7: both are reported, in id order
    assert found.ids("K125") == [] and not found.failed


def test_item_keys_with_originator(b24_emulator: PortalEmulator) -> None:
    with _client(b24_emulator) as client:
        for originator in ("erp", "shop"):
            client.call("crm.item.add", {"entityTypeId": 2, "fields": {
                "title": "d", "originId": "A1", "originatorId": originator}})  # fmt: skip
        found = find_by_keys(client, "crm.item.list", ["A1", "A2"], key_field="originId",
                             originator_field="originatorId", originator="shop",
                             params={"entityTypeId": 2})  # fmt: skip
    assert found.ids("A1") == [2] and found.ids("A2") == []


def test_a_filter_the_portal_ignores_is_an_error_not_a_match(b24_emulator: PortalEmulator) -> None:
    """Legacy list methods ignore filter fields they do not know and answer every record;
    before, a lost create was then settled `ok` against whatever record came first."""
    with _client(b24_emulator) as client:
        client.call("crm.lead.add", {"fields": {"TITLE": "x", "ORIGIN_ID": "K1"}})
        with pytest.raises(ConfigurationError, match="ignored the filter on NO_SUCH_FIELD"):
            find_by_keys(client, "crm.lead.list", ["K1"], key_field="NO_SUCH_FIELD")


def _lost_first_request(emulator: PortalEmulator) -> None:
    emulator.faults.configure(FaultSettings(close_after=FaultRule(requests=(1, 1), methods=frozenset({"batch"}))))


def test_two_lost_creates_with_one_key_stay_unknown(b24_emulator: PortalEmulator) -> None:
    """Before, both ended `ok` pointing at the oldest record (even when one never landed). Both
    landed here, and nothing tells which record is whose: both stay unknown, nothing is re-sent."""
    _lost_first_request(b24_emulator)
    calls = [("crm.lead.add", {"fields": {"TITLE": t, "ORIGIN_ID": "SAME"}}) for t in ("a", "b")]
    with _client(b24_emulator) as client:
        run = client.batch_by_chunk(calls, halt_on_error=False, reconcile=True, reconcile_delay_seconds=0.0)
        statuses = run.to_arrow()["status"].to_pylist()
    assert statuses == ["unknown", "unknown"]
    assert b24_emulator.counts()["lead"] == 2 and run.run_stats.reconciled_unknown_left == 2


def test_a_key_two_records_carry_is_not_settled(b24_emulator: PortalEmulator) -> None:
    with _client(b24_emulator) as client:
        for title in ("person", "import"):
            client.call("crm.lead.add", {"fields": {"TITLE": title, "ORIGIN_ID": "DUP"}})
        counts = ReconcileCounts()
        out = reconcile_creates(client, [("crm.lead.add", {"fields": {"TITLE": "x", "ORIGIN_ID": "DUP"}})],
                                counts=counts)  # fmt: skip
    assert out == [None] and (counts.found, counts.resent, counts.left) == (0, 0, 1)
    assert b24_emulator.counts()["lead"] == 2  # nothing sent


def test_find_by_comm_assigns_each_record_to_the_value_it_holds(b24_emulator: PortalEmulator) -> None:
    """`crm.duplicate.findbycomm` answers the ids holding *any* of a call's 20 values
    (api-reference/crm/duplicates/crm-duplicate-find-by-comm.md); the ids are then listed with
    their e-mails and assigned to the value each really holds."""
    with _client(b24_emulator) as client:
        for i in range(45):
            client.call("crm.contact.add", {"fields": {"NAME": f"C{i}", "EMAIL": [
                {"VALUE": f"Person{i}@Example.com", "VALUE_TYPE": "WORK"}]}})  # fmt: skip
        client.call("crm.contact.add", {"fields": {"NAME": "twin", "EMAIL": [{"VALUE": "person3@example.com"}]}})
        wanted = [normalize_comm("EMAIL", f"person{i}@example.com") for i in range(50)]
        found = find_by_comm(client, "crm.contact.add", "EMAIL", wanted)
    assert found.commands == 3 + 1  # 50 values: 3 findbycomm commands; 46 ids: 1 list command
    assert found.ids("person0@example.com") == [1] and found.ids("person44@example.com") == [45]
    assert found.ids("person3@example.com") == [4, 46]
    assert found.ids("person47@example.com") == [] and not found.failed


def test_normalize_comm() -> None:
    assert normalize_comm("EMAIL", [{"VALUE": " A@B.c ", "VALUE_TYPE": "WORK"}]) == "a@b.c"
    assert normalize_comm("PHONE", "+1 (555) 010-20") == "155501020"
    assert normalize_comm("PHONE", None) == ""
