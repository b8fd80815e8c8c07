"""The emulator the benchmark runs against, hosted in the harness process.

The harness serves the portal (``b24_dagster.emulator.PortalEmulator``, https with its
generated CA, since b24pysdk insists on https and a real portal refuses http) from a daemon
thread, and never runs a client itself: every client runs in its own subprocess. Hosting the
portal here gives the harness the emulator's counters directly between runs (requests
refused, records created, the titles that tell duplicates and losses) without a stats
endpoint.
"""

from __future__ import annotations

import collections
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b24_dagster.emulator import (
    FaultRule,
    FaultSettings,
    PortalEmulator,
    PortalRequest,
    PortalSettings,
)
from b24_dagster.emulator._entities import DEAL

__all__ = ["BenchPortal", "PortalSnapshot"]

CODE = "benchcode0000000"
_VIEW_CACHE = 100_000


@dataclass(frozen=True, slots=True)
class PortalSnapshot:
    """The portal's counters after one client run."""

    stats: dict[str, int]
    counts: dict[str, int]
    faults: dict[str, int] = field(default_factory=dict)
    #: Seconds the emulator spent answering (request complete -> answer), summed, and the
    #: longest single answer.
    server_s: float = 0.0
    slowest_s: float = 0.0


class BenchPortal:
    """One emulated portal served over https on localhost for a whole benchmark."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="b24bench-")
        self.ca_file = str(Path(self._tmp.name) / "ca.pem")
        self.emulator = PortalEmulator(PortalSettings(code=CODE, rate=0), tls=True,
                                       ca_file=self.ca_file).start()
        self.http_front = "b24_dagster.emulator.PortalEmulator (https, in the harness process)"
        self._seeded = 0

    @property
    def url(self) -> str:
        """The v2 webhook URL."""
        return self.emulator.webhook_url

    def prepare(self, *, rate: float, burst: int, seed_deals: int = 0,
                fault_rate: float = 0.0, fault_seed: int = 0) -> None:
        """Set the plan and the faults of the next run; empty the portal unless its seed is kept.

        A list export changes nothing, so a portal seeded with the same number of deals is
        kept (only its counters and limits restart). ``fault_rate`` is split evenly between
        503 answers (nothing runs) and connections closed after the portal committed.
        """
        emu = self.emulator
        if not (seed_deals and self._seeded == seed_deals):
            emu.reset()
            self._seeded = 0
            if seed_deals:
                emu.portal.seed("deal", seed_deals)
                self._seeded = seed_deals
                self._warm(seed_deals)
        self._restart_counters()
        emu.configure(rate=float(rate), burst=int(burst))
        faults = None
        if fault_rate > 0:
            half = fault_rate / 2
            faults = FaultSettings(storm_503=FaultRule(rate=half, length=1),
                                   close_after=FaultRule(rate=half), seed=fault_seed)
        emu.set_faults(faults)

    def _restart_counters(self) -> None:
        portal = self.emulator.portal
        with portal._lock:
            portal.stats.update(dict.fromkeys(portal.stats, 0))
            portal.bucket.reset()
            portal.budget.reset()
        self.emulator.log.clear()

    def _warm(self, rows: int) -> None:
        """Read every seeded deal once in-process, so that the emulator's cache of serialized
        views is as warm for the first client as for the others (it keeps at most 100,000 a
        table: above that every run reads mostly cold rows, the same for every client)."""
        if rows > _VIEW_CACHE:
            return
        portal = self.emulator.portal
        portal.configure(rate=0)
        last = 0
        for _ in range(rows // 50 + 2):
            answer = portal.handle(PortalRequest(
                2, "crm.item.list", {"entityTypeId": 2, "select": ["*"], "order": {"id": "ASC"},
                                     "filter": {">id": last}, "start": -1}, "1", CODE))
            items = json.loads(answer.body)["result"]["items"]
            if not items:
                break
            last = items[-1]["id"]

    def snapshot(self) -> PortalSnapshot:
        """Counters of the portal and of the injected faults now."""
        stats: dict[str, Any] = self.emulator.stats
        faults = {k: v for k, v in stats.pop("faults", {}).items() if v}
        durations = [r.duration for r in self.emulator.request_log]
        return PortalSnapshot({k: v for k, v in stats.items() if isinstance(v, int)},
                              self.emulator.counts(), faults, sum(durations),
                              max(durations, default=0.0))

    def title_counts(self, prefix: str) -> collections.Counter[str]:
        """How many deals carry each title that starts with ``prefix``."""
        slot = DEAL.hot.index("title")
        portal = self.emulator.portal
        with portal._lock:
            rows: Any = list(portal.store.tables["deal"].rows.values())
        return collections.Counter(
            t for row in rows if isinstance(t := row[slot], str) and t.startswith(prefix))

    def close(self) -> None:
        """Stop the server and remove the CA files."""
        self.emulator.stop()
        self._tmp.cleanup()
