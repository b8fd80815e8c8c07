"""What a write step writes, as the locks see it: one writer per key space at a time.

A key space is a portal (the webhook's origin), an entity (the method's prefix, with the
`entityTypeId` of `crm.item.*`) and the field its records are keyed by. Two assets, or two
partitions of one asset, that write the same keys into one entity would each look the keys
up, find nothing and create them: a lock of the asset and partition alone cannot see that.
So every write step also holds the lock of each key space it writes (`<base>/.locks/<hash>`,
a readable description inside), and the others wait for it or fail naming it.

- A sync writes one key space: its entity and its `key_field` (or `match_by`).
- A one-shot send (`sync="send"`, or a factory without a key) writes the entity of each of
  its methods, keyed by the `reconcile_field`, or `ORIGIN_ID` on `crm.*` (the key a sync of
  that entity uses by default), else the entity as a whole.

Names are made canonical, so that one entity reached two ways is one space: `crm.item` with
`entityTypeId` 1, 2, 3, 4, 7 is `crm.lead`, `crm.deal`, `crm.contact`, `crm.company`,
`crm.quote`, and `originId` is `ORIGIN_ID`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from upath import UPath

from b24_dagster.integration._lock import StepLock, WriteLocks

__all__ = ["LOCKS_FOLDER", "KeySpace", "LockSettings", "asset_lock_path", "entity_of", "portal_of", "send_spaces", "sync_space",
           "write_locks"]

_ITEM_ENTITIES = {1: "crm.lead", 2: "crm.deal", 3: "crm.contact", 4: "crm.company", 7: "crm.quote"}
_KEY_FIELDS = {"originid": "ORIGIN_ID", "xmlid": "XML_ID"}
LOCKS_FOLDER = ".locks"


@dataclass(frozen=True, order=True)
class KeySpace:
    """A portal, an entity and the key field of its records ("" for the whole entity)."""

    portal: str
    entity: str
    key_field: str

    def describe(self) -> str:
        """For messages: `crm.lead records keyed by ORIGIN_ID on https://x.bitrix24.com`."""
        keyed = f" keyed by {self.key_field}" if self.key_field else ""
        return f"{self.entity} records{keyed} on {self.portal}"

    def lock_name(self) -> str:
        """The lock's file name: a digest of the space (its description is inside)."""
        text = json.dumps([self.portal, self.entity, self.key_field])
        return "keys-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def portal_of(client: Any) -> str:
    """The portal a client writes to: its webhook's origin (never the secret code)."""
    webhook = getattr(client, "webhook", None)
    return str(getattr(webhook, "origin", None) or "an unnamed portal")


def entity_of(method: str, params: Any = None) -> str:
    """The entity a method writes: `crm.lead` of `crm.lead.add` or of `crm.item.add` with
    `entityTypeId` 1; `crm.item:1032` of a smart process."""
    entity = method.lower().rpartition(".")[0] or method.lower()
    if entity == "crm.item" and isinstance(params, dict) and params.get("entityTypeId") is not None:
        type_id = params["entityTypeId"]
        with_id = int(type_id) if str(type_id).isdigit() else type_id
        return _ITEM_ENTITIES.get(with_id, f"crm.item:{with_id}")  # type: ignore[arg-type]
    return entity


def _key_field(name: str | None) -> str:
    return _KEY_FIELDS.get((name or "").lower(), name or "")


def sync_space(client: Any, create_method: str, key_field: str | None, extra_params: dict[str, Any]) -> KeySpace:
    """The key space of a sync (its `key_field`, or EMAIL / PHONE when it matches by those)."""
    return KeySpace(portal_of(client), entity_of(create_method, extra_params), _key_field(key_field))


def send_spaces(client: Any, targets: Iterable[tuple[str, Any]], reconcile_field: str | None) -> list[KeySpace]:
    """The key spaces of a one-shot send of commands to these (method, entityTypeId) targets."""
    spaces = set()
    for method, type_id in targets:
        entity = entity_of(method, {"entityTypeId": type_id} if type_id is not None else None)
        field = reconcile_field or ("ORIGIN_ID" if entity.startswith("crm.") else "")
        spaces.add(KeySpace(portal_of(client), entity, _key_field(field)))
    return sorted(spaces)


@dataclass(frozen=True)
class LockSettings:
    """Where and how a write step locks (the factories build it from the storage resource).

    Attributes:
        root: `<base>/.locks`, where the key-space locks live; None: the asset's lock only.
        owner: The run id, shown to whoever waits.
        asset: The asset key, shown to whoever waits.
        partition: The partition key, if any.
        wait_seconds: How long to wait for a holder (`lock_wait_seconds`).
        lease_seconds: Object storage: how long a lease lasts without a refresh.
        log: Called with a line while waiting.
    """

    root: UPath | None = None
    owner: str = ""
    asset: str = ""
    partition: str | None = None
    wait_seconds: float = 0.0
    lease_seconds: float = 600.0
    log: Callable[[str], Any] | None = None


def asset_lock_path(results: UPath) -> UPath:
    """The lock of one asset and partition: beside its results file (guards it, its state and
    its journals, whatever the portal)."""
    return results.with_name(f".{results.name}.lock")


def write_locks(settings: LockSettings, results: UPath, spaces: Iterable[KeySpace]) -> WriteLocks:
    """The locks of a step writing `results` and `spaces`: the asset's first, then the key
    spaces in order (see `WriteLocks`)."""
    about = {"asset": settings.asset, "partition": settings.partition}
    common = {"owner": settings.owner, "lease_seconds": settings.lease_seconds, "log": settings.log}
    locks = [StepLock(asset_lock_path(results), about=about, **common)]  # type: ignore[arg-type]
    if settings.root is not None:
        for space in sorted(set(spaces)):
            described = {**about, "key_space": {"portal": space.portal, "entity": space.entity,
                                                "key_field": space.key_field}}  # fmt: skip
            locks.append(StepLock(settings.root / space.lock_name(), what=space.describe(), about=described,
                                  **common))  # type: ignore[arg-type]
    return WriteLocks(locks, wait_seconds=settings.wait_seconds)
