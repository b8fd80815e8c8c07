"""Run a command set through `batch_by_chunk`, stream the outcome to Parquet, tally it.

Shared by the batch asset and op factories. No protocol logic here: the client chunks,
throttles and retries; this module writes what comes back, counts it, and turns the
counts into the partial-failure metadata that the Dagster UI shows.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from b24_dagster.client._client import bound_by
from b24_dagster.client._results import result_schema
from b24_dagster.integration._parquet import ParquetStreamWriter, uri_of

__all__ = [
    "ERROR_REASON",
    "NO_ANSWER_CODES",
    "RESULT_SCHEMA",
    "BatchTally",
    "ResultsWriter",
    "SilenceGuard",
    "client_stats",
    "error_reason",
    "results_schema",
    "table_schema_metadata",
]

RESULT_SCHEMA = result_schema()
"""The Arrow row contract of DESIGN.md: one row per command, in input order."""

FAILED = ("error", "not_run", "unknown")
ERROR_REASON = "error_reason"
"""The last column of a results file: the cause of a failed row, its values stripped."""
_VALUES = re.compile(
    r"(?<!field )'[^'\n]*'|(?<!field )\"[^\"\n]*\"|`[^`\n]*`|\b\d+(?:[.,:/-]\d+)*\b"
)
_STATS_FIELDS = {
    "requests": ("requests",),
    "retries": ("retries",),
    "refused": ("refused", "refusals"),
    "blocked": ("blocked",),
    "throttle_wait_seconds": ("throttle_wait_seconds", "throttle_wait"),
    "operating_wait_seconds": ("operating_wait_seconds",),
}


def results_schema(key_name: str | None, key_type: pa.DataType | None) -> pa.Schema:
    """The contract schema plus the source key column (when there is one) at the end."""
    if not key_name:
        return RESULT_SCHEMA
    if key_type is None or pa.types.is_null(key_type):
        key_type = pa.string()
    return RESULT_SCHEMA.append(pa.field(key_name, key_type))


def error_reason(status: str | None, code: str | None, description: str | None) -> str | None:
    """Why a row failed, as a text shared by all rows that failed for that cause.

    The description with its values stripped (quoted values and numbers become `…`; a quoted
    name after `field ` stays): `E-mail address 'x@' is invalid.` and `E-mail address 'y' is
    invalid.` both give `E-mail address '…' is invalid.`. Legacy `crm.*` methods refuse a
    row with an empty error code and the cause only in the description, so the description
    is what tells causes apart. None for an `ok` row; the code (or the status) when a failed
    row has no description.
    """
    if status == "ok" or status is None:
        return None
    if description:
        return _VALUES.sub(lambda m: m.group(0)[0] + "…" + m.group(0)[-1] if m.group(0)[0] in "'\"`" else "…",
                           " ".join(description.split()))  # fmt: skip
    return code or f"({status})"


def with_error_reason(table: pa.Table) -> pa.Table:
    """`table` (with `status`, `error_code`, `error_description`) plus its `error_reason` column."""
    if ERROR_REASON in table.column_names:
        table = table.drop_columns([ERROR_REASON])
    rows = zip(table["status"].to_pylist(), table["error_code"].to_pylist(),
               table["error_description"].to_pylist(), strict=True)  # fmt: skip
    return table.append_column(ERROR_REASON, pa.array([error_reason(*r) for r in rows], pa.string()))


class ResultsWriter(ParquetStreamWriter):
    """The results file: the rows as given (`schema`), then their `error_reason` column.

    Callers hand it tables of `schema`; the file has one more column at the end, derived
    from each row's status, code and description (`error_reason`). A results file read back
    for a re-drive is taken as `schema` (`table.select(schema.names)`).
    """

    @property
    def file_schema(self) -> pa.Schema:
        """`schema` plus `error_reason` (string) at the end."""
        return self.schema.append(pa.field(ERROR_REASON, pa.string()))

    def to_file(self, table: pa.Table) -> pa.Table:
        """The table in the file's columns, with its rows' `error_reason`."""
        return with_error_reason(super().to_file(table))


def client_stats(client: Any) -> dict[str, float]:
    """A snapshot of the client's counters (0 for any the client does not keep)."""
    stats = getattr(client, "stats", None)
    out: dict[str, float] = {}
    for name, candidates in _STATS_FIELDS.items():
        value = next((getattr(stats, c) for c in candidates if hasattr(stats, c)), 0)
        out[name] = float(value or 0)
    return out


COLUMN_DESCRIPTIONS = {
    "command_index": "the command's position in the source rows (0-based)",
    "command_key": "the command's key in its batch",
    "method": "the REST method sent",
    "chunk_index": "the batch request (of at most 50 commands) that carried it",
    "status": "ok | error | not_run | unknown (sent, answer lost)",
    "result": "the command's result as JSON text",
    "error_code": "the portal's error code (empty for legacy crm.* validation errors)",
    "error_description": "the portal's error text",
    "total": "list commands: the total the portal reported",
    "next": "list commands: the next page's start",
    "action": "sync: create, update, unchanged, delete, gone, ambiguous, missing, invalid, skipped",
    "portal_id": "sync: the record's id on the portal",
    ERROR_REASON: "why the row failed: error_description with its values stripped",
}


