"""fast_bitrix24 (``fast_bitrix24.Bitrix``, unmodified) in a bench process.

Its best facilities: ``call(method, [params...])`` packs commands into batches of 50 and
sends up to 50 requests concurrently under its own leaky bucket; ``get_all`` pages a list
by ``start`` offsets, 50 pages a batch. The progress bar is off (``verbose=False``), as in
any scripted use. TLS is verified against the emulator's CA through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import time
from typing import Any

from fast_bitrix24 import Bitrix

from ._workload import EXPORT_METHOD, EXPORT_SELECT, IdChecker, add_params

__all__ = ["run"]


def _client(spec: dict[str, Any]) -> Bitrix:
    rate = float(spec.get("rate") or 0)
    if rate > 0:
        return Bitrix(spec["url"], verbose=False, request_pool_size=int(spec["burst"]),
                      requests_per_second=rate)
    # No limit on the portal: a bucket too large and fast to ever make it wait.
    return Bitrix(spec["url"], verbose=False, request_pool_size=1_000_000,
                  requests_per_second=1e9)


def writes(spec: dict[str, Any]) -> dict[str, Any]:
    """``call("crm.item.add", items)``."""
    bx = _client(spec)
    items = list(add_params(spec["tag"], int(spec["n"])))
    started = time.time()
    t0 = time.perf_counter()
    results = bx.call("crm.item.add", items)
    wall = time.perf_counter() - t0
    ok = sum(1 for r in results if r)
    return {"wall_s": wall, "started_unix": started, "commands": len(items), "ok": ok, "failed": len(items) - ok}


def export(spec: dict[str, Any]) -> dict[str, Any]:
    """``get_all("crm.item.list", ...)`` (the whole list in memory, as it returns it)."""
    bx = _client(spec)
    checker = IdChecker()
    t0 = time.perf_counter()
    rows = bx.get_all(EXPORT_METHOD, {"entityTypeId": 2, "select": EXPORT_SELECT})
    checker.add([r["id"] for r in rows])
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "rows": checker.rows, "unique": checker.unique,
            "repeated": checker.repeated}


def resend(spec: dict[str, Any]) -> dict[str, Any]:
    """Scenario 6 as a client without a sync does it: the same rows sent again (run 2)."""
    first, second = writes(spec), writes(spec)
    n = int(spec["n"])
    return {"wall_s": first["wall_s"] + second["wall_s"], "r1_wall_s": first["wall_s"],
            "r2_wall_s": second["wall_s"], "r1_writes": n, "r2_writes": n}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Dispatch on ``spec["task"]``."""
    return {"writes": writes, "export": export, "sync": resend}[spec["task"]](spec)
