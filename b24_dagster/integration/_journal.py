"""A small durable journal of a chunked batch, so a re-executed step does not send twice.

Beside the results file, keyed by a digest of the command set (the results path already
names the asset and partition):

    .<results>.parquet.journal/<digest>/token                this job's request id (kept on resume)
    .<results>.parquet.journal/<digest>/chunk-000000.part    one per completed chunk (Parquet)
    .<results>.parquet.journal/<digest>/inflight-000001      written as chunk 1 is sent
    .<results>.parquet.journal/<digest>/done                 written once the results are published

(a hidden folder and no `.parquet` names, so that a reader globbing `**/*.parquet` under
the base never picks up a journal).

After a crash (an exception, a killed process, a lost worker), executing the step again
with the same commands finds the parts: their chunks are not sent again. A chunk that was
in flight (its marker is there, its part is not) may or may not have been applied by the
portal: the step either sends it again under the same v3 `Idempotency-Key` (the token is the
job's request id, so the portal replays a batch it ran), or records its commands as `unknown`
(code `JOURNAL_INTERRUPTED`) and reconciles them (`_reconcile`); nothing is sent blindly. A
journal marked `done` is discarded, so it never blocks a new materialization.

A journal of another command set is never removed unread: it is the only record of what a
run that died sent. `unfinished()` lists them; the step either settles them by key (a sync)
or refuses to send until the user decides.

An in-flight marker is written right before its chunk's request leaves (the client's
`before_write` hook, after any wait for the portal's limits), and again before each repeat of
a write of that chunk. It holds JSON (object stores give no file ages worth trusting):
`first_sent` (when the chunk first left: the v3 replay window runs from it), `sent_at` (when
it last left: the portal may commit it until `commit_window` after that) and, for a sync,
`rows`: the key, action, fields hash and fields of each row of the chunk, so that a run that
recovers it can look its creates up even when their keys have left the source. Markers of
older versions hold a bare timestamp.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from upath import UPath

from b24_dagster.integration._parquet import ParquetStreamWriter, read_parquet

__all__ = ["INTERRUPTED", "BatchJournal", "InFlight", "digest_of", "file_age", "in_flight", "marker_age",
           "remove_journal"]

INTERRUPTED = "JOURNAL_INTERRUPTED"


def digest_of(calls: Sequence[Any], extra: str = "") -> str:
    """A stable digest of the commands (method and params, in order)."""
    h = hashlib.sha256(extra.encode())
    for call in calls:
        method, params = (call["method"], call.get("params")) if isinstance(call, dict) else call
        h.update(json.dumps([method, params], sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()[:24]


class BatchJournal:
    """The journal of one command set (see the module docstring)."""

    def __init__(self, results: UPath, digest: str, *, root: UPath | None = None) -> None:
        self.root = root if root is not None else results.with_name(f".{results.name}.journal")
        self.dir = self.root / digest
        self.token = ""
        self._first_sent: dict[int, float] = {}

    def _part(self, chunk: int) -> UPath:
        return self.dir / f"chunk-{chunk:06d}.part"

    def _marker(self, chunk: int) -> UPath:
        return self.dir / f"inflight-{chunk:06d}"

    def start(self) -> tuple[int, int | None]:
        """Prepare the journal; returns (completed chunks, the interrupted chunk or None).

        Completed chunks are the contiguous parts from chunk 0. Journals marked done are
        removed; those of other command sets are left (see `unfinished`). `token` is set: a
        fresh one for a new journal, the recorded one when resuming.
        """
        for other in self._others(include_self=True):
            if (other / "done").exists():
                _remove_tree(other)
        with contextlib.suppress(Exception):
            self.dir.mkdir(parents=True, exist_ok=True)
        token = self.dir / "token"
        if token.exists():
            self.token = token.read_text().strip()
        if not self.token:
            self.token = secrets.token_hex(8)
            token.write_text(self.token)
        completed = 0
        while self._part(completed).exists():
            completed += 1
        interrupted = completed if self._marker(completed).exists() else None
        if interrupted is not None:  # a replayed chunk keeps the time it first left
            self._first_sent[interrupted] = _read_marker(self._marker(interrupted)).first_sent
        return completed, interrupted

    def _others(self, *, include_self: bool = False) -> list[UPath]:
        try:
            found = [p for p in self.root.iterdir() if include_self or p.name != self.dir.name]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(found, key=lambda p: p.name)

    def unfinished(self) -> list[UPath]:
        """The folders of other command sets' journals that were never finished (runs that died)."""
        return [p for p in self._others() if not (p / "done").exists()]

    def parts(self, count: int) -> Iterator[pa.Table]:
        """The tables of the first `count` completed chunks, one at a time."""
        for chunk in range(count):
            yield read_parquet(self._part(chunk))

    def age(self, chunk: int) -> float:
        """Seconds since `chunk` first left (the v3 replay window runs from then)."""
        return marker_age(self._marker(chunk))

    def since_sent(self, chunk: int) -> float:
        """Seconds since `chunk` last left (it may commit until `commit_window` after that)."""
        return _read_marker(self._marker(chunk)).since_sent

    def sending(self, chunk: int, rows: list[dict[str, Any]] | None = None) -> None:
        """Record that `chunk` is leaving now (and what it writes: `rows`), in one write."""
        now = time.time()
        first = self._first_sent.setdefault(chunk, now)
        body = {"first_sent": first, "sent_at": now, **({"rows": rows} if rows is not None else {})}
        self._marker(chunk).write_bytes(json.dumps(body, default=str, ensure_ascii=False).encode())

    def refused(self, chunk: int) -> None:
        """Record that `chunk` was refused as a whole (not applied): it will be sent again."""
        with contextlib.suppress(FileNotFoundError):
            self._marker(chunk).unlink()

    def completed(self, chunk: int, table: pa.Table) -> None:
        """Record the outcome of `chunk` durably, then drop its in-flight marker."""
        with ParquetStreamWriter(self._part(chunk), table.schema, compression="none") as writer:
            writer.write(table)
        with contextlib.suppress(FileNotFoundError):
            self._marker(chunk).unlink()

    def finish(self) -> None:
        """Mark the journal done (the results are published), then remove it."""
        with contextlib.suppress(Exception), (self.dir / "done").open("wb") as handle:
            handle.write(b"")
        _remove_tree(self.dir)
        if not self._others():
            _remove_tree(self.root)


