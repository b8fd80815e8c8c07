"""The settings of an emulated portal: every limit, with the documented default."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field

__all__ = ["ALL_SCOPES", "PortalSettings", "random_code"]

#: The scopes a default webhook has (a portal administrator's webhook with every box ticked).
ALL_SCOPES: frozenset[str] = frozenset(
    {"crm", "task", "tasks", "user", "user_basic", "department", "im", "disk", "catalog",
     "calendar", "entity", "lists", "log", "sonet_group", "telephony", "timeman", "rest", "main"}
)

_ALPHABET = string.ascii_lowercase + string.digits


def random_code(length: int = 16) -> str:
    """A fresh webhook code: ``length`` lower-case letters and digits, like a portal's."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(slots=True)
class PortalSettings:
    """Everything that can be tuned on an emulated portal.

    Defaults are the documented ones of a cloud portal on a standard plan
    (PROTOCOL.md section 5): a leaky bucket draining 2 requests/s with a burst of 50,
    and 480 s of execution time per method in a window of 10 one-minute buckets.
    """

    #: Webhook code; a random 16-character code when None.
    code: str | None = None
    #: The user the webhook belongs to (the ``1`` of ``/rest/1/<code>/``).
    user_id: int = 1
    #: Scopes of the webhook; a method outside them answers 403 ``insufficient_scope``.
    scopes: frozenset[str] = ALL_SCOPES
    #: Leaky bucket drain in requests per second; 0 means no limit.
    rate: float = 2.0
    #: Leaky bucket size: the request that would take the counter above it gets 503.
    burst: int = 50
    #: Seconds of execution a method may accumulate in the window before 429.
    operating_limit: float = 480.0
    #: Length of the operating-time window in seconds (kept in one-minute buckets).
    operating_window: int = 600
    #: Simulated execution seconds charged per read command (no sleeping).
    command_cost: float = 0.002
    #: Simulated execution seconds charged per write command (add/update/delete).
    write_cost: float = 0.005
    #: Simulated execution seconds charged per record of ``crm.item.import``/``batchImport``.
    import_cost: float = 0.01
    #: Whether the webhook's user has the CRM "import" permission (``crm.item.import`` and
    #: ``crm.item.batchImport`` check it instead of "add"); without it: 400 ``ACCESS_DENIED``.
    import_permission: bool = True
    #: Real seconds each HTTP answer is delayed by (slept outside the portal lock).
    latency: float = 0.0
    #: SQLite file that keeps the portal across restarts; None keeps it in memory.
    state_path: str | None = None
    #: Seconds a v3 ``Idempotency-Key`` answer is replayed for.
    idempotency_ttl: float = 86400.0
    #: UTC offset of the portal's clock in seconds (dates are rendered with it).
    utc_offset: int = 0
    #: Rows per page of v2 list methods (fixed at 50 on a real portal).
    page_size: int = 50
    #: Most commands in one batch.
    max_batch: int = 50
    #: Extra per-method cost overrides in seconds, e.g. ``{"crm.item.list": 0.01}``.
    method_costs: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.code is None:
            self.code = random_code()
        self.scopes = frozenset(self.scopes)
