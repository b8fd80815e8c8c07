"""The fault matrix: long write jobs and big exports under every fault the emulator injects.

For each fault kind (and a mix of all of them) a write job of thousands of commands and an
export of tens of thousands of rows run against the emulator over real sockets. The checks:

* the fault really happened (the emulator's counter for it is above zero);
* every input command has exactly one output row, in input order;
* each row's status is true: ``ok`` rows exist on the portal exactly once, ``error`` and
  ``not_run`` rows do not exist, ``unknown`` rows are the ones whose answer was lost;
* the portal holds no duplicate (every record carries a unique marker in its title);
* the export yields every id exactly once;
* the run's stats agree with the fault counters.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.client import RetryPolicy
from b24_dagster.emulator import FaultRule, FaultSettings, PortalEmulator
from tests.conftest import wait_for

#: Retries fast enough for a test, patient enough that a fault never exhausts them.
FAST_RETRY = RetryPolicy(max_retries=10, backoff_base=0.001, backoff_max=0.01,
                         blocked_wait=0.05, max_wait=120.0)
WRITES = 3_000
DEALS = 20_000
SEED = 7
BATCH = frozenset({"batch"})

#: Write-job faults: the rule, and whether a hit on a write batch leaves its rows unknown.
#: The client cannot tell a 500 or an HTML page that ran nothing from one that ran the batch,
#: so those are honest ``unknown`` too; only 503 and slow-but-answered are always resolved.
WRITE_FAULTS: dict[str, tuple[FaultSettings, bool]] = {
    "storm_503": (FaultSettings(storm_503=FaultRule(rate=0.05, length=4), seed=SEED), False),
    "error_500": (FaultSettings(error_500=FaultRule(rate=0.1, methods=BATCH), seed=SEED), True),
    "html_error": (FaultSettings(html_error=FaultRule(rate=0.1, methods=BATCH), seed=SEED), True),
    "slow": (FaultSettings(slow=FaultRule(rate=0.05, delay=0.2), seed=SEED), False),
    "close_before": (FaultSettings(close_before=FaultRule(rate=0.1), seed=SEED), True),
    "close_after": (FaultSettings(close_after=FaultRule(rate=0.1), seed=SEED), True),
    "malformed_json": (FaultSettings(malformed_json=FaultRule(rate=0.1), seed=SEED), True),
}

MIX = FaultSettings(
    close_before=FaultRule(rate=0.03), storm_503=FaultRule(rate=0.03, length=3),
    error_500=FaultRule(rate=0.03), html_error=FaultRule(rate=0.03),
    slow=FaultRule(rate=0.03, delay=0.1), close_after=FaultRule(rate=0.03),
    malformed_json=FaultRule(rate=0.03), v3_batch_drop=FaultRule(rate=0.1), seed=SEED)


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """What a write job produced, checked against the portal."""

    statuses: collections.Counter[str]
    unknown_chunks: int
    stats: Any


def _client(emulator: PortalEmulator, **options: Any) -> Bitrix24Client:
    options.setdefault("requests_per_second", None)
    options.setdefault("retry", FAST_RETRY)
    return Bitrix24Client(emulator.webhook_url, share_limits=False, **options)


def _titles(emulator: PortalEmulator, entity: str) -> collections.Counter[str]:
    """Every title on the portal for ``entity``, counted (the marker of a record)."""
    rows = emulator.portal.store.tables[entity].rows.values()
    if entity == "task":
        return collections.Counter(row["title"] for row in rows)
    return collections.Counter(row[1] for row in rows)  # deal rows are tuples: (id, title, ...)


def _item_adds(case: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    return [("crm.item.add", {"entityTypeId": 2,
                              "fields": {"title": f"{case}-{i}", "originId": f"{case}-{i}"}})
            for i in range(n)]


def _task_adds(case: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    return [("tasks.task.add", {"fields": {"title": f"{case}-{i}"}}) for i in range(n)]


def _check_write_job(emulator: PortalEmulator, client: Bitrix24Client,
                     calls: list[tuple[str, dict[str, Any]]], *, entity: str,
                     api_version: int = 2, request_id: str | None = None) -> WriteOutcome:
    """Run ``calls`` as one chunked job and check every row's status against the portal."""
    titles_in = [c[1]["fields"]["title"] for c in calls]
    run = client.batch_by_chunk(calls, halt_on_error=False, api_version=api_version,
                                request_id=request_id)
    table = run.to_arrow()
    assert table.num_rows == len(calls)
    assert table["command_index"].to_pylist() == list(range(len(calls)))
    on_portal = _titles(emulator, entity)
    duplicates = {t: n for t, n in on_portal.items() if n > 1}
    assert not duplicates, f"duplicates on the portal: {list(duplicates.items())[:5]}"
    statuses = table["status"].to_pylist()
    chunks = table["chunk_index"].to_pylist()
    results = table["result"].to_pylist()
    unknown_chunks: set[int] = set()
    for i, (title, status) in enumerate(zip(titles_in, statuses, strict=True)):
        if status == "ok":
            assert on_portal[title] == 1, f"row {i} is ok but {title} is not on the portal"
            assert f'"title":"{title}"' in results[i], f"row {i} carries another row's result"
        elif status in ("error", "not_run"):
            assert on_portal[title] == 0, f"row {i} is {status} but {title} was created"
        else:
            assert status == "unknown", status
            unknown_chunks.add(chunks[i])
    counts = collections.Counter(statuses)
    s = run.stats
    assert (s.ok, s.error, s.not_run, s.unknown) == (
        counts["ok"], counts["error"], counts["not_run"], counts["unknown"])
    assert s.commands == len(calls)
    assert run.is_success == (counts["ok"] == len(calls))
    if counts["unknown"]:
        assert not run.is_success and any("unknown" in m for m in run.error_messages)
    _report(f"write {request_id or titles_in[0].rsplit('-', 1)[0]}", emulator,
            rows_in=len(calls), rows_out=table.num_rows, duplicates=len(duplicates),
            ok=counts["ok"], error=counts["error"], not_run=counts["not_run"],
            unknown=counts["unknown"], retries=s.retries, refused=s.refused,
            blocked=s.blocked, requests=s.requests,
            operating_wait=round(s.operating_wait_seconds, 1))
    return WriteOutcome(counts, len(unknown_chunks), s)


