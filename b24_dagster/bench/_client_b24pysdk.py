"""The official b24pysdk (``b24pysdk.Client``, unmodified) in a bench process.

Its best facilities: ``call_batches`` over lazily built ``crm.item.add`` requests (sequential
batches of 50), and ``as_list_fast`` (keyset by ID, 50 chained pages a batch, ``start=-1``).
It has no client-side rate limit: a 503 is retried after a pause (its defaults). It insists
on https; the emulator's CA is trusted through ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from b24pysdk import BitrixWebhook, Client

from ._workload import ENTITY_TYPE_ID, EXPORT_SELECT, IdChecker, add_params

__all__ = ["run"]


def _client(spec: dict[str, Any]) -> Client:
    parts = urlsplit(spec["url"])
    token = "/".join(parts.path.strip("/").split("/")[1:3])  # rest/<user>/<code>
    return Client(BitrixWebhook(domain=parts.netloc, webhook_token=token))


def writes(spec: dict[str, Any]) -> dict[str, Any]:
    """``call_batches([client.crm.item.add(...), ...])``."""
    client = _client(spec)
    started = time.time()
    t0 = time.perf_counter()
    requests = [client.crm.item.add(p["entityTypeId"], p["fields"])
                for p in add_params(spec["tag"], int(spec["n"]))]
    response = client.call_batches(requests)
    result = response.result
    wall = time.perf_counter() - t0
    ok = len(result.result) if hasattr(result, "result") else len(result)
    errors = len(getattr(result, "result_error", None) or ())
    return {"wall_s": wall, "started_unix": started, "commands": len(requests), "ok": ok, "failed": errors}


def export(spec: dict[str, Any]) -> dict[str, Any]:
    """``crm.item.list(...).as_list_fast()``, streamed."""
    client = _client(spec)
    checker = IdChecker()
    t0 = time.perf_counter()
    request = client.crm.item.list(ENTITY_TYPE_ID, select=EXPORT_SELECT).as_list_fast()
    page: list[Any] = []
    for item in request.result:
        page.append(item["id"])
        if len(page) >= 2500:
            checker.add(page)
            page = []
    checker.add(page)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "rows": checker.rows, "unique": checker.unique,
            "repeated": checker.repeated}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Dispatch on ``spec["task"]``."""
    return {"writes": writes, "export": export}[spec["task"]](spec)
