"""Client-side speed limits: the portal's leaky bucket and the per-method operating time.

:class:`RateLimiter` mirrors the portal's leaky bucket (``rate`` requests drained per second,
``burst`` deep) as a token bucket that starts full, so a job uses the burst at once and then
runs at exactly ``rate``. It keeps ``headroom`` tokens (default 1) in reserve so that jitter
between the client's and the portal's clocks never tips the portal over. A request takes its
token *before* waiting (the balance may go negative): callers queue in order, and the lock is
held only for a read-modify-write, never while sleeping.

Two processes on one machine working on one portal share the portal's bucket, so they share
ours too: the state lives in a 16-byte file named by a hash of the portal origin (never the
webhook code) in ``$B24_DAGSTER_STATE_DIR`` or ``~/.cache/b24_dagster/limits/``, updated
under ``fcntl.flock``. When sharing is off, the folder is not writable or the platform has no
``fcntl``, the state stays in the process.

:class:`OperatingBudget` tracks each method's ``time.operating`` (seconds of execution used
in the portal's 10-minute window) and ``operating_reset_at``, and pauses a method before the
portal would block it with 429 ``OPERATION_TIME_LIMIT``: before each request it plans the
request's cost (the biggest rise of ``operating`` one request of the method brought) and
waits for the method's reset when that would not fit under the limit. Processes on one
machine share it like the bucket: each method's last known balance lives in a small JSON
file beside the bucket's (``<hash>.operating``), updated under ``fcntl.flock``; the newest
observation of a method, from whichever process, is the one every process plans with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["OperatingBudget", "RateLimiter", "default_state_dir", "state_file_for"]

log = logging.getLogger("b24_dagster.client")

_STATE = struct.Struct("<dd")  # tokens, wall-clock stamp


def default_state_dir() -> Path:
    """``$B24_DAGSTER_STATE_DIR`` if set, else ``~/.cache/b24_dagster/limits``."""
    env = os.environ.get("B24_DAGSTER_STATE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "b24_dagster" / "limits"


def state_file_for(origin: str, state_dir: str | os.PathLike[str] | None = None) -> Path:
    """The shared bucket file of a portal: a hash of its origin, never of the code."""
    digest = hashlib.sha256(origin.lower().encode()).hexdigest()[:32]
    return Path(state_dir or default_state_dir()) / f"{digest}.bucket"


class RateLimiter:
    """A token bucket in front of the portal's leaky bucket.

    Args:
        rate: Requests per second the portal drains (2 on standard plans, 5 on Enterprise).
        burst: The portal's bucket size (50 standard, 250 Enterprise).
        headroom: Tokens kept in reserve (against clock jitter between client and portal).
        state_file: A file to share the bucket with other processes; None keeps it local.
        clock: Wall-clock seconds (shared files compare stamps across processes).
        sleep: How to wait.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        headroom: float = 1.0,
        state_file: Path | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst!r}")
        self.rate = float(rate)
        self.burst = burst
        self.capacity = max(1.0, burst - headroom)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._stamp = clock()
        self._fd: int | None = None
        self.state_file: Path | None = None
        if state_file is not None:
            self._open_shared(state_file)

    @property
    def shared(self) -> bool:
        """True when the bucket is shared with other processes through a file."""
        return self._fd is not None

    def _open_shared(self, path: Path) -> None:
        try:
            import fcntl  # noqa: F401  (POSIX only)

            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            self.state_file = path
        except (ImportError, OSError) as exc:
            log.debug("rate-limit state not shared (%s): %s", type(exc).__name__, exc)
            self._fd = None

    def close(self) -> None:
        """Release the shared state file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _update(self, change: Callable[[float, float], float]) -> float:
        """Apply ``change(tokens_after_refill, now) -> new tokens``; return the new tokens."""
        with self._lock:
            if self._fd is None:
                now = self._clock()
                tokens = self._refill(self._tokens, self._stamp, now)
                self._tokens = change(tokens, now)
                self._stamp = now
                return self._tokens
            return self._update_shared(change)

    def _update_shared(self, change: Callable[[float, float], float]) -> float:
        import fcntl

        fd = self._fd
        assert fd is not None
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            now = self._clock()
            data = os.pread(fd, _STATE.size, 0)
            if len(data) == _STATE.size:
                tokens, stamp = _STATE.unpack(data)
                tokens = self._refill(tokens, stamp, now)
            else:  # a new file: the bucket starts full
                tokens = self.capacity
            tokens = change(tokens, now)
            os.pwrite(fd, _STATE.pack(tokens, now), 0)
            return tokens
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _refill(self, tokens: float, stamp: float, now: float) -> float:
        if math.isnan(tokens):  # a damaged file
            return self.capacity
        elapsed = now - stamp
        if elapsed < 0:  # the wall clock stepped back: trust the stored balance
            elapsed = 0.0
        return min(self.capacity, tokens + elapsed * self.rate)

    def acquire(self) -> float:
        """Take one token, waiting until the bucket would admit the request.

        Returns:
            The seconds waited.
        """
        left = self._update(lambda tokens, now: tokens - 1.0)
        if left >= 0:
            return 0.0
        wait = -left / self.rate
        self._sleep(wait)
        return wait

    def refused(self) -> None:
        """The portal refused a request (503): its bucket is full, so empty ours."""
        self._update(lambda tokens, now: min(tokens, 0.0))

    def available(self) -> float:
        """Tokens available now (negative while callers are queued)."""
        return self._update(lambda tokens, now: tokens)


class _MethodState:
    __slots__ = ("estimated", "operating", "reset_at", "stamp", "step")

    def __init__(self) -> None:
        self.operating = 0.0
        self.reset_at: float | None = None
        self.estimated = False  # reset_at is a guess, not the portal's word
        self.step = 0.0
        self.stamp = 0.0  # when this balance was learned (wall clock), to merge across processes

    def to_list(self) -> list[Any]:
        return [self.operating, self.reset_at, self.step, self.estimated, self.stamp]

    def load(self, entry: list[Any]) -> None:
        operating, reset_at, step, estimated, stamp = entry
        self.operating, self.reset_at, self.estimated, self.stamp = float(operating), reset_at, bool(estimated), stamp
        self.step = max(self.step, float(step))


class OperatingBudget:
    """Per-method operating time, paused before the portal's limit.

    A method is paused when its last known ``operating`` is within a margin of ``limit`` and
    its ``reset_at`` is still ahead. The margin is the larger of ``margin`` (at most 2% of
    the limit) and twice the biggest rise in ``operating`` seen for that method in one request
    (a batch of 50 slow commands can add far more than a plain call; twice, for two processes
    planning on one balance), capped at half the limit.

    Args:
        limit: The portal's budget in seconds per window (480 on cloud portals).
        margin: The least margin in seconds.
        clock: Wall-clock seconds (``operating_reset_at`` is a unix time).
        sleep: How to wait.
        state_file: A file to share the balances with other processes; None keeps them local.
    """

    def __init__(self, limit: float = 480.0, *, margin: float = 5.0,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 state_file: Path | None = None) -> None:
        self.limit = limit
        self.margin = margin
        self._clock = clock
        self._sleep = sleep
        self._methods: dict[str, _MethodState] = {}
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.state_file: Path | None = None
        if state_file is not None:
            try:
                import fcntl  # noqa: F401  (POSIX only)

                state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._fd = os.open(state_file, os.O_RDWR | os.O_CREAT, 0o600)
                self.state_file = state_file
            except (ImportError, OSError) as exc:
                log.debug("operating-time state not shared (%s): %s", type(exc).__name__, exc)

    @property
    def shared(self) -> bool:
        """True when the balances are shared with other processes through a file."""
        return self._fd is not None

    def close(self) -> None:
        """Release the shared state file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _share(self, changed: Iterable[str] = ()) -> None:
        """Take the other processes' newer balances, and give them ours of ``changed``."""
        fd = self._fd
        if fd is None:
            return
        import fcntl

        changed = tuple(changed)
        fcntl.flock(fd, fcntl.LOCK_EX if changed else fcntl.LOCK_SH)
        try:
            raw = os.pread(fd, max(os.fstat(fd).st_size, 1), 0)
            try:
                shared = json.loads(raw) if raw.strip() else {}
            except ValueError:  # a damaged file: start over
                shared = {}
            if not isinstance(shared, dict):
                shared = {}
            with self._lock:
                for method, entry in shared.items():
                    state = self._methods.get(method)
                    if isinstance(entry, list) and len(entry) == 5 and (state is None or entry[4] > state.stamp):
                        self._state(method).load(entry)
                if changed:
                    for method in changed:
                        shared[method] = self._state(method).to_list()
                    data = json.dumps(shared, separators=(",", ":")).encode()
                    os.pwrite(fd, data, 0)
                    os.ftruncate(fd, len(data))
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _state(self, method: str) -> _MethodState:
        state = self._methods.get(method)
        if state is None:
            state = self._methods[method] = _MethodState()
        return state

    def pause_needed(self, methods: Iterable[str]) -> float:
        """Seconds to wait before any of ``methods`` may run (0 when none is near its limit)."""
        self._share()
        if not self._methods:
            return 0.0
        now = self._clock()
        wait = 0.0
        least = min(self.margin, self.limit * 0.02)
        for method in methods:
            state = self._methods.get(method)
            if state is None or state.reset_at is None:
                continue
            margin = min(max(least, 2 * state.step), self.limit / 2)
            if state.operating >= self.limit - margin and state.reset_at > now:
                wait = max(wait, state.reset_at - now + 1.0)
        return wait

    def wait(self, methods: Iterable[str], max_wait: float = float("inf")) -> float:
        """Sleep until every one of ``methods`` may run; returns the seconds slept."""
        methods = tuple(methods)
        wait = min(self.pause_needed(methods), max_wait)
        if wait <= 0:
            return 0.0
        log.info("operating-time budget nearly used: pausing %s for %.1f s",
                 ", ".join(sorted(set(methods))), wait)
        self._sleep(wait)
        self._share()
        reset = []
        with self._lock:
            for method in methods:  # the next answer tells us the new balance
                state = self._methods.get(method)
                if state is not None and state.reset_at is not None \
                        and state.reset_at <= self._clock():
                    state.operating = 0.0
                    state.reset_at = None
                    state.stamp = self._clock()
                    reset.append(method)
        if reset:
            self._share(reset)
        return wait

    def observe(self, method: str, time_obj: Any) -> None:
        """Record a ``time`` object returned for ``method`` (plain call or batch command)."""
        if not isinstance(time_obj, Mapping):
            return
        operating = time_obj.get("operating")
        if not isinstance(operating, int | float):
            return
        reset_at = time_obj.get("operating_reset_at")
        with self._lock:
            state = self._state(method)
            if operating > state.operating:
                state.step = max(state.step, operating - state.operating)
            state.operating = float(operating)
            state.stamp = self._clock()
            if isinstance(reset_at, int | float):
                state.reset_at = float(reset_at)
                state.estimated = False
        self._share((method,))

    def observe_batch(self, keys_to_methods: Mapping[str, str], result_time: Any,
                      result_error: Any = None) -> int:
        """Record the ``result_time`` (and blocked commands) of a v2 batch.

        Args:
            keys_to_methods: cmd key (as a string) -> method.
            result_time: The batch's ``result_time`` (an object, or a list for 0..n-1 keys).
            result_error: The batch's ``result_error``; OPERATION_TIME_LIMIT marks a method
                blocked.

        Returns:
            The number of commands the portal blocked with OPERATION_TIME_LIMIT.
        """
        # Hot path (every batch answer): one pass, plain dict checks, per-method work after.
        methods = keys_to_methods
        if isinstance(result_time, dict):
            pairs: Iterable[tuple[Any, Any]] = result_time.items()
            lookup = methods.get
        elif isinstance(result_time, list):  # PHP sends keys 0..n-1 as an array
            pairs = zip(methods.values(), result_time, strict=False)
            lookup = _identity
        else:
            pairs, lookup = (), _identity
        durations: dict[str, float] = {}
        latest: dict[str, dict[str, Any]] = {}
        first: dict[str, dict[str, Any]] = {}
        seen: dict[str, int] = {}
        for key, time_obj in pairs:
            method = lookup(key)
            if method is None or type(time_obj) is not dict:
                continue
            duration = time_obj.get("duration")
            if type(duration) is float or type(duration) is int:
                durations[method] = durations.get(method, 0.0) + duration
            if method not in latest:
                first[method] = time_obj
            latest[method] = time_obj
            seen[method] = seen.get(method, 0) + 1
        if latest:
            now = self._clock()
            with self._lock:
                for method, time_obj in latest.items():
                    state = self._state(method)
                    total = durations.get(method, 0.0)
                    operating = time_obj.get("operating")
                    start = first[method].get("operating")
                    n = seen[method]
                    if n > 1 and isinstance(operating, int | float) and isinstance(start, int | float):
                        # the rise over the request's commands of the method: what it costs
                        total = max(total, (operating - start) * n / (n - 1))
                    state.step = max(state.step, total)
                    state.stamp = now
                    if isinstance(operating, int | float):
                        state.operating = float(operating)
                        reset_at = time_obj.get("operating_reset_at")
                        if isinstance(reset_at, int | float):
                            state.reset_at = float(reset_at)
                            state.estimated = False
                    else:  # no operating fields: estimate from the durations
                        state.operating += total
                        if state.reset_at is None:
                            state.reset_at = self._clock() + 60.0
                            state.estimated = True
            self._share(latest)
        blocked = 0
        for key, err in _section_items(result_error):
            if isinstance(err, Mapping) and err.get("error") == "OPERATION_TIME_LIMIT":
                blocked += 1
                method = keys_to_methods.get(key)
                if method is not None:
                    self.blocked(method, None)
        return blocked

    def blocked(self, method: str, reset_at: float | None, fallback: float = 10.0) -> None:
        """The portal blocked ``method`` (429): pause it until its reset.

        Args:
            method: The blocked method.
            reset_at: The reset time the portal gave; when None, the last
                ``operating_reset_at`` seen for the method if still ahead, else ``fallback``
                seconds from now.
            fallback: Seconds to pause when no reset time is known.
        """
        now = self._clock()
        with self._lock:
            state = self._state(method)
            state.operating = self.limit
            if reset_at is None and state.reset_at is not None and state.reset_at > now \
                    and not state.estimated:
                reset_at = state.reset_at
            state.estimated = False
            state.stamp = now
            if reset_at is None or reset_at <= now:
                # pause_needed waits 1 s past a reset: the fallback is the whole wait
                state.reset_at = now + fallback - 1.0
            else:
                state.reset_at = float(reset_at)
        self._share((method,))


def _identity(key: Any) -> Any:
    return key


def _section_items(section: Any) -> list[tuple[str, Any]]:
    """Items of a PHP-style batch section: an object, or an array for keys 0..n-1."""
    if isinstance(section, Mapping):
        return [(str(k), v) for k, v in section.items()]
    if isinstance(section, list):
        return [(str(i), v) for i, v in enumerate(section)]
    return []
