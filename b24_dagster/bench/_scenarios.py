"""The scenarios: what each one sends, on which plan, and which clients run it."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["OURS", "OURS_BULK", "PEERS", "SYNC_CHECKED", "SYNC_TRUSTED", "Scenario", "Sizes", "budget_minimum",
           "build_scenarios", "bucket_minimum", "requests_minimum"]

OURS = "b24-dagster"
OURS_BULK = "b24-dagster bulk"
"""This project's client with ``bulk_import=True``: creates ride ``crm.item.batchImport``."""
OURS_DAGSTER = "b24-dagster+dagster"
PEERS = ("fast_bitrix24", "b24pysdk")
SYNC_TRUSTED = "b24-dagster sync"
SYNC_CHECKED = "b24-dagster sync (checked)"


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario is (``--quick`` makes them tiny)."""

    writes: int = 10_000
    cost: int = 50_000
    export: int = 1_000_000
    export_small: int = 10_000
    pipeline: int = 10_000
    faults: int = 10_000
    sync: int = 100_000
    bulk: int = 20_000
    bulk_large: int = 100_000
    heavy: int = 5_000
    heavy_limit: float = 20.0
    rate: float = 10.0
    burst: int = 20
    fault_rate: float = 0.05

    @classmethod
    def quick(cls) -> Sizes:
        """Sizes for a smoke run of a few seconds per client."""
        return cls(writes=1_500, cost=1_000, export=6_000, export_small=600, pipeline=300,
                   faults=1_500, sync=1_000, bulk=2_000, bulk_large=3_000, heavy=500, rate=50.0,
                   burst=10)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario: a task run by each client on the same emulator settings."""

    key: str
    number: int
    title: str
    task: str                      # "writes" | "export" | "pipeline" | "sync"
    clients: tuple[str, ...]
    n: int = 0                     # commands (writes, pipeline)
    rate: float = 0.0              # the portal's (and the clients') plan; 0 = no limit
    burst: int = 50
    seed_deals: int = 0            # rows to export
    fault_rate: float = 0.0
    max_repeat: int | None = None  # a cap on --repeat (the long export)
    note: str = ""                 # printed under the scenario's table
    # the emulator's cost model and budget for this scenario (None: the emulator's defaults)
    write_cost: float | None = None
    import_cost: float | None = None
    operating_limit: float | None = None
    operating_window: int | None = None

    @property
    def requests_minimum(self) -> int:
        """The fewest requests the work needs: 50 commands, or 2,500 rows, a request."""
        if self.task == "export":
            return math.ceil(self.seed_deals / 2500)
        return math.ceil(self.n / 50)

    @property
    def budget_bound(self) -> bool:
        """Whether the scenario sets a budget meant to bind (its tables show the budget's figures)."""
        return self.operating_limit is not None

    @property
    def operating_seconds(self) -> float:
        """Seconds of operating time the creates cost on the emulator (``write_cost`` each)."""
        return self.n * (self.write_cost if self.write_cost is not None else 0.005)


def requests_minimum(s: Scenario, client: str) -> int:
    """The fewest requests ``client`` needs: bulk imports carry 1,000 creates a request."""
    if client == OURS_BULK:
        return math.ceil(s.n / 1000)
    return s.requests_minimum


def budget_minimum(operating_seconds: float, limit: float, window: int, started: float) -> float:
    """Seconds a job of ``operating_seconds`` needs under a budget of ``limit`` seconds a window.

    The emulator keeps the budget in one-minute buckets; with a window of 60 s the whole
    budget comes back at every minute boundary, so the job ends at the earliest in the
    ``ceil(operating / limit)``-th window: after the boundaries between, counted from the
    run's start (``started``, unix time).
    """
    windows = math.ceil(operating_seconds / limit - 1e-9) if limit > 0 else 1
    if windows <= 1:
        return 0.0
    to_boundary = window - started % window
    return to_boundary + (windows - 2) * window


def bucket_minimum(requests: int, rate: float, burst: int) -> float:
    """Seconds a leaky bucket needs for ``requests``, full at the start: (requests − burst) / rate."""
    if rate <= 0:
        return 0.0
    return max(0, requests - burst) / rate


