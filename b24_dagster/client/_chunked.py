"""Any number of commands as strictly sequential batches of at most 50 (``callBatchByChunk``).

Every chunk runs even when one fails (its errors are kept), as the seeds say; ``halt_on_error``
only stops the rest of the failing chunk. A run is consumed in one of two ways:

* **streaming**: iterate it; each chunk's :class:`BatchResult` (with ``chunk_index`` and
  ``to_arrow()``) is handed out and not kept, so memory stays flat for a million commands::

      run = client.batch_by_chunk(calls, halt_on_error=False)
      for chunk in run:
          writer.write(chunk.to_arrow())
      print(run.stats)

* **whole run**: :meth:`to_arrow`, :meth:`data` run it to the end if needed and keep each
  chunk's Arrow table (not its Python objects).

Counters (:attr:`is_success`, :attr:`error_messages`, :attr:`stats`) work either way; they run
what is left of the run when asked before the end.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from b24_dagster.errors import CommandValidationError

from ._batch import check_request_id, execute_batch
from ._commands import (
    MAX_BATCH_COMMANDS,
    Command,
    _known_methods,
    _walk,
    check_params,
    make_command,
    scan_params,
)
from ._results import BatchResult, ResultColumns

log = logging.getLogger("b24_dagster.client")

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ChunkProgress", "ChunkedBatchRun", "RunStats"]

MAX_ERROR_MESSAGES = 10_000
#: Rows of one Arrow table of a whole run: a table has a fixed cost (a few buffers a
#: column), so the chunks' results are gathered as columns first (see ResultColumns).
TABLE_ROWS = 5_000


@dataclass(frozen=True, slots=True)
class ChunkProgress:
    """What the ``progress`` callback receives after each chunk."""

    chunk_index: int
    chunks_total: int | None
    commands_done: int
    commands_total: int | None
    ok: int
    error: int
    not_run: int
    unknown: int


@dataclass(slots=True)
class RunStats:
    """Counters of a chunked run (the client's counters are the delta over the run)."""

    commands: int = 0
    ok: int = 0
    error: int = 0
    not_run: int = 0
    unknown: int = 0
    chunks: int = 0
    failed_chunks: int = 0
    requests: int = 0
    retries: int = 0
    refused: int = 0
    blocked: int = 0
    throttle_wait_seconds: float = 0.0
    operating_wait_seconds: float = 0.0
    reconciled_found: int = 0
    reconciled_resent: int = 0
    reconciled_unknown_left: int = 0
    reconcile_lookups: int = 0

    def as_dict(self) -> dict[str, float]:
        """The counters as a plain dict (for metadata)."""
        return asdict(self)

    @property
    def bound_by(self) -> str:
        """``requests``, ``operating_time`` or ``none``: the limit the run waited on most."""
        from ._client import bound_by

        return bound_by(self.throttle_wait_seconds, self.operating_wait_seconds)


def _validate_all(calls: Any, api_version: int) -> None:
    """Check every command of a list before the first chunk is sent."""
    known = _known_methods
    for index, item in enumerate(calls):
        t = type(item)
        if ((t is tuple or t is list) and len(item) == 2 and type(item[1]) is dict
                and type(item[0]) is str and item[0] in known):
            # (a method already accepted, a dict): make_command has nothing left to refuse
            refs = [False]
            if _walk(item[1], refs) is None and not refs[0]:
                continue
        command = make_command(index, item, check=False)
        why, refs = scan_params(command.params)
        if why is not None:  # the message is built only for a refusal: this loop is hot
            check_params(command.params, where=f"command {command.key!r} ({command.method})",
                         key=command.key, index=index)
        if refs:
            _check_no_refs(command, refs)


def _checked_command(index: int, item: Any) -> Command:
    """A command from an item that :func:`_validate_all` accepted (the hot path)."""
    t = type(item)
    if t is tuple or t is list:
        params = item[1] if len(item) == 2 else None
        return Command(index, str(index), item[0], {} if params is None else params)
    return make_command(index, item, check=False)


def _check_no_refs(command: Command, refs: bool) -> None:
    if refs:
        raise CommandValidationError(
            f"command {command.key!r} ({command.method}): references between commands "
            f"($result[...], $ref, $refArray) cannot cross chunk boundaries; use batch() "
            f"for dependent commands", command_key=command.key, index=command.index)
    if command.alias:
        raise CommandValidationError(
            f"command {command.key!r} ({command.method}): 'as' aliases have no use in a "
            f"chunked run", command_key=command.key, index=command.index)


def _execute_bulk(client: Any, commands: list[Command], *, api_version: int, **options: Any) -> BatchResult:
    from ._bulk import execute_bulk

    return execute_bulk(client, commands, **options)


def _bulk_resend(client: Any) -> Any:
    from ._bulk import send_bulk

    return send_bulk(client)


class ChunkedBatchRun:
    """A chunked batch run (the seeds' ``callBatchByChunk`` / ``BatchByChunkV3.make``).

    Nothing is sent until the run is iterated or a whole-run view is asked for.

    Args:
        client: The client whose ``_request`` sends each chunk.
        calls: A list of ``(method, params)`` or ``{method, params}`` (checked entirely
            before the first chunk is sent), or any iterator of them (checked chunk by chunk,
            never held in memory as a whole: a bad command then raises when its chunk is
            built, after the earlier chunks ran).
        halt_on_error: Stop each chunk at its first failing command (v2); v3 sends it as
            ``parallel = not halt_on_error``.
        api_version: 2 or 3.
        request_id: The base of each chunk's ``X-Request-ID`` (``{id}-{chunk}``) and of the
            v3 ``Idempotency-Key``; a fresh one when None.
        progress: Called with a :class:`ChunkProgress` after each chunk.
        progress_bar: Show a tqdm bar (None: when stderr is a terminal and tqdm is installed).
        chunk_size: Commands per chunk (at most 50).
        first_chunk: The number of the first chunk, for a run that continues an earlier one
            (a resumed job): chunk ``i`` of the run is sent as ``{request_id}-{first_chunk + i}``,
            so a v3 chunk sent again carries the same ``Idempotency-Key`` and is replayed.
        reconcile: Settle each chunk's ``unknown`` creates that carry a key (``ORIGIN_ID``,
            ``originId`` or ``reconcile_field``) before the chunk is handed out: looked up on
            the portal, found ones become ``ok``, missing ones are sent again (see
            :mod:`._reconcile`); counted in the ``reconciled_*`` / ``reconcile_lookups`` stats.
        reconcile_field: The key field of the creates (default ``ORIGIN_ID`` / ``originId``).
        reconcile_delay_seconds: How long after it was sent a lost write may still commit (its
            lookup waits until then); None: from the portal's request time limit and the
            client's read timeout (:func:`._reconcile.commit_window`).
        bulk_import: Pack the ``crm.item.add`` creates of one entity type into
            ``crm.item.batchImport`` calls, 20 records a call, 1,000 commands a chunk (see
            :mod:`._bulk`: no automation rules, the CRM "import" permission; v2 only).

    Raises:
        CommandValidationError: Named commands, a malformed command, or references between
            commands, before anything is sent.
    """

    def __init__(self, client: Any, calls: Iterable[Any], *, halt_on_error: bool = True,
                 api_version: int = 2, request_id: str | None = None,
                 progress: Callable[[ChunkProgress], Any] | None = None,
                 progress_bar: bool | None = None,
                 chunk_size: int = MAX_BATCH_COMMANDS, first_chunk: int = 0,
                 reconcile: bool = False, reconcile_field: str | None = None,
                 reconcile_delay_seconds: float | None = None, bulk_import: bool = False) -> None:
        if isinstance(calls, Mapping):
            raise CommandValidationError(
                "named commands are not accepted in a chunked batch: pass a list of "
                "(method, params) or of {method, params}")
        if isinstance(calls, str | bytes) or not isinstance(calls, Iterable):
            raise CommandValidationError(
                f"calls must be a list or an iterator of commands, got {type(calls).__name__}")
        most = MAX_BATCH_COMMANDS
        if bulk_import:
            from ._bulk import BULK_CHUNK

            if api_version != 2:
                raise CommandValidationError("bulk_import packs creates into crm.item.batchImport: REST v2 only")
            most, chunk_size = BULK_CHUNK, BULK_CHUNK if chunk_size == MAX_BATCH_COMMANDS else chunk_size
        if not 1 <= chunk_size <= most:
            raise CommandValidationError(f"chunk_size must be 1..{most}")
        self.client = client
        self.halt_on_error = halt_on_error
        self.api_version = api_version
        self.request_id = check_request_id(request_id)
        self.chunk_size = chunk_size
        self.first_chunk = first_chunk
        self.reconcile = reconcile
        self.reconcile_field = reconcile_field
        self.reconcile_delay_seconds = reconcile_delay_seconds
        self.bulk_import = bulk_import
        self._progress = progress
        self._progress_bar = progress_bar
        self._sized = isinstance(calls, list | tuple)
        if self._sized:
            _validate_all(calls, api_version)
        self._calls = calls
        self.commands_total: int | None = len(calls) if self._sized else None  # type: ignore[arg-type]
        self.chunks_total: int | None = (math.ceil(self.commands_total / chunk_size)
                                         if self.commands_total is not None else None)
        self.run_stats = RunStats()
        self._messages: list[str] = []
        self._more_messages = 0
        self._gen: Iterator[BatchResult] | None = None
        self._finished = False
        self._streamed = False
        self._tables: list[pa.Table] | None = None

    def __repr__(self) -> str:
        s = self.run_stats
        return (f"ChunkedBatchRun(v{self.api_version}, commands={self.commands_total}, "
                f"chunks_done={s.chunks}, ok={s.ok}, error={s.error}, finished={self._finished})")

    # -- running ---------------------------------------------------------------------------

    def _chunks_of_commands(self) -> Iterator[list[Command]]:
        size = self.chunk_size
        chunk: list[Command] = []
        sized = self._sized
        for index, item in enumerate(self._calls):
            if sized:  # checked as a whole already: only the cheap construction is left
                command = _checked_command(index, item)
            else:
                command = make_command(index, item, check=False)
            if not sized:  # a list was checked as a whole before the first chunk
                _check_no_refs(command, check_params(
                    command.params, where=f"command {command.key!r} ({command.method})",
                    key=command.key, index=index))
            chunk.append(command)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _run(self) -> Iterator[BatchResult]:
        stats = getattr(self.client, "stats", None)
        before = stats.snapshot() if stats is not None else None
        bar = self._make_bar()
        s = self.run_stats
        try:
            for chunk_index, commands in enumerate(self._chunks_of_commands(), self.first_chunk):
                send = _execute_bulk if self.bulk_import else execute_batch
                result = send(
                    self.client, commands, halt_on_error=self.halt_on_error,
                    api_version=self.api_version, request_id=self.request_id,
                    chunk_index=chunk_index, x_request_id=f"{self.request_id}-{chunk_index}")
                if self.reconcile:
                    self._settle(result, commands)
                counts = result.counts()
                s.commands += len(commands)
                s.ok += counts["ok"]
                s.error += counts["error"]
                s.not_run += counts["not_run"]
                s.unknown += counts["unknown"]
                s.chunks += 1
                if counts["ok"] != len(commands):
                    s.failed_chunks += 1
                    self._keep_messages(result)
                if before is not None:
                    self._client_delta(stats - before)
                if bar is not None:
                    bar.update(len(commands))
                    bar.set_postfix(ok=s.ok, error=s.error + s.unknown, refresh=False)
                if self._progress is not None:
                    self._progress(ChunkProgress(
                        chunk_index, self.chunks_total, s.commands, self.commands_total,
                        s.ok, s.error, s.not_run, s.unknown))
                yield result
        finally:
            if bar is not None:
                bar.close()
        self._finished = True

    def _settle(self, result: BatchResult, commands: list[Command]) -> None:
        """Settle the chunk's unknown creates by their keys before it is counted."""
        lost = [at for at, c in enumerate(result.commands) if c.status == "unknown"]
        if not lost:
            return
        from ._reconcile import (
            ReconcileCounts,
            commit_window,
            creation_key,
            reconcile_creates,
            settle_wait,
        )

        counts = ReconcileCounts()
        sent_at = getattr(self.client, "last_write_at", None)
        since_sent = 0.0 if sent_at is None else time.monotonic() - sent_at  # unknown: just now
        settle = settle_wait(self.client, since_sent=since_sent, delay=self.reconcile_delay_seconds)
        keyed = any(creation_key(commands[at].method, commands[at].params, self.reconcile_field) for at in lost)
        if settle > 0 and keyed:
            log.info("%d creates of chunk %d lost their answer; the portal may run the request %.0f s "
                     "more: waiting before looking them up", len(lost), result.chunk_index, settle)
        settled = reconcile_creates(self.client, [(commands[at].method, commands[at].params) for at in lost],
                                    field=self.reconcile_field, counts=counts, settle_seconds=settle,
                                    resend_settle_seconds=commit_window(self.client, self.reconcile_delay_seconds),
                                    send=_bulk_resend(self.client) if self.bulk_import else None)  # fmt: skip
        for at, outcome in zip(lost, settled, strict=True):
            if outcome is not None:
                result.commands[at] = replace(result.commands[at], status=outcome.status, data=outcome.data,
                                              error_code=outcome.error_code,
                                              error_description=outcome.error_description)  # fmt: skip
        counts.add_to(self.run_stats)

    def _client_delta(self, delta: Any) -> None:
        s = self.run_stats
        for name in ("requests", "retries", "refused", "blocked", "throttle_wait_seconds",
                     "operating_wait_seconds"):
            setattr(s, name, getattr(delta, name, 0))

    def _keep_messages(self, result: BatchResult) -> None:
        for message in result.error_messages:
            if len(self._messages) < MAX_ERROR_MESSAGES:
                self._messages.append(message)
            else:
                self._more_messages += 1

    def _make_bar(self) -> Any:
        show = self._progress_bar
        if show is None:
            show = sys.stderr is not None and sys.stderr.isatty()
        if not show:
            return None
        try:
            from tqdm import tqdm
        except ImportError:
            return None
        return tqdm(total=self.commands_total, unit="cmd", desc="batch", leave=False)

    def _generator(self) -> Iterator[BatchResult]:
        if self._gen is None:
            self._gen = self._run()
        return self._gen

    def __iter__(self) -> Iterator[BatchResult]:
        """Run the chunks one by one, handing each result out (and not keeping it)."""
        if self._tables is not None and self._tables:
            raise RuntimeError("this run is being kept for its whole-run views; use to_arrow()")
        self._streamed = True
        return self._generator()

    def run(self) -> ChunkedBatchRun:
        """Run to the end, keeping each chunk's Arrow table for the whole-run views."""
        if self._finished and self._tables is not None:
            return self
        if self._streamed:
            if not self._finished:
                for _ in self._generator():
                    pass
            return self
        tables = self._tables if self._tables is not None else []
        self._tables = tables
        pending = ResultColumns()
        try:
            for result in self._generator():
                pending.add(result.commands)
                if len(pending) >= TABLE_ROWS:
                    tables.append(pending.table())
        finally:  # the chunks that ran are kept, even when a later one raised
            if len(pending):
                tables.append(pending.table())
        return self

    # -- whole-run views -------------------------------------------------------------------

    @property
    def stats(self) -> RunStats:
        """The run's counters so far (the client's counters are the delta over the run)."""
        return self.run_stats

    @property
    def is_success(self) -> bool:
        """True when every command of every chunk succeeded (runs the rest of the run)."""
        self.run()
        s = self.run_stats
        return s.ok == s.commands

    @property
    def error_messages(self) -> list[str]:
        """Messages of the failed commands of every chunk (runs the rest of the run)."""
        self.run()
        more = [f"... and {self._more_messages} more"] if self._more_messages else []
        return self._messages + more

    def to_arrow(self) -> pa.Table:
        """One table for the whole run, one row per input command, in input order.

        Raises:
            RuntimeError: The chunks were already handed out by iteration (write them as
                they come instead).
        """
        import pyarrow as pa

        from ._results import result_schema

        self._need_tables()
        if not self._tables:
            return result_schema().empty_table()
        return pa.concat_tables(self._tables)

    def data(self) -> list[Any]:
        """The seeds' whole-run ``getData()``.

        Returns:
            v2 (``callBatchByChunk``): one list per chunk, each with the plain data of its
            commands (``None`` for a command that failed). v3 (``BatchByChunkV3.make``): the
            combined, ordered data of the successful commands only.
        """
        self._need_tables()
        assert self._tables is not None
        if self.api_version == 3:
            out: list[Any] = []
            for table in self._tables:
                for status, text in zip(table["status"].to_pylist(), table["result"].to_pylist(),
                                        strict=True):
                    if status == "ok":
                        out.append(None if text is None else json.loads(text))
            return out
        return [[None if (s != "ok" or t is None) else json.loads(t)
                 for s, t in zip(table["status"].to_pylist(), table["result"].to_pylist(),
                                 strict=True)]
                for table in self._tables]

    def _need_tables(self) -> None:
        if self._streamed:
            raise RuntimeError("the chunks of this run were handed out by iteration and not "
                               "kept: collect chunk.to_arrow() as you iterate")
        self.run()
