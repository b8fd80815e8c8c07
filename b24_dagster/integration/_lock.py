"""Locks of the write steps: a `flock` on local disks, a lease on object storage.

Two executions writing the same records at once would both plan the same creates and send
them twice. A write step therefore holds, while it runs, the lock of its asset and partition
(its results, state and journal) and the lock of each key space it writes (`_key_space`):

- on a local disk (or NFS), an advisory `flock` on the lock file: the kernel releases it
  when the holder dies, however it dies (SIGKILL included), so a crash never leaves it held;
- on object storage, a lease object taken with a conditional create (`If-None-Match: *`),
  refreshed and released with `If-Match: <etag>` (`_lease_store`): of two writers racing on
  one version exactly one wins. A heartbeat thread refreshes the lease every
  `lease_seconds / 6`, on its own schedule (a chunk may wait minutes for the portal's
  limits). The holder may send only while its lease is provably its own (`check()`, called
  right before each write leaves): its last successful write is younger than `lease_seconds`
  less a margin (`margin_seconds`: the clock difference allowed between hosts, and the
  moment between the check and the send); a refresh that finds the lease taken over ends it
  at once. A rival takes a lease over by a conditional write on the version it read: at once
  when the holder ran on this host (same hostname, boot and pid namespace) and its process
  is gone (its pid ended, or was reused by a process started later), otherwise once the lease
  expired (`expires`, the holder's clock + `lease_seconds`, is past on the rival's clock).

A second execution waits up to `wait_seconds` for the holder, saying so in the log, then
fails naming it (run id, asset, partition, host, pid, since when).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import IO, Any

from upath import UPath

from b24_dagster.integration._lease_store import (
    ConditionalObject,
    UnsupportedStore,
    conditional_object,
)

__all__ = ["LeaseLost", "LockHeldError", "StepLock", "UnsupportedStore", "WriteLocks"]

_LOCAL_POLL = 0.2
_LOG_EVERY = 30.0


def _clock() -> float:
    """Seconds that keep counting while the machine or the process is suspended (a paused
    holder must not believe its lease younger than it is)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


class LockHeldError(RuntimeError):
    """Another execution holds the lock (the message says which)."""


class LeaseLost(RuntimeError):
    """The lease can no longer be proven ours: nothing more may be sent."""


