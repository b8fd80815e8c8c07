"""The operating-time budget shared by the processes of one machine and planned ahead, so a
job is never blocked, against the emulator over HTTP.

Follows `settings/performance/limits.md` (bitrix24/b24restdocs): each method's execution time is
summed over a window of one-minute buckets; past the limit the next call of the method is
blocked with 429 `OPERATION_TIME_LIMIT` (inside a batch: per command); each answer's `time`
carries `operating` and `operating_reset_at`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from b24_dagster.client import Bitrix24Client
from b24_dagster.emulator import PortalEmulator

SPEED = 600.0  # one minute of portal time in 0.1 s


def _deals(n: int) -> list[tuple[str, dict]]:
    return [("crm.item.add", {"entityTypeId": 2, "fields": {"title": f"Deal {i}"}}) for i in range(n)]


def test_a_budget_seen_by_one_process_pauses_another(b24_emulator: PortalEmulator, tmp_path: Path) -> None:
    b24_emulator.configure(operating_limit=3.0, operating_window=600, write_cost=0.05)
    with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=100, share_limits=tmp_path,
                        operating_limit=3.0) as client:  # fmt: skip
        assert client.batch_by_chunk(_deals(50), halt_on_error=False).is_success  # 2.5 s of 3 used
        assert client._budget.shared
    code = ("import sys; from b24_dagster.client import Bitrix24Client; "
            "c = Bitrix24Client(sys.argv[1], requests_per_second=100, share_limits=sys.argv[2], operating_limit=3.0); "
            "print(c._budget.pause_needed(['crm.item.add']), c._budget.pause_needed(['crm.item.list']))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code, b24_emulator.webhook_url, str(tmp_path)],
                         capture_output=True, text=True, check=True, timeout=60).stdout.split()  # fmt: skip
    add_wait, list_wait = map(float, out)
    assert add_wait > 60 and list_wait == 0.0  # the other process waits for the method's reset only


def test_a_job_paced_by_the_budget_is_never_blocked(b24_emulator: PortalEmulator, tmp_path: Path) -> None:
    start = time.time()

    def clock() -> float:
        return start + (time.time() - start) * SPEED

    b24_emulator.configure(operating_limit=1.0, operating_window=60, write_cost=0.01)  # a chunk: 0.5 s
    b24_emulator.portal.clock = clock
    try:
        with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=1000, burst=50, share_limits=tmp_path,
                            operating_limit=1.0, clock=clock, sleep=lambda s: time.sleep(s / SPEED)) as client:  # fmt: skip
            run = client.batch_by_chunk(_deals(400), halt_on_error=False)
            table = run.to_arrow()
            stats = client.stats
    finally:
        b24_emulator.portal.clock = time.time
    assert table["status"].to_pylist() == ["ok"] * 400
    assert b24_emulator.stats["blocked_429"] == 0 and stats.blocked == 0 and stats.retries == 0
    assert stats.bound_by == run.stats.bound_by == "operating_time"
    assert run.stats.operating_wait_seconds > 60  # portal seconds: several windows waited out
    assert b24_emulator.counts()["deal"] == 400
