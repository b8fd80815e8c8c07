"""The one-shot batch step as stages: plan, resume, send, publish; its state in one `SendRun`.

    lock      the asset's lock and that of each key space the commands write (`_key_space`),
              the same locks a sync of those records takes; on object storage leases,
              checked right before each write leaves
    plan      all the commands (mode `all`), or the re-drive set: the failed and not-run
              rows of the latest results, and their `unknown` creates settled by key first
    resume    the journal of an earlier execution of the same command set: its recorded
              chunks are not sent again, the chunk it had in flight is replayed (v3) or
              reconciled by key (v2); another command set's unfinished journal stops the step
    send      the rest, chunk by chunk, each journaled as it completes and streamed to a
              temporary results file; consecutive silent chunks stop the step
    publish   the results file renamed into place (merged into the previous one for a
              re-drive), the journal removed, the metadata

A step that fails publishes nothing: the last good results stay.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from b24_dagster.client._bulk import BULK_CHUNK, send_bulk
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
from b24_dagster.integration._commands import FrameCommands
from b24_dagster.integration._errors import scrub, to_failure
from b24_dagster.integration._journal import INTERRUPTED, BatchJournal, digest_of, file_age
from b24_dagster.integration._key_space import LockSettings, send_spaces, write_locks
from b24_dagster.integration._lock import LeaseLost, LockHeldError, UnsupportedStore, WriteLocks
from b24_dagster.integration._parquet import ParquetStreamWriter, iter_parquet_batches
from b24_dagster.integration._reconcile import (
    ReconcileCounts,
    commit_window,
    keyed_unknown,
    reconcile_table,
    unknown_rows,
    wait_out_in_flight,
)

__all__ = ["CHUNK", "SendRun", "lock", "plan", "publish", "resume", "send", "writes_checked"]

CHUNK = 50
REPLAY_WINDOW_SECONDS = 23 * 3600
"""How long after a v3 chunk was sent a resumed step sends it again under its
Idempotency-Key (the portal keeps answers 24 h; an hour is left for clocks and queues)."""
ROW_GROUP_ROWS = 5_000
"""Rows per Parquet row group of a results file (100 chunks; memory holds at most that)."""


@dataclass
class SendRun:
    """The state of one one-shot batch step, stage by stage (see the module docstring)."""

    spec: Any  # BatchSpec
    client: Any
    path: UPath
    log: Any
    label: str
    calls: Any
    keys: pa.Array | None
    key_name: str | None
    mode: str = "all"
    include_unknown: bool = False
    journal: bool = True
    request_id: str | None = None
    # plan
    to_send: Any = None
    base_map: list[int] | None = None
    previous: UPath | None = None
    settled: pa.Table | None = None
    # resume
    book: BatchJournal | None = None
    done: int = 0
    interrupted: int | None = None
    replay: bool = False
    # send
    next_chunk: int = 0
    pending: list[pa.Table] = field(default_factory=list)
    resent: list[pa.Table] = field(default_factory=list)
    counts: ReconcileCounts = field(default_factory=ReconcileCounts)
    watch: Stopwatch = field(default_factory=Stopwatch)
    before: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.schema = results_schema(self.key_name, self.keys.type if self.keys is not None else None)
        self.tally = BatchTally(key_name=self.key_name, max_failures=self.spec.max_failures_shown)
        self.writer = ResultsWriter(self.path, self.schema)
        self.guard = SilenceGuard(self.label)

    @property
    def n(self) -> int:
        """Commands this step sends (recorded ones included)."""
        return len(self.to_send)

    @property
    def chunk(self) -> int:
        """Commands a chunk: 50, or 1,000 when creates ride `crm.item.batchImport`."""
        return BULK_CHUNK if self.spec.bulk_import else CHUNK

    @property
    def total_chunks(self) -> int:
        """Chunks of the command set."""
        return -(-self.n // self.chunk)

    @property
    def skip(self) -> int:
        """Chunks not sent by this execution: recorded, or reconciled after an interruption."""
        return self.done + (1 if self.interrupted is not None and not self.replay else 0)

    def reconciled(self, table: pa.Table, since_sent: float = 0.0) -> pa.Table:
        """`table` with its unknown creates settled by key (when the spec reconciles), once
        the writes, sent `since_sent` seconds ago, can no longer commit on the portal."""
        if not self.spec.reconcile or not unknown_rows(table):
            return table
        delay = self.spec.reconcile_delay_seconds
        if keyed_unknown(table, lambda i: self.calls[i], self.spec.reconcile_field):  # else nothing to look up
            wait_out_in_flight(self.client, since_sent=since_sent, delay=delay, log=self.log, label=self.label,
                               what="a chunk whose outcome is unknown")  # fmt: skip
        return reconcile_table(table, lambda i: self.calls[i], self.client, field=self.spec.reconcile_field,
                               counts=self.counts, resend_settle_seconds=commit_window(self.client, delay),
                               send=send_bulk(self.client) if self.spec.bulk_import else None)  # fmt: skip


def lock(run: SendRun, settings: LockSettings) -> WriteLocks:
    """The step's locks, taken (see the module docstring); a held one fails the step naming
    its holder. The caller releases them when the step ends."""
    calls = run.calls
    targets = getattr(calls, "targets", None)
    if targets is None:  # a plain list of calls
        pairs = ((c["method"], c.get("params")) if isinstance(c, dict) else (c[0], c[1]) for c in calls)
        targets = {(m, p.get("entityTypeId") if isinstance(p, dict) else None) for m, p in pairs}
    locks = write_locks(settings, run.path, send_spaces(run.client, targets, run.spec.reconcile_field))
    try:
        locks.acquire()
    except (LockHeldError, UnsupportedStore) as exc:
        raise dg.Failure(f"{run.label}: {exc}", allow_retries=False) from None
    return locks


def plan(run: SendRun, locks: WriteLocks | None = None) -> None:
    """Choose the commands: all of them, or the re-drive set (see the module docstring)."""
    if run.mode != "redrive":
        run.to_send = run.calls
        return
    with_unknown = run.spec.reconcile or run.include_unknown
    run.base_map, run.previous, unknown = _redrive_plan(run.path, run.calls, run.keys, run.key_name, with_unknown)
    if unknown is not None and run.spec.reconcile:  # settled by lookups first, never sent blindly
        with writes_checked(run.client, locks.check if locks is not None else None):  # its re-sends
            unknown = run.reconciled(unknown.select(run.schema.names).cast(run.schema), since_sent=file_age(run.path))
        still = pc.equal(unknown["status"], "unknown")
        run.settled = unknown.filter(pc.invert(still))
        if run.include_unknown:
            run.base_map = sorted(run.base_map + unknown.filter(still)["command_index"].to_pylist())
    elif unknown is not None:
        run.base_map = sorted(run.base_map + unknown["command_index"].to_pylist())
    run.to_send = [run.calls[i] for i in run.base_map]
    run.log.info(f"{run.label}: re-drive of {run.n} of {len(run.calls)} commands"
                 + (f" after settling {run.settled.num_rows} unknown ones on the portal"
                    if run.settled is not None else ""))  # fmt: skip


def resume(run: SendRun) -> None:
    """Open the journal of this command set and find where an earlier execution stopped."""
    if not run.journal or not run.n:
        return
    base = run.to_send.digest if isinstance(run.to_send, FrameCommands) else digest_of(run.to_send)
    bulk = "|bulk" if run.spec.bulk_import else ""  # other chunk boundaries: another journal
    run.book = BatchJournal(run.path, digest_of([], f"{base}|{run.mode}|{run.spec.halt_on_error}{bulk}"))
    run.done, run.interrupted = run.book.start()
    others = run.book.unfinished()
    if others:
        raise _unfinished(others[0], run.label)
    run.replay = (run.interrupted is not None and getattr(run.client, "api_version", 2) == 3
                  and run.book.age(run.interrupted) < REPLAY_WINDOW_SECONDS)  # fmt: skip
    # stable across re-executions: a chunk sent again keeps its Idempotency-Key
    run.request_id = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', run.label)[:80]}-{run.book.token}"
    if run.done or run.interrupted is not None:
        run.log.info(f"{run.label}: resuming after {run.done} recorded chunks" + (
            "" if run.interrupted is None
            else f"; chunk {run.interrupted} was in flight: sent again under its Idempotency-Key" if run.replay
            else f"; chunk {run.interrupted} was in flight: its commands are unknown until reconciled"))  # fmt: skip


def send(run: SendRun, locks: WriteLocks) -> None:
    """Write the recorded chunks, settle an interrupted one, send the rest (see the docstring).

    Right before each write leaves (the client's `before_write`, after any wait for the
    portal's limits) the locks are checked and the chunk's in-flight marker is stamped."""
    run.before = client_stats(run.client)
    run.next_chunk = run.skip
    run.writer.open()
    book = run.book

    def before_write() -> None:
        locks.check()
        if book is not None:
            book.sending(run.next_chunk)

    with writes_checked(run.client, before_write) as hooked:
        try:
            if run.settled is not None and run.settled.num_rows:
                run.resent.append(run.settled)  # merged like the re-sent rows (lookups are in the counts)
            _replay_journal(run)
            offset = min(run.skip * run.chunk, run.n)
            if offset < run.n:
                if not hooked:  # a client without the hook: checked and marked before each chunk is asked for
                    locks.check()
                    if book is not None and not run.replay:  # a replayed chunk keeps its first marker
                        book.sending(run.skip)
                index_map = (run.base_map[offset:] if run.base_map is not None
                             else (list(range(offset, run.n)) if offset else None))  # fmt: skip
                # Lost creates are settled by the run itself, before their chunk is journaled.
                chunks = run.client.batch_by_chunk(
                    run.to_send[offset:], halt_on_error=run.spec.halt_on_error, request_id=run.request_id,
                    first_chunk=run.skip, reconcile=run.spec.reconcile, reconcile_field=run.spec.reconcile_field,
                    reconcile_delay_seconds=run.spec.reconcile_delay_seconds, bulk_import=run.spec.bulk_import)  # fmt: skip
                stream_chunks(chunks, keys=run.keys, index_map=index_map, schema=run.schema,
                              on_chunk=lambda table: _on_chunk(run, table, locks, hooked))  # fmt: skip
                run.counts.add(chunks.run_stats)
                locks.check()  # a rival that took the lease over settles our journal instead
            _flush(run)
            if run.previous is not None:
                _merge(run.previous, run.resent, run.writer, run.tally)
            run.writer.close()
        except dg.Failure:
            run.writer.abort()
            raise
        except LeaseLost as exc:
            run.writer.abort()
            raise dg.Failure(f"{run.label}: {exc} ({run.tally.sent} of {run.n} commands sent; nothing published: "
                             "the journal tells the next run what was sent)",
                             metadata={"commands_sent": run.tally.sent}) from None  # fmt: skip
        except Exception as exc:
            run.writer.abort()
            failure = to_failure(exc, f"{run.label}: the Bitrix24 batch stopped after {run.tally.sent} of {run.n} "
                                      "commands", chunks_done=run.tally.chunks, commands_sent=run.tally.sent)  # fmt: skip
            if type(exc).__module__.startswith("b24_dagster"):
                raise failure from exc  # our errors are redacted at the source
            raise failure from None


@contextlib.contextmanager
def writes_checked(client: Any, before_write: Callable[[], None] | None) -> Iterator[bool]:
    """`before_write` installed as the client's hook (see `Bitrix24Client.before_write`) for
    the block; yields whether the client has the hook."""
    if before_write is None or not hasattr(client, "before_write"):
        yield False
        return
    previous, client.before_write = client.before_write, before_write
    try:
        yield True
    finally:
        client.before_write = previous


def _replay_journal(run: SendRun) -> None:
    """The recorded chunks, as written; the interrupted one settled by key (v2) and recorded."""
    if run.book is None:
        return
    for part in run.book.parts(run.done):
        _emit(run, part.cast(run.schema), sent=False)
    if run.interrupted is not None and not run.replay:
        lost = _interrupted_rows(run.to_send, run.base_map, run.keys, run.schema, run.interrupted, run.chunk)
        run.next_chunk = run.interrupted  # its re-sends stamp its own marker
        try:
            lost = run.reconciled(lost, since_sent=run.book.since_sent(run.interrupted))
        finally:
            run.next_chunk = run.skip
        run.book.completed(run.interrupted, lost)
        _emit(run, lost, sent=False)


def _emit(run: SendRun, table: pa.Table, *, sent: bool) -> None:
    run.tally.add_chunk(table, sent=sent)
    if run.previous is not None:  # a re-drive: merged into the previous file at the end
        run.resent.append(table)
        return
    run.tally.add(table)
    run.pending.append(table)
    if sum(t.num_rows for t in run.pending) >= ROW_GROUP_ROWS:
        _flush(run)


def _flush(run: SendRun) -> None:
    if run.pending:
        run.writer.write(pa.concat_tables(run.pending))
        run.pending.clear()


def _on_chunk(run: SendRun, table: pa.Table, locks: WriteLocks, hooked: bool) -> None:
    number = run.next_chunk
    try:
        _fail_on_whole_chunk_auth_error(table, run.label, run.tally.sent)
    except dg.Failure:
        if run.book is not None:
            run.book.refused(number)  # refused before running: safe to send after a fix
        raise
    table = table.set_column(3, "chunk_index", pa.array([number] * table.num_rows, pa.int32()))
    if run.book is not None:
        run.book.completed(number, table)
    run.guard.check(table, sent=run.tally.sent + table.num_rows, total=run.n)
    run.next_chunk += 1
    _emit(run, table, sent=True)
    if not hooked and number + 1 < run.total_chunks:  # the generator sends the next chunk when asked for it
        locks.check()
        if run.book is not None:
            run.book.sending(number + 1)
    every = run.spec.log_every_chunks or max(1, run.total_chunks // 100)
    if run.tally.chunks % every == 0 or run.tally.chunks == run.total_chunks:
        summary = ", ".join(f"{c['counts']} {c['values']}" for c in pc.value_counts(table["status"]).to_pylist())
        run.log.info(f"{run.label}: chunk {number + 1}/{run.total_chunks} ({summary}); {run.tally.sent}/{run.n} "
                     f"commands sent, {run.tally.failed_chunks} chunks with failures")  # fmt: skip


def publish(run: SendRun) -> dict[str, Any]:
    """Drop the journal (the results are in place) and give the step's metadata."""
    if run.book is not None:
        run.book.finish()
    after = client_stats(run.client)
    stats = {k: after[k] - run.before.get(k, 0.0) for k in after}
    tally = run.tally
    metadata = tally.metadata(stats=stats, duration=run.watch.elapsed, writer=run.writer, schema=run.schema)
    metadata["mode"] = run.mode
    if run.counts.lookups or run.counts.left:  # reconciliation figures only when something was reconciled
        metadata.update(run.counts.metadata())
    if run.done or run.interrupted is not None:
        metadata["resumed_chunks"] = run.done
        metadata["interrupted_chunks"] = 0 if run.interrupted is None else 1
        metadata["replayed_chunks"] = int(run.replay)
    if run.mode == "redrive":
        metadata["redriven"] = run.n
    run.log.info(
        f"{run.label}: {tally.commands} commands, {tally.statuses['ok']} ok, {tally.statuses['error']} error, "
        f"{tally.statuses['not_run']} not run, {tally.statuses['unknown']} unknown -> {scrub(str(run.path))}"
    )
    return metadata


def _interrupted_rows(
    to_send: Sequence[Any], base_map: Sequence[int] | None, keys: pa.Array | None,
    schema: pa.Schema, chunk: int, size: int = CHUNK,
) -> pa.Table:
    """`unknown` rows for the commands of a chunk that was in flight when the step stopped."""
    local = range(chunk * size, min((chunk + 1) * size, len(to_send)))
    original = [base_map[i] if base_map is not None else i for i in local]
    methods = [c["method"] if isinstance(c, dict) else c[0] for c in (to_send[i] for i in local)]
    columns: dict[str, Any] = {
        "command_index": pa.array(original, pa.int64()),
        "command_key": pa.array([str(i) for i in original], pa.string()),
        "method": pa.array(methods, pa.string()),
        "chunk_index": pa.array([chunk] * len(original), pa.int32()),
        "status": pa.array(["unknown"] * len(original), pa.string()),
        "error_code": pa.array([INTERRUPTED] * len(original), pa.string()),
        "error_description": pa.array(
            ["the step stopped while this chunk was in flight: the portal may have applied it"]
            * len(original), pa.string(),
        ),
    }  # fmt: skip
    if len(schema) > len(RESULT_SCHEMA):
        name = schema.names[-1]
        columns[name] = (
            pc.take(keys, pa.array(original, pa.int64())) if keys is not None
            else pa.nulls(len(original), schema.field(name).type)
        )  # fmt: skip
    arrays = [columns.get(f.name, pa.nulls(len(original), f.type)).cast(f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


_CONFIG_CODES = frozenset({"INSUFFICIENT_SCOPE", "WRONG_AUTH_TYPE", "INVALID_CREDENTIALS", "INVALID_SCOPE"})


def _fail_on_whole_chunk_auth_error(table: pa.Table, label: str, sent: int) -> None:
    """Stop the step when a whole chunk was refused for its credentials or scope.

    The client records a batch refused as a whole as one error row per command; for a
    refused webhook every later chunk would fail the same way, so the step fails instead
    (nothing is published) with the portal's code in the metadata.
    """
    if table.num_rows == 0:
        return
    codes = pc.unique(table["error_code"]).to_pylist()
    if len(codes) != 1 or not codes[0] or pc.any(pc.not_equal(table["status"], "error")).as_py():
        return
    from b24_dagster.errors import AuthError, error_from_response

    code = str(codes[0])
    description = table["error_description"][0].as_py() or ""
    error = error_from_response(400, {"error": code, "error_description": description},
                                method="batch", api_version=2)  # fmt: skip
    if isinstance(error, AuthError) or code.upper() in _CONFIG_CODES:
        raise dg.Failure(
            description=f"{label}: the portal refused the webhook ({code}): {scrub(description)}",
            metadata={"error_code": code, "error_description": scrub(description),
                      "commands_sent": sent + table.num_rows},
            allow_retries=False,
        )  # fmt: skip


def _redrive_plan(
    path: UPath,
    calls: Sequence[Any],
    keys: pa.Array | None,
    key_name: str | None,
    with_unknown: bool,
) -> tuple[list[int], UPath, pa.Table | None]:
    """The indices of the failed and not-run commands, checked against the latest results file,
    and (with `with_unknown`) the rows whose outcome is unknown."""
    if not path.exists():
        raise dg.Failure(
            f"Nothing to re-drive: no results at {path}. Materialize in mode 'all' first.",
            allow_retries=False,
        )
    statuses = ["error", "not_run", *(["unknown"] if with_unknown else [])]
    picked: list[int] = []
    unknown: list[pa.RecordBatch] = []
    rows = 0
    for batch in iter_parquet_batches(path):
        rows += batch.num_rows
        is_unknown = pc.equal(batch.column("status"), "unknown")
        if with_unknown and pc.any(is_unknown).as_py():
            unknown.append(batch.filter(is_unknown))
        mask = pc.is_in(batch.column("status"), pa.array(statuses))
        chosen = batch.filter(mask)
        idx = chosen.column("command_index")
        if key_name is not None and keys is not None and chosen.num_rows:
            expected = pc.take(keys, idx).cast(chosen.schema.field(key_name).type)
            if not pc.all(pc.equal(expected, chosen.column(key_name))).as_py():
                raise _changed(path)
        picked.extend(i for i, u in zip(idx.to_pylist(), pc.equal(chosen.column("status"), "unknown").to_pylist(),
                                        strict=True) if not u)  # fmt: skip
    if rows != len(calls):
        raise _changed(path, f"{rows} results for {len(calls)} source rows")
    return picked, path, pa.Table.from_batches(unknown) if unknown else None



def _unfinished(folder: UPath, label: str) -> dg.Failure:
    parts = len([p for p in folder.iterdir() if p.name.endswith(".part")])
    return dg.Failure(
        f"{label}: a run that died left a journal of another command set ({parts} chunks recorded, "
        f"maybe one in flight) at {scrub(str(folder))}. Its writes may be on the portal, and the "
        "source rows changed since, so sending now could write them twice. Either restore the "
        "source rows as they were and materialize again (it resumes), or sync by a key "
        "(sync='upsert' settles it by key), or check the portal and then delete that folder.",
        allow_retries=False,
    )


def _changed(path: UPath, detail: str = "the keys differ") -> dg.Failure:
    return dg.Failure(
        f"The source rows changed since {path} was written ({detail}): a re-drive must send the "
        "same command set. Materialize in mode 'all' instead.",
        allow_retries=False,
    )


def _merge(previous: UPath, resent: list[pa.Table], writer: ParquetStreamWriter, tally: BatchTally) -> None:
    """Write the previous rows, each re-sent row replaced by its new outcome, in index order."""
    schema = writer.schema
    new = pa.concat_tables([t.cast(schema) for t in resent]) if resent else schema.empty_table()
    new = new.sort_by("command_index")
    new_idx = new["command_index"]
    for batch in iter_parquet_batches(previous):
        table = pa.Table.from_batches([batch]).select(schema.names).cast(schema)  # no error_reason
        mask = pc.is_in(table["command_index"], new_idx)
        if pc.any(mask).as_py():
            replaced = new.filter(pc.is_in(new_idx, table["command_index"]))
            table = pa.concat_tables([table.filter(pc.invert(mask)), replaced]).sort_by("command_index")
        tally.add(table)
        writer.write(table)
