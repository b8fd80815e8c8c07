"""A sync step: plan, then dry run or send, settle, publish. Every run is as safe as the first.

    prepare   the source rows become create commands, each carrying its key, checked against
              the portal's fields (`_sync_fields`: one read, which also proves the webhook)
    lock      one execution per asset and partition, and one writer per key space (`_lock`,
              `_key_space`); on object storage a lease, checked before each write leaves
    recover   journals of runs that died are read into the state, after waiting out any
              chunk that may still be running on the portal (`_journal`); the creates of a
              chunk that was in flight are looked up by the keys its marker names
    plan      rows matched to records by key and compared with them (`_sync_plan`)
    dry run   the plan, with each field's old and new value, is written beside the results;
              nothing else changes
    send      the plan's commands in chunked batches, each chunk journaled as it completes;
              consecutive chunks with no answer at all stop the step
    publish   the results file (one row per source row, then the deletes), the changelog and
              the runs table (`_changelog`), then the state

A run that fails publishes nothing: the last good results and state stay as they were, and
its journal tells the next run what it did send (and the next run logs those changes).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from b24_dagster.client._bulk import BULK_CHUNK
from b24_dagster.client._lookup import find_by_keys, id_of, list_method_of
from b24_dagster.integration._batch_run import (
    RESULT_SCHEMA,
    BatchTally,
    ResultsWriter,
    SilenceGuard,
    Stopwatch,
    client_stats,
    results_schema,
    stream_chunks,
)
from b24_dagster.integration._changelog import Changelog, ChangeRow
from b24_dagster.integration._errors import scrub, to_failure
from b24_dagster.integration._journal import BatchJournal, in_flight, remove_journal
from b24_dagster.integration._key_space import LockSettings, sync_space, write_locks
from b24_dagster.integration._lock import LeaseLost, LockHeldError, UnsupportedStore, WriteLocks
from b24_dagster.integration._parquet import ParquetStreamWriter, read_parquet, uri_of
from b24_dagster.integration._reconcile import wait_out_in_flight
from b24_dagster.integration._send_step import CHUNK, ROW_GROUP_ROWS, writes_checked
from b24_dagster.integration._sync_fields import FieldCheck
from b24_dagster.integration._sync_plan import (
    LookupFailed,
    SyncPlan,
    SyncSpec,
    TooManyDeletes,
    make_plan,
)
from b24_dagster.integration._sync_state import StateUnreadable, SyncState, sync_folder

__all__ = ["SyncRun", "run_sync_step", "sync_calls"]

_JOURNAL_SCHEMA = pa.schema([
    ("row", pa.int64()), ("key", pa.string()), ("action", pa.string()), ("status", pa.string()),
    ("portal_id", pa.int64()), ("fields_hash", pa.string()), ("fields_json", pa.string()),
    ("method", pa.string()), ("chunk_index", pa.int32()), ("result", pa.string()),
    ("error_code", pa.string()), ("error_description", pa.string()), ("total", pa.int64()),
    ("next", pa.int64()), ("changes", pa.string()), ("run_id", pa.string()),
])  # fmt: skip
"""A journal part of a sync: each sent row's outcome, as the state records it and as the results
file shows it (the results are written from the parts, so memory holds one chunk at a time), with
the row's changes (JSON) and the run's id, so that a run settling a dead run's journal logs them."""

NOT_THE_ROWS_FAULT = frozenset({
    "CONNECT_ERROR", "OUTCOME_UNKNOWN", "NO_RESPONSE", "PROTOCOL_ERROR", "TRANSPORT_ERROR", "TIMEOUT_ERROR",
    "QUERY_LIMIT_EXCEEDED", "OPERATION_TIME_LIMIT", "OVERLOAD_LIMIT", "INTERNAL_SERVER_ERROR",
    "ERROR_SERVER", "ERROR_UNEXPECTED_ANSWER", "expired_token", "invalid_token", "INVALID_CREDENTIALS",
    "NO_AUTH_FOUND", "insufficient_scope", "WRONG_AUTH_TYPE", "PORTAL_DELETED", "ACCESS_DENIED",
    "JOURNAL_INTERRUPTED", "MISSING_RESULT",
})  # fmt: skip
"""Error codes that say nothing about the row: a request refused or lost as a whole, the
webhook's rights. A row failing with one is not counted as a failed attempt (`max_attempts`)."""


