"""The sync state of a write asset (and partition): what the portal holds, as far as we know.

One Parquet file in a hidden folder beside the results file (so it travels with them to
object storage, and readers globbing ``**/*.parquet`` under the base skip it):

    <base>/<asset>.parquet                        the results of the last good run
    <base>/.<asset>.parquet.sync/state.parquet    the sync state (this module)
    <base>/.<asset>.parquet.sync/plan.parquet     the plan of the last dry run
    <base>/.<asset>.parquet.lock                  the lock of the running execution (`_key_space`)

A state row per key: the portal id, a hash of the fields last applied (and those fields, to
tell a change on the portal from one in the source), the last outcome, the failed attempts of
the fields last tried, and when. It is written only after a run's results are published, with
only the rows that ended `ok` advanced: a run that fails changes nothing, and a row that failed
keeps its last good hash, so it is tried again.

The state is a cache of what the portal holds, never the truth: a row it does not know as
applied is read from the portal and compared field by field before anything is written. The
file records the portal and the mapping it belongs to (Parquet key-value metadata); a state of
another portal is dropped, one of another mapping keeps its ids but none of its hashes, and a
state that cannot be read stops the run with the file's name and the way to rebuild it.
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

__all__ = ["STATE_SCHEMA", "KeyState", "StateUnreadable", "SyncState", "fields_hash", "sync_folder"]

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


class StateUnreadable(RuntimeError):
    """The state file exists and cannot be read as a state (truncated, foreign, another version)."""


class SyncState:
    """The state of one asset and partition: key -> `KeyState`.

    Args:
        results: The results file the state sits beside.
        portal: The portal's origin the rows are written to.
        mapping: A digest of the entity, fields, key and mode (`_sync_fields.mapping_digest`).
    """

    def __init__(self, results: UPath, *, portal: str = "", mapping: str = "") -> None:
        self.path = sync_folder(results) / "state.parquet"
        self.portal = portal
        self.mapping = mapping
        self.keys: dict[str, KeyState] = {}
        self.distrusted = ""
        """Why the state on disk was not trusted ("" when it was): another portal or mapping."""

    def load(self) -> SyncState:
        """Read the state file (an absent file is an empty state).

        Raises:
            StateUnreadable: the file is there and is not a state this version can read.
        """
        if not self.path.exists():
            return self
        try:
            table = read_parquet(self.path)
            columns = [table[name].to_pylist() for name in STATE_SCHEMA.names]
            keys = {row[0]: KeyState(*row[1:]) for row in zip(*columns, strict=True)}
        except Exception as exc:
            raise StateUnreadable(f"{type(exc).__name__}: {exc}") from exc
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        portal, mapping = meta.get("b24_dagster.portal", ""), meta.get("b24_dagster.mapping", "")
        if self.portal and portal != self.portal:
            self.distrusted = f"it was written for another portal ({portal or 'unknown'})"
            return self  # its ids are another portal's records: nothing of it holds here
        self.keys = keys
        if self.mapping and mapping != self.mapping:
            self.distrusted = "it was written under another mapping (entity, fields, key or multi_value)"
            for state in self.keys.values():  # the records are ours; what their hashes meant is not
                state.fields_hash = state.fields_json = state.attempted_hash = None
                state.attempts = 0
        return self

    def record(self, key: str, *, status: str, portal_id: int | None, sent_hash: str | None,
               sent_fields: str | None, attempt: bool = True) -> None:
        """Record one row's outcome: `ok` advances the key; anything else keeps its last good
        hash, and counts an attempt when `attempt` (the row's own error: not a row the run never
        reached, nor a request the portal refused as a whole)."""
        now = time.time()
        old = self.keys.get(key)
        if status == "ok":
            self.keys[key] = KeyState(portal_id, sent_hash, sent_fields, "ok", 0, None, now)
            return
        same = old is not None and old.attempted_hash == sent_hash
        attempts = (old.attempts if same and old is not None else 0) + (1 if attempt else 0)
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
        schema = STATE_SCHEMA.with_metadata({"b24_dagster.portal": self.portal, "b24_dagster.mapping": self.mapping})
        table = pa.Table.from_arrays(
            [pa.array(c, f.type) for c, f in zip(columns, STATE_SCHEMA, strict=True)], schema=schema
        )
        with ParquetStreamWriter(self.path, schema) as writer:
            writer.write(table)
