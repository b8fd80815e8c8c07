"""What the wait before a lookup costs: a chunked run at a plan's limit, with and without a lost answer.

    .venv/bin/python scripts/reconcile_stall.py [--commands 10000] [--rate 2] [--burst 50]

Runs ``--commands`` keyed ``crm.item.add`` through ``batch_by_chunk(reconcile=True)`` against
an in-process emulator at ``--rate``/``--burst`` twice: once clean, once with the answer of
the 60th batch lost after the portal committed it (``close_after``). The lost chunk is looked
up ``reconcile_delay_seconds`` (10 s) later. At a plan's limit the wait is mostly free: the
bucket refills while the run waits, and the next requests go out at once; with no limit it
is paid in full. Prints wall time, statuses, the reconcile counters and the portal's count.
"""

from __future__ import annotations

import argparse
import time

from b24_dagster import Bitrix24Client
from b24_dagster.emulator import FaultRule, FaultSettings, PortalEmulator


def run_once(commands: int, rate: float, burst: int, *, lose_one: bool) -> str:
    """One run; a line of figures."""
    with PortalEmulator() as emulator:
        emulator.configure(rate=rate, burst=burst, operating_limit=1e9)
        if lose_one:
            emulator.set_faults(FaultSettings(close_after=FaultRule(requests=(60, 60),
                                                                    methods=frozenset({"batch"}))))
        calls = [("crm.item.add", {"entityTypeId": 2, "fields": {"title": f"t{i}", "originId": f"o{i}"}})
                 for i in range(commands)]  # fmt: skip
        with Bitrix24Client(emulator.webhook_url, requests_per_second=rate or None, burst=burst,
                            share_limits=False) as client:  # fmt: skip
            started = time.perf_counter()
            run = client.batch_by_chunk(calls, halt_on_error=False, reconcile=True)
            statuses = run.to_arrow()["status"].to_pylist()
            wall = time.perf_counter() - started
        s = run.stats
        return (f"lost answers={emulator.stats['faults']['close_after']}: wall {wall:.1f} s; "
                f"ok {statuses.count('ok')}, unknown {statuses.count('unknown')}; found "
                f"{s.reconciled_found}, re-sent {s.reconciled_resent}, lookups {s.reconcile_lookups}; "
                f"requests {s.requests}, refused {s.refused}; on the portal {emulator.counts().get('deal', 0)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=2.0, help="0 = no limit")
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    for lose_one in (False, True):
        print(run_once(args.commands, args.rate, args.burst, lose_one=lose_one), flush=True)


if __name__ == "__main__":
    main()