@dataclass
class SyncRun:
    """The state of one sync step, stage by stage."""

    sync: SyncSpec
    client: Any
    path: UPath
    log: Any
    label: str
    calls: list[tuple[str, dict[str, Any]]]
    keys: list[str]
    key_name: str
    halt_on_error: bool = False
    reconcile_delay_seconds: float | None = None
    request_id: str | None = None
    bulk_import: bool = False
    fields: FieldCheck | None = None
    """The field stage's findings (model, fields written, rows refused)."""
    run_id: str = ""
    portal: str = ""
    mapping: str = ""
    changelog: Changelog | None = None
    state: SyncState = field(init=False)
    plan: SyncPlan | None = None
    outcomes: dict[int, tuple[str, int | None, str | None, str | None]] = field(default_factory=dict)
    """Each sent row's (status, portal id, error code, error description); the full rows are in
    the journal's parts."""
    run_stats: Any = None
    recovered: int = 0
    recovered_changes: list[tuple[str, ChangeRow]] = field(default_factory=list)
    """(run id, change) of the writes of runs that died, to log under their run's id."""
    retried: int = 0
    journal: BatchJournal | None = None
    next_chunk: int = 0
    failed_chunks: int = 0
    watch: Stopwatch = field(default_factory=Stopwatch)
    before: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.state = SyncState(self.path, portal=self.portal, mapping=self.mapping)
        self.guard = SilenceGuard(self.label)
        self.journal_root = sync_folder(self.path) / "journal"

    @property
    def extra_params(self) -> dict[str, Any]:
        """The constant params lookups and updates need (`entityTypeId` of `crm.item`)."""
        first = self.calls[0][1] if self.calls else {}
        return {"entityTypeId": first["entityTypeId"]} if "entityTypeId" in first else {}


def run_sync_step(run: SyncRun, *, dry_run: bool = False, owner: str = "", lock_wait_seconds: float = 0.0,
                  rebuild_state: bool = False, locking: LockSettings | None = None) -> dict[str, Any]:  # fmt: skip
    """Run the stages of the module docstring; returns the step's metadata.

    `rebuild_state` ignores the state file (and journals that cannot be read): every row is read
    from the portal by key and compared, and records already right get no write. `locking` says
    where the key-space locks live (`<base>/.locks`); without it only the asset's own lock is
    taken. A dry run sends nothing and takes the asset's lock only.
    """
    settings = locking or LockSettings(owner=owner, wait_seconds=lock_wait_seconds)
    space = sync_space(run.client, run.sync.create_method, run.sync.matched_on, run.extra_params)
    locks = write_locks(settings, run.path, [] if dry_run else [space])
    try:
        locks.acquire()
    except (LockHeldError, UnsupportedStore) as exc:
        raise dg.Failure(f"{run.label}: {exc}", allow_retries=False) from None
    try:
        run.before = run.before or client_stats(run.client)  # the field stage's reads count too
        load_state(run, rebuild_state)
        journals = recover(run, rebuild_state)
        run.plan = plan(run)
        if dry_run:
            return publish_plan(run)
        send(run, locks)
        _still_ours(run, locks)  # a rival that took the lease over settles our journal instead
        metadata = publish(run)
        for folder in journals:  # settled: the state now holds what they recorded
            remove_journal(folder)
        if run.journal is not None:
            run.journal.finish()
        return metadata
    finally:
        locks.release()


def _still_ours(run: SyncRun, locks: WriteLocks) -> None:
    try:
        locks.check()
    except LeaseLost as exc:
        raise dg.Failure(f"{run.label}: {exc}; nothing published (the journal tells the next run what was sent)") from None