def table_schema_metadata(
    schema: pa.Schema, descriptions: Mapping[str, str | None] | None = None
) -> dg.TableSchema:
    """A `dagster.TableSchema` of an Arrow schema (for `dagster/column_schema`), with each
    column's description when `descriptions` has one."""
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[dg.TableColumn(f.name, str(f.type), description=descriptions.get(f.name)) for f in schema]
    )


@dataclass
class BatchTally:
    """Counts over the result rows as they are written, and the first failures.

    Feed it every written table with `add()`; `metadata()` gives the materialization's
    partial-failure metadata.
    """

    key_name: str | None = None
    max_failures: int = 20
    statuses: Counter[str] = field(default_factory=Counter)
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)
    reasons: Counter[tuple[str, str]] = field(default_factory=Counter)
    reason_examples: dict[tuple[str, str], str] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    chunks: int = 0
    failed_chunks: int = 0
    sent: int = 0

    @property
    def commands(self) -> int:
        """Rows seen."""
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        """Rows whose status is not `ok`."""
        return self.commands - self.statuses["ok"]

    @property
    def failure_rate(self) -> float:
        """Failed rows over all rows (0 with no rows)."""
        return self.failed / self.commands if self.commands else 0.0

    def add_chunk(self, table: pa.Table, *, sent: bool = True) -> None:
        """Count one chunk (failed when any of its rows failed; sent now, or recorded before)."""
        self.chunks += 1
        if sent:
            self.sent += table.num_rows
        if table.num_rows and pc.any(pc.not_equal(table["status"], "ok")).as_py():
            self.failed_chunks += 1

    def add(self, table: pa.Table) -> None:
        """Count the rows of a written table."""
        if table.num_rows == 0:
            return
        for item in pc.value_counts(table["status"]).to_pylist():
            self.statuses[str(item["values"])] += int(item["counts"])
        failed = table.filter(pc.is_in(table["status"], pa.array(FAILED)))
        if failed.num_rows == 0:
            return
        columns = ["command_index", "status", "error_code", "error_description"]
        if self.key_name:
            columns.append(self.key_name)
        rows = failed.select(columns).to_pylist()
        for row in rows:
            code = row["error_code"] or f"({row['status']})"
            pair = (row["status"], code)
            self.codes[pair] += 1
            self.examples.setdefault(pair, _short(row["error_description"]))
            reason = (code, error_reason(row["status"], row["error_code"], row["error_description"]) or "")
            self.reasons[reason] += 1
            self.reason_examples.setdefault(reason, _short(row["error_description"]))
            if len(self.failures) < self.max_failures:
                self.failures.append(row)

    def metadata(
        self,
        *,
        stats: Mapping[str, float],
        duration: float,
        writer: ParquetStreamWriter | None,
        schema: pa.Schema,
    ) -> dict[str, Any]:
        """The partial-failure metadata of a materialization (or op output)."""
        meta: dict[str, Any] = {
            "commands": self.commands,
            "ok": self.statuses["ok"],
            "error": self.statuses["error"],
            "not_run": self.statuses["not_run"],
            "unknown": self.statuses["unknown"],
            "chunks": self.chunks,
            "failed_chunks": self.failed_chunks,
            "failure_rate": dg.MetadataValue.float(round(self.failure_rate, 6)),
            "commands_sent": self.sent,
            "requests": int(stats.get("requests", 0)),
            "retries": int(stats.get("retries", 0)),
            "refusals": int(stats.get("refused", 0) + stats.get("blocked", 0)),
            "throttle_wait_seconds": dg.MetadataValue.float(
                round(stats.get("throttle_wait_seconds", 0.0) + stats.get("operating_wait_seconds", 0.0), 3)
            ),
            "operating_wait_seconds": dg.MetadataValue.float(round(stats.get("operating_wait_seconds", 0.0), 3)),
            "bound_by": bound_by(stats.get("throttle_wait_seconds", 0.0), stats.get("operating_wait_seconds", 0.0)),
            "duration_seconds": dg.MetadataValue.float(round(duration, 3)),
            "commands_per_second": dg.MetadataValue.float(
                round(self.sent / duration, 1) if duration > 0 else 0.0
            ),
            "error_codes": self._codes_table(),
            "error_reasons": self._reasons_table(),
            "first_failures": self._failures_table(schema),
            "dagster/row_count": writer.rows if writer is not None else self.commands,
            "dagster/column_schema": table_schema_metadata(
                writer.file_schema if writer is not None else schema, COLUMN_DESCRIPTIONS
            ),
        }
        if writer is not None:
            meta["dagster/uri"] = uri_of(writer.path)  # UriMetadataSet: a plain string
        return meta

    def _codes_table(self) -> dg.TableMetadataValue:
        schema = dg.TableSchema(
            columns=[
                dg.TableColumn("status", "string"),
                dg.TableColumn("error_code", "string"),
                dg.TableColumn("count", "int"),
                dg.TableColumn("example", "string"),
            ]
        )
        records = [
            dg.TableRecord(
                {"status": s, "error_code": c, "count": n, "example": self.examples.get((s, c), "")}
            )
            for (s, c), n in self.codes.most_common()
        ]
        return dg.MetadataValue.table(records, schema)

    def _reasons_table(self) -> dg.TableMetadataValue:
        """One row per cause of failure (code and reason), most frequent first, with one example."""
        schema = dg.TableSchema(
            columns=[
                dg.TableColumn("error_reason", "string", description="the cause, its values stripped"),
                dg.TableColumn("error_code", "string"),
                dg.TableColumn("count", "int"),
                dg.TableColumn("example", "string", description="one row's error_description"),
            ]
        )
        records = [
            dg.TableRecord({"error_reason": r, "error_code": c, "count": n,
                            "example": self.reason_examples.get((c, r), "")})
            for (c, r), n in self.reasons.most_common()
        ]  # fmt: skip
        return dg.MetadataValue.table(records, schema)

    def _failures_table(self, schema: pa.Schema) -> dg.TableMetadataValue:
        names = ["command_index", "status", "error_code", "error_description"]
        if self.key_name:
            names.insert(0, self.key_name)
        columns = [
            dg.TableColumn(n, "int" if n == "command_index" else str(schema.field(n).type))
            for n in names
        ]
        records = [
            dg.TableRecord({n: _scalar(row.get(n)) for n in names}) for row in self.failures
        ]
        return dg.MetadataValue.table(records, dg.TableSchema(columns=columns))