def _report(case: str, emulator: PortalEmulator, **figures: Any) -> None:
    """One line of figures per case (shown with ``pytest -s``; the README quotes them)."""
    faults = {k: n for k, n in emulator.stats["faults"].items() if n}
    print(f"\n[fault-matrix] {case}: faults={faults} "
          + " ".join(f"{k}={v}" for k, v in figures.items()))


def _write_batch_faults(emulator: PortalEmulator, kinds: set[str]) -> int:
    """Write batches the emulator answered with one of ``kinds`` (from its request log)."""
    return sum(1 for r in emulator.request_log if r.method == "batch" and r.fault in kinds)


@pytest.fixture
def emulator(b24_emulator: PortalEmulator) -> Iterator[PortalEmulator]:
    """The reset session emulator; faults are switched off again afterwards."""
    yield b24_emulator
    b24_emulator.set_faults(None)


@pytest.mark.parametrize("kind", list(WRITE_FAULTS))
def test_write_job_under_fault(emulator: PortalEmulator, kind: str) -> None:
    faults, leaves_unknown = WRITE_FAULTS[kind]
    emulator.set_faults(faults)
    with _client(emulator, timeout=(2.0, 5.0)) as client:
        out = _check_write_job(emulator, client, _item_adds(kind, WRITES), entity="deal")
    fired = emulator.stats["faults"][kind]
    assert fired > 0, f"the {kind} fault never fired"
    hits = _write_batch_faults(emulator, {kind})
    s = out.stats
    if leaves_unknown:
        # Every write batch the fault hit is one unknown chunk: never re-sent, never guessed.
        assert out.unknown_chunks == hits > 0
        assert out.statuses["unknown"] == 50 * hits
        assert out.statuses["ok"] == WRITES - 50 * hits
    else:
        assert out.statuses["ok"] == WRITES and out.unknown_chunks == 0
    if kind == "storm_503":
        assert s.refused == s.retries == fired   # each 503 of a storm refused and repeated
    if kind == "close_after" or kind == "malformed_json":
        # The portal committed the lost batches: their rows exist, once, reported unknown.
        assert emulator.counts()["deal"] == WRITES
    if kind in ("error_500", "html_error"):
        assert emulator.counts()["deal"] == out.statuses["ok"]


