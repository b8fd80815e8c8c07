"""The plan of a sync: for each source row, what to do on the portal, and the command to do it.

Rows are matched to records by a key they carry (`SyncSpec.key_field`: `ORIGIN_ID` on legacy
`crm.*`, `originId` on `crm.item.*`, `XML_ID`, a user field). Matching is exact and never a
guess: a record matches only when it carries the row's key (and originator); two records with
one key make the row `ambiguous`, and it is not written.

Which rows are looked up on the portal (`client._lookup.find_by_keys`, 2,500 keys a request):
every row the state does not know as applied (a crashed run or a person may have made its
record), and with `check_portal` every row. A row the state knows as applied with the same
fields hash is `unchanged` and costs nothing; with other fields it is an `update` of the
known id, sending only the fields that changed.

Leads, contacts and companies without a key field can be matched by e-mail or phone
(`match_by`): `crm.duplicate.findbycomm` finds the records holding the rows' values (20 a
command), and only a record that holds the row's very value (compared in lower case, or as
digits) matches.

Actions: `create`, `update`, `unchanged`, `delete` (opt-in: keys of the state that left the
source), `ambiguous` (several records match, or several source rows share a match value),
`missing` (mode `update`, no record), `invalid` (no value to match by), `skipped` (failed
`max_attempts` times with these very fields).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

from b24_dagster.client._lookup import (
    find_by_comm,
    find_by_keys,
    id_of,
    list_method_of,
    normalize_comm,
)
from b24_dagster.integration._sync_state import KeyState, SyncState, fields_hash

__all__ = ["PLAN_SCHEMA", "LookupFailed", "SyncMode", "SyncPlan", "SyncSpec", "TooManyDeletes", "make_plan"]

SyncMode = Literal["upsert", "insert", "update", "send"]

PLAN_SCHEMA = pa.schema([
    ("command_index", pa.int64()),
    ("key", pa.string()),
    ("action", pa.string()),
    ("portal_id", pa.int64()),
    ("changed_fields", pa.list_(pa.string())),
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
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    command_rows: list[int] = field(default_factory=list)
    lookups: int = 0
    lookup_requests: int = 0

    def counts(self) -> dict[str, int]:
        """Rows by action."""
        out: dict[str, int] = {}
        for action in self.actions:
            out[action] = out.get(action, 0) + 1
        return out

    def not_sent_code(self, row: int) -> str | None:
        """The error code of a row the plan does not send (None for the others)."""
        return _NOT_SENT.get(self.actions[row])

    def to_arrow(self) -> pa.Table:
        """The plan as a table (`PLAN_SCHEMA`)."""
        n = len(self.actions)
        arrays = [pa.array(range(n), pa.int64()), pa.array(self.keys, pa.string()),
                  pa.array(self.actions, pa.string()), pa.array(self.portal_ids, pa.int64()),
                  pa.array(self.changed, pa.list_(pa.string())), pa.array(self.reasons, pa.string())]  # fmt: skip
        return pa.Table.from_arrays(arrays, schema=PLAN_SCHEMA)


def make_plan(spec: SyncSpec, client: Any, calls: Sequence[tuple[str, dict[str, Any]]], keys: Sequence[str],
              state: SyncState, *, extra_params: dict[str, Any]) -> SyncPlan:  # fmt: skip
    """Plan the sync of `calls` (the create command of each source row, key field filled in)."""
    n = len(calls)
    plan = SyncPlan(keys=list(keys), actions=[""] * n, portal_ids=[None] * n, changed=[[] for _ in range(n)],
                    reasons=[None] * n, hashes=[None] * n, sent_fields=[None] * n)  # fmt: skip
    fields_of = [params.get("fields") or {} for _, params in calls]
    hashes = [fields_hash(f) for f in fields_of]
    match = [normalize_comm(spec.match_by, f.get(spec.match_by)) for f in fields_of] if spec.match_by else list(keys)
    shared = Counter(match)
    lookup = [i for i, k in enumerate(keys) if match[i] and (spec.check_portal or not _known(state.keys.get(k)))]
    found = _look_up(spec, client, [match[i] for i in lookup], extra_params, plan)
    looked = set(lookup)
    for i, key in enumerate(keys):
        if not match[i]:
            plan.actions[i], plan.reasons[i] = "invalid", f"no {spec.match_by} to match the row by"
        elif shared[match[i]] > 1:
            plan.actions[i] = "ambiguous"
            plan.reasons[i] = f"{shared[match[i]]} source rows share {spec.matched_on} {match[i]!r}"
        else:
            records = found.get(match[i]) if i in looked else None
            _decide(spec, plan, i, state.keys.get(key), records, fields_of[i], hashes[i], calls[i])
    if spec.delete_missing:
        _plan_deletes(spec, client, plan, state, set(keys), extra_params)
    return plan


def _known(known: KeyState | None) -> bool:
    return known is not None and known.applied


def _look_up(spec: SyncSpec, client: Any, keys: list[str], extra: dict[str, Any], plan: SyncPlan) -> dict[str, list[Any]]:
    if not keys:
        return {}
    if spec.match_by:
        found = find_by_comm(client, spec.create_method, spec.match_by, keys)
    else:
        found = find_by_keys(client, list_method_of(spec.create_method), keys, key_field=str(spec.key_field),
                             originator_field=spec.originator_field, originator=spec.originator,
                             params=extra)  # fmt: skip
    plan.lookups += found.commands
    plan.lookup_requests += found.requests
    if found.failed:
        raise LookupFailed(f"the lookups of {len(found.failed)} keys on {spec.matched_on} failed "
                           f"(e.g. {found.failed[0]!r}: {found.error}); nothing was sent")
    return {k: [id_of(r) for r in v] for k, v in found.records.items()}


class LookupFailed(RuntimeError):
    """The lookups that match rows to records failed: nothing can be planned, nothing is sent."""


def _decide(spec: SyncSpec, plan: SyncPlan, i: int, known: KeyState | None, records: list[Any] | None,
            fields: dict[str, Any], hashed: str, call: tuple[str, dict[str, Any]]) -> None:  # fmt: skip
    if records is None:  # trusted from the state: applied, with a known id
        assert known is not None
        ids = [known.portal_id]
    else:
        ids = records
    if len(ids) > 1:
        plan.actions[i] = "ambiguous"
        plan.reasons[i] = f"{len(ids)} records match on {spec.matched_on}: ids {', '.join(map(str, ids[:5]))}"
        return
    portal_id = ids[0] if ids else None
    plan.portal_ids[i] = portal_id
    if known is not None and not known.applied and known.attempted_hash == hashed and known.attempts >= spec.max_attempts:
        plan.actions[i] = "skipped"
        plan.reasons[i] = f"failed {known.attempts} times with these fields (max_attempts={spec.max_attempts}); change the row to try again"
        return
    if portal_id is None:
        if spec.mode == "update":
            plan.actions[i] = "missing"
            plan.reasons[i] = f"no record matches on {spec.matched_on}"
            return
        _send(plan, i, "create", call, hashed, fields, list(fields))
        return
    same = known is not None and known.applied and known.fields_hash == hashed and known.portal_id == portal_id
    if same or spec.mode == "insert":
        plan.actions[i] = "unchanged"
        return
    old = known.fields() if known is not None and known.applied and known.portal_id == portal_id else {}
    changed = [name for name, value in fields.items() if name not in old or old[name] != value] if old else list(fields)
    params = {k: v for k, v in call[1].items() if k != "fields"}
    params.update(id=portal_id, fields={name: fields[name] for name in changed})
    _send(plan, i, "update", (f"{spec.entity}.update", params), hashed, fields, changed)


def _send(plan: SyncPlan, i: int, action: str, call: tuple[str, dict[str, Any]], hashed: str,
          fields: dict[str, Any], changed: list[str]) -> None:  # fmt: skip
    plan.actions[i] = action
    plan.changed[i] = changed
    plan.hashes[i] = hashed
    plan.sent_fields[i] = json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False)
    plan.commands.append(call)
    plan.command_rows.append(i)


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
        ids = found.get(key, [])
        at = len(plan.actions)
        plan.keys.append(key)
        plan.changed.append([])
        plan.hashes.append(None)
        plan.sent_fields.append(None)
        if len(ids) != 1:  # already gone, or no longer ours alone: nothing to delete
            plan.actions.append("ambiguous" if ids else "gone")
            plan.portal_ids.append(None)
            plan.reasons.append(f"{len(ids)} records carry {spec.key_field}={key!r}")
            continue
        plan.actions.append("delete")
        plan.portal_ids.append(ids[0])
        plan.reasons.append("the key left the source")
        plan.commands.append((f"{spec.entity}.delete", {**extra, "id": ids[0]}))
        plan.command_rows.append(at)


class TooManyDeletes(RuntimeError):
    """More records would be deleted than the sync allows (`max_delete_share`)."""
