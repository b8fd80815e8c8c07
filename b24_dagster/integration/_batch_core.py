"""One batch step, shared by the asset and op factories: commands, send, write, re-drive.

`build_commands` turns the source DataFrame into commands (through `b24_dagster.frames`,
every row checked before any request). `run_batch_step` sends them with `batch_by_chunk`
and streams one Parquet row per command, in the stages of `_send_step`. In `redrive` mode it reads the latest results file, settles the `unknown` creates
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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dagster as dg
import pyarrow as pa
from upath import UPath

from b24_dagster.integration._batch_run import RESULT_SCHEMA, BatchTally
from b24_dagster.integration._commands import FrameCommands
from b24_dagster.integration._errors import to_failure
from b24_dagster.integration._key_space import LockSettings
from b24_dagster.integration._send_step import SendRun, lock, plan, publish, resume, send

__all__ = ["BatchMode", "BatchOutcome", "BatchSpec", "run_batch_step"]

BatchMode = Literal["all", "redrive"]
RowFunction = Callable[[dict[str, Any]], Mapping[str, Any]]


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
    reconcile_delay_seconds: float | None = None
    bulk_import: bool = False
    multi_value_type: str | None = "WORK"


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
        "multi_value_type": spec.multi_value_type,
    }
    command_set = commands_from_frame(
        frame, spec.method, **{k: v for k, v in options.items() if v is not None or k == "multi_value_type"}
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
    locking: LockSettings | None = None,
) -> BatchOutcome:
    """Send the commands of `frame` (all, or the re-drive set) and write the results file.

    The stages are those of `_send_step`: plan, resume, send, publish. With `journal` (the
    default), each chunk's outcome is recorded beside the results as it arrives, and a step
    executed again after a failure resumes after the last recorded chunk (see `_journal`).
    The step holds the lock of its asset and partition, and with `locking` that of each key
    space it writes, as a sync does (`_send_step.lock`).
    """
    calls, keys = build_commands(spec, frame)
    run = SendRun(spec=spec, client=client, path=path, log=log, label=label, calls=calls, keys=keys,
                  key_name=result_key_name(spec.key_column), mode=mode, include_unknown=include_unknown,
                  journal=journal, request_id=request_id)  # fmt: skip
    locks = lock(run, locking or LockSettings())
    try:
        plan(run, locks)
        resume(run)
        send(run, locks)
        metadata = publish(run)
    finally:
        locks.release()
    return BatchOutcome(tally=run.tally, metadata=metadata, path=path, sent=run.tally.sent)