def test_write_job_slow_answer_past_the_read_timeout(emulator: PortalEmulator) -> None:
    """An answer slower than the read timeout: the batch ran, the client must say unknown."""
    emulator.set_faults(FaultSettings(slow=FaultRule(rate=0.15, delay=0.6, methods=BATCH),
                                      seed=SEED))
    with _client(emulator, timeout=(2.0, 0.3)) as client:
        out = _check_write_job(emulator, client, _item_adds("slowto", 1_000), entity="deal")
    # a delayed answer is logged once it is sent, after the client gave up on it
    wait_for(lambda: _write_batch_faults(emulator, {"slow"}) == emulator.stats["faults"]["slow"],
             "every delayed answer to be sent")
    hits = _write_batch_faults(emulator, {"slow"})
    assert hits > 0 and out.unknown_chunks == hits
    assert out.stats.unknown == 50 * hits
    assert emulator.counts()["deal"] == 1_000


def test_v3_job_under_close_after_replays(emulator: PortalEmulator) -> None:
    """v3 writes carry an Idempotency-Key: a lost answer is re-sent and replayed, not re-run."""
    emulator.set_faults(FaultSettings(close_after=FaultRule(rate=0.1, methods=BATCH), seed=SEED))
    with _client(emulator) as client:
        out = _check_write_job(emulator, client, _task_adds("v3ca", 1_000), entity="task",
                               api_version=3, request_id="v3ca")
    assert emulator.stats["faults"]["close_after"] > 0
    assert out.statuses["ok"] == 1_000
    assert out.stats.retries >= emulator.stats["faults"]["close_after"]
    assert emulator.stats["replays"] >= emulator.stats["faults"]["close_after"]


def test_v3_job_with_batch_answer_missing_an_entry(emulator: PortalEmulator) -> None:
    emulator.set_faults(FaultSettings(v3_batch_drop=FaultRule(rate=0.2), seed=SEED))
    with _client(emulator) as client:
        out = _check_write_job(emulator, client, _task_adds("v3drop", 1_000), entity="task",
                               api_version=3, request_id="v3drop")
    assert emulator.stats["faults"]["v3_batch_drop"] > 0
    # The replay behind the Idempotency-Key gives the whole answer: nothing left unknown.
    assert out.statuses["ok"] == 1_000
    assert emulator.counts()["task"] == 1_000


class AcceleratedClock:
    """Wall time running ``factor`` times faster, for the portal and the client alike."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.origin = time.time()

    def __call__(self) -> float:
        return self.origin + (time.time() - self.origin) * self.factor

    def sleep(self, seconds: float) -> None:
        """The client's waits, accelerated: the behaviour under test, not a synchronization."""
        time.sleep(max(0.0, seconds) / self.factor)


@pytest.mark.parametrize(("client_limit", "halt"), [(2.0, False), (480.0, False), (480.0, True)],
                         ids=["client-paces", "portal-blocks-halt0", "portal-blocks-halt1"])
def test_write_job_reaches_the_operating_time_limit(emulator: PortalEmulator,
                                                   client_limit: float, halt: bool) -> None:
    """The method's budget runs out mid-job: the job waits for the reset, nothing is lost.

    With ``client-paces`` the client knows the portal's limit and pauses before it; with
    ``portal-blocks`` it does not, so the portal refuses commands inside batches (429) and
    the client sends those (which never ran) again after the reset.
    """
    # The portal's one-minute buckets pass in 0.3 s: four chunks of 50 writes (the 2 s budget)
    # must land within one, which a loaded 2-core machine (about 40 ms a chunk) still does;
    # at 600x (0.1 s) it often did not, and the window rolled over before the limit was hit.
    clock = AcceleratedClock(200.0)
    emulator.configure(operating_limit=2.0, operating_window=60, write_cost=0.01)
    emulator.portal.clock = clock
    calls = _item_adds(f"oplimit-{client_limit:g}-{int(halt)}", WRITES)
    try:
        with _client(emulator, operating_limit=client_limit, clock=clock,
                     sleep=clock.sleep) as client:
            run = client.batch_by_chunk(calls, halt_on_error=halt)
            statuses = collections.Counter(run.to_arrow()["status"].to_pylist())
    finally:
        emulator.portal.clock = time.time
    on_portal = _titles(emulator, "deal")
    _report(f"write oplimit {client_limit:g} halt={int(halt)}", emulator, rows_in=WRITES,
            rows_out=statuses.total(), duplicates=sum(n > 1 for n in on_portal.values()),
            ok=statuses["ok"], portal_429=emulator.stats["blocked_429"],
            retries=run.stats.retries, blocked=run.stats.blocked,
            operating_wait=round(run.stats.operating_wait_seconds, 1))
    assert statuses == {"ok": WRITES} and run.is_success
    assert len(on_portal) == WRITES and max(on_portal.values()) == 1
    assert run.stats.operating_wait_seconds > 0   # the limit was really reached mid-job
    if client_limit > 2.0:
        assert emulator.stats["blocked_429"] > 0 and run.stats.retries > 0
        assert run.stats.blocked >= run.stats.retries
    else:
        assert emulator.stats["blocked_429"] == 0 and run.stats.retries == 0


