"""The wire client against the portal emulator, over real sockets."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.client import RetryPolicy
from b24_dagster.emulator import FaultRule, FaultSettings, PortalEmulator
from b24_dagster.errors import (
    AuthError,
    MethodNotFoundError,
    OperationTimeLimitError,
    OutcomeUnknownError,
    RateLimitError,
)


@pytest.fixture
def portal(b24_emulator: PortalEmulator) -> Iterator[PortalEmulator]:
    """The session's emulator; every setting a test changes is put back afterwards."""
    settings = b24_emulator.portal.settings
    saved = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)
             if f.name not in ("state_path", "utc_offset")}
    saved["method_costs"] = dict(saved["method_costs"])
    yield b24_emulator
    b24_emulator.set_faults(None)
    b24_emulator.configure(**saved)


def _refused(portal: PortalEmulator) -> int:
    return int(portal.stats["refused_503"])


def _code(portal: PortalEmulator) -> str:
    return str(portal.portal.settings.code)


def _client(portal: PortalEmulator, tmp_path: Path, **kwargs: Any) -> Bitrix24Client:
    kwargs.setdefault("requests_per_second", None)
    kwargs.setdefault("share_limits", tmp_path)
    return Bitrix24Client(portal.webhook_url, **kwargs)


def test_plain_calls(portal: PortalEmulator, tmp_path: Path) -> None:
    with _client(portal, tmp_path) as client:
        now = client.call("server.time")
        assert isinstance(now.result, str) and now.status == 200
        assert isinstance(now.time, dict) and "operating" in now.time
        me = client.call("user.current")
        assert me.result["ID"] == "1"
        added = client.call("crm.item.add", {"entityTypeId": 2, "fields": {"title": "Wire"}})
        item_id = added.result["item"]["id"]
        got = client.call("crm.item.get", {"entityTypeId": 2, "id": item_id})
        assert got.result["item"]["title"] == "Wire"
        listed = client.call("crm.item.list", {"entityTypeId": 2, "select": ["id"]})
        assert listed.total == 1 and listed.next is None
        with pytest.raises(MethodNotFoundError):
            client.call("no.such.method")
    assert client.stats.requests == 6 and client.stats.retries == 0


def test_v3_call_and_webhook_in_v3_form(portal: PortalEmulator, tmp_path: Path) -> None:
    with Bitrix24Client(portal.webhook_url_v3, requests_per_second=None, api_version=3,
                        share_limits=False) as client:
        added = client.call("tasks.task.add", {"fields": {"title": "v3 wire"}})
        task_id = added.result["item"]["id"]
        got = client.call("tasks.task.get", {"id": task_id, "select": ["id", "title"]})
        assert got.result["item"]["title"] == "v3 wire"


def test_wrong_code_is_an_auth_error_without_the_code(portal: PortalEmulator,
                                                      tmp_path: Path) -> None:
    wrong = portal.webhook_url.replace(_code(portal), "wrongcode0000000")
    with Bitrix24Client(wrong, requests_per_second=None, share_limits=False) as client, \
            pytest.raises(AuthError) as info:
        client.call("server.time")
    err = info.value
    assert (err.code, err.status, err.method) == ("NO_AUTH_FOUND", 401, "server.time")
    assert "wrongcode0000000" not in str(err) + repr(err)
    assert _code(portal) not in str(err) + repr(err)


def test_burst_then_rate_with_zero_refusals(portal: PortalEmulator, tmp_path: Path) -> None:
    portal.configure(rate=20.0, burst=10)
    n = 50
    with _client(portal, tmp_path, requests_per_second=20.0, burst=10) as client:
        start = time.perf_counter()
        for _ in range(n):
            client.call("server.time")
        elapsed = time.perf_counter() - start
    assert _refused(portal) == 0 and client.stats.refused == 0
    ideal = (n - 10) / 20.0
    assert ideal <= elapsed + 0.06 and elapsed <= ideal * 1.05 + 0.1


def test_recovers_when_the_portal_refuses_anyway(portal: PortalEmulator, tmp_path: Path) -> None:
    portal.configure(rate=5.0, burst=5)
    with _client(portal, tmp_path / "other") as other:  # another machine fills the bucket
        for _ in range(5):
            other.call("server.time")
    with _client(portal, tmp_path, requests_per_second=5.0, burst=5) as client:
        for _ in range(8):
            client.call("server.time")
    assert client.stats.refused >= 1
    assert client.stats.refused <= 2, "after a refusal the client must keep the portal's pace"
    assert client.stats.retries == client.stats.refused