def load_state(run: SyncRun, rebuild: bool = False) -> None:
    """Read the state; one that cannot be read stops the run, naming the file and the way out."""
    if rebuild:
        run.log.info(f"{run.label}: rebuild_state: the state is ignored; every row is read from the portal")
        return
    try:
        run.state.load()
    except StateUnreadable as exc:
        raise dg.Failure(
            f"{run.label}: the sync state {scrub(uri_of(run.state.path))} cannot be read ({scrub(str(exc))}). It is "
            "only a cache of what the portal holds: run once with the run config `rebuild_state: true` "
            "(every row is read from the portal by key and compared; records already right get no write), "
            "or delete the file.", allow_retries=False) from None  # fmt: skip
    if run.state.distrusted:
        run.log.warning(f"{run.label}: the sync state is not trusted: {run.state.distrusted}; every row is read "
                        "from the portal and compared before anything is written")  # fmt: skip


def recover(run: SyncRun, rebuild: bool = False) -> list[UPath]:
    """Read the journals of runs that died into the state (what they sent is on the portal).

    A chunk one of them had in flight may still be running on the portal: the lookups wait
    until it can no longer commit (`wait_out_in_flight`). Its creates are then looked up by
    the keys its marker names, whether or not the source still holds them, so that a record
    it made enters the state (and `delete_missing` can delete it later).
    """
    probe = BatchJournal(run.path, "-", root=run.journal_root)
    folders = probe.unfinished()
    flying = [marker for folder in folders for marker in in_flight(folder)]
    if flying:
        wait_out_in_flight(run.client, since_sent=min(m.since_sent for m in flying),
                           delay=run.reconcile_delay_seconds, log=run.log, label=run.label)  # fmt: skip
    recorded: set[str] = set()
    for folder in folders:
        for part in sorted(p for p in folder.iterdir() if p.name.endswith(".part")):
            try:
                table = read_parquet(part)
                columns = {c: table[c].to_pylist() for c in ("key", "action", "status", "portal_id", "fields_hash",
                                                             "fields_json", "error_code")}  # fmt: skip
            except Exception as exc:
                if rebuild:  # every row is read from the portal anyway
                    run.log.warning(f"{run.label}: journal part {scrub(uri_of(part))} cannot be read; ignored")
                    continue
                raise dg.Failure(
                    f"{run.label}: the journal part {scrub(uri_of(part))} of a run that died cannot be read "
                    f"({type(exc).__name__}: {scrub(str(exc))}). Run once with the run config `rebuild_state: true` "
                    "(every row is read from the portal by key; records already right get no write).",
                    allow_retries=False) from None  # fmt: skip
            for key, action, status, portal_id, hashed, fields, code in zip(*columns.values(), strict=True):
                if action == "delete" and status == "ok":
                    run.state.forget(key)
                else:
                    run.state.record(key, status=status, portal_id=portal_id, sent_hash=hashed, sent_fields=fields,
                                     attempt=own_error(status, code))  # fmt: skip
                recorded.add(key)
                run.recovered += 1
            run.recovered_changes.extend(_logged_changes(table))
    creates = {row["key"]: row for marker in flying for row in marker.rows
               if row.get("action") == "create" and row.get("key") not in recorded}  # fmt: skip
    if creates:
        _find_in_flight_creates(run, creates)
    if folders:
        run.log.info(f"{run.label}: {run.recovered} outcomes read from {len(folders)} journals of runs that died")
    return folders


def _find_in_flight_creates(run: SyncRun, creates: dict[str, dict[str, Any]]) -> None:
    """Put the creates of an interrupted chunk that landed into the state, found by key."""
    spec = run.sync
    if not spec.key_field:  # matched by e-mail or phone: the plan looks the source rows up
        return
    found = find_by_keys(run.client, list_method_of(spec.create_method), sorted(creates), key_field=spec.key_field,
                         originator_field=spec.originator_field, originator=spec.originator,
                         params=run.extra_params)  # fmt: skip
    if found.failed:
        raise dg.Failure(f"{run.label}: the lookups of {len(found.failed)} keys of a chunk a run that died had in "
                         f"flight failed ({scrub(str(found.error))}); nothing was sent")  # fmt: skip
    landed = 0
    for key, row in creates.items():
        records = found.records.get(key) or []
        if len(records) == 1:  # several: not ours alone; the plan calls the row ambiguous
            run.state.record(key, status="ok", portal_id=id_of(records[0]), sent_hash=row.get("fields_hash"),
                             sent_fields=row.get("fields_json"))  # fmt: skip
            landed += 1
            run.recovered += 1
    run.log.info(f"{run.label}: of {len(creates)} creates in flight when a run died, {landed} landed "
                 f"(now in the state), {len(creates) - landed} did not")  # fmt: skip


