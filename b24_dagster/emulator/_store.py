"""The portal's state: one table per entity type, in memory, optionally written through to SQLite.

A table is a dict ``id -> row`` plus a sorted list of ids (for keyset paging by bisection).
CRM rows are compact tuples (see ``_entities``); task rows are dicts. Ids only grow.

Persistence (``state_path``): a seed is kept as its parameters (entity, first id, count,
seed) and replayed on load, so a million seeded deals cost a few bytes on disk; every later
change is written through as a row (``data`` NULL for a deleted row). Changes are committed
at the end of each request (:meth:`Store.flush`). One process owns the file at a time.

A journal (:meth:`Store.begin` / :meth:`Store.rollback`) undoes the writes of a v3 batch
that fails part way through.
"""

from __future__ import annotations

import bisect
import gc
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

from ._eventlog import EventLog
from ._reference import CrmReference
from ._seed import seed_rows

__all__ = ["Store", "Table", "TABLE_NAMES"]

#: The tables of a portal (``stagehistory``: the stage moves of ``crm.stagehistory.list``;
#: ``activity``: ``crm.activity.*``; both written through and journaled like the others).
TABLE_NAMES = ("lead", "deal", "contact", "company", "task", "stagehistory", "activity")
#: Tables whose rows are dicts (the others hold tuples).
_DICT_ROWS = ("task", "activity")


class Table:
    """Rows of one entity type by id, with the ids in ascending order."""

    __slots__ = ("cache", "ids", "indexes", "name", "next_id", "rows", "version")

    def __init__(self, name: str) -> None:
        self.name = name
        self.rows: dict[int, Any] = {}
        self.ids: list[int] = []
        self.next_id = 1
        #: Serialized views by id (invalidated on every write of that id).
        self.cache: dict[int, Any] = {}
        #: Bumped by every write: an index built at another version is stale.
        self.version = 0
        #: Indexes of equality lookups, by field: (version built at, value -> ids).
        self.indexes: dict[str, tuple[int, dict[Any, list[int]]]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, id_: int) -> Any:
        """The row with this id, or None."""
        return self.rows.get(id_)

    def iter_from(self, low: int | None = None, high: int | None = None,
                  *, descending: bool = False) -> Iterator[tuple[int, Any]]:
        """Rows with ``low <= id <= high`` in id order (ascending or descending), by bisection."""
        ids, rows = self.ids, self.rows
        lo = 0 if low is None else bisect.bisect_left(ids, low)
        hi = len(ids) if high is None else bisect.bisect_right(ids, high)
        rng = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
        for i in rng:
            id_ = ids[i]
            yield id_, rows[id_]

    def _put(self, id_: int, row: Any) -> None:
        if id_ not in self.rows:
            if not self.ids or id_ > self.ids[-1]:
                self.ids.append(id_)
            else:
                bisect.insort(self.ids, id_)
        self.rows[id_] = row
        self.cache.pop(id_, None)
        self.version += 1
        if id_ >= self.next_id:
            self.next_id = id_ + 1

    def _drop(self, id_: int) -> None:
        if self.rows.pop(id_, None) is not None:
            i = bisect.bisect_left(self.ids, id_)
            del self.ids[i]
        self.cache.pop(id_, None)
        self.version += 1


