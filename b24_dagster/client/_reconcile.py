"""Settle creates whose answer was lost, by the key they carry, before anything is re-sent.

A create (`*.add`) whose outcome is `unknown` (the request may have reached the portal, no
usable answer came back) may or may not have landed. When the command carries a key
(`fields.ORIGIN_ID` for the legacy `crm.*.add`, `fields.originId` for `crm.item.add`, or a
field the caller names), the portal is asked with a list call filtered by that key (and by
`ORIGINATOR_ID` / `originatorId` when the command sets it: an origin id is unique per
originator), one list command per lookup, up to 50 per v2 batch request:

- found: the write landed; the command becomes `ok` with the found record as its result,
  in the create's own shape (the new id for `crm.*.add`, `{"item": {...}}` for `crm.item.add`,
  `{"task": {...}}` for `tasks.task.add`), and a description saying it was reconciled;
- not found: the write never landed; the command is sent again and its real outcome kept;
- a lookup that failed, or a re-send whose answer was lost again: looked up again in the next
  round (three rounds at most);
- no key, or still open after the last round: it stays `unknown`.

Why wait before looking: an answer lost to a read timeout may belong to a request the portal
is still running. A lookup made at once could miss a record that appears a moment later, and
the create would be sent twice. Each round therefore starts `settle_seconds` after the loss.

Used by :class:`~b24_dagster.client.ChunkedBatchRun` (``reconcile=True``, as the Dagster
batch assets run it) and, through an Arrow adapter, by the Dagster layer for what no run saw
answered: the chunk in flight when a step died, and the `unknown` rows of a re-drive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ReconcileCounts", "Settled", "creation_key", "reconcile_creates"]

_AUTO_FIELDS = ("ORIGIN_ID", "originId")
_ORIGINATOR = {"ORIGIN_ID": "ORIGINATOR_ID", "originId": "originatorId"}
_BATCH = 50


#: Each counter and its name in a chunked run's `RunStats` and in the asset metadata.
_NAMES = {"found": "reconciled_found", "resent": "reconciled_resent",
          "left": "reconciled_unknown_left", "lookups": "reconcile_lookups"}  # fmt: skip


@dataclass
class ReconcileCounts:
    """How many unknown creates were found on the portal, sent again, or left unknown."""

    found: int = 0
    resent: int = 0
    left: int = 0
    lookups: int = 0

    def add(self, stats: Any) -> None:
        """Add the reconcile counters of a chunked run's `RunStats`."""
        for mine, theirs in _NAMES.items():
            setattr(self, mine, getattr(self, mine) + getattr(stats, theirs))

    def add_to(self, stats: Any) -> None:
        """Add these counters to a chunked run's `RunStats`."""
        for mine, theirs in _NAMES.items():
            setattr(stats, theirs, getattr(stats, theirs) + getattr(self, mine))

    def metadata(self) -> dict[str, int]:
        """The counters under their metadata names (`reconciled_found`, ...)."""
        return {theirs: getattr(self, mine) for mine, theirs in _NAMES.items()}


@dataclass(frozen=True, slots=True)
class Settled:
    """The settled outcome of one unknown create (the fields of a `CommandResult`)."""

    status: str
    data: Any
    error_code: str | None
    error_description: str | None


def creation_key(method: str, params: Any, field: str | None = None) -> dict[str, Any] | None:
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
    """(records found, the result the create would have answered) of a lookup's data."""
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


def reconcile_creates(
    client: Any,
    commands: Sequence[tuple[str, Any]],
    *,
    field: str | None = None,
    counts: ReconcileCounts | None = None,
    settle_seconds: float = 0.0,
    rounds: int = 3,
    sleep: Callable[[float], Any] = time.sleep,
) -> list[Settled | None]:
    """Settle unknown creates (see the module docstring); None where one stays unknown.

    Args:
        client: The `Bitrix24Client` to look up and re-send with.
        commands: The (method, params) of each unknown command.
        field: The key field; None auto-detects `ORIGIN_ID` / `originId`.
        counts: Updated with what was found, re-sent and left.
        settle_seconds: Wait this long before each round of lookups (only when there is one).
        rounds: Rounds of lookups at most.
        sleep: The wait (a seam for tests).
    """
    counts = counts if counts is not None else ReconcileCounts()
    out: list[Settled | None] = [None] * len(commands)
    targets: list[tuple[int, str, dict[str, Any], dict[str, Any]]] = []
    for at, (method, params) in enumerate(commands):
        key = creation_key(method, params, field)
        if key is None:
            counts.left += 1
        else:
            targets.append((at, method, params, key))
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
            for target, looked in zip(group, answer.commands, strict=True):
                if looked.status != "ok":
                    still.append(target)
                    continue
                many, result = _found(looked.data)
                if not many:
                    resend.append(target)
                    continue
                text = f"reconciled: the create landed (found by {', '.join(target[3])})"
                out[target[0]] = Settled("ok", result, None,
                                         text + (f"; {many} records carry this key" if many > 1 else ""))  # fmt: skip
                counts.found += 1
        for start in range(0, len(resend), _BATCH):
            group = resend[start : start + _BATCH]
            try:
                answer = client.batch([(m, p) for _, m, p, _ in group], halt_on_error=False)
            except Exception:  # refused as a whole, or lost again: look again next round
                still.extend(group)
                continue
            for target, sent in zip(group, answer.commands, strict=True):
                if sent.status == "unknown":
                    still.append(target)
                else:
                    out[target[0]] = Settled(sent.status, sent.data, sent.error_code, sent.error_description)
                    counts.resent += 1
        targets = still
    counts.left += len(targets)
    return out