@dataclass
class InFlight:
    """What an in-flight marker says (see the module docstring)."""

    chunk: int
    first_sent: float
    sent_at: float
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def since_sent(self) -> float:
        """Seconds since the chunk last left (inf when unknown)."""
        return max(0.0, time.time() - self.sent_at)


def _read_marker(path: UPath) -> InFlight:
    chunk = int(path.name.rpartition("-")[2]) if path.name.rpartition("-")[2].isdigit() else -1
    try:
        text = path.read_bytes().decode().strip()
    except (OSError, UnicodeDecodeError):
        return InFlight(chunk, float("-inf"), float("-inf"))
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        sent = float(body.get("sent_at", body.get("first_sent", float("-inf"))))
        return InFlight(chunk, float(body.get("first_sent", sent)), sent, list(body.get("rows") or []))
    if isinstance(body, int | float):  # an older version: the time it was written
        return InFlight(chunk, float(body), float(body))
    when = time.time() - file_age(path)
    return InFlight(chunk, when, when)


def marker_age(path: UPath) -> float:
    """Seconds since the chunk of the in-flight marker `path` first left (journals of older
    versions: the time they hold, or their file age); inf when it is gone or unreadable."""
    return max(0.0, time.time() - _read_marker(path).first_sent)


def in_flight(folder: UPath) -> list[InFlight]:
    """The in-flight markers of one journal folder (chunks that may have landed)."""
    try:
        return [_read_marker(p) for p in sorted(folder.iterdir(), key=lambda p: p.name)
                if p.name.startswith("inflight-")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def remove_journal(folder: UPath) -> None:
    """Remove one journal folder (after what it recorded was settled)."""
    _remove_tree(folder)


def file_age(path: UPath) -> float:
    """Seconds since `path` was last written; inf when it is gone or the store cannot tell
    (object stores give no `st_mtime`), which callers treat as "too old to rely on"."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except (OSError, AttributeError):
        return float("inf")


def _remove_tree(path: UPath) -> None:
    with contextlib.suppress(Exception):
        fs = path.fs
        fs.rm(path.path, recursive=True)
