"""Results of a batch: one :class:`CommandResult` per command, and the Arrow row contract.

Statuses:

* ``ok``: the command ran and the portal gave its result (which may be ``None``);
* ``error``: the portal refused it, or the whole request failed (every command of it);
* ``not_run``: a halted batch stopped before it;
* ``unknown``: it writes, and its request may have reached the portal but no answer came
  back. It is never re-sent: look at the portal before running it again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None

__all__ = ["STATUSES", "BatchResult", "CommandResult", "ResultColumns", "result_schema"]

STATUSES = ("ok", "error", "not_run", "unknown")

_json_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_json_dumps_ascii = json.JSONEncoder(separators=(",", ":")).encode


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    if _orjson is not None:
        try:
            return _orjson.dumps(value).decode()
        except TypeError:  # integers beyond 64 bits, lone surrogates: stdlib json takes them
            pass
    text = _json_dumps(value)
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: keep it as its \u escape, which UTF-8 can hold
        return _json_dumps_ascii(value)
    return text


def _dump_utf8(value: Any) -> bytes | None:
    """:func:`_dump` as UTF-8 bytes (orjson's own output, without a str in between)."""
    if value is None:
        return None
    if _orjson is not None:
        try:
            # orjson hands out its 32 KiB buffer as the bytes object: held for a few thousand
            # rows until their table is built, those buffers took 150 MB where the texts
            # take 8. A copy of the text alone costs a fifth of the dumps.
            return memoryview(_orjson.dumps(value)).tobytes()
        except TypeError:
            pass
    return _dump(value).encode()  # type: ignore[union-attr]


@dataclass(slots=True)
class CommandResult:
    """The outcome of one command (the JS SDK's per-command ``AjaxResult``).

    Attributes:
        index: The command's position in the input.
        key: Its name, or ``str(index)``.
        method: Its REST method.
        chunk_index: The chunk that carried it (0 for a single batch).
        status: ``ok``, ``error``, ``not_run`` or ``unknown``.
        data: The result the portal gave (``None`` stays ``None``).
        error_code: The error code, for a command that did not succeed.
        error_description: Its text.
        time: The time object (per command in v2; the batch's in v3).
        total: ``total`` of a v2 list command.
        next: ``next`` of a v2 list command (absent on the last page).
    """

    index: int
    key: str
    method: str
    chunk_index: int
    status: str
    data: Any = None
    error_code: str | None = None
    error_description: str | None = None
    time: Mapping[str, Any] | None = None
    total: int | None = None
    next: int | None = None

    @property
    def is_success(self) -> bool:
        """True when the command ran without error."""
        return self.status == "ok"

    @property
    def error_message(self) -> str | None:
        """A one-line message for a command that did not succeed, else None."""
        if self.status == "ok":
            return None
        text = f"{self.key} ({self.method}): {self.error_code or self.status}"
        return f"{text}: {self.error_description}" if self.error_description else text


_SCHEMA: list[pa.Schema] = []


def result_schema() -> pa.Schema:
    """The Arrow row contract of ``docs/CONTRACTS.md`` (one row per input command)."""
    if _SCHEMA:
        return _SCHEMA[0]
    import pyarrow as pa

    _SCHEMA.append(pa.schema([
        ("command_index", pa.int64()),
        ("command_key", pa.string()),
        ("method", pa.string()),
        ("chunk_index", pa.int32()),
        ("status", pa.string()),
        ("result", pa.string()),
        ("error_code", pa.string()),
        ("error_description", pa.string()),
        ("total", pa.int64()),
        ("next", pa.int64()),
    ]))
    return _SCHEMA[0]


def rows_to_arrow(rows: Sequence[CommandResult]) -> pa.Table:
    """The Arrow table of some command results, built column by column (see :mod:`._arrow`)."""
    columns = ResultColumns()
    columns.add(rows)
    return columns.table()


class ResultColumns:
    """Command results gathered as columns, for one Arrow table of many chunks.

    Each chunk's results are taken apart as it comes (its data serialized while it is still
    in the CPU's cache, the Python objects then let go); :meth:`table` builds the table once
    for all of them, which saves the fixed cost of a table per chunk.
    """

    __slots__ = ("chunk_index", "error_code", "error_description", "index", "key", "method",
                 "next", "result", "status", "total")

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        for name in self.__slots__:
            setattr(self, name, [])

    def __len__(self) -> int:
        return len(self.index)

    def add(self, rows: Sequence[CommandResult]) -> None:
        """Append the results of some commands."""
        self.index += [r.index for r in rows]
        self.key += [r.key for r in rows]
        self.method += [r.method for r in rows]
        self.chunk_index += [r.chunk_index for r in rows]
        self.status += [r.status for r in rows]
        self.result += [_dump_utf8(r.data) for r in rows]
        self.error_code += [r.error_code for r in rows]
        self.error_description += [r.error_description for r in rows]
        self.total += [r.total for r in rows]
        self.next += [r.next for r in rows]

    def table(self) -> pa.Table:
        """The table of every result added since the last call (and start afresh)."""
        import pyarrow as pa

        from ._arrow import int_column, string_column, utf8_column

        int64 = pa.int64()
        columns = [
            int_column(self.index, int64),
            string_column(self.key),
            string_column(self.method),
            int_column(self.chunk_index, pa.int32()),
            string_column(self.status),
            utf8_column(self.result),
            string_column(self.error_code),
            string_column(self.error_description),
            int_column(self.total, int64),
            int_column(self.next, int64),
        ]
        self._clear()
        return pa.Table.from_arrays(columns, schema=result_schema())


class BatchResult:
    """The result of one batch request (or one chunk of a chunked run).

    The views follow the seeds: :attr:`results` is a mapping by name for named commands and
    a list in input order otherwise; :meth:`data` gives plain data, or the per-command
    results when the batch was run with ``return_ajax_result=True``.

    Attributes:
        commands: The per-command results, in input order.
        named: Whether the input was named commands.
        return_ajax_result: Whether :meth:`data` gives per-command results.
        api_version: 2 or 3.
        chunk_index: The chunk's position in a chunked run (0 for a single batch).
        time: The batch's ``time`` object, when an answer came.
        replayed: A v3 portal replayed its cached answer to an idempotent re-send.
        stats: The client's counters over this request (a ``ClientStats`` delta), or None.
    """

    __slots__ = ("api_version", "chunk_index", "commands", "named", "replayed",
                 "return_ajax_result", "stats", "time")

    def __init__(self, commands: list[CommandResult], *, named: bool = False,
                 return_ajax_result: bool = False, api_version: int = 2, chunk_index: int = 0,
                 time: Mapping[str, Any] | None = None, replayed: bool = False,
                 stats: Any = None) -> None:
        self.commands = commands
        self.named = named
        self.return_ajax_result = return_ajax_result
        self.api_version = api_version
        self.chunk_index = chunk_index
        self.time = time
        self.replayed = replayed
        self.stats = stats

    def __len__(self) -> int:
        return len(self.commands)

    def __iter__(self) -> Iterator[CommandResult]:
        return iter(self.commands)

    def __repr__(self) -> str:
        counts = self.counts()
        summary = ", ".join(f"{k}={v}" for k, v in counts.items() if v)
        return f"BatchResult(v{self.api_version}, chunk {self.chunk_index}, {summary or 'empty'})"

    @property
    def results(self) -> list[CommandResult] | dict[str, CommandResult]:
        """Per-command results: a dict by name (named commands) or a list in input order."""
        if self.named:
            return {r.key: r for r in self.commands}
        return list(self.commands)

    @property
    def is_success(self) -> bool:
        """True when every command succeeded."""
        return all(r.status == "ok" for r in self.commands)

    @property
    def error_messages(self) -> list[str]:
        """One message per command that failed or whose outcome is unknown.

        Commands that a halt kept from running are left out: the failure that halted the
        batch has its own message.
        """
        return [r.error_message for r in self.commands  # type: ignore[misc]
                if r.status == "error" or r.status == "unknown"]

    def counts(self) -> dict[str, int]:
        """The number of commands in each status."""
        counts = dict.fromkeys(STATUSES, 0)
        for r in self.commands:
            counts[r.status] += 1
        return counts

    def data(self) -> Any:
        """The seeds' ``getData()``.

        Returns:
            With ``return_ajax_result``: the per-command results (:attr:`results`).
            Otherwise each command's plain data, by name or in input order; a command that
            did not succeed gives ``None`` (its place in a list is kept).
        """
        if self.return_ajax_result:
            return self.results
        if self.named:
            return {r.key: r.data if r.status == "ok" else None for r in self.commands}
        return [r.data if r.status == "ok" else None for r in self.commands]

    def successful(self) -> list[Any]:
        """The data of the commands that succeeded, in input order (the v3 chunked view)."""
        return [r.data for r in self.commands if r.status == "ok"]

    def to_arrow(self) -> pa.Table:
        """One row per command, in input order (schema: :func:`result_schema`)."""
        return rows_to_arrow(self.commands)