def own_error(status: str, code: str | None) -> bool:
    """Whether a row's outcome is a failed attempt of its own (see `NOT_THE_ROWS_FAULT`)."""
    return status == "error" and (code or "") not in NOT_THE_ROWS_FAULT and not (code or "").startswith("HTTP_5")


def plan(run: SyncRun) -> SyncPlan:
    """Match the rows to records and decide each row's action."""
    assert run.fields is not None, "the field stage runs first (_sync_fields.check_fields)"
    try:
        made = make_plan(run.sync, run.client, run.calls, run.keys, run.state, extra_params=run.extra_params,
                         model=run.fields.model, targets=run.fields.targets, invalid=run.fields.invalid)  # fmt: skip
    except (LookupFailed, TooManyDeletes) as exc:
        raise dg.Failure(f"{run.label}: {scrub(str(exc))}", allow_retries=False) from None
    except Exception as exc:
        raise to_failure(exc, f"{run.label}: the sync could not be planned (nothing was sent)") from exc
    run.retried = sum(1 for row in made.command_rows  # rows that failed last time, sent again
                      if (known := run.state.keys.get(made.keys[row])) is not None and known.status != "ok")
    counts = made.counts()
    run.log.info(f"{run.label}: plan " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
                 + f" ({made.lookups} lookups in {made.lookup_requests} requests)")  # fmt: skip
    return made


def publish_plan(run: SyncRun) -> dict[str, Any]:
    """Dry run: the plan beside the results, as metadata; nothing sent, nothing else written."""
    assert run.plan is not None
    path = sync_folder(run.path) / "plan.parquet"
    table = run.plan.to_arrow()
    with ParquetStreamWriter(path, table.schema) as writer:
        writer.write(table)
    metadata = _plan_metadata(run)
    rows = len(run.plan.keys)
    refused = sum(metadata[f"rows_{a}"] for a in ("ambiguous", "missing", "skipped", "invalid"))
    metadata.update({"commands": rows, "unknown": 0,
                     "failure_rate": dg.MetadataValue.float(round(refused / rows, 6) if rows else 0.0)})
    metadata.update({"dry_run": True, "plan_uri": uri_of(path), "dagster/row_count": table.num_rows,
                     "plan_preview": _preview(table)})  # fmt: skip
    if run.changelog is not None:  # the runs table has the dry run too (no changes were made)
        run.changelog.write_run(run.run_id, _runs_row(run, run.plan.counts(), metadata, 0, dry_run=True))
        metadata["runs_uri"] = run.changelog.uris()["runs_uri"]
    return metadata


def send(run: SyncRun, locks: WriteLocks) -> None:
    """Send the plan's commands, journaling each chunk; stop when the portal stays silent.

    Right before each write leaves (the client's `before_write`, after any wait for the
    portal's limits) the locks are checked and the chunk's in-flight marker is written with
    the time and the rows it carries."""
    plan_ = run.plan
    assert plan_ is not None
    if not plan_.commands:
        return
    run.journal = BatchJournal(run.path, f"run-{time.time_ns()}", root=run.journal_root)
    run.journal.start()
    chunks = run.client.batch_by_chunk(
        plan_.commands, halt_on_error=run.halt_on_error, request_id=run.request_id,
        reconcile=run.sync.key_field is not None, reconcile_field=run.sync.key_field,
        reconcile_delay_seconds=run.reconcile_delay_seconds, bulk_import=run.bulk_import)  # fmt: skip
    run.run_stats = getattr(chunks, "stats", None)
    journal = run.journal

    def before_write() -> None:
        locks.check()
        journal.sending(run.next_chunk, _chunk_rows(run, run.next_chunk))

    with writes_checked(run.client, before_write) as hooked:
        try:
            if not hooked:  # a client without the hook: checked and marked before each chunk is asked for
                locks.check()
                journal.sending(0, _chunk_rows(run, 0))
            stream_chunks(chunks, keys=None, index_map=None, schema=RESULT_SCHEMA,
                          on_chunk=lambda table: _on_chunk(run, locks, table, hooked))  # fmt: skip
        except dg.Failure:
            raise
        except LeaseLost as exc:
            raise dg.Failure(f"{run.label}: {exc} ({len(run.outcomes)} of {len(plan_.commands)} commands sent; "
                             "nothing published: the journal tells the next run what was sent)") from None  # fmt: skip
        except Exception as exc:
            raise to_failure(exc, f"{run.label}: the sync stopped after {len(run.outcomes)} of "
                                  f"{len(plan_.commands)} commands (nothing published)") from exc  # fmt: skip


