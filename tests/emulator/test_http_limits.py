"""The portal's limits as a client sees them over HTTP."""

from __future__ import annotations

import threading
import time

import requests

from b24_dagster.emulator import PortalEmulator


def test_burst_beyond_bucket_gets_503_at_the_documented_rate(b24_emulator: PortalEmulator) -> None:
    rate, burst, window = 10.0, 20, 1.0
    b24_emulator.configure(rate=rate, burst=burst)
    url = b24_emulator.webhook_url + "server.time"
    statuses: list[int] = []
    refusals: list[dict] = []
    lock = threading.Lock()
    start = time.monotonic()

    def hammer() -> None:
        session = requests.Session()
        while time.monotonic() - start < window:
            r = session.get(url)
            with lock:
                statuses.append(r.status_code)
                if r.status_code == 503 and not refusals:
                    refusals.append(r.json())

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - start
    admitted = statuses.count(200)
    assert statuses.count(503) > 0
    assert set(statuses) == {200, 503}
    expected = burst + rate * elapsed
    assert expected - 4 <= admitted <= expected + 2, (admitted, expected)
    assert b24_emulator.stats["refused_503"] == statuses.count(503)
    assert refusals[0] == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}


def test_operating_budget_blocks_with_429(b24_emulator: PortalEmulator) -> None:
    b24_emulator.configure(operating_limit=0.05, command_cost=0.02)
    b24_emulator.portal.seed("deal", 3)
    url = b24_emulator.webhook_url
    codes = [requests.post(url + "crm.deal.list", json={}).status_code for _ in range(5)]
    # 0.02, 0.04, 0.06 (the call crossing the limit still completes), then blocked.
    assert codes == [200, 200, 200, 429, 429]
    r = requests.post(url + "crm.deal.list", json={})
    assert r.json()["error"] == "OPERATION_TIME_LIMIT"
    # Other methods keep working; inside a batch the blocked command fails on its own.
    assert requests.post(url + "crm.deal.get", json={"id": 1}).status_code == 200
    r = requests.post(url + "batch", json={"cmd": {"a": "crm.deal.list", "b": "crm.deal.get?id=2"}})
    assert r.status_code == 200
    result = r.json()["result"]
    assert result["result_error"]["a"]["error"] == "OPERATION_TIME_LIMIT"
    assert result["result"]["b"]["ID"] == "2"
    assert r.json()["time"]["operating"] == 0