class StepLock:
    """One lock (see the module docstring).

    Args:
        path: The lock file (local) or lease object (object storage).
        owner: Who takes it (a run id), shown to the one that waits.
        what: What it guards, for messages ("this asset and partition", a key space).
        about: More about the holder, written into the lock (asset, partition, key space).
        wait_seconds: How long to wait for another holder before failing.
        lease_seconds: Object storage: how long a lease lasts without a refresh.
        margin_seconds: Object storage: stop sending this long before the lease would end
            (clock difference between hosts, plus check-to-send); default `lease_seconds / 20`,
            at most 30 s.
        poll_seconds: How often a waiting execution tries again.
        log: Called with a line while waiting.
        identity: Replaces this process's host identity (tests simulate another host).
    """

    def __init__(self, path: UPath, *, owner: str, what: str = "this asset and partition",
                 about: dict[str, Any] | None = None, wait_seconds: float = 0.0,
                 lease_seconds: float = 600.0, margin_seconds: float | None = None,
                 poll_seconds: float | None = None, log: Callable[[str], Any] | None = None,
                 identity: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.path = path
        self.what = what
        self.wait_seconds = wait_seconds
        self.lease_seconds = float(lease_seconds)
        self.margin_seconds = min(30.0, self.lease_seconds / 20) if margin_seconds is None else margin_seconds
        self.token = secrets.token_hex(8)
        self.info = {"owner": owner, **(about or {}), "what": what, **(identity or _identity()),
                     "token": self.token}  # fmt: skip
        self._local = path.protocol in ("", "file", "local")
        self._poll = poll_seconds if poll_seconds is not None else (_LOCAL_POLL if self._local else 1.0)
        self._log = log
        self._handle: IO[str] | None = None
        self._object: ConditionalObject | None = None
        self._version: str | None = None
        self._held_until = 0.0
        self._lost: str | None = None
        self._since: float | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._mutex = threading.Lock()

    def __enter__(self) -> StepLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- taking, keeping, giving up --------------------------------------------------------

    def acquire(self) -> None:
        """Take the lock, waiting up to `wait_seconds`; raises `LockHeldError` after that."""
        if self._local:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif self._object is None:  # object stores have no directories
            self._object = conditional_object(self.path)
        started = time.monotonic()
        logged = -_LOG_EVERY
        while not (self._try_local() if self._local else self._try_lease()):
            waited = time.monotonic() - started
            if waited >= self.wait_seconds:
                raise LockHeldError(self._held_message())
            if self._log is not None and waited - logged >= _LOG_EVERY:
                logged = waited
                self._log(f"waiting for the lock of {self.what}: held by {self._holder_text(self._read())}; "
                          f"{self.wait_seconds - waited:.0f} s left of lock_wait_seconds")  # fmt: skip
            time.sleep(min(self._poll, max(0.01, self.wait_seconds - waited)))
        if not self._local:
            self._beat = threading.Thread(target=self._heartbeat, name=f"b24-lease-{self.token}", daemon=True)
            self._beat.start()

    def check(self) -> None:
        """Raise `LeaseLost` unless the lock is provably still ours for `margin_seconds` more."""
        if self._local:
            return  # a flock is held until its holder dies
        with self._mutex:
            lost, left = self._lost, self._held_until - _clock() - self.margin_seconds
        if lost is not None:
            raise LeaseLost(f"the lease of {self.what} was {lost}: stopped before sending more")
        if left <= 0:
            raise LeaseLost(
                f"the lease of {self.what} could not be refreshed for {self.lease_seconds + left:.0f} s "
                f"(of {self.lease_seconds:.0f}) and may be taken over: stopped before sending more")

    def refresh(self) -> None:
        """Kept for callers of older versions: the heartbeat thread refreshes on its own."""

    def release(self) -> None:
        """Give the lock up (a lease that was taken over is left to its new holder)."""
        if self._local:
            if self._handle is not None:
                import fcntl

                fcntl.flock(self._handle, fcntl.LOCK_UN)
                self._handle.close()
                self._handle = None
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=30)
            self._beat = None
        with self._mutex:
            version, self._version = self._version, None
        if version is not None and self._object is not None and self._lost is None:
            with contextlib.suppress(Exception):
                self._object.replace(self._body(released=True), version)

    # -- local disk ----------------------------------------------------------------------

    def _try_local(self) -> bool:
        import fcntl

        handle = open(self.path.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({**self.info, "since": time.time()}, indent=1))
        handle.flush()
        self._handle = handle
        return True

    # -- object storage ------------------------------------------------------------------

    def _body(self, *, released: bool = False) -> bytes:
        now = time.time()
        body = {**self.info, "since": self._since or now, "refreshed": now, "lease_seconds": self.lease_seconds,
                "expires": 0.0 if released else now + self.lease_seconds, "released": released,
                "nonce": secrets.token_hex(6)}  # fmt: skip
        return json.dumps(body, indent=1).encode()

    def _try_lease(self) -> bool:
        assert self._object is not None
        current = self._object.read()
        started = _clock()
        body = self._body()
        if current is None:
            version = self._object.create(body)
        else:
            held = _parse(current[0])
            if not _free(held, self.lease_seconds):
                return False
            version = self._object.replace(body, current[1])
        version = version or self._landed(body)
        if version is None:
            return False  # a rival's write won
        with self._mutex:
            self._version, self._held_until, self._lost = version, started + self.lease_seconds, None
            self._since = _parse(body)["since"]
        self._stop.clear()
        return True

    def _landed(self, body: bytes) -> str | None:
        """The version of our write when it landed after all (a retried request was refused
        because its first attempt had already written)."""
        assert self._object is not None
        with contextlib.suppress(Exception):
            current = self._object.read()
            if current is not None and current[0] == body:
                return current[1]
        return None

    def _heartbeat(self) -> None:
        every, retry = self.lease_seconds / 6, max(0.05, self.lease_seconds / 30)
        wait = every
        while not self._stop.wait(wait):
            try:
                wait = every if self._refresh() else retry
            except Exception:  # the store did not answer: try again soon; check() counts down
                wait = retry
            if self._lost is not None:
                return

    def _refresh(self) -> bool:
        assert self._object is not None
        with self._mutex:
            version = self._version
        if version is None:
            return False
        started = _clock()
        body = self._body()
        new = self._object.replace(body, version) or self._landed(body)
        with self._mutex:
            if new is not None:
                self._version, self._held_until = new, started + self.lease_seconds
                return True
            holder = self._read()
            self._lost = f"taken over by {self._holder_text(holder)}" if holder else "removed"
        return False

    def _read(self) -> dict[str, Any]:
        if self._local:
            try:
                return json.loads(open(self.path.path, encoding="utf-8").read() or "{}")  # noqa: SIM115
            except (OSError, ValueError):
                return {}
        with contextlib.suppress(Exception):
            assert self._object is not None
            current = self._object.read()
            return _parse(current[0]) if current is not None else {}
        return {}

    # -- messages ------------------------------------------------------------------------

    @staticmethod
    def _holder_text(held: dict[str, Any]) -> str:
        """Who holds it: `run <id>, asset <key>, partition <key>, on <host>, pid <n>, since <t>`."""
        if not held:
            return "an execution that left no description"
        since = held.get("since")
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if since else "an unknown time"
        where = "".join(f", {k} {held[k]}" for k in ("asset", "partition") if held.get(k) not in (None, ""))
        return f"run {held.get('owner', '?')}{where}, on {held.get('host', '?')}, pid {held.get('pid', '?')}, since {when}"

    def _held_message(self) -> str:
        held = self._holder_text(self._read())
        if self.what == "this asset and partition":
            head = f"another execution of this asset and partition is running ({held})"
        else:
            head = f"another execution is writing {self.what} ({held})"
        return (f"{head}; two at once could write the same records twice. Wait for it to finish, "
                f"or raise lock_wait_seconds (waited {self.wait_seconds:g} s).")  # fmt: skip


