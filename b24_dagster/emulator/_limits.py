"""The portal's two limits: the leaky bucket of requests and the per-method operating time.

Both read an injected clock, so tests advance time without sleeping.

* :class:`LeakyBucket`: one per portal, shared by every connection. Each admitted HTTP
  request adds 1; the counter drains ``rate`` per second; a request that would take the
  counter above ``burst`` is refused (503 ``QUERY_LIMIT_EXCEEDED``) and adds nothing.
  ``rate == 0`` admits everything.
* :class:`OperatingBudget`: per method, seconds of (simulated) execution kept in one-minute
  buckets over a window of ``operating_window`` seconds. A method whose total in the window
  exceeds ``operating_limit`` is blocked (429 ``OPERATION_TIME_LIMIT``) *before* it runs;
  the call that crosses the limit still completes.
"""

from __future__ import annotations

__all__ = ["LeakyBucket", "OperatingBudget"]


class LeakyBucket:
    """A leaky bucket of requests (``rate`` per second drained, ``burst`` deep)."""

    __slots__ = ("burst", "level", "rate", "stamp")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.level = 0.0
        self.stamp: float | None = None

    def admit(self, now: float) -> bool:
        """Count one request at ``now``; False (and nothing counted) when it must be refused."""
        if self.rate <= 0:
            return True
        if self.stamp is not None and now > self.stamp:
            self.level = max(0.0, self.level - (now - self.stamp) * self.rate)
        if self.stamp is None or now > self.stamp:
            self.stamp = now
        if self.level + 1.0 > self.burst:
            return False
        self.level += 1.0
        return True

    def reset(self) -> None:
        """Empty the bucket."""
        self.level = 0.0
        self.stamp = None


class _Usage:
    """One method's buckets: minute index -> seconds, with their running total."""

    __slots__ = ("buckets", "minute", "total")

    def __init__(self) -> None:
        self.buckets: dict[int, float] = {}
        self.minute = -1
        self.total = 0.0


class OperatingBudget:
    """Accumulated execution time per method in one-minute buckets."""

    __slots__ = ("_usage", "limit", "window")

    def __init__(self, limit: float, window: int) -> None:
        self.limit = limit
        self.window = window
        self._usage: dict[str, _Usage] = {}

    def usage(self, method: str, now: float) -> _Usage:
        """The method's live buckets at ``now`` (buckets older than the window dropped)."""
        u = self._usage.get(method)
        if u is None:
            u = self._usage[method] = _Usage()
        minute = int(now // 60)
        if minute != u.minute:
            oldest = minute - max(1, self.window // 60) + 1
            stale = [m for m in u.buckets if m < oldest]
            if stale:
                for m in stale:
                    del u.buckets[m]
                u.total = sum(u.buckets.values())
            u.minute = minute
        return u

    def used(self, method: str, now: float) -> float:
        """Seconds the method has used in the window ending at ``now``."""
        return self.usage(method, now).total

    def blocked(self, method: str, now: float) -> bool:
        """True when the method has exceeded its budget (checked before a call)."""
        return self.limit > 0 and self.usage(method, now).total > self.limit

    def charge(self, method: str, now: float, seconds: float) -> float:
        """Add ``seconds`` to the method's current bucket; returns the method's total."""
        u = self.usage(method, now)
        minute = u.minute
        u.buckets[minute] = u.buckets.get(minute, 0.0) + seconds
        u.total += seconds
        return u.total

    def reset_at(self, method: str, now: float) -> int:
        """Unix time at which the oldest bucket of the method leaves the window."""
        u = self._usage.get(method)
        if u is None or not u.buckets:
            return int(now) + self.window
        return min(u.buckets) * 60 + self.window

    def reset(self) -> None:
        """Forget all accumulated time."""
        self._usage.clear()
