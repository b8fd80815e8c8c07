"""The leaky bucket, the operating-time budget and auth, with an injected clock (no sleeping)."""

from __future__ import annotations

import json
from typing import Any

from b24_dagster.emulator._limits import LeakyBucket, OperatingBudget
from b24_dagster.emulator._portal import Portal, PortalRequest
from b24_dagster.emulator._settings import PortalSettings


class Clock:
    def __init__(self, t: float = 1_750_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def call(p: Portal, method: str, params: Any = None, code: str = "c", v: int = 2) -> tuple[int, Any]:
    r = p.handle(PortalRequest(v, method, params or {}, "1", code))
    return r.status, json.loads(r.body)


def test_bucket_refuses_above_burst_then_admits_at_rate() -> None:
    clock = Clock()
    p = Portal(PortalSettings(code="c"), clock=clock)      # documented defaults: 2/s, burst 50
    statuses = [call(p, "server.time")[0] for _ in range(60)]
    assert statuses == [200] * 50 + [503] * 10
    assert call(p, "server.time")[1] == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
    assert p.stats["refused_503"] == 11
    ok = 0
    for _ in range(80):               # 10 s at 8 attempts a second: 2 admitted per second
        clock.t += 0.125
        ok += call(p, "server.time")[0] == 200
    assert ok == 20


def test_refused_request_runs_nothing() -> None:
    p = Portal(PortalSettings(code="c", rate=1, burst=1), clock=Clock())
    assert call(p, "crm.deal.add", {"fields": {"TITLE": "a"}})[0] == 200
    assert call(p, "crm.deal.add", {"fields": {"TITLE": "b"}})[0] == 503
    assert p.counts()["deal"] == 1


def test_rate_zero_is_unlimited_and_configure_changes_it() -> None:
    clock = Clock()
    p = Portal(PortalSettings(code="c", rate=0), clock=clock)
    assert all(call(p, "server.time")[0] == 200 for _ in range(200))
    p.configure(rate=1.0, burst=3)
    assert [call(p, "server.time")[0] for _ in range(4)] == [200, 200, 200, 503]


def test_bucket_unit() -> None:
    b = LeakyBucket(2.0, 3)
    assert [b.admit(0.0) for _ in range(4)] == [True, True, True, False]
    assert b.admit(0.5) and not b.admit(0.5)


def test_operating_budget_blocks_the_method_after_the_limit() -> None:
    clock = Clock(1_750_000_020.0)
    p = Portal(PortalSettings(code="c", rate=0, operating_limit=1.0, command_cost=0.3), clock=clock)
    statuses = [call(p, "crm.deal.list", {"start": -1})[0] for _ in range(6)]
    # 0.3, 0.6, 0.9, 1.2 (crosses the limit but completes), then blocked
    assert statuses == [200, 200, 200, 200, 429, 429]
    status, body = call(p, "crm.deal.list")
    assert body == {"error": "OPERATION_TIME_LIMIT", "error_description": "Method is blocked due to operation time limit."}
    assert call(p, "crm.deal.fields")[0] == 200       # other methods keep working
    assert p.stats["blocked_429"] == 3
    clock.t += 600                                      # the window moves on
    status, body = call(p, "crm.deal.list", {"start": -1})
    assert status == 200 and abs(body["time"]["operating"] - 0.3) < 1e-9


def test_operating_time_in_the_time_object() -> None:
    clock = Clock(1_750_000_030.0)
    p = Portal(PortalSettings(code="c", rate=0), clock=clock)
    _, body = call(p, "crm.deal.add", {"fields": {"TITLE": "x"}})
    t = body["time"]
    assert t["operating"] == 0.005 and t["operating_reset_at"] == 1_750_000_020 + 600
    assert t["date_start"] == "2025-06-15T15:07:10+00:00"
    _, body = call(p, "server.time")
    assert body["time"]["operating"] == 0.002 and body["result"] == "2025-06-15T15:07:10+00:00"


def test_operating_limit_per_command_inside_batch() -> None:
    clock = Clock()
    p = Portal(PortalSettings(code="c", rate=0, operating_limit=0.05, command_cost=0.02), clock=clock)
    p.seed("deal", 5)
    cmd = {f"g{i}": "crm.deal.get?id=1" for i in range(5)} | {"t": "server.time"}
    status, body = call(p, "batch", {"halt": 0, "cmd": cmd})
    assert status == 200
    res = body["result"]
    assert list(res["result"]) == ["g0", "g1", "g2", "t"]
    assert res["result_error"] == {f"g{i}": {"error": "OPERATION_TIME_LIMIT",
                                             "error_description": "Method is blocked due to operation time limit."}
                                   for i in (3, 4)}
    assert res["result_time"]["g2"]["operating"] > 0.05
    assert body["time"]["operating"] == 0          # the outer batch is not charged


def test_budget_unit_buckets() -> None:
    b = OperatingBudget(10.0, 600)
    b.charge("m", 0.0, 6.0)
    b.charge("m", 300.0, 6.0)
    assert b.blocked("m", 301.0) and b.reset_at("m", 301.0) == 600
    assert not b.blocked("m", 600.0) and b.used("m", 600.0) == 6.0


def test_auth_and_unknown_method() -> None:
    p = Portal(PortalSettings(code="c", rate=0), clock=Clock())
    assert call(p, "server.time", code="wrong") == (401, {"error": "NO_AUTH_FOUND",
                                                          "error_description": "Wrong authorization data"})
    r = p.handle(PortalRequest(2, "server.time", {}, "2", "c"))
    assert r.status == 401
    assert call(p, "no.such.method") == (404, {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"})
    assert call(p, "SERVER.TIME.json")[0] == 200
    assert call(p, "crm.deal.list", v=3)[0] == 404
    assert p.webhook_path() == "/rest/1/c/" and p.webhook_path(3) == "/rest/api/1/c/"
    assert len(Portal().settings.code or "") == 16
