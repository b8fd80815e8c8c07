"""The v3 ``Idempotency-Key`` header: successful answers replayed for 24 hours.

Per webhook + user + method + key: the first successful answer is kept with a fingerprint of
the request body. The same key and body again -> the kept answer, with
``Idempotent-Replayed: true``; the same key with another body -> 422
``IDEMPOTENCYKEYREUSEDEXCEPTION``. Error answers are not kept. A key must be 1-255 printable
ASCII characters, else 400 ``INVALIDIDEMPOTENCYKEYEXCEPTION``.

With a state file the kept answers are written through to it (table ``answers``, committed
with the writes of the request that made them), so a restarted portal still replays them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["IdempotencyCache", "Kept", "valid_key"]


def valid_key(key: str) -> bool:
    """1-255 printable ASCII characters."""
    return 1 <= len(key) <= 255 and all(" " <= ch <= "~" for ch in key)


def fingerprint(params: Any) -> str:
    """A stable digest of a request body."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(slots=True)
class Kept:
    """A kept successful answer."""

    digest: str
    status: int
    body: bytes
    expires: float


class IdempotencyCache:
    """Kept answers by (webhook code, user, method, key)."""

    def __init__(self, ttl: float, store: Store | None = None, now: float = 0.0) -> None:
        self.ttl = ttl
        self._store = store
        self._kept: dict[tuple[str, str, str, str], Kept] = {}
        for scope, digest, status, body, expires in store.kept_answers(now) if store else ():
            code, user, method, key = json.loads(scope)
            self._kept[(code, user, method, key)] = Kept(digest, status, bytes(body), expires)

    def lookup(self, scope: tuple[str, str, str, str], digest: str, now: float) -> Kept | None | bool:
        """The kept answer (replay), None (first use), or False (key reused with another body)."""
        kept = self._kept.get(scope)
        if kept is None:
            return None
        if kept.expires <= now:
            del self._kept[scope]
            if self._store is not None:
                self._store.forget_answer(json.dumps(scope))
            return None
        return kept if kept.digest == digest else False

    def keep(self, scope: tuple[str, str, str, str], digest: str, status: int, body: bytes,
             now: float) -> None:
        """Keep a successful answer for ``ttl`` seconds."""
        if len(self._kept) > 100_000:
            self._kept = {k: v for k, v in self._kept.items() if v.expires > now}
        kept = self._kept[scope] = Kept(digest, status, body, now + self.ttl)
        if self._store is not None:
            self._store.keep_answer(json.dumps(scope), digest, status, body, kept.expires)

    def clear(self) -> None:
        """Forget every kept answer."""
        self._kept.clear()