def _chunk_rows(run: SyncRun, number: int) -> list[dict[str, Any]]:
    """What chunk `number` writes, as its in-flight marker records it."""
    plan_ = run.plan
    assert plan_ is not None
    size = BULK_CHUNK if run.bulk_import else CHUNK
    return [{"key": plan_.keys[r], "action": plan_.actions[r], "portal_id": plan_.portal_ids[r],
             "fields_hash": plan_.hashes[r], "fields_json": plan_.sent_fields[r]}
            for r in plan_.command_rows[number * size:(number + 1) * size]]  # fmt: skip


def _on_chunk(run: SyncRun, locks: WriteLocks, table: pa.Table, hooked: bool) -> None:
    assert run.plan is not None and run.journal is not None
    _record_chunk(run, run.journal, run.next_chunk, table)
    run.next_chunk += 1
    more = run.next_chunk * (BULK_CHUNK if run.bulk_import else CHUNK) < len(run.plan.commands)
    if more and not hooked:  # the client sends the next chunk when asked for it
        locks.check()
        run.journal.sending(run.next_chunk, _chunk_rows(run, run.next_chunk))


def _record_chunk(run: SyncRun, journal: BatchJournal, number: int, table: pa.Table) -> None:
    plan_ = run.plan
    assert plan_ is not None
    rows = [plan_.command_rows[i] for i in table["command_index"].to_pylist()]
    records = table.to_pylist()
    portal_ids = [_portal_id(plan_.actions[row], record, plan_.portal_ids[row])
                  for row, record in zip(rows, records, strict=True)]  # fmt: skip
    for row, record, portal_id in zip(rows, records, portal_ids, strict=True):
        run.outcomes[row] = (record["status"], portal_id, record["error_code"], record["error_description"])
    run.failed_chunks += any(r["status"] != "ok" for r in records)
    part = {name: table[name] for name in _JOURNAL_SCHEMA.names if name in table.column_names}
    part.update(row=rows, key=[plan_.keys[r] for r in rows], action=[plan_.actions[r] for r in rows],
                portal_id=portal_ids, fields_hash=[plan_.hashes[r] for r in rows],
                fields_json=[plan_.sent_fields[r] for r in rows],
                changes=[json.dumps(plan_.changes[r], ensure_ascii=False) for r in rows],
                run_id=[run.run_id] * len(rows))  # fmt: skip
    journal.completed(number, pa.table({n: part[n] for n in _JOURNAL_SCHEMA.names}, schema=_JOURNAL_SCHEMA))
    run.guard.check(table, sent=len(run.outcomes), total=len(plan_.commands))


def _portal_id(action: str, record: dict[str, Any], planned: int | None) -> int | None:
    """The record's id: the planned one, or for a create the id its answer gives."""
    if action != "create" or record["status"] != "ok" or record["result"] is None:
        return planned
    data = json.loads(record["result"])
    if isinstance(data, dict):
        data = (data.get("item") or data.get("task") or {}).get("id")
    try:
        return int(data)
    except (TypeError, ValueError):
        return None


