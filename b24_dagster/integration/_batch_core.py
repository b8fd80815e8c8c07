"""One batch step, shared by the asset and op factories: commands, send, write, re-drive.

`run_batch_step` builds the command set from the source DataFrame (through
`b24_dagster.frames`), sends it with `batch_by_chunk` and streams one Parquet row per
command. In `redrive` mode it reads the latest results file, settles the `unknown` creates
that carry a key by looking them up (`_reconcile`), sends again only the commands whose
status is `error` or `not_run` (and the unsettled `unknown` ones on request, since those may
already have been applied), and merges their new outcome into the file: rows that succeeded are neither
sent nor rewritten with other values. Each chunk is journaled as it completes (`_journal`),
so a step executed again after a failure resumes instead of sending twice. A command whose
answer was lost is settled before anything is sent again: within a run by the client's
chunked run (``reconcile=True``); for the chunk in flight when a step died, on v3 by sending
it again under its `Idempotency-Key` (the portal replays what it ran), otherwise by looking
its creates up by their key (`_reconcile`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
from upath import UPath

from b24_dagster.integration._batch_run import (
    RESULT_SCHEMA,
    BatchTally,
    SilenceGuard,
    Stopwatch,
    client_stats,
    results_schema,
    stream_chunks,
)
from b24_dagster.integration._commands import FrameCommands
from b24_dagster.integration._errors import scrub, to_failure
from b24_dagster.integration._journal import INTERRUPTED, BatchJournal, digest_of, file_age
from b24_dagster.integration._parquet import ParquetStreamWriter, iter_parquet_batches
from b24_dagster.integration._reconcile import ReconcileCounts, reconcile_table, unknown_rows

__all__ = ["BatchMode", "BatchOutcome", "BatchSpec", "run_batch_step"]

BatchMode = Literal["all", "redrive"]
RowFunction = Callable[[dict[str, Any]], Mapping[str, Any]]
CHUNK = 50
REPLAY_WINDOW_SECONDS = 23 * 3600
"""How long after a v3 chunk was sent a resumed step sends it again under its
Idempotency-Key (the portal keeps answers 24 h; an hour is left for clocks and queues)."""
ROW_GROUP_ROWS = 5_000
"""Rows per Parquet row group of a results file (100 chunks; memory holds at most that)."""


@dataclass(frozen=True)
class BatchSpec:
    """How source rows become commands, and how the run behaves (see the factories' Args)."""

    method: str | None
    fields: Mapping[str, str] | Sequence[str] | None = None
    fields_param: str | None = None
    id_column: str | None = None
    id_param: str | None = None
    params: Mapping[str, Any] | None = None
    key_column: str | None = None
    nulls: str | None = None
    field_types: Mapping[str, str] | None = None
    row_function: RowFunction | None = None
    timezone: str | None = None
    halt_on_error: bool = False
    max_failures_shown: int = 20
    log_every_chunks: int | None = None
    reconcile: bool = True
    reconcile_field: str | None = None
    reconcile_delay_seconds: float = 10.0


@dataclass
class BatchOutcome:
    """What a step did: the tally, its metadata, the file."""

    tally: BatchTally
    metadata: dict[str, Any]
    path: UPath
    sent: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def result_key_name(key_column: str | None) -> str | None:
    """The results column of the source key: its name, or `source_<name>` when it clashes."""
    if key_column is None:
        return None
    return f"source_{key_column}" if key_column in RESULT_SCHEMA.names else key_column


def build_commands(spec: BatchSpec, frame: Any) -> tuple[FrameCommands, pa.Array | None]:
    """The frame's commands (built slice by slice, all checked now) and their string keys."""
    if spec.key_column is not None and spec.key_column not in frame.columns:
        raise dg.Failure(f"key column {spec.key_column!r} is not a column of the source rows")
    try:
        commands = FrameCommands(frame, lambda part: build_calls(spec, part), key_column=spec.key_column)
    except (ValueError, TypeError, KeyError) as exc:  # bad input, refused before any request
        raise to_failure(exc, "The source rows cannot become Bitrix24 commands") from exc
    return commands, commands.keys


def build_calls(spec: BatchSpec, frame: Any) -> tuple[list[Any], pa.Array | None]:
    """The calls of (a slice of) the frame and the key of each as strings (or None)."""
    if spec.method is None:  # a frame of commands: columns `method` and `params`
        missing = {"method", "params"} - set(frame.columns)
        if missing:
            raise dg.Failure(
                f"a command frame needs the columns method and params; missing {sorted(missing)}"
            )
        keys = None
        if spec.key_column is not None:
            keys = pa.array([None if v is None else str(v) for v in frame[spec.key_column]], pa.string())
        calls = [(m, dict(p or {})) for m, p in zip(frame["method"], frame["params"], strict=True)]
        return calls, keys

    from b24_dagster.frames import commands_from_frame

    options = {
        "fields": spec.row_function if spec.row_function is not None else spec.fields,
        "fields_param": spec.fields_param,
        "id_column": spec.id_column,
        "id_param": spec.id_param,
        "params": spec.params,
        "key_column": spec.key_column,
        "nulls": spec.nulls,
        "field_types": spec.field_types,
        "timezone": spec.timezone,
    }
    command_set = commands_from_frame(
        frame, spec.method, **{k: v for k, v in options.items() if v is not None}
    )
    return list(command_set.calls), command_set.keys


def run_batch_step(
    *,
    spec: BatchSpec,
    frame: Any,
    client: Any,
    path: UPath,
    log: Any,
    mode: BatchMode = "all",
    include_unknown: bool = False,
    request_id: str | None = None,
    label: str = "batch",
    journal: bool = True,
) -> BatchOutcome:
    """Send the commands of `frame` (all, or the re-drive set) and write the results file.

    With `journal` (the default), each chunk's outcome is recorded beside the results as it
    arrives, and a step executed again after a failure resumes after the last recorded chunk
    (see `_journal`).
    """
    calls, keys = build_commands(spec, frame)
    key_name = result_key_name(spec.key_column)
    schema = results_schema(key_name, keys.type if keys is not None else None)
    tally = BatchTally(key_name=key_name, max_failures=spec.max_failures_shown)
    base_map: list[int] | None = None
    previous = None
    counts = ReconcileCounts()

    def reconciled(table: pa.Table, since_loss: float = 0.0) -> pa.Table:
        if not spec.reconcile or not unknown_rows(table):
            return table
        settle = max(0.0, spec.reconcile_delay_seconds - since_loss)
        return reconcile_table(table, lambda i: calls[i], client, field=spec.reconcile_field,
                               counts=counts, settle_seconds=settle)  # fmt: skip

    settled: pa.Table | None = None
    if mode == "redrive":
        base_map, previous, unknown = _redrive_plan(path, calls, keys, key_name, spec.reconcile or include_unknown)
        if unknown is not None and spec.reconcile:  # settled by lookups first, never sent blindly
            unknown = reconciled(unknown.cast(schema), since_loss=file_age(path))
            still = pc.equal(unknown["status"], "unknown")
            settled = unknown.filter(pc.invert(still))
            if include_unknown:
                base_map = sorted(base_map + unknown.filter(still)["command_index"].to_pylist())
        elif unknown is not None:
            base_map = sorted(base_map + unknown["command_index"].to_pylist())
        to_send = [calls[i] for i in base_map]
        log.info(f"{label}: re-drive of {len(to_send)} of {len(calls)} commands"
                 + (f" after settling {settled.num_rows} unknown ones on the portal" if settled is not None else ""))  # fmt: skip
    else:
        to_send = calls
    n = len(to_send)
    total_chunks = -(-n // CHUNK)
    base = to_send.digest if isinstance(to_send, FrameCommands) else digest_of(to_send)
    book = BatchJournal(path, digest_of([], f"{base}|{mode}|{spec.halt_on_error}")) if journal and n else None
    done, interrupted = book.start() if book is not None else (0, None)
    if book is not None and book.unfinished():
        raise _unfinished(book.unfinished()[0], label)
    replay = (book is not None and interrupted is not None and getattr(client, "api_version", 2) == 3
              and book.age(interrupted) < REPLAY_WINDOW_SECONDS)  # fmt: skip
    if book is not None:  # stable across re-executions: a chunk sent again keeps its key
        request_id = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', label)[:80]}-{book.token}"
    skip = done + (1 if interrupted is not None and not replay else 0)
    offset = min(skip * CHUNK, n)
    if done or interrupted is not None:
        log.info(f"{label}: resuming after {done} recorded chunks" + (
            "" if interrupted is None
            else f"; chunk {interrupted} was in flight: sent again under its Idempotency-Key" if replay
            else f"; chunk {interrupted} was in flight: its commands are unknown until reconciled"))  # fmt: skip
    run_map = base_map[offset:] if base_map is not None else (list(range(offset, n)) if offset else None)
    before = client_stats(client)
    watch = Stopwatch()
    writer = ParquetStreamWriter(path, schema)
    resent: list[pa.Table] = []
    every = spec.log_every_chunks or max(1, total_chunks // 100)
    next_chunk = [skip]
    guard = SilenceGuard(label)

    pending: list[pa.Table] = []  # chunks waiting for their row group

    def flush() -> None:
        if pending:
            writer.write(pa.concat_tables(pending))
            pending.clear()

    def emit(table: pa.Table, *, sent: bool) -> None:
        tally.add_chunk(table, sent=sent)
        if previous is None:
            tally.add(table)
            pending.append(table)
            if sum(t.num_rows for t in pending) >= ROW_GROUP_ROWS:
                flush()
        else:
            resent.append(table)

    def on_chunk(table: pa.Table) -> None:
        number = next_chunk[0]
        try:
            _fail_on_whole_chunk_auth_error(table, label, tally.sent)
        except dg.Failure:
            if book is not None:
                book.refused(number)  # refused before running: safe to send after a fix
            raise
        table = table.set_column(3, "chunk_index", pa.array([number] * table.num_rows, pa.int32()))
        if book is not None:
            book.completed(number, table)
        guard.check(table, sent=tally.sent + table.num_rows, total=n)
        next_chunk[0] += 1
        emit(table, sent=True)
        if book is not None and number + 1 < total_chunks:
            book.sending(number + 1)  # the generator sends the next chunk when asked for it
        if tally.chunks % every == 0 or tally.chunks == total_chunks:
            counts = pc.value_counts(table["status"]).to_pylist()
            summary = ", ".join(f"{c['counts']} {c['values']}" for c in counts)
            log.info(
                f"{label}: chunk {number + 1}/{total_chunks} ({summary}); "
                f"{tally.sent}/{n} commands sent, {tally.failed_chunks} chunks with failures"
            )

    writer.open()
    try:
        if settled is not None and settled.num_rows:
            resent.append(settled)  # merged like the re-sent rows (lookups are in the counts)
        if book is not None:
            for part in book.parts(done):
                emit(part.cast(schema), sent=False)
            if interrupted is not None and not replay:
                lost = _interrupted_rows(to_send, base_map, keys, schema, interrupted)
                lost = reconciled(lost, since_loss=book.age(interrupted))
                book.completed(interrupted, lost)
                emit(lost, sent=False)
        if offset < n:
            if book is not None and not replay:  # a replayed chunk keeps its first marker (age)
                book.sending(skip)
            # Lost creates are settled by the run itself, before their chunk is journaled.
            run = client.batch_by_chunk(to_send[offset:], halt_on_error=spec.halt_on_error,
                                        request_id=request_id, first_chunk=skip, reconcile=spec.reconcile,
                                        reconcile_field=spec.reconcile_field,
                                        reconcile_delay_seconds=spec.reconcile_delay_seconds)  # fmt: skip
            stream_chunks(run, keys=keys, index_map=run_map, schema=schema, on_chunk=on_chunk)
            counts.add(run.run_stats)
        flush()
        if previous is not None:
            _merge(previous, resent, writer, tally)
        writer.close()
    except dg.Failure:
        writer.abort()
        raise
    except Exception as exc:
        writer.abort()
        failure = to_failure(
            exc,
            f"{label}: the Bitrix24 batch stopped after {tally.sent} of {n} commands",
            chunks_done=tally.chunks,
            commands_sent=tally.sent,
        )
        if type(exc).__module__.startswith("b24_dagster"):
            raise failure from exc  # our errors are redacted at the source
        raise failure from None
    if book is not None:
        book.finish()
    after = client_stats(client)
    stats = {k: after[k] - before.get(k, 0.0) for k in after}
    metadata = tally.metadata(stats=stats, duration=watch.elapsed, writer=writer, schema=schema)
    metadata["mode"] = mode
    metadata.update(counts.metadata())
    if done or interrupted is not None:
        metadata["resumed_chunks"] = done
        metadata["interrupted_chunks"] = 0 if interrupted is None else 1
        metadata["replayed_chunks"] = int(replay)
    if mode == "redrive":
        metadata["redriven"] = n
    log.info(
        f"{label}: {tally.commands} commands, {tally.statuses['ok']} ok, {tally.statuses['error']} error, "
        f"{tally.statuses['not_run']} not run, {tally.statuses['unknown']} unknown -> {scrub(str(path))}"
    )
    return BatchOutcome(tally=tally, metadata=metadata, path=path, sent=tally.sent)


def _interrupted_rows(
    to_send: Sequence[Any], base_map: Sequence[int] | None, keys: pa.Array | None,
    schema: pa.Schema, chunk: int,
) -> pa.Table:
    """`unknown` rows for the commands of a chunk that was in flight when the step stopped."""
    local = range(chunk * CHUNK, min((chunk + 1) * CHUNK, len(to_send)))
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
        table = pa.Table.from_batches([batch]).cast(schema)
        mask = pc.is_in(table["command_index"], new_idx)
        if pc.any(mask).as_py():
            replaced = new.filter(pc.is_in(new_idx, table["command_index"]))
            table = pa.concat_tables([table.filter(pc.invert(mask)), replaced]).sort_by("command_index")
        tally.add(table)
        writer.write(table)