def test_operation_time_limit(portal: PortalEmulator, tmp_path: Path) -> None:
    portal.configure(operating_limit=0.01, method_costs={"crm.item.list": 0.006})
    policy = RetryPolicy(max_retries=1, max_wait=0.2)
    with _client(portal, tmp_path, retry=policy, operating_limit=0.01) as client:
        client.call("crm.item.list", {"entityTypeId": 2})
        client.call("crm.item.list", {"entityTypeId": 2})  # crosses the limit, still runs
        # the client saw `operating` pass its limit and now pauses the method
        assert client._budget.pause_needed(["crm.item.list"]) > 0
        assert client._budget.pause_needed(["server.time"]) == 0
        with pytest.raises(OperationTimeLimitError) as info:
            client.call("crm.item.list", {"entityTypeId": 2})
        assert info.value.code == "OPERATION_TIME_LIMIT" and info.value.status == 429
        assert client.stats.blocked == 2 and client.stats.operating_wait_seconds > 0
        client.call("server.time")  # other methods keep working


def _share_worker(url: str, state_dir: str, n: int, rate: float, burst: int,
                  out: Any) -> None:
    with Bitrix24Client(url, requests_per_second=rate, burst=burst,
                        share_limits=state_dir) as client:
        start = time.time()
        for _ in range(n):
            client.call("server.time")
        out.put((start, time.time(), client.stats.refused))


def test_two_processes_share_one_bucket(portal: PortalEmulator, tmp_path: Path) -> None:
    rate, burst, n = 20.0, 10, 20
    portal.configure(rate=rate, burst=burst)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_share_worker,
                         args=(portal.webhook_url, str(tmp_path), n, rate, burst, out))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert _refused(portal) == 0
    assert all(refused == 0 for _, _, refused in results)
    span = max(r[1] for r in results) - min(r[0] for r in results)
    # 40 requests through one bucket: at least (40 - burst) / rate seconds together
    assert span >= (2 * n - burst) / rate * 0.9


@pytest.mark.slow
def test_ten_thousand_commands_at_the_portal_limit(portal: PortalEmulator, tmp_path: Path) -> None:
    """200 batches of 50 at 10 req/s, burst 20: within 3% of (200 - 20) / 10 s, no 503."""
    rate, burst, batches = 10.0, 20, 200
    portal.configure(rate=rate, burst=burst)
    cmd = {f"c{i}": "server.time" for i in range(50)}
    with _client(portal, tmp_path, requests_per_second=rate, burst=burst) as client:
        start = time.perf_counter()
        for _ in range(batches):
            env = client._request("batch", {"halt": 0, "cmd": cmd}, api_version=2,
                                  writes=False, methods=["server.time"] * 50)
            assert len(env.body["result"]["result"]) == 50
        elapsed = time.perf_counter() - start
    ideal = (batches - burst) / rate
    print(f"\n{batches} batches: {elapsed:.2f} s, ideal {ideal:.2f} s, "
          f"+{100 * (elapsed / ideal - 1):.2f}%, refused {_refused(portal)}")
    assert _refused(portal) == 0 and client.stats.refused == 0
    assert elapsed <= ideal * 1.03


# -- faults ------------------------------------------------------------------------------------


def _once(method: str, **kw: Any) -> FaultRule:
    return FaultRule(requests=(1, 1), methods=frozenset({method}), **kw)


def test_write_closed_after_commit_is_unknown_and_not_resent(portal: PortalEmulator,
                                                             tmp_path: Path) -> None:
    portal.set_faults(FaultSettings(close_after=_once("crm.item.add")))
    with _client(portal, tmp_path) as client:
        with pytest.raises(OutcomeUnknownError) as info:
            client.call("crm.item.add", {"entityTypeId": 2, "fields": {"title": "once"}})
        assert info.value.method == "crm.item.add" and client.stats.unknown_outcomes == 1
        listed = client.call("crm.item.list", {"entityTypeId": 2, "select": ["id", "title"]})
    assert listed.total == 1, "the write ran exactly once: it was not re-sent"
    assert portal.stats["faults"]["close_after"] == 1


def test_read_closed_after_answer_is_retried(portal: PortalEmulator, tmp_path: Path) -> None:
    portal.set_faults(FaultSettings(close_after=_once("server.time")))
    with _client(portal, tmp_path, retry=RetryPolicy(backoff_base=0.01)) as client:
        assert isinstance(client.call("server.time").result, str)
    assert client.stats.retries == 1 and client.stats.unknown_outcomes == 0


def test_v3_write_with_idempotency_key_is_resent_and_replayed(portal: PortalEmulator,
                                                              tmp_path: Path) -> None:
    portal.set_faults(FaultSettings(close_after=_once("tasks.task.add")))
    with _client(portal, tmp_path, retry=RetryPolicy(backoff_base=0.01)) as client:
        env = client._request("tasks.task.add", {"fields": {"title": "idempotent"}},
                              api_version=3, writes=True, idempotency_key="wire-key-1")
        assert env.replayed and env.body["result"]["item"]["title"] == "idempotent"
        listed = client.call("tasks.task.list", {"select": ["id"]}, api_version=3)
    assert len(listed.result["items"]) == 1
    assert portal.stats["replays"] == 1