def publish(run: SyncRun) -> dict[str, Any]:
    """Write the results (one row per plan row, streamed), then advance the state by the rows
    that ended ok."""
    plan_ = run.plan
    assert plan_ is not None
    schema = results_schema(run.key_name, pa.string()).append(pa.field("action", pa.string())).append(
        pa.field("portal_id", pa.int64()))
    tally = BatchTally(key_name=run.key_name)
    with ResultsWriter(run.path, schema) as writer:
        for table in _result_tables(run, schema):
            writer.write(table)
            tally.add(table)
    tally.sent, tally.chunks, tally.failed_chunks = len(run.outcomes), run.next_chunk, run.failed_chunks
    after = client_stats(run.client)
    stats = {k: after[k] - run.before.get(k, 0.0) for k in after}
    metadata = tally.metadata(stats=stats, duration=run.watch.elapsed, writer=writer, schema=schema)
    metadata.update(_plan_metadata(run))
    metadata.update(_reconciled(run))
    metadata.update(_log_changes(run, metadata))
    for row, action in enumerate(plan_.actions):
        _advance_state(run, row, action)
    run.state.save()
    run.log.info(f"{run.label}: " + ", ".join(f"{n} {a}" for a, n in sorted(plan_.counts().items()))
                 + f"; {tally.statuses['ok']} ok, {tally.failed} not ok -> {scrub(str(run.path))}")  # fmt: skip
    _log_failures(run)
    return metadata


def _reconciled(run: SyncRun) -> dict[str, int]:
    """The lost answers settled by key while sending (the client's chunked run counts them)."""
    stats = run.run_stats
    names = ("reconciled_found", "reconciled_resent", "reconciled_unknown_left", "reconcile_lookups")
    return {n: int(getattr(stats, n, 0) or 0) for n in names}


def _log_changes(run: SyncRun, metadata: dict[str, Any]) -> dict[str, Any]:
    """Append this run's changes (and those of dead runs settled now) to the changelog, and the
    run's row to the runs table; the metadata that names them."""
    plan_ = run.plan
    if run.changelog is None or plan_ is None:
        return {}
    changes = []
    for row, (status, portal_id, code, description) in run.outcomes.items():
        error = None if status == "ok" else f"{code}: {description}" if code else description
        changes.extend(ChangeRow(plan_.keys[row], portal_id if portal_id is not None else plan_.portal_ids[row],
                                 kind, name, old, new, status, error)
                       for name, old, new, kind in plan_.changes[row])  # fmt: skip
    by_run: dict[str, list[ChangeRow]] = {}
    for dead_run, change in run.recovered_changes:
        by_run.setdefault(dead_run, []).append(change)
    for dead_run, rows in by_run.items():
        run.changelog.write_changes(dead_run, rows)
    _, written = run.changelog.write_changes(run.run_id, changes)
    run.changelog.write_run(run.run_id, _runs_row(run, plan_.counts(), metadata, written))
    return {**run.changelog.uris(), "fields_changed": written}


def _runs_row(run: SyncRun, counts: dict[str, int], metadata: dict[str, Any], written: int,
              dry_run: bool = False) -> dict[str, Any]:  # fmt: skip
    plan_ = run.plan
    assert plan_ is not None
    finished = time.time()
    failed = int(metadata.get("error", 0)) + int(metadata.get("unknown", 0))
    return {"mode": run.sync.mode, "dry_run": dry_run, "started_at": _utc(finished - run.watch.elapsed),
            "finished_at": _utc(finished), "duration_seconds": round(run.watch.elapsed, 3), "rows": len(run.keys),
            "created": counts.get("create", 0), "updated": counts.get("update", 0),
            "unchanged": counts.get("unchanged", 0), "deleted": counts.get("delete", 0), "drift": plan_.drifted(),
            "invalid": counts.get("invalid", 0), "skipped": counts.get("skipped", 0),
            "ambiguous": counts.get("ambiguous", 0), "failed": failed, "fields_changed": written,
            "lookup_requests": plan_.lookup_requests, "requests": int(metadata.get("requests", 0))}  # fmt: skip


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _log_failures(run: SyncRun, limit: int = 10) -> None:
    """Name the first rows that did not end ok, with their reasons, in the run's log."""
    plan_ = run.plan
    assert plan_ is not None
    failed = [(plan_.keys[row], f"{out[2]}: {out[3]}" if out[2] else str(out[3]))
              for row, out in sorted(run.outcomes.items()) if out[0] != "ok"]  # fmt: skip
    failed += [(plan_.keys[i], f"{plan_.actions[i]}: {plan_.reasons[i]}") for i, a in enumerate(plan_.actions)
               if a in ("invalid", "ambiguous", "missing", "skipped")]  # fmt: skip
    if failed:
        shown = "; ".join(f"{key}: {scrub(str(reason))}" for key, reason in failed[:limit])
        more = f" (and {len(failed) - limit} more: see the results' error_reason column)" if len(failed) > limit else ""
        run.log.warning(f"{run.label}: {len(failed)} rows not written: {shown}{more}")


