"""Reconcile the `unknown` rows of a results table (see `b24_dagster.client._reconcile`).

The Arrow side of the client's `reconcile_creates`: the unknown rows of a chunk, of an
interrupted chunk or of a previous results file are settled through the keys their commands
carry, and the table comes back with their new status, result and error columns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from b24_dagster.client._reconcile import (
    ReconcileCounts,
    commit_window,
    creation_key,
    reconcile_creates,
    settle_wait,
)

__all__ = ["ReconcileCounts", "keyed_unknown", "reconcile_table", "unknown_rows", "wait_out_in_flight"]


def _split(call: Any) -> tuple[str, Any]:
    return (call["method"], call.get("params")) if isinstance(call, dict) else (call[0], call[1])


def reconcile_table(
    table: pa.Table,
    command_of: Callable[[int], Any],
    client: Any,
    *,
    field: str | None = None,
    counts: ReconcileCounts,
    settle_seconds: float = 0.0,
    resend_settle_seconds: float | None = None,
    sleep: Callable[[float], Any] = time.sleep,
    send: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> pa.Table:
    """The table with its reconcilable `unknown` rows settled.

    Args:
        table: Result rows (the contract schema, maybe a key column after it).
        command_of: The command (method, params) of an original `command_index`.
        client: The `Bitrix24Client` to look up and re-send with.
        field: The key field; None auto-detects `ORIGIN_ID` / `originId`.
        counts: Updated with what was found, re-sent and left.
        settle_seconds: Wait this long before the first round of lookups.
        resend_settle_seconds: Wait this long before a round after a re-send was lost again.
        sleep: The wait (a seam for tests).
        send: How creates that never landed are sent again (bulk runs import them:
            `b24_dagster.client._bulk.send_bulk`); None: `client.batch`.
    """
    status = table["status"].to_pylist()
    rows = [i for i, st in enumerate(status) if st == "unknown"]
    if not rows:
        return table
    index = table["command_index"].to_pylist()
    settled = reconcile_creates(client, [_split(command_of(index[i])) for i in rows], field=field,
                                counts=counts, settle_seconds=settle_seconds,
                                resend_settle_seconds=resend_settle_seconds, sleep=sleep, send=send)  # fmt: skip
    if not any(settled):
        return table
    results = table["result"].to_pylist()
    codes = table["error_code"].to_pylist()
    descriptions = table["error_description"].to_pylist()
    for row, outcome in zip(rows, settled, strict=True):
        if outcome is not None:
            status[row], codes[row], descriptions[row] = outcome.status, outcome.error_code, outcome.error_description
            results[row] = None if outcome.data is None else json.dumps(outcome.data, default=str)
    for name, values in (("status", status), ("result", results), ("error_code", codes),
                         ("error_description", descriptions)):  # fmt: skip
        at = table.schema.get_field_index(name)
        table = table.set_column(at, name, pa.array(values, table.schema.field(name).type))
    return table


def keyed_unknown(table: pa.Table, command_of: Callable[[int], Any], field: str | None) -> bool:
    """Whether any `unknown` row of the table is a create carrying a key (one a lookup settles)."""
    status, index = table["status"].to_pylist(), table["command_index"].to_pylist()
    return any(st == "unknown" and creation_key(*_split(command_of(i)), field) is not None
               for st, i in zip(status, index, strict=True))  # fmt: skip


def unknown_rows(table: pa.Table) -> bool:
    """Whether any row of the table is `unknown`."""
    return table.num_rows > 0 and bool(pc.any(pc.equal(table["status"], "unknown")).as_py())


def wait_out_in_flight(client: Any, *, since_sent: float, delay: float | None, log: Any, label: str,
                       what: str = "a chunk of a run that died", sleep: Callable[[float], Any] = time.sleep) -> float:  # fmt: skip
    """Wait until a write sent `since_sent` seconds ago can no longer commit on the portal,
    saying so in the log (and every 15 s while waiting); returns the seconds waited.

    A record looked up while the portal still runs the request that creates it is not found,
    and would be created again. See `b24_dagster.client._reconcile.commit_window`.
    """
    wait = settle_wait(client, since_sent=since_sent, delay=delay)
    if wait <= 0:
        return 0.0
    window = commit_window(client, delay)
    if delay is not None:
        why = f"reconcile_delay_seconds={delay:g}"
    else:
        limit = getattr(client, "request_time_limit", 60.0)
        read = getattr(client, "read_timeout", 0.0)
        why = (f"the portal lets a request run {limit:g} s, the client waits {read:g} s for an answer, "
               f"plus a margin: {window:.0f} s after it was sent")  # fmt: skip
    log.info(f"{label}: {what} was sent {since_sent:.0f} s ago and may still be running on the portal "
             f"({why}); waiting {wait:.0f} s before looking its records up")  # fmt: skip
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        sleep(min(left, 15.0))
        left = deadline - time.monotonic()
        if left > 0.5:
            log.info(f"{label}: still waiting for {what} to end on the portal: {left:.0f} s left")
    return wait
