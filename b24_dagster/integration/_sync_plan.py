"""The plan of a sync: for each source row, what to do on the portal, and the command to do it.

Rows are matched to records by a key they carry (`SyncSpec.key_field`: `ORIGIN_ID` on legacy
`crm.*`, `originId` on `crm.item.*`, `XML_ID`, a user field). Matching is exact and never a
guess: a record matches only when it carries the row's key (and originator); two records with
one key make the row `ambiguous`, and it is not written.

What is read, and what is written. A row the state knows as applied, with the same fields
hash, is `unchanged` and costs nothing (unless `check_portal`). Every other row is read from
the portal (`client._lookup`, 2,500 keys a request), with the fields it writes, and compared
with the record field by field in the portal's own meaning (`client._recorddiff`): equal
records cost no write (a lost or moved state costs lookups only); a record that differs gets
one update of exactly the fields that differ, multi-fields written by value id so the record
ends with the source's values (`multi_value="replace"`, or `"append"`); a field the source
cleared is cleared. No record: a create. So the state is only a cache of what is known to be
applied; the portal decides every write.

Leads, contacts and companies without a key field can be matched by e-mail or phone
(`match_by`): `crm.duplicate.findbycomm` finds the records holding the rows' values (20 a
command), and only a record that holds the row's very value (compared in lower case, or as
digits) matches.

Actions: `create`, `update`, `unchanged`, `delete` (opt-in: keys of the state that left the
source; only the record the state holds for the key), `gone` (that record is no longer there),
`ambiguous` (several records match, or several source rows share a match value), `missing`
(mode `update`, no record), `invalid` (a value the portal would refuse, or no value to match
by), `skipped` (failed `max_attempts` times with these very fields; not read until it changes).
Each written field is a change (old value, new value; `drift` when the source had not changed
it and the portal had), for the plan and the changelog.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from b24_dagster.client._fieldmodel import EntityFields, comparable, empty
from b24_dagster.client._lookup import (
    find_by_comm,
    find_by_keys,
    id_of,
    list_method_of,
    normalize_comm,
)
from b24_dagster.client._multifield import MultiValueMode
from b24_dagster.client._recorddiff import FieldChange, diff_record, display
from b24_dagster.integration._sync_state import KeyState, SyncState, fields_hash

__all__ = ["CHANGE_TYPE", "PLAN_SCHEMA", "LookupFailed", "SyncMode", "SyncPlan", "SyncSpec", "TooManyDeletes",
           "make_plan"]

SyncMode = Literal["upsert", "insert", "update", "send"]

CHANGE_TYPE = pa.struct([("field", pa.string()), ("old", pa.string()), ("new", pa.string()), ("kind", pa.string())])
"""One written field: its name, the value it held, the value sent (JSON text for lists) and
its kind (`create`, `update`, `drift`, `delete`)."""

PLAN_SCHEMA = pa.schema([
    ("command_index", pa.int64()),
    ("key", pa.string()),
    ("action", pa.string()),
    ("portal_id", pa.int64()),
    ("changed_fields", pa.list_(pa.string())),
    ("changes", pa.list_(CHANGE_TYPE)),
    ("reason", pa.string()),
])  # fmt: skip
"""One row per source row (in source order), then one per record to delete."""

_ORIGINATOR_FIELDS = {"ORIGIN_ID": "ORIGINATOR_ID", "originId": "originatorId"}
_NOT_SENT = {"ambiguous": "SYNC_AMBIGUOUS", "missing": "SYNC_NOT_FOUND", "skipped": "SYNC_MAX_ATTEMPTS",
             "invalid": "SYNC_INVALID"}


@dataclass(frozen=True)
class SyncSpec:
    """How a write asset syncs (see the factories' Args)."""

    mode: SyncMode
    create_method: str
    key_field: str | None
    originator: str | None = None
    match_by: Literal["EMAIL", "PHONE"] | None = None
    check_portal: bool = False
    delete_missing: bool = False
    max_delete_share: float = 0.1
    max_attempts: int = 3
    multi_value: MultiValueMode = "replace"

    @property
    def entity(self) -> str:
        """The method prefix: `crm.lead` of `crm.lead.add`."""
        return self.create_method.rpartition(".")[0]

    @property
    def originator_field(self) -> str | None:
        """`ORIGINATOR_ID` / `originatorId` beside an origin key; None for other keys."""
        return _ORIGINATOR_FIELDS.get(self.key_field or "")

    @property
    def matched_on(self) -> str:
        """What rows are matched by, for messages: the key field, or EMAIL / PHONE."""
        return self.match_by or str(self.key_field)

    @property
    def own_fields(self) -> tuple[str, ...]:
        """The fields the sync fills in itself (the key and originator)."""
        return tuple(f for f in (self.key_field, self.originator_field if self.originator else None) if f)


@dataclass
class SyncPlan:
    """The plan (one entry per source row, then the deletes) and the commands that carry it out."""

    keys: list[str]
    actions: list[str]
    portal_ids: list[int | None]
    changed: list[list[str]]
    reasons: list[str | None]
    hashes: list[str | None]
    sent_fields: list[str | None]
    changes: list[list[tuple[str | None, str | None, str | None, str]]] = field(default_factory=list)
    verified: set[int] = field(default_factory=set)
    """Rows read from the portal and found equal: the state learns them without a write."""
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    command_rows: list[int] = field(default_factory=list)
    lookups: int = 0
    lookup_requests: int = 0

    def counts(self) -> dict[str, int]:
        """Rows by action."""
        return dict(Counter(self.actions))

    def not_sent_code(self, row: int) -> str | None:
        """The error code of a row the plan does not send (None for the others)."""
        return _NOT_SENT.get(self.actions[row])

    def drifted(self) -> int:
        """Rows with a field the portal had changed and the source had not."""
        return sum(1 for row in self.changes if any(c[3] == "drift" for c in row))

    def to_arrow(self) -> pa.Table:
        """The plan as a table (`PLAN_SCHEMA`)."""
        n = len(self.actions)
        changes = [[dict(zip(("field", "old", "new", "kind"), c, strict=True)) for c in row] for row in self.changes]
        arrays = [pa.array(range(n), pa.int64()), pa.array(self.keys, pa.string()),
                  pa.array(self.actions, pa.string()), pa.array(self.portal_ids, pa.int64()),
                  pa.array(self.changed, pa.list_(pa.string())), pa.array(changes, pa.list_(CHANGE_TYPE)),
                  pa.array(self.reasons, pa.string())]  # fmt: skip
        return pa.Table.from_arrays(arrays, schema=PLAN_SCHEMA)


@dataclass
class _Row:
    """One source row while it is planned."""

    index: int
    key: str
    call: tuple[str, dict[str, Any]]
    fields: dict[str, Any]
    """Every field it writes, a mapped field it leaves empty as None (a cleared field is a change)."""
    hashed: str
    known: KeyState | None


def make_plan(spec: SyncSpec, client: Any, calls: Sequence[tuple[str, dict[str, Any]]], keys: Sequence[str],
              state: SyncState, *, extra_params: dict[str, Any], model: EntityFields,
              targets: Sequence[str] = (), invalid: dict[int, str] | None = None) -> SyncPlan:  # fmt: skip
    """Plan the sync of `calls` (the create command of each source row, key field filled in).

    Args:
        model: The entity's fields (`client._fieldmodel`), to read and compare records.
        targets: The fields the mapping writes: one a row leaves empty is cleared on the portal.
        invalid: Rows refused by the field checks, with their reason (not read, not sent).
    """
    n = len(calls)
    plan = SyncPlan(keys=list(keys), actions=[""] * n, portal_ids=[None] * n, changed=[[] for _ in range(n)],
                    reasons=[None] * n, hashes=[None] * n, sent_fields=[None] * n,
                    changes=[[] for _ in range(n)])  # fmt: skip
    invalid = invalid or {}
    rows = []
    for i, (call, key) in enumerate(zip(calls, keys, strict=True)):
        written = dict(call[1].get("fields") or {})
        full = {**{t: None for t in targets}, **written}
        rows.append(_Row(i, key, call, full, fields_hash(full), state.keys.get(key)))
    match = [normalize_comm(spec.match_by, r.fields.get(spec.match_by)) for r in rows] if spec.match_by else list(keys)
    shared = Counter(match)
    to_read = []
    for r in rows:
        decided = _decide_unread(spec, plan, r, match[r.index], shared, invalid.get(r.index))
        if not decided:
            to_read.append(r)
    found = _look_up(spec, client, [match[r.index] for r in to_read], extra_params, plan, _select(model, targets))
    for r in to_read:
        _decide_read(spec, plan, r, found.get(match[r.index], []), model)
    if spec.delete_missing:
        _plan_deletes(spec, client, plan, state, set(keys), extra_params)
    return plan


def _select(model: EntityFields, targets: Sequence[str]) -> list[str]:
    """The fields a lookup reads: those the rows write, by the portal's own names."""
    return list(dict.fromkeys(f.name for t in targets if (f := model.get(t)) is not None))


def _decide_unread(spec: SyncSpec, plan: SyncPlan, r: _Row, match: str, shared: Counter[str],
                   refused: str | None) -> bool:  # fmt: skip
    """Decide what needs no read of the portal; False when the row must be read."""
    i, known = r.index, r.known
    if refused is not None:
        plan.actions[i], plan.reasons[i] = "invalid", refused
    elif not match:
        plan.actions[i], plan.reasons[i] = "invalid", f"no {spec.match_by} to match the row by"
    elif shared[match] > 1:
        plan.actions[i] = "ambiguous"
        plan.reasons[i] = f"{shared[match]} source rows share {spec.matched_on} {match!r}"
    elif (known is not None and not known.applied and known.attempted_hash == r.hashed
          and known.attempts >= spec.max_attempts):  # fmt: skip
        plan.actions[i], plan.portal_ids[i] = "skipped", known.portal_id
        plan.reasons[i] = (f"failed {known.attempts} times with these fields (max_attempts={spec.max_attempts}); "
                           "change the row to try again")  # fmt: skip
    elif (known is not None and known.applied and known.fields_hash == r.hashed and not spec.check_portal):
        plan.actions[i], plan.portal_ids[i] = "unchanged", known.portal_id
    else:
        return False
    return True


def _decide_read(spec: SyncSpec, plan: SyncPlan, r: _Row, records: list[dict[str, Any]], model: EntityFields) -> None:
    i = r.index
    if len(records) > 1:
        ids = [id_of(rec) for rec in records]
        plan.actions[i] = "ambiguous"
        plan.reasons[i] = f"{len(ids)} records match on {spec.matched_on}: ids {', '.join(map(str, ids[:5]))}"
        return
    if not records:
        if spec.mode == "update":
            plan.actions[i], plan.reasons[i] = "missing", f"no record matches on {spec.matched_on}"
            return
        writes = {k: v for k, v in r.fields.items() if not empty(v)}
        plan.changes[i] = [(k, None, display(v), "create") for k, v in writes.items() if k not in spec.own_fields]
        _send(plan, r, "create", (r.call[0], {**r.call[1], "fields": writes}), list(writes))
        return
    record = records[0]
    portal_id = id_of(record)
    plan.portal_ids[i] = int(portal_id) if isinstance(portal_id, int | str) and str(portal_id).isdigit() else None
    if spec.mode == "insert":
        plan.actions[i] = "unchanged"
        return
    diff = diff_record(r.fields, record, model, multi_value=spec.multi_value, skip=spec.own_fields)
    if not diff.fields:
        plan.actions[i] = "unchanged"
        plan.verified.add(i)
        _remember(plan, r)
        return
    plan.changes[i] = [_change(c, r.known, model) for c in diff.changes]
    params = {k: v for k, v in r.call[1].items() if k != "fields"}
    params.update(id=plan.portal_ids[i], fields=diff.fields)
    _send(plan, r, "update", (f"{spec.entity}.update", params), list(diff.fields))


def _change(c: FieldChange, known: KeyState | None, model: EntityFields) -> tuple[str | None, str | None, str | None, str]:
    """A change is `drift` when the state's last applied value of the field is the source's
    value still: the portal moved, not the source."""
    kind = "update"
    if known is not None and known.fields_json:
        applied = known.fields()
        f = model.get(c.field)
        if c.field in applied and comparable(f, applied[c.field]) == comparable(f, c.new):
            kind = "drift"
    return (c.field, display(c.old), display(c.new), kind)


def _remember(plan: SyncPlan, r: _Row) -> None:
    plan.hashes[r.index] = r.hashed
    plan.sent_fields[r.index] = json.dumps(r.fields, sort_keys=True, default=str, ensure_ascii=False)


def _send(plan: SyncPlan, r: _Row, action: str, call: tuple[str, dict[str, Any]], changed: list[str]) -> None:
    plan.actions[r.index] = action
    plan.changed[r.index] = changed
    _remember(plan, r)
    plan.commands.append(call)
    plan.command_rows.append(r.index)


def _look_up(spec: SyncSpec, client: Any, keys: list[str], extra: dict[str, Any], plan: SyncPlan,
             select: Sequence[str] = ()) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    if not keys:
        return {}
    if spec.match_by:
        found = find_by_comm(client, spec.create_method, spec.match_by, keys, select=select)
    else:
        found = find_by_keys(client, list_method_of(spec.create_method), keys, key_field=str(spec.key_field),
                             originator_field=spec.originator_field, originator=spec.originator,
                             params=extra, select=select)  # fmt: skip
    plan.lookups += found.commands
    plan.lookup_requests += found.requests
    if found.failed:
        raise LookupFailed(f"the lookups of {len(found.failed)} keys on {spec.matched_on} failed "
                           f"(e.g. {found.failed[0]!r}: {found.error}); nothing was sent")
    return found.records


class LookupFailed(RuntimeError):
    """The lookups that match rows to records failed: nothing can be planned, nothing is sent."""


def _plan_deletes(spec: SyncSpec, client: Any, plan: SyncPlan, state: SyncState, source: set[str],
                  extra: dict[str, Any]) -> None:  # fmt: skip
    gone = sorted(k for k, s in state.keys.items() if k not in source and s.portal_id is not None)
    if not gone:
        return
    applied = sum(1 for s in state.keys.values() if s.applied) or 1
    if len(gone) / applied > spec.max_delete_share:
        raise TooManyDeletes(
            f"{len(gone)} of the {applied} records this sync made left the source, more than "
            f"max_delete_share={spec.max_delete_share:.0%}: nothing was sent. If the source is "
            "right, raise max_delete_share for one run.")
    found = _look_up(spec, client, gone, extra, plan)
    for key in gone:
        ours = state.keys[key].portal_id
        ids = [id_of(r) for r in found.get(key, [])]
        at = len(plan.actions)
        plan.keys.append(key)
        plan.changed.append([])
        plan.hashes.append(None)
        plan.sent_fields.append(None)
        if ours not in ids:  # ours is gone; a record someone else made with the key is not ours
            plan.actions.append("gone")
            plan.portal_ids.append(None)
            plan.reasons.append(f"record {ours} no longer carries {spec.key_field}={key!r}"
                                + (f" (ids {', '.join(map(str, ids[:5]))} do, and are not this sync's)" if ids else ""))
            plan.changes.append([])
            continue
        plan.actions.append("delete")
        plan.portal_ids.append(ours)
        plan.reasons.append("the key left the source")
        plan.changes.append([(None, None, None, "delete")])
        plan.commands.append((f"{spec.entity}.delete", {**extra, "id": ours}))
        plan.command_rows.append(at)


class TooManyDeletes(RuntimeError):
    """More records would be deleted than the sync allows (`max_delete_share`)."""