def _export_ids(client: Bitrix24Client, method: str) -> list[int]:
    params: dict[str, Any] = ({"entityTypeId": 2, "select": ["id"]} if method == "crm.item.list"
                              else {"select": ["ID"]})
    return [int(row.get("id", row.get("ID"))) for page in client.iter_list(method, params)
            for row in page]


EXPORT_FAULTS: dict[str, FaultSettings] = {
    "storm_503": FaultSettings(storm_503=FaultRule(every=3, length=3), seed=SEED),
    "error_500": FaultSettings(error_500=FaultRule(every=2), seed=SEED),
    "html_error": FaultSettings(html_error=FaultRule(every=2), seed=SEED),
    "slow": FaultSettings(slow=FaultRule(every=2, delay=0.1), seed=SEED),
    "close_before": FaultSettings(close_before=FaultRule(every=2), seed=SEED),
    "close_after": FaultSettings(close_after=FaultRule(every=2), seed=SEED),
    "malformed_json": FaultSettings(malformed_json=FaultRule(every=2), seed=SEED),
}


@pytest.mark.parametrize("kind", list(EXPORT_FAULTS))
def test_export_under_fault(emulator: PortalEmulator, kind: str) -> None:
    emulator.portal.seed("deal", DEALS)
    emulator.set_faults(EXPORT_FAULTS[kind])
    with _client(emulator) as client:
        ids = _export_ids(client, "crm.deal.list")
        stats = client.stats
    _report(f"export {kind}", emulator, rows_out=len(ids), unique=len(set(ids)),
            retries=stats.retries, refused=stats.refused, requests=stats.requests)
    assert ids == list(range(1, DEALS + 1))
    fired = emulator.stats["faults"][kind]
    assert fired > 0
    if kind == "storm_503":
        assert stats.refused == fired
    if kind != "slow":
        assert stats.retries == fired   # reads: every failed attempt repeated, once
    assert stats.unknown_outcomes == 0


def test_mix_of_every_fault(emulator: PortalEmulator) -> None:
    """All faults at once, over a v2 write job, a v3 write job and two exports."""
    emulator.portal.seed("deal", DEALS)
    emulator.set_faults(MIX)
    with _client(emulator) as client:
        v2 = _check_write_job(emulator, client, _item_adds("mix", WRITES), entity="deal")
        # Every v2 write batch answered by a fault that may follow a commit is one unknown
        # chunk; the rest (503 storms, slow answers) were resolved.
        lost = _write_batch_faults(emulator, {"close_before", "error_500", "html_error",
                                              "close_after", "malformed_json"})
        assert v2.unknown_chunks == lost
        v3 = _check_write_job(emulator, client, _task_adds("mix3", 1_000), entity="task",
                              api_version=3, request_id="mix3")
        for method in ("crm.deal.list", "crm.item.list"):
            ids = _export_ids(client, method)
            # Some mix writes committed: every deal once, seeded and written alike.
            assert len(ids) == len(set(ids)) == emulator.counts()["deal"]
            assert ids == sorted(ids)
    fired = {k: n for k, n in emulator.stats["faults"].items() if n}
    assert set(fired) == {kind for kind, _ in MIX.rules()}, fired
    assert v3.statuses["ok"] == 1_000     # v3 writes are idempotent: every fault resolved
    assert v2.statuses["unknown"] == 50 * v2.unknown_chunks
    assert v2.statuses["ok"] + v2.statuses["unknown"] == WRITES
