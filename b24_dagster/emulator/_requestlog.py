"""The request log: one record per HTTP request, with the webhook code redacted."""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass

__all__ = ["RequestLog", "RequestRecord", "redact_path"]

_AUTH_IN_QUERY = re.compile(r"((?:^|[?&])(?:auth|access_token|refresh_token)=)[^&]*", re.I)


def redact_path(target: str) -> str:
    """``/rest/1/<code>/x?auth=t`` -> ``/rest/1/***/x?auth=***`` (also ``/rest/api/1/<code>``)."""
    path, sep, query = target.partition("?")
    segs = path.split("/")
    if len(segs) > 2 and segs[1] == "rest":
        at = 4 if segs[2] == "api" else 3     # /rest/{uid}/{code} or /rest/api/{uid}/{code}
        if len(segs) > at and segs[at]:
            segs[at] = "***"
            path = "/".join(segs)
    out = path + sep + query
    if "=" in out:
        out = _AUTH_IN_QUERY.sub(r"\1***", out)
    return out


@dataclass(slots=True, frozen=True)
class RequestRecord:
    """One HTTP request as the emulator saw and answered it."""

    #: Unix time the request was complete.
    time: float
    #: HTTP method (``GET``, ``POST``).
    http_method: str
    #: The request target with the webhook code and any ``auth`` value replaced by ``***``.
    path: str
    #: 2 or 3 (0 when the path is not a REST path).
    api_version: int
    #: The Bitrix24 method, lower-case (``batch``, ``crm.item.get``), or ``""``.
    method: str
    #: HTTP status answered; 0 when the connection was closed without an answer.
    status: int
    #: True when the request changed the portal's state.
    committed: bool
    #: Commands the portal executed (1 for a plain call, n for a batch).
    commands: int
    #: The injected fault's kind, or None.
    fault: str | None
    #: The ``X-Request-ID`` header, if sent.
    request_id: str | None
    #: The ``Idempotency-Key`` header, if sent.
    idempotency_key: str | None
    #: Seconds from the complete request to the answer (or the close).
    duration: float


class RequestLog:
    """A bounded, thread-safe list of :class:`RequestRecord` (oldest dropped first)."""

    def __init__(self, maxlen: int = 100_000) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def append(self, record: RequestRecord) -> None:
        """Add one record."""
        with self._lock:
            self._records.append(record)

    def records(self) -> list[RequestRecord]:
        """A copy of the records, oldest first."""
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)
