"""Batches, chunked runs, examples and the list export against the emulator over real sockets."""

from __future__ import annotations

import math
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.emulator import PortalEmulator

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.fixture
def emulator(b24_emulator: PortalEmulator) -> PortalEmulator:
    return b24_emulator


@pytest.fixture
def client(emulator: Any) -> Any:
    with Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False) as c:
        yield c


@pytest.mark.parametrize("name", ["call_batch", "call_batch_by_chunk", "batch_v3", "batch_by_chunk_v3"])
def test_examples_run(emulator: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B24_WEBHOOK_URL", emulator.webhook_url)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    module = runpy.run_path(str(EXAMPLES / f"{name}.py"))
    module["main"](emulator.webhook_url)
    sys.modules.pop("_portal", None)


def test_halt_semantics(client: Any) -> None:
    calls = [("crm.item.add", {"entityTypeId": 2, "fields": {"title": "a"}}),
             ("crm.item.get", {"entityTypeId": 2, "id": 10**9}),
             ("crm.item.add", {"entityTypeId": 2, "fields": {"title": "b"}})]
    assert [r.status for r in client.batch(calls)] == ["ok", "error", "not_run"]
    assert [r.status for r in client.batch(calls, halt_on_error=False)] == ["ok", "error", "ok"]


def test_chunked_run_with_failing_rows(client: Any, emulator: Any) -> None:
    calls = [("crm.item.update", {"entityTypeId": 2, "id": 10**9, "fields": {"title": "x"}})
             if i % 97 == 0 else ("crm.item.add", {"entityTypeId": 2, "fields": {"title": f"d{i}"}})
             for i in range(1234)]
    run = client.batch_by_chunk(calls, halt_on_error=False)
    table = run.to_arrow()
    assert table["command_index"].to_pylist() == list(range(1234))
    failing = {i for i in range(1234) if i % 97 == 0}
    statuses = table["status"].to_pylist()
    assert {i for i, s in enumerate(statuses) if s == "error"} == failing
    assert run.stats.chunks == 25 and run.stats.requests == 25
    assert emulator.portal.counts()["deal"] == 1234 - len(failing)


def test_v3_chunked_combined_results(client: Any) -> None:
    calls = [("tasks.task.add", {"fields": {"title": f"t{i}"}}) for i in range(120)]
    run = client.batch_by_chunk(calls, api_version=3, request_id="job-1")
    data = run.data()
    assert [d["item"]["title"] for d in data] == [f"t{i}" for i in range(120)]


@pytest.mark.parametrize(("method", "params"), [
    ("crm.item.list", {"entityTypeId": 2, "select": ["id", "title"]}),
    ("crm.deal.list", {"select": ["ID", "TITLE"]}),
])
def test_export_requests_and_every_id_once(client: Any, emulator: Any, method: str, params: Any) -> None:
    emulator.portal.seed("deal", 6_123)
    before = client.stats.requests
    ids = [int(row.get("id", row.get("ID"))) for page in client.iter_list(method, params) for row in page]
    assert len(ids) == len(set(ids)) == 6_123 and ids == sorted(ids)
    assert client.stats.requests - before <= math.ceil(6_123 / 2500) + 1


def test_records_added_during_the_export(client: Any, emulator: Any) -> None:
    emulator.portal.seed("deal", 5_100)
    seen: list[int] = []
    for n, page in enumerate(client.iter_list("crm.item.list", {"entityTypeId": 2, "select": ["id"]})):
        seen.extend(row["id"] for row in page)
        if n == 10:
            client.batch([("crm.item.add", {"entityTypeId": 2, "fields": {"title": "late"}})] * 5)
    assert len(seen) == len(set(seen)) == 5_105


@pytest.mark.slow
def test_export_12345_deals(client: Any, emulator: Any) -> None:
    emulator.portal.seed("deal", 12_345)
    before = client.stats.requests
    n = sum(len(p) for p in client.iter_list("crm.deal.list", {"select": ["ID"]}))
    assert n == 12_345 and client.stats.requests - before == math.ceil(12_345 / 2500)


def _close_after_commit(emulator: Any) -> None:
    """Make the emulator run the next batch, commit it, and close the connection unanswered."""
    from b24_dagster.emulator import FaultRule, FaultSettings

    emulator.set_faults(FaultSettings(close_after=FaultRule(requests=(1, 1), methods=frozenset({"batch"}))))


def test_unknown_outcome_is_not_resent(client: Any, emulator: Any) -> None:
    _close_after_commit(emulator)
    before = emulator.portal.counts()["deal"]
    calls = [("crm.item.add", {"entityTypeId": 2, "fields": {"title": f"u{i}"}}) for i in range(3)]
    calls.append(("crm.item.list", {"entityTypeId": 2, "select": ["id"]}))
    result = client.batch(calls, halt_on_error=False)
    assert [r.status for r in result] == ["unknown"] * 3 + ["error"]
    assert result.commands[3].error_code == "NO_RESPONSE"
    assert emulator.portal.counts()["deal"] == before + 3  # ran once, never re-sent
    assert client.stats.unknown_outcomes == 1
    assert result.to_arrow()["status"].to_pylist()[:3] == ["unknown"] * 3


def test_v3_idempotent_resend_replays(client: Any, emulator: Any) -> None:
    _close_after_commit(emulator)
    before = emulator.portal.counts()["task"]
    calls = [("tasks.task.add", {"fields": {"title": f"i{i}"}}) for i in range(3)]
    result = client.batch(calls, api_version=3, request_id="replay-1")
    assert result.is_success, result.error_messages
    assert result.replayed
    assert emulator.portal.counts()["task"] == before + 3  # the re-send ran nothing
    log = [r for r in emulator.request_log if r.method == "batch"]
    assert [(r.status, r.idempotency_key) for r in log] == [(0, "replay-1-0"), (200, "replay-1-0")]
    assert client.stats.retries >= 1


def test_v3_batch_is_all_or_nothing(client: Any, emulator: Any) -> None:
    emulator.portal.seed("task", 2)
    calls = [("tasks.task.get", {"id": 1}), ("tasks.task.get", {"id": 10**9}), ("tasks.task.get", {"id": 2})]
    result = client.batch(calls, api_version=3, halt_on_error=False)
    codes = {r.error_code for r in result}
    assert [r.status for r in result] == ["error"] * 3 and len(codes) == 1
    assert codes.pop().startswith("BITRIX_REST_V3_EXCEPTION_")


def test_v3_missing_entry_is_asked_again(client: Any, emulator: Any) -> None:
    """A v3 answer one entry short cannot be matched by position (it used to shift the
    later entries onto the wrong commands): a read is simply sent again."""
    from b24_dagster.emulator import FaultRule, FaultSettings

    emulator.portal.seed("task", 3)
    emulator.set_faults(FaultSettings(v3_batch_drop=FaultRule(requests=(1, 1))))
    result = client.batch([("tasks.task.get", {"id": i}) for i in (1, 2, 3)], api_version=3)
    assert [r.status for r in result] == ["ok"] * 3
    assert [r.data["item"]["id"] for r in result] == [1, 2, 3]
    assert emulator.stats["faults"]["v3_batch_drop"] == 1


def test_request_ids_and_progress(client: Any, emulator: Any) -> None:
    seen: list[Any] = []
    calls = [("crm.item.add", {"entityTypeId": 2, "fields": {"title": str(i)}}) for i in range(120)]
    run = client.batch_by_chunk(calls, request_id="job-42", progress=seen.append)
    chunks = [chunk.chunk_index for chunk in run]
    assert chunks == [0, 1, 2]
    assert [(p.chunk_index, p.chunks_total, p.commands_done, p.ok) for p in seen] == [
        (0, 3, 50, 50), (1, 3, 100, 100), (2, 3, 120, 120)]
    assert run.stats.requests == 3 and run.stats.ok == 120
    log = [r for r in emulator.request_log if r.method == "batch"]
    assert [r.request_id for r in log] == ["job-42-0", "job-42-1", "job-42-2"]
    assert {r.idempotency_key for r in log} == {None}  # v2 has no idempotency keys


@pytest.mark.parametrize("api_version", [2, 3])
def test_task_export(client: Any, emulator: Any, api_version: int) -> None:
    emulator.portal.seed("task", 2_600)
    before = client.stats.requests
    ids = [int(row["id"]) for page in client.iter_list("tasks.task.list", {"select": ["id", "title"]},
                                                      api_version=api_version) for row in page]
    assert ids == sorted(set(ids)) and len(ids) == 2_600
    assert client.stats.requests - before <= (2 if api_version == 2 else 4)


def test_export_keeps_the_user_filter_and_start(client: Any, emulator: Any) -> None:
    emulator.portal.seed("deal", 3_000)
    pages = list(client.iter_list("crm.deal.list", {"filter": {">ID": 100, "<=ID": 2_700}, "select": ["TITLE"]}))
    ids = [int(r["ID"]) for p in pages for r in p]
    assert ids == list(range(101, 2_701))
    with pytest.raises(Exception, match="id ascending"):
        list(client.iter_list("crm.deal.list", {"order": {"TITLE": "ASC"}}))


def test_v3_answer_missing_an_entry_is_never_read_by_position(client: Any, emulator: Any) -> None:
    """Regression: a v3 answer one entry short used to shift every later result by one."""
    from b24_dagster.emulator import FaultRule, FaultSettings

    emulator.set_faults(FaultSettings(v3_batch_drop=FaultRule(requests=(1, 1))))
    calls = [("tasks.task.add", {"fields": {"title": f"d{i}"}}) for i in range(5)]
    result = client.batch(calls, api_version=3, request_id="drop-1")
    assert [r.status for r in result] == ["ok"] * 5   # re-sent behind the key, replayed whole
    assert [r.data["item"]["title"] for r in result] == [f"d{i}" for i in range(5)]
    assert emulator.portal.counts()["task"] == 5 and emulator.stats["replays"] == 1
    emulator.set_faults(FaultSettings(v3_batch_drop=FaultRule(every=1)))
    result = client.batch(calls, api_version=3, request_id="drop-2")
    assert [r.status for r in result] == ["unknown"] * 5   # ran, but the mapping is lost
    assert emulator.portal.counts()["task"] == 10


def test_v3_read_answer_missing_an_entry_is_an_error_not_a_shift(emulator: Any) -> None:
    from b24_dagster.client import RetryPolicy
    from b24_dagster.emulator import FaultRule, FaultSettings

    emulator.portal.seed("task", 3)
    emulator.set_faults(FaultSettings(v3_batch_drop=FaultRule(every=1)))
    with Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False,
                        retry=RetryPolicy(max_retries=2, backoff_base=0.001)) as c:
        result = c.batch([("tasks.task.get", {"id": i}) for i in (1, 2, 3)], api_version=3)
        assert c.stats.retries == 2
    assert {(r.status, r.error_code) for r in result} == {("error", "MISSING_RESULT")}


@pytest.mark.parametrize("halt", [False, True])
def test_commands_blocked_by_the_operating_limit_are_sent_again(emulator: Any,
                                                                halt: bool) -> None:
    """Regression: commands refused inside a batch by the operating-time limit (429) never
    ran, and used to end as errors; they are sent again once the method's budget resets."""
    import time as _time

    from b24_dagster.client import RetryPolicy

    start = _time.time()

    def clock() -> float:   # one minute of portal time in 0.1 s
        return start + (_time.time() - start) * 600

    emulator.configure(operating_limit=0.1, operating_window=60, write_cost=0.01)
    emulator.portal.clock = clock
    try:
        with Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False,
                            retry=RetryPolicy(backoff_base=0.001), clock=clock,
                            sleep=lambda s: _time.sleep(s / 600)) as c:
            calls = [("crm.item.add", {"entityTypeId": 2, "fields": {"title": f"b{i}"}})
                     for i in range(40)]
            result = c.batch(calls, halt_on_error=halt)
            assert c.stats.retries >= 1
    finally:
        emulator.portal.clock = _time.time
    assert [r.status for r in result] == ["ok"] * 40
    assert emulator.stats["blocked_429"] > 0
    assert emulator.portal.counts()["deal"] == 40
