"""One run of a replica: probe, read the changes, find what disappeared, merge, publish.

Plain Python over a `Bitrix24Client` and the replica's paths (the Dagster asset in
`_replica_assets.py` wraps it; the tests and the benchmark run it as it is). A run:

1. **Probe** (one request): the portal's clock, and of the records the filter shows their
   count, newest modification and highest id (and the same without the filter, for a filtered
   replica). Nothing changed since the last run (same answers, and the newest modification
   older than the last high-water mark): the run ends there, publishing nothing.
2. **Changes**: the records modified since the high-water mark minus `overlap_seconds` (the
   portal's clock, so same-second and late commits are read again), by the fast list export
   (2,500 a request); each record once by id. The first run (or `full_refresh`) reads all.
3. **What disappeared** (`_replica_deletions`): the ids the replica holds live and the portal
   no longer shows, by counts of id ranges; records the portal shows and the replica lacks
   are read. Every candidate is then looked up by id, with and without the filter: gone is
   deleted (`_deleted`, `_deleted_at`), found outside the filter is out of scope
   (`_out_of_scope`, its data refreshed), found inside is live. Out-of-scope rows are looked
   up again at every run (a record that left the filter may since have been deleted).
4. **Publish**: history files first (`history=True`), then the new current file, merged in
   id order from the old one, with the run's state inside; the replaced file is kept as a
   version (`_replica_versions`). A run that dies before the rename leaves the old file and
   its state: its rerun reads the same changes again and ends with the same table.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
from upath import UPath

from b24_dagster.integration._parquet import ParquetStreamWriter
from b24_dagster.integration._replica_calls import Probe, ids_of, lookup, parse_time, probe
from b24_dagster.integration._replica_deletions import DeletionFinder, Differences
from b24_dagster.integration._replica_entities import ReplicaEntity
from b24_dagster.integration._replica_history import append_stage_moves, record_versions
from b24_dagster.integration._replica_table import (
    DELETED,
    OUT_OF_SCOPE,
    merge_into,
    read_state,
    read_status,
    replica_schema,
    system_columns_for,
)
from b24_dagster.integration._replica_versions import keep_version, new_version_id, prune_versions
from b24_dagster.integration._typing import ColumnTyper, columns_for, normalize_name

__all__ = ["ReplicaOutcome", "ReplicaPaths", "ReplicaRun", "ReplicaSpec"]

FORMAT = 1
ROWS_PER_GROUP = 10_000


@dataclass(frozen=True)
class ReplicaSpec:
    """What a replica knows when it is defined (see `build_bitrix24_replica_asset`)."""

    entity: ReplicaEntity
    select: tuple[str, ...] | None = None
    filter: Mapping[str, Any] = field(default_factory=dict)
    history: bool = False
    overlap_seconds: float = 300.0
    keep_versions_hours: float = 168.0
    deletions: str = "counts"
    column_types: Mapping[str, Any] | None = None

    def request_select(self) -> list[str] | None:
        """`select` with the id and the modification field added (None: the method's default)."""
        if not self.select:
            return None
        e, chosen = self.entity, list(self.select)
        names = {normalize_name(s) for s in chosen}
        chosen += [f for f in (e.cursor_field, e.modified_field) if normalize_name(f) not in names]
        return chosen

    def scope(self) -> str:
        """A digest of what decides the rows and their types: a change of it rebuilds the replica."""
        e = self.entity
        types = {k: str(v) for k, v in (self.column_types or {}).items()}
        text = json.dumps([e.method, dict(e.params), dict(self.filter), self.request_select(), types],
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ReplicaPaths:
    """The files of one replica (and portal)."""

    current: UPath
    versions: UPath
    history: UPath | None = None
    stages: UPath | None = None


@dataclass
class ReplicaOutcome:
    """What a run did: its metadata (plain values), the file's data columns, their descriptions."""

    metadata: dict[str, Any]
    schema: pa.Schema
    descriptions: Mapping[str, Any]


class ReplicaRun:
    """One run (see the module docstring); `execute()` returns a `ReplicaOutcome`.

    Args:
        client: the portal's client.
        spec: the replica.
        paths: its files.
        full_refresh: read every record again (disappeared ones are still found and marked).
        sweep: find what disappeared by reading every id, whatever `spec.deletions` says.
        log: where progress lines go (a logger's `info`).
    """

    def __init__(self, client: Any, spec: ReplicaSpec, paths: ReplicaPaths, *, full_refresh: bool = False,
                 sweep: bool = False, log: Callable[[str], None] | None = None) -> None:
        self.client, self.spec, self.paths, self.e = client, spec, paths, spec.entity
        self.full_refresh = full_refresh
        self.strategy = "sweep" if sweep else spec.deletions
        self.log = log or (lambda _: None)
        self.requests: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self.meta: dict[str, Any] = {}
        self.descriptions: Mapping[str, Any] = {}
        self.schema: pa.Schema | None = None
        self.replaced_version: str | None = None   # the version of the file this run replaces

    # ---- steps ------------------------------------------------------------------------------
    def _count(self) -> int:
        return int(self.client.stats.requests)

    def _tally(self, name: str, requests: int, seconds: float) -> None:
        self.requests[name] = self.requests.get(name, 0) + requests
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def _step(self, name: str, fn: Callable[[], Any]) -> Any:
        before, started = self._count(), time.monotonic()
        try:
            return fn()
        finally:
            self._tally(name, self._count() - before, time.monotonic() - started)

    def _pages(self, name: str, params: Mapping[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """The list export's pages, its requests (and the time waiting for them) under `name`."""
        before, waited = self._count(), 0.0
        pages = iter(self.client.iter_list(self.e.method, dict(params), api_version=2))
        try:
            while True:
                started = time.monotonic()
                page = next(pages, None)
                waited += time.monotonic() - started
                if page is None:
                    return
                yield page
        finally:
            self._tally(name, self._count() - before, waited)

    def execute(self) -> ReplicaOutcome:
        """Run the replica once (see the module docstring)."""
        started = time.monotonic()
        spec, e = self.spec, self.e
        state = read_state(self.paths.current)
        if state is not None:
            self.replaced_version = state.get("version")
            if state.get("scope") != spec.scope():
                self.log(f"{e.plural}: the filter or select changed since the last run: the replica is rebuilt "
                         f"(the previous file is kept as version {self.replaced_version})")
                self.meta["rebuilt"] = True
                state = None
        found: Probe = self._step("probe", lambda: probe(self.client, e, spec.filter))
        if state is not None and not self.full_refresh and self.strategy != "sweep" and self._unchanged(state, found):
            self.schema = state["_schema"]
            self.meta.update(mode="unchanged", hwm=state["hwm"], version=state.get("version", ""),
                             **self._totals(*read_status(self.paths.current, e.id_field)))
            self.log(f"{e.plural}: nothing changed since {state['hwm']} (one request)")
        elif state is None:
            self._first(found)
        else:
            self._incremental(state, found)
        elapsed = time.monotonic() - started
        self.meta.update(requests=sum(self.requests.values()),
                         **{f"requests_{k}": v for k, v in sorted(self.requests.items())},
                         **{f"seconds_{k}": round(v, 3) for k, v in sorted(self.seconds.items())},
                         seconds_local=round(elapsed - sum(self.seconds.values()), 3),
                         duration_seconds=round(elapsed, 3), portal_time=found.now.isoformat())
        assert self.schema is not None
        return ReplicaOutcome(self.meta, self.schema, self.descriptions)

    def _unchanged(self, state: Mapping[str, Any], found: Probe) -> bool:
        newest = parse_time(found.newest)
        hwm = parse_time(state.get("hwm"))
        files = [p for p in (self.paths.history, self.paths.stages) if p is not None and self.spec.history]
        return (state.get("probe") == found.signature() and hwm is not None
                and (newest is None or newest < hwm.replace(microsecond=0)) and all(p.exists() for p in files))

    def _params(self, flt: Mapping[str, Any]) -> dict[str, Any]:
        select = self.spec.request_select()
        return self.e.list_params(flt, **({"select": select} if select else {}))

    # ---- the first run (or after a change of scope): everything, streamed ---------------------
    def _first(self, found: Probe) -> None:
        e, spec, now = self.e, self.spec, found.now
        if e.fields_method:
            answer = self._step("fields", lambda: self.client.call(e.fields_method, dict(e.fields_params)).result)
            self.descriptions = answer.get("fields", answer) if isinstance(answer, Mapping) else {}
        types = {**e.column_types, **(spec.column_types or {})}
        state = self._new_state(found)
        writer: ParquetStreamWriter | None = None
        kept: list[pa.Table] = []
        buffer: list[dict[str, Any]] = []
        rows = 0
        try:
            for page in self._pages("changes", self._params(spec.filter)):
                if writer is None:
                    typer = ColumnTyper(self.descriptions, columns_for(spec.request_select(), page, self.descriptions),
                                        types)
                    writer = self._open(typer.schema, state)
                buffer.extend(page)   # pages come in id order, each id once: row groups of ROWS_PER_GROUP
                if len(buffer) >= ROWS_PER_GROUP:
                    rows += self._flush(writer, typer, buffer, now, kept if spec.history else None)
                    buffer = []
            if writer is None:   # nothing to read: the columns the portal describes
                typer = ColumnTyper(self.descriptions, columns_for(spec.request_select(), [], self.descriptions), types)
                writer = self._open(typer.schema, state)
            rows += self._flush(writer, typer, buffer, now, kept if spec.history else None)
            patch = pa.concat_tables(kept) if kept else writer.schema.empty_table()
            self._histories(now, typer.schema, patch, np.empty(0, np.int64))
            writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
        self.schema = typer.schema
        self.meta.update(mode="full", changed=rows, new_deletions=0, new_out_of_scope=0,
                         **self._totals(np.zeros(rows, np.int64), np.zeros(rows, bool), np.zeros(rows, bool)))
        self._done(state)

    def _flush(self, writer: ParquetStreamWriter, typer: ColumnTyper, rows: list[dict[str, Any]], now: datetime,
               kept: list[pa.Table] | None) -> int:
        """Type `rows` and write them as one row group (kept too, for the history)."""
        if not rows:
            return 0
        table = self._typed(typer, rows, now)
        writer.write(table)
        if kept is not None:
            kept.append(table)
        return table.num_rows

    def _open(self, data: pa.Schema, state: Mapping[str, Any]) -> ParquetStreamWriter:
        """The new current file's writer (the replaced file kept as a version first)."""
        paths = self.paths
        if self.replaced_version:
            keep_version(paths.current, paths.versions, self.replaced_version)
        self.meta["versions_pruned"] = len(prune_versions(paths.versions, self.spec.keep_versions_hours,
                                                          parse_time(state["hwm"])))  # type: ignore[arg-type]
        return ParquetStreamWriter(paths.current, replica_schema(data, state)).open()

    # ---- later runs ---------------------------------------------------------------------------
    def _incremental(self, state: Mapping[str, Any], found: Probe) -> None:
        e, spec, now = self.e, self.spec, found.now
        schema: pa.Schema = state["_schema"]
        typer = ColumnTyper({}, schema.names, {f.name: f.type for f in schema})
        flt = dict(spec.filter)
        if not self.full_refresh:
            since = parse_time(state["hwm"]) - timedelta(seconds=spec.overlap_seconds)  # type: ignore[operator]
            flt[f">={e.modified_field}"] = since.isoformat()
            self.meta["since"] = since.isoformat()
        parts = [self._typed(typer, page, now) for page in self._pages("changes", self._params(flt))]
        changes = _last_per_id(pa.concat_tables(parts), e.id_field) if parts else self._typed(typer, [], now)
        ids, deleted, oos = read_status(self.paths.current, e.id_field)
        changed = changes[e.id_field].to_numpy(zero_copy_only=False).astype(np.int64)
        live = np.union1d(ids[~deleted & ~oos], changed)
        if self.full_refresh:   # every shown record was read: the other live ones disappeared
            diff = Differences(np.setdiff1d(live, changed), np.empty(0, np.int64), "full", 0)
        else:
            finder = DeletionFinder(self.client, e, spec.filter, live)
            diff = self._step("deletions", lambda: finder.find(found.max_id, found.total, strategy=self.strategy))
        recheck = np.setdiff1d(ids[oos & ~deleted], changed)
        patch, gone = self._settle(typer, changes, diff, recheck, now)
        self.schema = schema
        self.meta.update(mode="full_refresh" if self.full_refresh else "incremental", changed=changes.num_rows,
                         deletion_check=diff.method, deletion_commands=diff.commands,
                         shown_but_missing=len(diff.unknown))
        self._merge(found, schema, patch, gone, (ids, deleted, oos))

    def _settle(self, typer: ColumnTyper, changes: pa.Table, diff: Differences, recheck: np.ndarray,
                now: datetime) -> tuple[pa.Table, np.ndarray]:
        """The patch (changes, rows found missing, rows looked up) and the ids gone."""
        e, spec = self.e, self.spec
        select = spec.request_select()
        parts = [changes]
        if len(diff.unknown):   # shown but not live here: read them (restored, or changed meanwhile)
            shown, = self._step("lookups", lambda: lookup(self.client, e, diff.unknown, select, [spec.filter]))
            parts.append(self._typed(typer, shown, now))
        asked = np.union1d(diff.missing, recheck)
        gone = np.empty(0, np.int64)
        if len(asked):
            filters = [spec.filter, {}] if spec.filter else [{}]
            found = self._step("lookups", lambda: lookup(self.client, e, asked, select, filters))
            inside = ids_of(e, found[0])
            outside_rows = [r for r in found[-1] if int(r[e.id_field]) not in set(inside.tolist())] \
                if spec.filter else []
            outside = ids_of(e, outside_rows)
            parts.append(self._typed(typer, found[0], now))
            parts.append(self._typed(typer, outside_rows, now, out_of_scope=True))
            gone = np.setdiff1d(asked, np.union1d(inside, outside))
            self.meta.update(new_out_of_scope=int(np.isin(diff.missing, outside).sum()), lookups=len(asked))
        patch = _last_per_id(pa.concat_tables(parts), e.id_field)
        patch = patch.filter(pa.array(~np.isin(patch[e.id_field].to_numpy(zero_copy_only=False), gone)))
        return patch, gone

    def _typed(self, typer: ColumnTyper, rows: Sequence[Mapping[str, Any]], now: datetime,
               out_of_scope: bool = False) -> pa.Table:
        table = typer.table(rows)
        for name, column in system_columns_for(table.num_rows, out_of_scope=out_of_scope, synced_at=now).items():
            table = table.append_column(name, column)
        return _last_per_id(table, self.e.id_field)

    # ---- publishing ----------------------------------------------------------------------------
    def _new_state(self, found: Probe) -> dict[str, Any]:
        return {"format": FORMAT, "entity": self.e.name, "scope": self.spec.scope(), "hwm": found.now.isoformat(),
                "probe": found.signature(), "version": new_version_id(found.now)}

    def _histories(self, now: datetime, data: pa.Schema, patch: pa.Table, gone: np.ndarray) -> None:
        """Publish the history files (before the current one: their merges are idempotent)."""
        e, spec, paths = self.e, self.spec, self.paths
        if not spec.history:
            return
        if paths.stages is not None and e.stage_type_id is not None:
            self.meta.update(self._step("history", lambda: append_stage_moves(
                self.client, paths.stages, e.stage_type_id, now)))  # type: ignore[arg-type]
        if paths.history is not None:
            modified = next((n for n in data.names if normalize_name(n) == normalize_name(e.modified_column)), None)
            self.meta.update(record_versions(paths.history, data, patch, gone, now, id_column=e.id_field,
                                             modified_column=modified))

    def _merge(self, found: Probe, data: pa.Schema, patch: pa.Table, gone: np.ndarray,
               status: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        e, now = self.e, found.now
        state = self._new_state(found)
        self._histories(now, data, patch, gone)
        writer = self._open(data, state)
        try:
            counts = merge_into(writer, self.paths.current, patch, gone, now, e.id_field)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        self.meta.update(new_deletions=counts["newly_deleted"], **self._totals(*_after(status, patch, gone, e.id_field)))
        self.meta.setdefault("new_out_of_scope", 0)
        self._done(state)

    def _done(self, state: Mapping[str, Any]) -> None:
        self.meta.update(version=state["version"], hwm=state["hwm"])
        m = self.meta
        self.log(f"{self.e.plural}: {m['live']} live, {m['deleted']} deleted, {m['out_of_scope']} out of scope; "
                 f"{m.get('changed', 0)} read, {m.get('new_deletions', 0)} newly deleted, "
                 f"{m.get('new_out_of_scope', 0)} newly out of scope")

    @staticmethod
    def _totals(ids: np.ndarray, deleted: np.ndarray, oos: np.ndarray) -> dict[str, int]:
        return {"rows": len(ids), "live": int((~deleted & ~oos).sum()), "deleted": int(deleted.sum()),
                "out_of_scope": int((oos & ~deleted).sum())}


def _after(status: tuple[np.ndarray, np.ndarray, np.ndarray], patch: pa.Table, gone: np.ndarray,
           id_column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, deleted, out of scope) of the merged file, computed from the old one's and the run's."""
    ids, deleted, oos = status
    patch_ids = patch[id_column].to_numpy(zero_copy_only=False).astype(np.int64)
    keep = ~np.isin(ids, patch_ids)
    all_ids = np.concatenate([ids[keep], patch_ids])
    all_deleted = np.concatenate([deleted[keep] | np.isin(ids[keep], gone),
                                  patch[DELETED].to_numpy(zero_copy_only=False).astype(bool)])
    all_oos = np.concatenate([oos[keep], patch[OUT_OF_SCOPE].to_numpy(zero_copy_only=False).astype(bool)])
    return all_ids, all_deleted, all_oos


def _last_per_id(table: pa.Table, id_column: str) -> pa.Table:
    """Each id once (its last row), sorted by id."""
    if table.num_rows == 0:
        return table
    ids = table[id_column].to_numpy(zero_copy_only=False)
    reversed_ids = ids[::-1]
    _, first = np.unique(reversed_ids, return_index=True)
    keep = np.sort(len(ids) - 1 - first)
    return table.take(pa.array(keep)).sort_by(id_column)

