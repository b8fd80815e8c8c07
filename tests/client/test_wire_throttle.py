"""The client bucket and the operating-time budget, on a fake clock."""

from __future__ import annotations

import pytest

from b24_dagster.client._throttle import OperatingBudget, RateLimiter, state_file_for
from b24_dagster.emulator._limits import LeakyBucket


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_burst_then_rate_never_refused_by_the_portal_model() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 20, clock=clock, sleep=clock.sleep)
    portal = LeakyBucket(10, 20)
    start = clock.now
    for _ in range(200):
        limiter.acquire()
        assert portal.admit(clock.now)
        clock.now += 0.002  # the request takes a little time
    elapsed = clock.now - start - 200 * 0.002
    # headroom of 1 token: (200 - 19) / 10
    assert elapsed == pytest.approx((200 - 19) / 10, abs=0.45)
    assert elapsed <= (200 - 20) / 10 * 1.03


def test_bucket_starts_full_and_refills() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 50, clock=clock, sleep=clock.sleep)
    for _ in range(49):
        assert limiter.acquire() == 0.0
    assert limiter.acquire() == pytest.approx(0.5)
    clock.now += 100
    assert limiter.available() == pytest.approx(49)


def test_refused_empties_the_bucket_and_waits_one_interval() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4, 50, clock=clock, sleep=clock.sleep)
    limiter.refused()
    assert limiter.acquire() == pytest.approx(0.25)


def test_validation() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0, 10)
    with pytest.raises(ValueError):
        RateLimiter(1, 0)


def test_two_limiters_share_one_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    path = state_file_for("https://portal.example", tmp_path)
    a = RateLimiter(10, 11, state_file=path, clock=clock, sleep=clock.sleep)
    b = RateLimiter(10, 11, state_file=path, clock=clock, sleep=clock.sleep)
    assert a.shared and b.shared
    for _ in range(5):
        assert a.acquire() == 0.0
        assert b.acquire() == 0.0
    # 10 tokens used between them: the next one waits
    assert a.acquire() == pytest.approx(0.1)
    assert path.stat().st_size == 16
    assert "portal" not in path.name
    a.close()
    b.close()


def test_unwritable_folder_falls_back_to_process_state(tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    limiter = RateLimiter(1, 5, state_file=blocker / "sub" / "x.bucket")
    assert not limiter.shared
    assert limiter.acquire() == 0.0


def test_state_file_is_keyed_by_origin_only(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("B24_DAGSTER_STATE_DIR", str(tmp_path))
    a = state_file_for("https://a.bitrix24.com")
    assert a.parent == tmp_path
    assert a == state_file_for("https://A.bitrix24.com")
    assert a != state_file_for("https://b.bitrix24.com")


def test_operating_pause_before_the_limit() -> None:
    clock = FakeClock()
    budget = OperatingBudget(480, clock=clock, sleep=clock.sleep)
    budget.observe("crm.item.list", {"operating": 100.0, "operating_reset_at": clock.now + 30})
    assert budget.pause_needed(["crm.item.list"]) == 0.0
    budget.observe("crm.item.list", {"operating": 476.0, "operating_reset_at": clock.now + 30})
    # a jump of 376 s in one request widens the margin, capped at half the limit
    assert budget.pause_needed(["crm.item.list"]) == pytest.approx(31.0)
    assert budget.pause_needed(["crm.deal.list"]) == 0.0
    assert budget.wait(["crm.item.list", "crm.deal.list"]) == pytest.approx(31.0)
    assert budget.pause_needed(["crm.item.list"]) == 0.0


def test_operating_margin_widens_with_big_steps() -> None:
    clock = FakeClock()
    budget = OperatingBudget(480, clock=clock, sleep=clock.sleep)
    budget.observe("m", {"operating": 400.0, "operating_reset_at": clock.now + 10})
    budget.observe("m", {"operating": 430.0, "operating_reset_at": clock.now + 10})
    assert budget.pause_needed(["m"]) > 0  # 430 >= 480 - 2 * 30


def test_operating_from_batch_result_time_and_blocked_commands() -> None:
    clock = FakeClock()
    budget = OperatingBudget(10, clock=clock, sleep=clock.sleep)
    result_time = {
        "a": {"duration": 0.5, "operating": 9.0, "operating_reset_at": clock.now + 20},
        "b": {"duration": 0.5},
    }
    budget.observe_batch({"a": "crm.item.list", "b": "user.get"}, result_time)
    assert budget.pause_needed(["crm.item.list"]) == pytest.approx(21.0)
    budget.observe_batch({"0": "tasks.task.add"}, [{"duration": 0.1}],
                         {"0": {"error": "OPERATION_TIME_LIMIT", "error_description": ""}})
    assert budget.pause_needed(["tasks.task.add"]) == pytest.approx(10.0)


def test_blocked_waits_for_reset_or_fallback() -> None:
    clock = FakeClock()
    budget = OperatingBudget(480, clock=clock, sleep=clock.sleep)
    budget.blocked("m", clock.now + 42)
    assert budget.pause_needed(["m"]) == pytest.approx(43)
    budget.blocked("n", None, fallback=7)
    assert budget.pause_needed(["n"]) == pytest.approx(7)


def test_blocked_without_reset_uses_the_last_seen_reset() -> None:
    clock = FakeClock()
    budget = OperatingBudget(480, clock=clock, sleep=clock.sleep)
    budget.observe("m", {"operating": 300.0, "operating_reset_at": clock.now + 15})
    budget.blocked("m", None, fallback=7)
    assert budget.pause_needed(["m"]) == pytest.approx(16)
