"""Two real third-party Bitrix24 clients, unmodified, against the emulator."""

from __future__ import annotations

import pytest

from b24_dagster.emulator import PortalEmulator, PortalSettings


@pytest.fixture(scope="module")
def tls_emulator():
    emu = PortalEmulator(PortalSettings(rate=0), tls=True)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


def test_fast_bitrix24_batch_of_adds_then_get_all(b24_emulator: PortalEmulator) -> None:
    fast_bitrix24 = pytest.importorskip("fast_bitrix24")
    # respect_velocity_policy stays on: with it off, fast_bitrix24 1.8 raises KeyError('batch')
    # on any batch answer whose `time` carries `operating` (its throttler dict is never filled).
    bitrix = fast_bitrix24.Bitrix(b24_emulator.webhook_url, verbose=False,
                                  requests_per_second=1000.0, request_pool_size=1000, ssl=False)
    ids = bitrix.call("crm.deal.add", [{"fields": {"TITLE": f"Deal {i}"}} for i in range(120)])
    # fast_bitrix24 sends its batches concurrently and its call() returns their results in
    # the order the batches completed (1.8: `tuple(raw_results.values())`, not re-sorted by
    # its own `__order` keys), so neither the ids' nor the results' order is fixed; what must
    # hold is one new id per command.
    assert sorted(ids) == list(range(1, 121))
    assert b24_emulator.counts()["deal"] == 120
    rows = bitrix.get_all("crm.deal.list", {"select": ["ID", "TITLE"]})
    # get_all de-duplicates through a set, so its order is its own; ids and titles must match.
    title_by_id = {int(r["ID"]): r["TITLE"] for r in rows}
    assert sorted(title_by_id) == list(range(1, 121))
    assert sorted(title_by_id[int(i)] for i in ids) == sorted(f"Deal {i}" for i in range(120))
    assert b24_emulator.stats["refused_503"] == 0


def test_b24pysdk_call_batches_and_as_list_fast(tls_emulator: PortalEmulator,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    b24pysdk = pytest.importorskip("b24pysdk")
    tls_emulator.reset()
    tls_emulator.configure(rate=0)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_emulator.ca_file))
    tls_emulator.portal.seed("deal", 1234)
    host = tls_emulator.base_url.split("://", 1)[1]
    token = b24pysdk.BitrixWebhook(domain=host,
                                   webhook_token=f"1/{tls_emulator.portal.settings.code}")
    client = b24pysdk.Client(token)

    rows = list(client.crm.deal.list(select=["ID", "TITLE"]).as_list_fast().result)
    assert [int(r["ID"]) for r in rows] == list(range(1, 1235))
    assert rows[0]["TITLE"] == "Deal #1"

    answer = token.call_batches(
        {f"add{i}": ("crm.deal.add", {"fields": {"TITLE": f"new {i}"}}) for i in range(120)})
    created = answer["result"]["result"]
    assert list(created) == [f"add{i}" for i in range(120)]
    assert list(created.values()) == list(range(1235, 1355))
    assert tls_emulator.counts()["deal"] == 1354
    assert all(rec.status == 200 for rec in tls_emulator.request_log)
