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

from b24_dagster.client._reconcile import ReconcileCounts, reconcile_creates

__all__ = ["ReconcileCounts", "reconcile_table", "unknown_rows"]


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
        settle_seconds: Wait this long before each round of lookups.
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
                                counts=counts, settle_seconds=settle_seconds, sleep=sleep, send=send)  # fmt: skip
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


def unknown_rows(table: pa.Table) -> bool:
    """Whether any row of the table is `unknown`."""
    return table.num_rows > 0 and bool(pc.any(pc.equal(table["status"], "unknown")).as_py())
