"""Reconcile `unknown` outcomes of creates before anything is sent again.

A create (`*.add`) whose answer was lost (the client's `unknown`, or a chunk that was in
flight when the step died, `JOURNAL_INTERRUPTED`) may or may not have landed. When the
command carries a key (`fields.ORIGIN_ID` for the legacy `crm.*.add`, `fields.originId` for
`crm.item.add`, or a field the user names), the portal is asked with a list call filtered by
that key (and by `ORIGINATOR_ID` / `originatorId` when the command sets it: an origin id is
unique per originator), one list command per lookup, up to 50 per batch request:

- found: the write landed; the row becomes `ok` with the found id as its result
  (`error_code` null, `error_description` says it was reconciled);
- not found: the write never landed; the command is sent again and its real outcome
  recorded;
- a lookup that failed, or a re-send whose answer was lost again: looked up again in the
  next round (three rounds at most);
- no key, or still open after the last round: the row stays `unknown` (the check fails
  loudly).

Why wait before looking: an answer lost to a read timeout may belong to a request the portal
is still running. A lookup made at once could miss a record that appears a moment later, and
the create would be sent twice. The lookups therefore start `settle_seconds` after the loss
(`BatchSpec.reconcile_delay_seconds`, 10 s by default; a resumed step counts the time since
the chunk was sent).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["ReconcileCounts", "command_key", "reconcile_table", "unknown_rows"]

_AUTO_FIELDS = ("ORIGIN_ID", "originId")
_ORIGINATOR = {"ORIGIN_ID": "ORIGINATOR_ID", "originId": "originatorId"}
_BATCH = 50


@dataclass
class ReconcileCounts:
    """How many unknown rows were found on the portal, sent again, or left unknown."""

    found: int = 0
    resent: int = 0
    left: int = 0
    lookups: int = 0

    def metadata(self) -> dict[str, int]:
        """The materialization metadata entries."""
        return {"reconciled_found": self.found, "reconciled_resent": self.resent,
                "reconciled_unknown_left": self.left, "reconcile_lookups": self.lookups}  # fmt: skip


def _split(call: Any) -> tuple[str, Any]:
    return (call["method"], call.get("params")) if isinstance(call, dict) else (call[0], call[1])


def command_key(method: str, params: Any, field: str | None = None) -> dict[str, Any] | None:
    """The filter that finds what a create made (its key field and originator), or None.

    Args:
        method: The command's method; only `*.add` creates are reconcilable.
        params: Its params; the key is looked up in `params["fields"]`.
        field: The key field; None auto-detects `ORIGIN_ID` / `originId`.
    """
    if not method.lower().endswith(".add") or not isinstance(params, dict):
        return None
    fields = params.get("fields")
    if not isinstance(fields, dict):
        return None
    for name in (field,) if field else _AUTO_FIELDS:
        value = fields.get(name)
        if value not in (None, ""):
            key = {name: value}
            originator = _ORIGINATOR.get(name)
            if originator and fields.get(originator) not in (None, ""):
                key[originator] = fields[originator]
            return key
    return None


def _lookup_command(method: str, params: dict[str, Any], key: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    list_method = method[: -len(".add")] + ".list"
    id_field = "ID" if next(iter(key)).isupper() else "id"
    lookup: dict[str, Any] = {"filter": dict(key), "select": [id_field, *key], "order": {id_field: "ASC"}}
    if "entityTypeId" in params:
        lookup["entityTypeId"] = params["entityTypeId"]
    return list_method, lookup


def _found(data: Any) -> tuple[int, Any]:
    """(records found, the result the create would have answered) of a lookup's data.

    The result takes the create's own shape: the new id for the legacy `crm.*.add`
    (`{"item": {...}}` / `{"task": {...}}` with the id and key fields for the others).
    """
    wrap = None
    items = data
    if isinstance(data, dict):
        wrap, items = ("item", data.get("items")) if "items" in data else ("task", data.get("tasks"))
    rows = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    if not rows:
        return 0, None
    first = rows[0]
    if wrap is not None:
        return len(rows), {wrap: first}
    found_id = first.get("ID", first.get("id"))
    return len(rows), int(found_id) if isinstance(found_id, str) and found_id.isdigit() else found_id


def reconcile_table(
    table: pa.Table,
    command_of: Callable[[int], Any],
    client: Any,
    *,
    field: str | None = None,
    counts: ReconcileCounts,
    settle_seconds: float = 0.0,
    rounds: int = 3,
    sleep: Callable[[float], Any] = time.sleep,
) -> pa.Table:
    """The table with its reconcilable `unknown` rows resolved (see the module docstring).

    A lookup that fails, or a re-send whose answer is lost again, is tried in the next round
    (after `settle_seconds` again), up to `rounds` rounds; what is still open then stays
    `unknown`.

    Args:
        table: Result rows (the contract schema, maybe a key column after it).
        command_of: The command (method, params) of an original `command_index`.
        client: The `Bitrix24Client` to look up and re-send with.
        field: The key field; None auto-detects `ORIGIN_ID` / `originId`.
        counts: Updated with what was found, re-sent and left.
        settle_seconds: Wait this long before each round of lookups.
        rounds: Rounds of lookups at most.
        sleep: The wait (a seam for tests).
    """
    status = table["status"].to_pylist()
    targets: list[tuple[int, str, dict[str, Any], dict[str, Any]]] = []
    for row, st in enumerate(status):
        if st != "unknown":
            continue
        method, params = _split(command_of(int(table["command_index"][row].as_py())))
        key = command_key(method, params, field)
        if key is None:
            counts.left += 1
            continue
        targets.append((row, method, params, key))
    if not targets:
        return table
    results = table["result"].to_pylist()
    codes = table["error_code"].to_pylist()
    descriptions = table["error_description"].to_pylist()

    def settle(row: int, outcome: Any) -> None:
        status[row] = outcome.status
        results[row] = None if outcome.data is None else json.dumps(outcome.data, default=str)
        codes[row], descriptions[row] = outcome.error_code, outcome.error_description

    for _ in range(rounds):
        if not targets:
            break
        if settle_seconds > 0:
            sleep(settle_seconds)
        still: list[tuple[int, str, dict[str, Any], dict[str, Any]]] = []
        resend: list[tuple[int, str, dict[str, Any], dict[str, Any]]] = []
        for start in range(0, len(targets), _BATCH):
            group = targets[start : start + _BATCH]
            counts.lookups += len(group)
            try:  # lookups are reads in the v2 filter shape, whatever version the writes use
                answer = client.batch([_lookup_command(m, p, k) for _, m, p, k in group],
                                      halt_on_error=False, api_version=2)  # fmt: skip
            except Exception:  # the lookup failed: nothing is known, nothing is sent
                still.extend(group)
                continue
            for target, found in zip(group, answer.commands, strict=True):
                if found.status != "ok":
                    still.append(target)
                    continue
                many, result = _found(found.data)
                if not many:
                    resend.append(target)
                    continue
                row = target[0]
                status[row], results[row], codes[row] = "ok", json.dumps(result, default=str), None
                descriptions[row] = (f"reconciled: the create landed (found by {', '.join(target[3])})"
                                     + (f"; {many} records carry this key" if many > 1 else ""))  # fmt: skip
                counts.found += 1
        for start in range(0, len(resend), _BATCH):
            group = resend[start : start + _BATCH]
            try:
                answer = client.batch([(m, p) for _, m, p, _ in group], halt_on_error=False)
            except Exception:  # refused as a whole before running, or lost: look again
                still.extend(group)
                continue
            for target, outcome in zip(group, answer.commands, strict=True):
                settle(target[0], outcome)
                if outcome.status == "unknown":
                    still.append(target)
                else:
                    counts.resent += 1
        targets = still
    counts.left += len(targets)
    for name, values in (("status", status), ("result", results), ("error_code", codes),
                         ("error_description", descriptions)):  # fmt: skip
        at = table.schema.get_field_index(name)
        table = table.set_column(at, name, pa.array(values, table.schema.field(name).type))
    return table


def unknown_rows(table: pa.Table) -> bool:
    """Whether any row of the table is `unknown`."""
    return table.num_rows > 0 and bool(pc.any(pc.equal(table["status"], "unknown")).as_py())