def _logged_changes(table: pa.Table) -> list[tuple[str, ChangeRow]]:
    """The changes a dead run's journal part recorded, with their outcome, under its run id."""
    if "changes" not in table.column_names or "run_id" not in table.column_names:
        return []  # a journal of an older version: its outcomes count, its changes were not kept
    out = []
    for record in table.select(["run_id", "key", "portal_id", "status", "error_code", "error_description",
                                "changes"]).to_pylist():  # fmt: skip
        error = None if record["status"] == "ok" else f"{record['error_code']}: {record['error_description']}"
        for name, old, new, kind in json.loads(record["changes"] or "[]"):
            out.append((record["run_id"] or "unknown", ChangeRow(record["key"], record["portal_id"], kind, name, old,
                                                                  new, record["status"], error)))  # fmt: skip
    return out



def _advance_state(run: SyncRun, row: int, action: str) -> None:
    plan_ = run.plan
    assert plan_ is not None
    key = plan_.keys[row]
    sent = run.outcomes.get(row)
    if action == "unchanged" and row in plan_.verified:  # read from the portal and found right
        run.state.record(key, status="ok", portal_id=plan_.portal_ids[row], sent_hash=plan_.hashes[row],
                         sent_fields=plan_.sent_fields[row])  # fmt: skip
        return
    if action in ("unchanged", "skipped", "invalid", "ambiguous", "missing"):
        return  # nothing was sent: nothing new is known, and no attempt was made
    if action == "gone" or (action == "delete" and sent is not None and sent[0] == "ok"):
        run.state.forget(key)
        return
    if sent is None:  # planned, never reached (the run halted): not an attempt
        run.state.record(key, status="not_run", portal_id=plan_.portal_ids[row], sent_hash=plan_.hashes[row],
                         sent_fields=plan_.sent_fields[row], attempt=False)  # fmt: skip
        return
    status, portal_id, code, _ = sent
    run.state.record(key, status=status, portal_id=portal_id, sent_hash=plan_.hashes[row],
                     sent_fields=plan_.sent_fields[row], attempt=own_error(status, code))  # fmt: skip


def _result_tables(run: SyncRun, schema: pa.Schema) -> Iterator[pa.Table]:
    """The results in row order, in tables of about `ROW_GROUP_ROWS`: the sent rows from this
    run's journal parts (the plan's commands follow its rows), the others made from the plan."""
    plan_ = run.plan
    assert plan_ is not None
    parts = run.journal.parts(run.next_chunk) if run.journal is not None else iter(())
    buffered: list[pa.Table] = []
    done = 0
    for part in parts:
        sent = part["row"].to_pylist()
        was_sent = set(sent)
        rows = [r for r in range(done, sent[-1] + 1) if r not in was_sent]  # unsent rows among them
        merged = pa.concat_tables([_unsent_table(run, schema, rows), _sent_table(run, schema, part)])
        buffered.append(merged.sort_by("command_index"))
        done = sent[-1] + 1
        if sum(t.num_rows for t in buffered) >= ROW_GROUP_ROWS:
            yield pa.concat_tables(buffered)
            buffered = []
    buffered.append(_unsent_table(run, schema, range(done, len(plan_.actions))))
    yield pa.concat_tables(buffered)