def build_scenarios(sizes: Sizes, selected: set[int], *, full: bool = False,
                    export_repeat: int | None = None,
                    extra_peers: tuple[str, ...] = ()) -> list[Scenario]:
    """The scenarios chosen by number (1-9), in order.

    ``full`` adds scenario 1 at the real standard plan; ``export_repeat`` caps the runs of
    the large export (each of its runs already streams hundreds of requests); ``extra_peers``
    (the JS SDK, when Node.js is there) join every scenario but the pipeline.
    """
    everyone = (OURS, *PEERS, *extra_peers)
    out = [
        Scenario("1", 1, f"Writes at the plan's limit ({sizes.writes:,} crm.item.add, "
             f"{sizes.rate:g}/s burst {sizes.burst})", "writes", everyone, n=sizes.writes,
             rate=sizes.rate, burst=sizes.burst),
    ]
    if full:
        out.append(Scenario("1-full", 1, f"Writes at the real standard plan ({sizes.writes:,} "
                            "crm.item.add, 2/s burst 50)", "writes", everyone, n=sizes.writes,
                            rate=2.0, burst=50))
    out += [
        Scenario("2", 2, f"Client cost ({sizes.cost:,} crm.item.add, no limit)", "writes",
                 everyone, n=sizes.cost),
        Scenario("3", 3, f"Export ({sizes.export:,} deals, crm.item.list)", "export",
                 everyone if full else (OURS, *PEERS), seed_deals=sizes.export,
                 max_repeat=export_repeat,
                 note="" if full or not extra_peers else (
                     "The JS SDK is left out here (its fetchList sends one page of 50 rows a "
                     f"request: {sizes.export // 50:,} requests); `--full` includes it.")),
        Scenario("3-small", 3, f"Export ({sizes.export_small:,} deals, crm.item.list)", "export",
                 everyone, seed_deals=sizes.export_small),
        Scenario("4", 4, f"Pipeline overhead ({sizes.pipeline:,} commands, DataFrame to "
                 "Parquet, no limit)", "pipeline", (OURS, OURS_DAGSTER), n=sizes.pipeline),
        Scenario("5", 5, f"Under faults ({sizes.faults:,} crm.item.add, {sizes.rate:g}/s burst "
                 f"{sizes.burst}, {sizes.fault_rate:.0%} faults: 503s and connections closed "
                 "after commit)", "writes", everyone, n=sizes.faults, rate=sizes.rate,
                 burst=sizes.burst, fault_rate=sizes.fault_rate),
        Scenario("6", 6, f"Sync ({sizes.sync:,} keyed crm.item.add rows synced four times: all new, "
                 "1% changed, none changed, none changed with the sync state deleted; no rate limit, no "
                 "operating-time cost)", "sync", (SYNC_TRUSTED, SYNC_CHECKED, "fast_bitrix24"),
                 n=sizes.sync,
                 note="fast_bitrix24 has no sync: its second run sends every row again (r2), and the "
                      "portal then holds every row twice (duplicated)."),
        Scenario("7", 7, f"Bulk creates ({sizes.bulk:,} creates, {sizes.rate:g}/s burst {sizes.burst}: "
                 "crm.item.add, and crm.item.batchImport 1,000 a request)", "writes", (OURS, OURS_BULK, *PEERS),
                 n=sizes.bulk, rate=sizes.rate, burst=sizes.burst,
                 note="b24-dagster bulk: `batch_by_chunk(calls, bulk_import=True)`, 20 records a "
                      "crm.item.batchImport call, 50 calls a request (the peers have no such option and "
                      "send crm.item.add). The bucket minimum is each client's own: ceil(n / 50) requests "
                      "with crm.item.add, ceil(n / 1,000) with bulk import."),
        Scenario("8", 8, f"Bulk creates at the standard plan ({sizes.bulk_large:,} creates, 2/s burst 50, "
                 "crm.item.batchImport)", "writes", (OURS_BULK,), n=sizes.bulk_large, rate=2.0, burst=50,
                 import_cost=0.002,
                 note="Bulk import alone: crm.item.add would need ceil(n / 50) requests, "
                      f"{math.ceil(sizes.bulk_large / 50):,} requests, "
                      f"{bucket_minimum(math.ceil(sizes.bulk_large / 50), 2.0, 50):,.0f} s at this plan. The emulator charges 0.002 s a record here (`--import-cost`; default "
                      "0.01), so that the rate binds, not the budget (scenario 9 shows the budget)."),
        Scenario("9", 9, f"Heavy writes: the operating budget binds before the rate ({sizes.heavy:,} "
                 f"crm.item.add at 0.01 s each, a budget of {sizes.heavy_limit:g} s a minute, "
                 f"{sizes.rate:g}/s burst {sizes.burst})", "writes", (OURS, *PEERS), n=sizes.heavy,
                 rate=sizes.rate, burst=sizes.burst, write_cost=0.01, operating_limit=sizes.heavy_limit,
                 operating_window=60,
                 note="The emulator's budget: `--operating-limit` seconds a method in a 60 s window "
                      "(`--operating-window 60`: one one-minute bucket, all of it back at each minute "
                      "boundary), `--write-cost 0.01`. Budget minimum: the job's operating seconds "
                      "need ceil(operating / limit) windows, so it ends at the earliest after the minute "
                      "boundaries between, counted from the run's start. Blocked: 429 / "
                      "OPERATION_TIME_LIMIT answers, per command, counted by the emulator."),
    ]
    return [s for s in out if s.number in selected]
