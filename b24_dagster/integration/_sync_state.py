"""The sync state of a write asset (and partition): what the portal holds, as far as we know.

One Parquet file in a hidden folder beside the results file (so it travels with them to
object storage, and readers globbing ``**/*.parquet`` under the base skip it):

    <base>/<asset>.parquet                        the results of the last good run
    <base>/.<asset>.parquet.sync/state.parquet    the sync state (this module)
    <base>/.<asset>.parquet.sync/plan.parquet     the plan of the last dry run
    <base>/.<asset>.parquet.sync/lock             the lock of the running execution

A state row per key: the portal id, a hash of the fields last applied (and those fields, so
the next run sends only what changed), the last outcome, the failed attempts of the fields
last tried, and when. It is written only after a run's results are published, with only the
rows that ended `ok` advanced: a run that fails changes nothing, and a row that failed keeps
its last good hash, so it is tried again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from upath import UPath

from b24_dagster.integration._parquet import ParquetStreamWriter, read_parquet

__all__ = ["STATE_SCHEMA", "KeyState", "SyncState", "fields_hash", "sync_folder"]

STATE_SCHEMA = pa.schema([
    ("key", pa.string()),
    ("portal_id", pa.int64()),
    ("fields_hash", pa.string()),
    ("fields_json", pa.string()),
    ("status", pa.string()),
    ("attempts", pa.int32()),
    ("attempted_hash", pa.string()),
    ("updated_at", pa.float64()),
])  # fmt: skip


def sync_folder(results: UPath) -> UPath:
    """The hidden folder of the sync files of a results file."""
    return results.with_name(f".{results.name}.sync")


def fields_hash(fields: Mapping[str, Any]) -> str:
    """A stable hash of the fields a row sends (order of keys does not matter)."""
    text = json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


@dataclass
class KeyState:
    """What the state knows of one key."""

    portal_id: int | None
    fields_hash: str | None
    fields_json: str | None
    status: str
    attempts: int
    attempted_hash: str | None
    updated_at: float

    @property
    def applied(self) -> bool:
        """Whether the portal holds this key's record with the fields of `fields_hash`."""
        return self.status == "ok" and self.portal_id is not None and self.fields_hash is not None

    def fields(self) -> dict[str, Any]:
        """The fields last applied (empty when unknown)."""
        return json.loads(self.fields_json) if self.fields_json else {}


class SyncState:
    """The state of one asset and partition: key -> `KeyState`."""

    def __init__(self, results: UPath) -> None:
        self.path = sync_folder(results) / "state.parquet"
        self.keys: dict[str, KeyState] = {}

    def load(self) -> SyncState:
        """Read the state file (an absent file is an empty state)."""
        if not self.path.exists():
            return self
        table = read_parquet(self.path)
        columns = [table[name].to_pylist() for name in STATE_SCHEMA.names]
        self.keys = {row[0]: KeyState(*row[1:]) for row in zip(*columns, strict=True)}
        return self

    def record(self, key: str, *, status: str, portal_id: int | None, sent_hash: str | None,
               sent_fields: str | None) -> None:
        """Record one row's outcome: `ok` advances the key; anything else counts an attempt."""
        now = time.time()
        old = self.keys.get(key)
        if status == "ok":
            self.keys[key] = KeyState(portal_id, sent_hash, sent_fields, "ok", 0, None, now)
            return
        attempts = (old.attempts if old is not None and old.attempted_hash == sent_hash else 0) + 1
        if old is None:
            self.keys[key] = KeyState(portal_id, None, None, status, attempts, sent_hash, now)
        else:
            self.keys[key] = KeyState(old.portal_id if portal_id is None else portal_id, old.fields_hash,
                                      old.fields_json, status, attempts, sent_hash, now)  # fmt: skip

    def forget(self, key: str) -> None:
        """Drop a key (its record was deleted on the portal)."""
        self.keys.pop(key, None)

    def save(self) -> None:
        """Write the state atomically (readers see the old or the new file, never a mix)."""
        items = sorted(self.keys.items())
        columns = [
            [k for k, _ in items],
            [s.portal_id for _, s in items],
            [s.fields_hash for _, s in items],
            [s.fields_json for _, s in items],
            [s.status for _, s in items],
            [s.attempts for _, s in items],
            [s.attempted_hash for _, s in items],
            [s.updated_at for _, s in items],
        ]
        table = pa.Table.from_arrays(
            [pa.array(c, f.type) for c, f in zip(columns, STATE_SCHEMA, strict=True)], schema=STATE_SCHEMA
        )
        with ParquetStreamWriter(self.path, STATE_SCHEMA) as writer:
            writer.write(table)