def _sent_table(run: SyncRun, schema: pa.Schema, part: pa.Table) -> pa.Table:
    rows = part["row"]
    columns = {"command_index": rows, "command_key": rows.cast(pa.string()), run.key_name: part["key"]}
    arrays = [(columns[f.name] if f.name in columns else part[f.name]).cast(f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _unsent_table(run: SyncRun, schema: pa.Schema, rows: Iterable[int]) -> pa.Table:
    """Rows that were not sent: unchanged, refused by the plan, or not reached."""
    plan_ = run.plan
    assert plan_ is not None
    columns: dict[str, list[Any]] = {f.name: [] for f in schema}
    for row in rows:
        record = _not_sent(plan_, row, plan_.actions[row])
        for name in RESULT_SCHEMA.names:
            columns[name].append(record.get(name))
        columns["command_index"][-1] = row
        columns["command_key"][-1] = str(row)
        columns[run.key_name].append(plan_.keys[row])
        columns["action"].append(plan_.actions[row])
        columns["portal_id"].append(record.get("portal_id", plan_.portal_ids[row]))
    return pa.Table.from_arrays([pa.array(columns[f.name], f.type) for f in schema], schema=schema)


def _not_sent(plan_: SyncPlan, row: int, action: str) -> dict[str, Any]:
    code = plan_.not_sent_code(row)
    if action in ("unchanged", "gone"):
        return {"status": "ok", "portal_id": plan_.portal_ids[row]}
    if action == "skipped":
        return {"status": "not_run", "error_code": code, "error_description": plan_.reasons[row]}
    if code is not None:
        return {"status": "error", "error_code": code, "error_description": plan_.reasons[row]}
    # A planned command the run never reached (halt_on_error stopped it).
    return {"status": "not_run", "error_code": None, "error_description": "not sent: the run stopped before it"}


def _plan_metadata(run: SyncRun) -> dict[str, Any]:
    plan_ = run.plan
    assert plan_ is not None
    counts = plan_.counts()
    out: dict[str, Any] = {"sync_mode": run.sync.mode, "matched_on": run.sync.matched_on,
                           "multi_value": run.sync.multi_value}
    for action in ("create", "update", "unchanged", "delete", "gone", "ambiguous", "missing", "invalid", "skipped"):
        out[f"rows_{action}"] = counts.get(action, 0)
    out.update({"rows_drift": plan_.drifted(), "rows_verified": len(plan_.verified), "rows_retried": run.retried,
                "lookups": plan_.lookups, "lookup_requests": plan_.lookup_requests,
                "field_check_requests": run.fields.requests if run.fields is not None else 0,
                "writes_planned": len(plan_.commands)})  # fmt: skip
    if run.state.distrusted:
        out["state_distrusted"] = run.state.distrusted
    if run.recovered:
        out["recovered_from_journal"] = run.recovered
    return out


def _preview(table: pa.Table, limit: int = 20) -> dg.TableMetadataValue:
    changed = table.filter(pc.not_equal(table["action"], "unchanged")).slice(0, limit)
    schema = dg.TableSchema(columns=[dg.TableColumn(n, "string") for n in
                                     ("key", "action", "portal_id", "changes", "reason")])  # fmt: skip
    records = [dg.TableRecord({"key": r["key"], "action": r["action"],
                               "portal_id": "" if r["portal_id"] is None else str(r["portal_id"]),
                               "changes": "; ".join(_change_text(c) for c in r["changes"] or []),
                               "reason": r["reason"] or ""}) for r in changed.to_pylist()]  # fmt: skip
    return dg.MetadataValue.table(records, schema)


def _change_text(change: dict[str, Any], width: int = 40) -> str:
    def short(value: str | None) -> str:
        text = "∅" if value is None else scrub(value)
        return text if len(text) <= width else text[: width - 1] + "…"

    if change["field"] is None:
        return change["kind"]
    drift = " (drift)" if change["kind"] == "drift" else ""
    return f"{change['field']}: {short(change['old'])} → {short(change['new'])}{drift}"


def sync_calls(calls: Sequence[Any], keys: Sequence[str], sync: SyncSpec) -> list[tuple[str, dict[str, Any]]]:
    """The create commands with each row's key (and originator) filled in unless mapped."""
    out = []
    for row, ((method, params), key) in enumerate(zip(calls, keys, strict=True)):
        fields = dict(params.get("fields") or {})
        if sync.key_field:
            mapped = fields.setdefault(sync.key_field, key)
            if str(mapped) != key:  # the record would carry a key no lookup asks for
                raise ValueError(
                    f"row {row}: {sync.key_field} is mapped to {mapped!r} but the row's key is {key!r}; "
                    f"a sync finds records by the key they carry, so {sync.key_field} must hold the "
                    "key_column's value (leave it unmapped and it is filled in)")
        if sync.originator and sync.originator_field:
            fields.setdefault(sync.originator_field, sync.originator)
        out.append((method, {**params, "fields": fields}))
    return out
