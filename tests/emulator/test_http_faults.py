"""Every injected fault, as a requests client sees it, and counted in ``stats``."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from b24_dagster.emulator import FaultRule, FaultSettings, PortalEmulator
from b24_dagster.emulator._faults import parse_fault_spec
from tests.conftest import wait_for


def _add(url: str, title: str = "x") -> requests.Response:
    return requests.post(url + "crm.deal.add", json={"fields": {"TITLE": title}}, timeout=5)


def test_close_before_processing_commits_nothing(b24_emulator: PortalEmulator) -> None:
    b24_emulator.set_faults(FaultSettings(close_before=FaultRule(requests=(1, 1))))
    with pytest.raises(requests.ConnectionError):
        _add(b24_emulator.webhook_url)
    assert b24_emulator.counts()["deal"] == 0
    assert b24_emulator.stats["faults"]["close_before"] == 1
    assert b24_emulator.stats["requests"] == 0
    assert _add(b24_emulator.webhook_url).json()["result"] == 1
    assert b24_emulator.request_log[0].fault == "close_before"


def test_close_after_commit_leaves_the_write_done(b24_emulator: PortalEmulator) -> None:
    b24_emulator.set_faults(FaultSettings(close_after=FaultRule(requests=(1, 1))))
    with pytest.raises(requests.ConnectionError):
        _add(b24_emulator.webhook_url)
    assert b24_emulator.counts()["deal"] == 1           # the duplicate-maker
    rec = b24_emulator.request_log[0]
    assert (rec.fault, rec.status, rec.committed) == ("close_after", 0, True)
    assert b24_emulator.stats["faults"]["close_after"] == 1


def test_503_storm_is_a_burst_of_consecutive_refusals(b24_emulator: PortalEmulator) -> None:
    b24_emulator.set_faults(FaultSettings(storm_503=FaultRule(requests=(2, 2), length=3)))
    url = b24_emulator.webhook_url + "server.time"
    session = requests.Session()
    codes = [session.get(url).status_code for _ in range(6)]
    assert codes == [200, 503, 503, 503, 200, 200]
    assert session.get(url).status_code == 200
    assert b24_emulator.stats["faults"]["storm_503"] == 3


def test_500_and_html_error_page(b24_emulator: PortalEmulator) -> None:
    b24_emulator.set_faults(FaultSettings(error_500=FaultRule(requests=(1, 1)),
                                          html_error=FaultRule(requests=(2, 2), status=502)))
    url = b24_emulator.webhook_url
    r = _add(url)
    assert r.status_code == 500 and r.json()["error"] == "INTERNAL_SERVER_ERROR"
    r = _add(url)
    assert r.status_code == 502 and r.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        r.json()
    assert b24_emulator.counts()["deal"] == 0
    assert b24_emulator.stats["faults"]["error_500"] == 1
    assert b24_emulator.stats["faults"]["html_error"] == 1


def test_malformed_json_after_commit(b24_emulator: PortalEmulator) -> None:
    b24_emulator.set_faults(FaultSettings(malformed_json=FaultRule(every=1)))
    r = _add(b24_emulator.webhook_url)
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    assert b24_emulator.counts()["deal"] == 1
    assert b24_emulator.stats["faults"]["malformed_json"] == 1


def test_v3_batch_answer_missing_an_entry(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("task", 3)
    b24_emulator.set_faults(FaultSettings(v3_batch_drop=FaultRule(every=1)))
    cmds = [{"method": "tasks.task.get", "query": {"id": i}} for i in (1, 2, 3)]
    r = requests.post(b24_emulator.webhook_url_v3 + "batch", json=cmds)
    assert r.status_code == 200
    assert len(r.json()["result"]) == 2
    assert b24_emulator.stats["faults"]["v3_batch_drop"] == 1
    # Not a v3 batch: untouched and not counted.
    assert requests.post(b24_emulator.webhook_url + "server.time").status_code == 200
    assert b24_emulator.stats["faults"]["v3_batch_drop"] == 1


def test_slow_answer_does_not_block_other_connections(b24_emulator: PortalEmulator) -> None:
    b24_emulator.set_faults(FaultSettings(slow=FaultRule(methods=frozenset({"crm.deal.add"}),
                                                         every=1, delay=0.6)))
    url = b24_emulator.webhook_url
    done: list[float] = []
    t0 = time.monotonic()
    slow = threading.Thread(target=lambda: (_add(url), done.append(time.monotonic() - t0)))
    slow.start()
    wait_for(lambda: b24_emulator.stats["faults"]["slow"] == 1, "the slow request to arrive")
    fast = time.monotonic()
    assert requests.get(url + "server.time").status_code == 200
    assert time.monotonic() - fast < 0.3
    slow.join(5)
    assert done and done[0] >= 0.6
    assert b24_emulator.stats["faults"]["slow"] == 1


def test_portal_latency_does_not_block_the_loop(b24_emulator: PortalEmulator) -> None:
    b24_emulator.configure(latency=0.3)
    url = b24_emulator.webhook_url + "server.time"
    t0 = time.monotonic()
    threads = [threading.Thread(target=requests.get, args=(url,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert time.monotonic() - t0 < 1.5     # 8 x 0.3 s would be 2.4 s if serialized


def test_fault_restricted_to_methods_and_seeded_rate(b24_emulator: PortalEmulator) -> None:
    def run() -> list[int]:
        b24_emulator.set_faults(FaultSettings(
            error_500=FaultRule(rate=0.5, methods=frozenset({"crm.deal.add"})), seed=7))
        session = requests.Session()
        codes = []
        for _ in range(20):
            assert session.get(b24_emulator.webhook_url + "server.time").status_code == 200
            codes.append(session.post(b24_emulator.webhook_url + "crm.deal.add",
                                      json={"fields": {"TITLE": "t"}}).status_code)
        return codes

    first, second = run(), run()
    assert first == second
    assert 0 < first.count(500) < 20
    assert b24_emulator.stats["faults"]["error_500"] == first.count(500)


def test_reset_clears_faults(b24_emulator: PortalEmulator) -> None:
    b24_emulator.set_faults(FaultSettings(error_500=FaultRule(every=1)))
    b24_emulator.reset()
    assert requests.get(b24_emulator.webhook_url + "server.time").status_code == 200


def test_fault_spec_parsing() -> None:
    kind, rule = parse_fault_spec("storm-503:every=100,length=10,methods=batch+crm.deal.add")
    assert kind == "storm_503" and rule.every == 100 and rule.length == 10
    assert rule.methods == frozenset({"batch", "crm.deal.add"})
    assert parse_fault_spec("slow:requests=3-5,delay=0.5")[1].requests == (3, 5)
    assert parse_fault_spec("close_after")[1].rate == 1.0
    with pytest.raises(ValueError):
        parse_fault_spec("nonsense")
