"""Settle creates whose answer was lost, by the key they carry, before anything is re-sent.

A create (`*.add`) whose outcome is `unknown` (the request may have reached the portal, no
usable answer came back) may or may not have landed. When the command carries a key
(`fields.ORIGIN_ID` for the legacy `crm.*.add`, `fields.originId` for `crm.item.add`, or a
field the caller names), the portal is asked with a list call filtered by that key (and by
`ORIGINATOR_ID` / `originatorId` when the command sets it: an origin id is unique per
originator), many keys a list command and 50 commands a request (:mod:`._lookup`). A
record counts only when it carries the exact key (and originator):

- found once: the write landed; the command becomes `ok` with the found record as its result,
  in the create's own shape (the new id for `crm.*.add`, `{"item": {...}}` for `crm.item.add`,
  `{"task": {...}}` for `tasks.task.add`), and a description saying it was reconciled;
- not found: the write never landed; the command is sent again and its real outcome kept;
- a lookup that failed, or a re-send whose answer was lost again: looked up again in the next
  round (three rounds at most);
- found more than once, or two lost creates with one key: it stays `unknown` (which record
  is whose cannot be told; nothing is sent);
- no key, or still open after the last round: it stays `unknown`.

Why wait before looking: an answer lost (a dropped connection, a proxy's 502, a read
timeout) may belong to a request the portal is still running. A lookup made too early misses
a record that appears a moment later, and the create would be sent twice. A lookup therefore
waits until the write can no longer commit: `commit_window` after it was sent, from the
portal's own limit (a cloud portal ends every request within 60 s, PROTOCOL.md §5) or the
client's read timeout, whichever is longer, plus a margin for the time between our send and
the portal's start. Callers pass the wait of the first round (`settle_seconds`: the window
less the time since the write left); a round after a re-send whose answer was lost again
waits the whole window (`resend_settle_seconds`).

Used by :class:`~b24_dagster.client.ChunkedBatchRun` (``reconcile=True``, as the Dagster
batch assets run it) and, through an Arrow adapter, by the Dagster layer for what no run saw
answered: the chunk in flight when a step died, and the `unknown` rows of a re-drive.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._lookup import find_by_keys, id_of, list_method_of

__all__ = ["REQUEST_TIME_LIMIT", "ReconcileCounts", "Settled", "commit_window", "creation_key", "reconcile_creates",
           "settle_wait"]

REQUEST_TIME_LIMIT = 60.0
"""Seconds a cloud portal lets one request run (PROTOCOL.md §5, from the limits page)."""

_AUTO_FIELDS = ("ORIGIN_ID", "originId")
_ORIGINATOR = {"ORIGIN_ID": "ORIGINATOR_ID", "originId": "originatorId"}
_BATCH = 50
_Target = tuple[int, str, dict[str, Any], dict[str, Any]]
"""(position among the unknown commands, method, params, the key filter)"""


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


def commit_window(client: Any, delay: float | None = None) -> float:
    """Seconds after a write was sent during which the portal may still commit it.

    Args:
        client: The client that sent it (its `request_time_limit` and `read_timeout`).
        delay: The caller's own bound (`reconcile_delay_seconds`), used as given; None: the
            portal's request time limit or the client's read timeout, whichever is longer,
            plus 1 s and 10% (the request may wait in the portal's queue before its clock
            starts, and clocks of two hosts differ): 67 s with the defaults.
    """
    if delay is not None:
        return max(0.0, float(delay))
    limit = float(getattr(client, "request_time_limit", REQUEST_TIME_LIMIT))
    bound = max(limit, float(getattr(client, "read_timeout", 0.0) or 0.0))
    return bound + 1.0 + 0.1 * bound


def settle_wait(client: Any, *, since_sent: float, delay: float | None = None) -> float:
    """Seconds to wait before looking up a write sent `since_sent` seconds ago."""
    return max(0.0, commit_window(client, delay) - since_sent)


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


def _lookup_group(target: _Target) -> tuple[Any, ...]:
    """What lookups of several creates can share: list method, key field, originator, params."""
    _, method, params, key = target
    key_field, *rest = key
    originator = (rest[0], str(key[rest[0]])) if rest else (None, None)
    extra = (("entityTypeId", params["entityTypeId"]),) if "entityTypeId" in params else ()
    return (list_method_of(method), key_field, *originator, extra)


def _key_value(target: _Target) -> str:
    return str(next(iter(target[3].values())))


def _as_created(method: str, record: dict[str, Any]) -> Any:
    """A found record in the shape its create would have answered."""
    if method.startswith("crm.item."):
        return {"item": record}
    if method.startswith("tasks.task."):
        return {"task": record}
    return id_of(record)


def _look_up(client: Any, targets: list[_Target], counts: ReconcileCounts) -> dict[int, list[dict[str, Any]] | None]:
    """For each target (by its position), the records that carry its exact key; None: unknown."""
    groups: dict[tuple[Any, ...], list[_Target]] = {}
    for target in targets:
        groups.setdefault(_lookup_group(target), []).append(target)
    out: dict[int, list[dict[str, Any]] | None] = {}
    for (list_method, key_field, originator_field, originator, extra), group in groups.items():
        keys = [_key_value(t) for t in group]
        found = find_by_keys(client, list_method, keys, key_field=key_field,
                             originator_field=originator_field, originator=originator,
                             params=dict(extra))  # fmt: skip
        counts.lookups += len(keys)  # creates looked up (in bulk: many a command)
        failed = set(found.failed)
        for target, key in zip(group, keys, strict=True):
            out[target[0]] = None if key in failed else found.records[key]
    return out


def reconcile_creates(
    client: Any,
    commands: Sequence[tuple[str, Any]],
    *,
    field: str | None = None,
    counts: ReconcileCounts | None = None,
    settle_seconds: float = 0.0,
    resend_settle_seconds: float | None = None,
    rounds: int = 3,
    sleep: Callable[[float], Any] = time.sleep,
    send: Callable[[list[tuple[str, Any]]], Sequence[Any]] | None = None,
) -> list[Settled | None]:
    """Settle unknown creates (see the module docstring); None where one stays unknown.

    Args:
        client: The `Bitrix24Client` to look up and re-send with.
        commands: The (method, params) of each unknown command.
        field: The key field; None auto-detects `ORIGIN_ID` / `originId`.
        counts: Updated with what was found, re-sent and left.
        settle_seconds: Wait this long before the first round of lookups (only when there is
            one), and before later rounds unless a re-send was lost.
        resend_settle_seconds: Wait this long before a round that follows a re-send whose
            answer was lost again (it just left: the whole commit window); None: `settle_seconds`.
        rounds: Rounds of lookups at most.
        sleep: The wait (a seam for tests).
        send: Sends creates that never landed and gives one `CommandResult` per create (a
            bulk run imports them again, :func:`._bulk.send_bulk`); None: `client.batch`.
    """
    counts = counts if counts is not None else ReconcileCounts()
    out: list[Settled | None] = [None] * len(commands)
    targets: list[_Target] = []
    for at, (method, params) in enumerate(commands):
        key = creation_key(method, params, field)
        if key is None:
            counts.left += 1
        else:
            targets.append((at, method, params, key))
    # Two lost creates with one key cannot be told apart on the portal: both stay unknown.
    shared = Counter(_lookup_group(t) + (_key_value(t),) for t in targets)
    ambiguous = [t for t in targets if shared[_lookup_group(t) + (_key_value(t),)] > 1]
    targets = [t for t in targets if shared[_lookup_group(t) + (_key_value(t),)] == 1]
    wait = settle_seconds
    for _ in range(rounds):
        if not targets:
            break
        if wait > 0:
            sleep(wait)
        still: list[_Target] = []
        resend: list[_Target] = []
        looked = _look_up(client, targets, counts)
        for target in targets:
            records = looked[target[0]]
            if records is None:  # the lookup failed: nothing is known, nothing is sent
                still.append(target)
            elif not records:
                resend.append(target)
            elif len(records) > 1:  # the key is not unique on the portal: never a guess
                ambiguous.append(target)
            else:
                out[target[0]] = Settled("ok", _as_created(target[1], records[0]), None,
                                         f"reconciled: the create landed (found by {', '.join(target[3])})")  # fmt: skip
                counts.found += 1
        lost_again = _resend(client, resend, out, counts, send)
        still.extend(lost_again)
        targets = still
        wait = resend_settle_seconds if lost_again and resend_settle_seconds is not None else settle_seconds
    counts.left += len(targets) + len(ambiguous)
    return out


def _resend(client: Any, targets: list[_Target], out: list[Settled | None], counts: ReconcileCounts,
            send: Callable[[list[tuple[str, Any]]], Sequence[Any]] | None = None) -> list[_Target]:
    """Send the creates that never landed; those whose answer is lost again are returned."""
    still: list[_Target] = []
    for start in range(0, len(targets), _BATCH):
        group = targets[start : start + _BATCH]
        calls = [(m, p) for _, m, p, _ in group]
        try:
            answers = send(calls) if send is not None else client.batch(calls, halt_on_error=False).commands
        except Exception:  # refused as a whole, or lost again: look again next round
            still.extend(group)
            continue
        for target, sent in zip(group, answers, strict=True):
            if sent.status == "unknown":
                still.append(target)
            else:
                out[target[0]] = Settled(sent.status, sent.data, sent.error_code, sent.error_description)
                counts.resent += 1
    return still