class Store:
    """All tables of a portal, with write-through to SQLite and an undo journal."""

    def __init__(self, state_path: str | None = None) -> None:
        self.tables: dict[str, Table] = {name: Table(name) for name in TABLE_NAMES}
        #: The event log (in memory only, not in ``tables``: it is no CRM or task table).
        self.eventlog = EventLog(Table("eventlog"))
        #: Directories and pipelines (``crm.status.*``, ``crm.category.*``), in memory only.
        self.reference = CrmReference()
        self.counters: dict[str, int] = {"fm": 1}
        self._journal: list[tuple[str, int, Any]] | None = None
        self._db: sqlite3.Connection | None = None
        self._dirty = False
        if state_path:
            self._open(state_path)

    # ---- persistence -------------------------------------------------------------------
    def _open(self, path: str) -> None:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS seeds (seq INTEGER PRIMARY KEY, entity TEXT, "
                   "first_id INTEGER, n INTEGER, rng_seed INTEGER)")
        db.execute("CREATE TABLE IF NOT EXISTS rows (entity TEXT, id INTEGER, data TEXT, "
                   "PRIMARY KEY (entity, id))")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)")
        db.execute("CREATE TABLE IF NOT EXISTS answers (scope TEXT PRIMARY KEY, digest TEXT, "
                   "status INTEGER, body BLOB, expires REAL)")
        self._db = db
        for entity, first_id, n, rng_seed in db.execute(
                "SELECT entity, first_id, n, rng_seed FROM seeds ORDER BY seq"):
            self._seed_in_memory(entity, n, rng_seed, first_id)
        for entity, id_, data in db.execute("SELECT entity, id, data FROM rows"):
            table = self.tables[entity]
            if data is None:
                table._drop(id_)
            else:
                table._put(id_, _decode(entity, data))
        for key, value in db.execute("SELECT key, value FROM meta"):
            if key.startswith("next_id:"):
                table = self.tables[key[8:]]
                table.next_id = max(table.next_id, value)
            else:
                self.counters[key] = max(self.counters.get(key, 1), value)
        db.execute("BEGIN")

    def flush(self) -> None:
        """Commit the changes made since the last flush (end of a request)."""
        if self._db is not None and self._dirty:
            self._db.execute("COMMIT")
            self._db.execute("BEGIN")
            self._dirty = False

    def close(self) -> None:
        """Commit and close the SQLite file, if any."""
        if self._db is not None:
            self.flush()
            self._db.execute("COMMIT")
            self._db.close()
            self._db = None

    def _write(self, entity: str, id_: int, row: Any) -> None:
        if self._db is None or entity not in TABLE_NAMES:   # smart processes: memory only
            return
        data = None if row is None else json.dumps(row, separators=(",", ":"))
        self._db.execute("INSERT OR REPLACE INTO rows VALUES (?, ?, ?)", (entity, id_, data))
        self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         (f"next_id:{entity}", self.tables[entity].next_id))
        self._dirty = True

    def next_counter(self, name: str) -> int:
        """A fresh value of a portal-wide counter (ids of multi-field values)."""
        value = self.counters.get(name, 1)
        self.counters[name] = value + 1
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value + 1))
            self._dirty = True
        return value

    # ---- kept v3 answers (Idempotency-Key) ----------------------------------------------
    def kept_answers(self, now: float) -> list[tuple[str, str, int, bytes, float]]:
        """The idempotent answers kept in the file and not expired at ``now`` (none in memory)."""
        if self._db is None:
            return []
        self._db.execute("DELETE FROM answers WHERE expires <= ?", (now,))
        self._dirty = True
        return list(self._db.execute("SELECT scope, digest, status, body, expires FROM answers"))

    def keep_answer(self, scope: str, digest: str, status: int, body: bytes, expires: float) -> None:
        """Write an idempotent answer through (committed with the request's writes)."""
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                             (scope, digest, status, body, expires))
            self._dirty = True

    def forget_answer(self, scope: str) -> None:
        """Drop an expired idempotent answer from the file."""
        if self._db is not None:
            self._db.execute("DELETE FROM answers WHERE scope = ?", (scope,))
            self._dirty = True

    # ---- changes -----------------------------------------------------------------------
    def new_id(self, entity: str) -> int:
        """Reserve the next id of a table."""
        table = self.tables[entity]
        id_ = table.next_id
        table.next_id += 1
        return id_

    def put(self, entity: str, id_: int, row: Any) -> None:
        """Insert or replace a row (journaled, written through)."""
        table = self.tables[entity]
        if self._journal is not None:
            self._journal.append((entity, id_, table.rows.get(id_)))
        table._put(id_, row)
        self._write(entity, id_, row)

    def delete(self, entity: str, id_: int) -> bool:
        """Delete a row; False when there was none."""
        table = self.tables[entity]
        old = table.rows.get(id_)
        if old is None:
            return False
        if self._journal is not None:
            self._journal.append((entity, id_, old))
        table._drop(id_)
        self._write(entity, id_, None)
        return True

    def begin(self) -> None:
        """Start journaling writes (for an all-or-nothing v3 batch)."""
        self._journal = []

    def commit(self) -> None:
        """Stop journaling and keep the writes."""
        self._journal = None

    def rollback(self) -> None:
        """Undo every write since :meth:`begin`, newest first."""
        journal, self._journal = self._journal or [], None
        for entity, id_, old in reversed(journal):
            table = self.tables[entity]
            if old is None:
                table._drop(id_)
            else:
                table._put(id_, old)
            self._write(entity, id_, old)

    def seed(self, entity: str, n: int, rng_seed: int = 0) -> range:
        """Add ``n`` deterministic rows (ids continue from the table's next id)."""
        first_id = self.tables[entity].next_id
        self._seed_in_memory(entity, n, rng_seed, first_id)
        if self._db is not None:
            self._db.execute("INSERT INTO seeds (entity, first_id, n, rng_seed) VALUES (?,?,?,?)",
                             (entity, first_id, n, rng_seed))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                             (f"next_id:{entity}", self.tables[entity].next_id))
            self._dirty = True
            self.flush()
        return range(first_id, first_id + n)

    def _seed_in_memory(self, entity: str, n: int, rng_seed: int, first_id: int) -> None:
        table = self.tables[entity]
        fm_base = self.counters.get("fm", 1)
        enabled = gc.isenabled()
        gc.disable()   # a million new tuples would trigger full collections over the whole heap
        try:
            rows, fm_used = seed_rows(entity, first_id, n, rng_seed, fm_base)
        finally:
            if enabled:
                gc.enable()
            if n >= 100_000:
                gc.freeze()   # keep the seeded rows out of later collections
        self.counters["fm"] = fm_base + fm_used
        if table.ids and table.ids[-1] >= first_id:
            for id_, row in zip(range(first_id, first_id + n), rows, strict=True):
                table._put(id_, row)
        else:
            # the row's own id object is the dict key and the list entry (one int, not three)
            ids = [row[0] if type(row) is tuple else row["id"] for row in rows]
            table.rows.update(zip(ids, rows, strict=True))
            table.ids.extend(ids)
            table.next_id = max(table.next_id, first_id + n)

    def reset(self) -> None:
        """Empty every table (and the SQLite file)."""
        self.tables = {name: Table(name) for name in TABLE_NAMES}
        self.eventlog = EventLog(Table("eventlog"))
        self.reference = CrmReference()
        self.counters = {"fm": 1}
        self._journal = None
        if self._db is not None:
            for t in ("seeds", "rows", "meta", "answers"):
                self._db.execute(f"DELETE FROM {t}")
            self._dirty = True
            self.flush()

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        return {name: len(t) for name, t in self.tables.items()}


def _decode(entity: str, data: str) -> Any:
    value = json.loads(data)
    if entity in _DICT_ROWS:
        return value
    return tuple(value)
