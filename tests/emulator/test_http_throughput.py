"""Throughput with the emulator in another process (benchmark-sized: ``-m slow``)."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from b24_dagster.emulator import start_subprocess


@pytest.mark.slow
def test_batches_of_50_item_gets_per_second() -> None:
    body = json.dumps({"halt": 0, "cmd": {f"c{i}": f"crm.item.get?entityTypeId=2&id={i + 1}"
                                          for i in range(50)}})
    with start_subprocess(["--rate", "0", "--seed-deals", "1000"]) as emu:
        parts = urlsplit(emu.webhook_url)
        conn = http.client.HTTPConnection(parts.netloc)
        n, seconds = 0, 3.0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            conn.request("POST", parts.path + "batch", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 200
            n += 1
    rate = n / seconds
    print(f"{rate:.0f} batches/s of 50 crm.item.get")
    # 500/s is met on a quiet 2-core machine (554-830/s measured); the floor only catches a
    # broken server (e.g. a 40 ms Nagle stall per answer would give < 25/s), since the
    # machine is shared and its load varies threefold.
    assert rate >= 100