@pytest.mark.parametrize("fault", ["error_500", "html_error", "malformed_json"])
def test_broken_answers_read_retried_write_unknown(portal: PortalEmulator, tmp_path: Path,
                                                   fault: str) -> None:
    policy = RetryPolicy(backoff_base=0.01)
    portal.set_faults(FaultSettings(**{fault: _once("crm.item.list")}))
    with _client(portal, tmp_path, retry=policy) as client:
        assert client.call("crm.item.list", {"entityTypeId": 2}).status == 200
        assert client.stats.retries == 1
    portal.set_faults(FaultSettings(**{fault: _once("crm.item.add")}))
    with _client(portal, tmp_path, retry=policy) as client, \
            pytest.raises(OutcomeUnknownError):
        client.call("crm.item.add", {"entityTypeId": 2, "fields": {"title": "x"}})


def test_503_storm_is_ridden_out(portal: PortalEmulator, tmp_path: Path) -> None:
    portal.configure(rate=50.0, burst=50)
    portal.set_faults(FaultSettings(storm_503=FaultRule(requests=(1, 1), length=3)))
    with _client(portal, tmp_path, requests_per_second=50.0, burst=50) as client:
        client.call("crm.item.add", {"entityTypeId": 2, "fields": {"title": "after storm"}})
        assert client.stats.refused == 3 and client.stats.retries == 3
    portal.set_faults(FaultSettings(storm_503=FaultRule(requests=(1, 1), length=10)))
    with _client(portal, tmp_path, requests_per_second=50.0, burst=50,
                 retry=RetryPolicy(max_retries=2)) as client, pytest.raises(RateLimitError):
        client.call("server.time")


def test_html_503_leaves_a_write_batch_unknown_and_a_read_is_retried(
        portal: PortalEmulator, tmp_path: Path) -> None:
    """An HTML 503 (a proxy's page) does not prove the portal refused the batch.

    Only the portal's QUERY_LIMIT_EXCEEDED body does; a write under any other 503 may have
    run, so it is left unknown and never sent twice. A read is simply sent again.
    """
    policy = RetryPolicy(backoff_base=0.01)
    html_503 = FaultRule(requests=(2, 2), status=503, methods=frozenset({"batch"}))
    portal.set_faults(FaultSettings(html_error=html_503))
    calls = [("crm.item.add", {"entityTypeId": 2, "fields": {"title": f"h{i}"}})
             for i in range(120)]
    with _client(portal, tmp_path, retry=policy) as client:
        table = client.batch_by_chunk(calls, halt_on_error=False).to_arrow()
        assert client.stats.retries == 0 and client.stats.refused == 0
    statuses = table["status"].to_pylist()
    assert statuses == ["ok"] * 50 + ["unknown"] * 50 + ["ok"] * 20
    batches = [(r.status, r.fault) for r in portal.request_log if r.method == "batch"]
    assert batches == [(200, None), (503, "html_error"), (200, None)]  # chunk 1 sent once
    assert portal.stats["faults"]["html_error"] == 1
    assert portal.counts()["deal"] == 70  # this page came before the portal ran anything

    portal.set_faults(FaultSettings(html_error=FaultRule(requests=(1, 1), status=503)))
    with _client(portal, tmp_path, retry=policy) as client:
        rows = client.batch([("crm.item.list", {"entityTypeId": 2}), ("server.time",)])
        assert [r.status for r in rows] == ["ok", "ok"] and client.stats.retries == 1
    assert portal.stats["faults"]["html_error"] == 1


def test_batch_answers_feed_the_operating_budget(portal: PortalEmulator, tmp_path: Path) -> None:
    portal.configure(method_costs={"crm.item.list": 1.0})
    cmd = {f"c{i}": "crm.item.list?entityTypeId=2" for i in range(10)}
    with _client(portal, tmp_path, operating_limit=12.0) as client:
        env = client._request("batch", {"halt": 0, "cmd": cmd}, api_version=2, writes=False,
                              methods=["crm.item.list"] * 10)
        assert len(env.body["result"]["result"]) == 10
        # 10 s used of 12, and a batch adds up to 10 s: the method is paused, others are not
        assert client._budget.pause_needed(["crm.item.list"]) > 0
        assert client._budget.pause_needed(["server.time"]) == 0


def test_debug_logs_never_show_the_code(portal: PortalEmulator, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    portal.set_faults(FaultSettings(close_after=_once("server.time")))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG), \
                _client(portal, tmp_path, retry=RetryPolicy(backoff_base=0.01)) as client:
            client.call("server.time")
            with pytest.raises(AuthError):
                Bitrix24Client(portal.webhook_url.replace(_code(portal), "wrongcode0000001"),
                               requests_per_second=None, share_limits=False).call("user.current")
    finally:
        root.setLevel(level)
    assert "/rest/1/***/server.time" in caplog.text  # urllib3's request line, redacted
    assert _code(portal) not in caplog.text
    for record in caplog.records:
        assert _code(portal) not in record.getMessage()
