"""When to repeat a request, and how long to wait first.

The rule that matters most: a request that may have changed the portal is never sent twice
unless the portal can tell the copies apart. So a failure is sorted by what it proves:

=====================================================  =========================  ==========
failure                                                read / idempotent v3 write  write
=====================================================  =========================  ==========
QUERY_LIMIT_EXCEEDED (503): refused before running     retry (refused)             retry
OVERLOAD_LIMIT (503): the portal's manual block        retry                       retry
429 (OPERATION_TIME_LIMIT): refused before running     retry (blocked)             retry
not connected (DNS, refused, connect timeout)          retry                       retry
sent, no answer (read timeout, connection dropped)     retry                       unknown
5xx (any other 503 too), HTML or malformed body        retry                       unknown
a redirect, other 4xx, PORTAL_DELETED, TLS failure     raise                       raise
=====================================================  =========================  ==========

"unknown" raises :class:`~b24_dagster.errors.OutcomeUnknownError`. An idempotent v3 write is
one that carries an ``Idempotency-Key``: the portal replays the first answer to a copy.

Only the portal's own rate-limit body proves a 503 refused the request. A 503 with an HTML
page or another body may come from a proxy or load balancer that gave up on a portal which
was already running the request, so a write under it is ``unknown``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from b24_dagster.errors import (
    ApiError,
    Bitrix24Error,
    ConnectError,
    OperationTimeLimitError,
    ProtocolError,
    RateLimitError,
    ServerError,
    TransportError,
)

__all__ = ["Action", "RetryPolicy", "classify"]


class Action(enum.Enum):
    """What to do after a failed attempt."""

    RETRY = "retry"
    """Wait a backoff, then repeat."""
    REFUSED = "refused"
    """The portal's bucket was full: empty the client bucket, wait for it, repeat."""
    BLOCKED = "blocked"
    """The method's operating time ran out: wait for the portal's reset, repeat."""
    UNKNOWN = "unknown"
    """A write may have run: raise OutcomeUnknownError, never repeat."""
    RAISE = "raise"
    """Repeating cannot help: raise the error as it is."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times and how patiently to repeat a request.

    Attributes:
        max_retries: Repeats after the first attempt (so ``max_retries + 1`` attempts).
        backoff_base: First backoff ceiling in seconds; it doubles on each attempt.
        backoff_max: Largest backoff ceiling in seconds.
        blocked_wait: Seconds to wait after a 429 that gives no reset time.
        max_wait: The longest single wait for an operating-time reset; a longer one raises.
    """

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    blocked_wait: float = 10.0
    max_wait: float = 660.0

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """A "full jitter" backoff: uniform in ``[0, min(max, base * 2**attempt)]``.

        Args:
            attempt: 0 for the first repeat.
            rng: A source of floats in ``[0, 1)`` (injectable for tests).
        """
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** min(attempt, 30)))
        return ceiling * rng()


def classify(error: Bitrix24Error, *, writes: bool, idempotent: bool = False) -> Action:
    """Decide what a failed attempt calls for (see the module's table).

    Args:
        error: What the attempt raised.
        writes: The request may change portal state.
        idempotent: The request carries a v3 ``Idempotency-Key``.
    """
    safe = not writes or idempotent
    status = getattr(error, "status", None) or 0
    if isinstance(error, RateLimitError):
        code = error.code.upper()
        if code == "OVERLOAD_LIMIT":
            return Action.RETRY
        if code == "QUERY_LIMIT_EXCEEDED":
            return Action.REFUSED
        # a 503 without the portal's code proves nothing was run: a 5xx below
    if isinstance(error, OperationTimeLimitError) or status == 429:
        return Action.BLOCKED
    if isinstance(error, ConnectError):
        return Action.RETRY if error.retryable else Action.RAISE
    if isinstance(error, ApiError):
        if error.code.upper() == "PORTAL_DELETED":
            return Action.RAISE
        if isinstance(error, ServerError) or status >= 500:
            return Action.RETRY if safe else Action.UNKNOWN
        return Action.RAISE
    if isinstance(error, ProtocolError):
        if getattr(error, "redirect", False) or 400 <= status < 500:
            return Action.RAISE
        if getattr(error, "oversized", False):  # the portal answered: repeating cannot help
            return Action.RAISE if safe else Action.UNKNOWN
        return Action.RETRY if safe else Action.UNKNOWN
    if isinstance(error, TransportError):  # sent, no complete answer
        return Action.RETRY if safe else Action.UNKNOWN
    return Action.RAISE
