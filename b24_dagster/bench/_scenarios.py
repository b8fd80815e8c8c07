"""The scenarios: what each one sends, on which plan, and which clients run it."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["OURS", "PEERS", "SYNC_CHECKED", "SYNC_TRUSTED", "Scenario", "Sizes", "build_scenarios",
           "bucket_minimum"]

OURS = "b24-dagster"
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
    rate: float = 10.0
    burst: int = 20
    fault_rate: float = 0.05

    @classmethod
    def quick(cls) -> Sizes:
        """Sizes for a smoke run of a few seconds per client."""
        return cls(writes=1_500, cost=1_000, export=6_000, export_small=600, pipeline=300,
                   faults=1_500, sync=1_000, rate=50.0, burst=10)


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

    @property
    def requests_minimum(self) -> int:
        """The fewest requests the work needs: 50 commands, or 2,500 rows, a request."""
        if self.task == "export":
            return math.ceil(self.seed_deals / 2500)
        return math.ceil(self.n / 50)


def bucket_minimum(requests: int, rate: float, burst: int) -> float:
    """Seconds a leaky bucket needs for ``requests``, full at the start: (requests − burst) / rate."""
    if rate <= 0:
        return 0.0
    return max(0, requests - burst) / rate


def build_scenarios(sizes: Sizes, selected: set[int], *, full: bool = False,
                    export_repeat: int | None = None,
                    extra_peers: tuple[str, ...] = ()) -> list[Scenario]:
    """The scenarios chosen by number (1-6), in order.

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
        Scenario("6", 6, f"Sync ({sizes.sync:,} keyed crm.item.add rows synced three times: all new, "
                 "1% changed, none changed; no rate limit, no operating-time cost)", "sync", (SYNC_TRUSTED, SYNC_CHECKED, "fast_bitrix24"),
                 n=sizes.sync,
                 note="fast_bitrix24 has no sync: its second run sends every row again (r2), and the "
                      "portal then holds every row twice (duplicated)."),
    ]
    return [s for s in out if s.number in selected]
