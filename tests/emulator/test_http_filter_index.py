"""Equality / IN filters over a large table use an index of the field (built on first use,
rebuilt after writes): the same answers as a scan, over HTTP."""

from __future__ import annotations

import b24_dagster.emulator._filters as filters
from b24_dagster.client import Bitrix24Client
from b24_dagster.emulator import PortalEmulator


def _origins(client: Bitrix24Client, keys: list[str]) -> list[tuple[int, str]]:
    answer = client.call("crm.lead.list", {"filter": {"@ORIGIN_ID": keys}, "select": ["ID", "ORIGIN_ID"]})
    return [(int(r["ID"]), r["ORIGIN_ID"]) for r in answer.result]


def test_indexed_lookup_matches_the_scan_and_follows_writes(b24_emulator: PortalEmulator, monkeypatch) -> None:
    n = filters.INDEX_MIN_ROWS + 100
    with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None, share_limits=False) as client:
        client.batch_by_chunk([("crm.lead.add", {"fields": {"TITLE": "x", "ORIGIN_ID": f"K{i % 1000}"}})
                               for i in range(n)], halt_on_error=False).run()  # fmt: skip
        keys = ["K7", "K999", "nothing"]
        indexed = _origins(client, keys)
        assert b24_emulator.portal.store.tables["lead"].indexes  # the index was built and used
        monkeypatch.setattr(filters, "INDEX_MIN_ROWS", 10**9)
        assert _origins(client, keys) == indexed  # the scan agrees
        monkeypatch.setattr(filters, "INDEX_MIN_ROWS", 2_000)
        assert [i for i, _ in indexed][:2] == [8, 1000] and len(indexed) == 5
        client.call("crm.lead.update", {"id": 8, "fields": {"ORIGIN_ID": "moved"}})
        client.call("crm.lead.delete", {"id": 1000})
        after = _origins(client, [*keys, "moved"])
        assert (8, "moved") in after and all(i != 1000 for i, _ in after) and len(after) == 4