class WriteLocks:
    """The locks of one write step, taken in a fixed order (so two steps never wait on each
    other in a circle) within one `wait_seconds`, and checked together before each write."""

    def __init__(self, locks: list[StepLock], *, wait_seconds: float = 0.0) -> None:
        self.locks = locks
        self.wait_seconds = wait_seconds

    def acquire(self) -> None:
        """Take every lock; on failure, give back those taken and raise."""
        deadline = time.monotonic() + self.wait_seconds
        taken: list[StepLock] = []
        try:
            for lock in self.locks:
                lock.wait_seconds = max(0.0, deadline - time.monotonic())
                lock.acquire()
                taken.append(lock)
        except BaseException:
            for lock in reversed(taken):
                lock.release()
            raise

    def check(self) -> None:
        """Raise `LeaseLost` when any lease is no longer provably ours."""
        for lock in self.locks:
            lock.check()

    def release(self) -> None:
        """Give every lock up."""
        for lock in reversed(self.locks):
            with contextlib.suppress(Exception):
                lock.release()

    def __enter__(self) -> WriteLocks:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _parse(data: bytes) -> dict[str, Any]:
    try:
        held = json.loads(data or b"{}")
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


def _free(held: dict[str, Any], lease_seconds: float) -> bool:
    """Whether a lease read from the store may be taken over now."""
    if not held or held.get("released"):
        return True
    expires = held.get("expires")
    if expires is None:  # written by an older version: refreshed + our lease
        expires = float(held.get("refreshed", 0)) + lease_seconds
    return time.time() > float(expires) or _holder_gone(held)


def _identity() -> dict[str, Any]:
    """Who holds a lock: host, boot, pid namespace, pid and the pid's start (see `_holder_gone`)."""
    return {"host": socket.gethostname(), "boot": _boot_id(), "pidns": _pid_namespace(),
            "pid": os.getpid(), "pid_start": _process_start(os.getpid())}  # fmt: skip


def _holder_gone(held: dict[str, Any]) -> bool:
    """True when the holder ran on this host and its process is gone (killed, even with
    SIGKILL), so its lease can be taken over at once. Same host means the same hostname,
    kernel boot and pid namespace (two containers may share a hostname or a kernel); a
    holder elsewhere cannot be checked, and its lease is waited out."""
    me = _identity()
    if any(held.get(k) != me[k] for k in ("host", "boot", "pidns") if k in held or k == "host"):
        return False
    pid = held.get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        pass
    stat = _process_stat(pid)
    if stat is not None and stat[0] == "Z":  # killed, not yet reaped by its parent
        return True
    started = held.get("pid_start")
    return started is not None and _process_start(pid) not in (None, started)  # the pid was reused


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _boot_id() -> str | None:
    return _read_text("/proc/sys/kernel/random/boot_id")


def _pid_namespace() -> str | None:
    with contextlib.suppress(OSError):
        return os.readlink("/proc/self/ns/pid")
    return None


def _process_stat(pid: int) -> list[str] | None:
    """The fields of `/proc/<pid>/stat` after the command name (state first; Linux)."""
    text = _read_text(f"/proc/{pid}/stat")
    return text.rpartition(")")[2].split() if text else None


def _process_start(pid: int) -> int | None:
    """The start time of a process (clock ticks since boot), None where unknown."""
    stat = _process_stat(pid)
    with contextlib.suppress(IndexError, ValueError, TypeError):
        return int(stat[19])  # type: ignore[index]
    return None