def _short(text: Any, limit: int = 200) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _scalar(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, str | int | float | bool):
        return _short(value) if isinstance(value, str) else value
    return _short(value)


def stream_chunks(
    chunks: Iterable[Any],
    *,
    keys: pa.Array | None,
    index_map: Sequence[int] | None,
    schema: pa.Schema,
    on_chunk: Callable[[pa.Table], None],
) -> None:
    """Turn each chunk result into a contract table (+ key column) and hand it to `on_chunk`.

    Args:
        chunks: the `ChunkedBatchRun` (iterated once; chunks are not kept).
        keys: the source keys of all commands of the original set, by command index.
        index_map: for a re-drive, the original command index of each command sent.
        schema: the file's schema (the contract plus the key column).
        on_chunk: called with the table of each chunk, in order.
    """
    key_name = schema.names[-1] if len(schema) > len(RESULT_SCHEMA) else None
    mapping = pa.array(index_map, pa.int64()) if index_map is not None else None
    for chunk in chunks:
        table = _contract(chunk.to_arrow())
        if mapping is not None:
            original = pc.take(mapping, table["command_index"])
            table = table.set_column(0, "command_index", original)
            table = table.set_column(1, "command_key", original.cast(pa.string()))
        if key_name is not None:
            key_values = (
                pc.take(keys, table["command_index"])
                if keys is not None
                else pa.nulls(table.num_rows, schema.field(key_name).type)
            )
            table = table.append_column(key_name, key_values.cast(schema.field(key_name).type))
        on_chunk(table)


def _contract(table: pa.Table) -> pa.Table:
    """The contract columns of a chunk table, in contract order and types."""
    columns = []
    for f in RESULT_SCHEMA:
        if f.name in table.column_names:
            columns.append(table[f.name].cast(f.type))
        else:
            columns.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=RESULT_SCHEMA)


NO_ANSWER_CODES = frozenset({"CONNECT_ERROR", "OUTCOME_UNKNOWN", "NO_RESPONSE", "PROTOCOL_ERROR",
                             "TRANSPORT_ERROR"})  # fmt: skip
"""Error codes of a command that got no answer at all (host down, DNS, TLS, a lost answer)."""


@dataclass
class SilenceGuard:
    """Stops a step when `limit` chunks in a row got no answer at all from the portal.

    Retrying every chunk of a run against a host that is down takes minutes and ends in a
    "successful" step whose every row failed; a few silent chunks in a row say enough.
    """

    label: str
    limit: int = 3
    silent: int = 0

    def check(self, table: pa.Table, *, sent: int, total: int) -> None:
        """Count one chunk; raise `dagster.Failure` at the `limit`-th silent one in a row."""
        codes = {c for c in table["error_code"].to_pylist() if c}
        quiet = table.num_rows > 0 and codes and codes <= NO_ANSWER_CODES and not pc.any(
            pc.equal(table["status"], "ok")).as_py()  # fmt: skip
        self.silent = self.silent + 1 if quiet else 0
        if self.silent >= self.limit:
            raise dg.Failure(
                f"{self.label}: {self.limit} chunks in a row got no answer from the portal "
                f"({', '.join(sorted(codes))}): is it reachable? Stopped after {sent} of {total} "
                "commands; nothing was published (the last good results stay), and the next run "
                "resumes from the journal, settling what was sent.",
                metadata={"commands_sent": sent, "error_codes": ", ".join(sorted(codes))},
            )


class Stopwatch:
    """Monotonic elapsed seconds since construction."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def elapsed(self) -> float:
        """Seconds since start."""
        return time.monotonic() - self.start
