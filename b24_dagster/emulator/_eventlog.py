"""The portal's event log: the entries ``main.eventlog.*`` read (in memory only).

A portal writes an entry when something happens; the one thing that happens on the emulator
is a REST call, and a portal logs the authorization of an application password (a webhook)
once an hour per user, as ``api-reference/event-log/main-eventlog-tail.md`` shows (module
``rest``, ``USER_AUTHORIZE``, ``"timePeriod": "2026-01-30 15"``). :meth:`EventLog.seed` adds
deterministic entries for paging tests. The log is not written to the SQLite state **[choice]**.
"""

from __future__ import annotations

import json
import time
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._store import Table

__all__ = ["EventLog"]

_SEED_START = 1_704_067_200   # 2024-01-01T00:00:00Z, as the deal seeder
_SEED_TYPES = (("SECURITY", "USER_AUTHORIZE", "main"), ("SECURITY", "USER_LOGOUT", "main"),
               ("SECURITY", "USER_PASSWORD_CHANGED", "main"), ("WARNING", "USER_LOGIN", "main"))
_SEED_AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/144.0.0.0",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/17.5",
                "Bitrix24/26.1 (iPhone; iOS 18.2)")


class EventLog:
    """Event log entries (dicts keyed by the v3 field names, ``timestampX`` in unix seconds)."""

    def __init__(self, table: Table) -> None:
        self.table = table
        #: (user id, hour period) already logged: one authorization entry an hour per user.
        self._periods: set[tuple[int, int]] = set()

    def add(self, entry: dict[str, Any]) -> int:
        """Append one entry (``id`` assigned); returns its id."""
        table = self.table
        id_ = table.next_id
        table._put(id_, {"id": id_, **entry})
        return id_

    def log_authorization(self, user_id: int, now: float, remote_addr: str, user_agent: str,
                          method: str) -> None:
        """Log a webhook's REST authorization, once per user and clock hour (UTC)."""
        hour = int(now // 3600)
        if (user_id, hour) in self._periods:
            return
        self._periods.add((user_id, hour))
        period = time.strftime("%Y-%m-%d %H", time.gmtime(now))
        description = {"userId": user_id, "method": "rest", "applicationType": "apauth",
                       "applicationId": 1, "timePeriod": period}
        # The request URI without the webhook code, which no log of the emulator shows.
        self.add({"timestampX": float(int(now)), "severity": "SECURITY",
                  "auditTypeId": "USER_AUTHORIZE", "moduleId": "rest", "itemId": str(user_id),
                  "remoteAddr": remote_addr, "userAgent": user_agent,
                  "requestUri": f"/rest/{method}", "siteId": "s1", "userId": user_id,
                  "guestId": 0, "description": json.dumps(description, separators=(",", ":"))})

    def seed(self, n: int, rng_seed: int = 0) -> None:
        """Add ``n`` deterministic entries, 61 s apart from 2024-01-01, users 1..10."""
        for i in range(n):
            h = zlib.crc32(f"{i}:{rng_seed}".encode())
            severity, audit, module = _SEED_TYPES[h % len(_SEED_TYPES)]
            user = 1 + (h >> 8) % 10
            self.add({"timestampX": float(_SEED_START + 61 * i), "severity": severity,
                      "auditTypeId": audit, "moduleId": module, "itemId": str(user),
                      "remoteAddr": f"10.0.{(h >> 12) % 256}.{(h >> 20) % 256}",
                      "userAgent": _SEED_AGENTS[(h >> 4) % len(_SEED_AGENTS)],
                      "requestUri": "/auth/", "siteId": "s1", "userId": user, "guestId": 0,
                      "description": json.dumps({"userId": user, "method": "password"},
                                                separators=(",", ":"))})
