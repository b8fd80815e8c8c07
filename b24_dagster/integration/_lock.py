"""One execution per write asset and partition at a time: a lock beside the results.

Two executions of one asset at once would both plan the same creates and send them twice.
The lock lives in the sync folder of the results file (`_sync_state.sync_folder`):

- on a local disk, an advisory `flock` on the lock file: the kernel releases it when the
  holder dies, however it dies (SIGKILL included), so a crash never leaves it held;
- on object storage (no locks there), a lease object: written with a random token, read
  back to confirm the token is ours, refreshed as the run goes on, and taken over when older
  than `lease_seconds` (a holder that died stops refreshing it), or at once when its holder
  ran on this host and its process is gone.

The second execution waits up to `wait_seconds` for the first, then fails with the holder's
run id, host and start time.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from typing import IO, Any

from upath import UPath

__all__ = ["LockHeldError", "StepLock"]

_POLL_SECONDS = 0.2


class LockHeldError(RuntimeError):
    """Another execution holds the lock (the message says which)."""


class StepLock:
    """The lock of one asset and partition (see the module docstring).

    Args:
        path: The lock file.
        owner: Who takes it (a run id), shown to the one that waits.
        wait_seconds: How long to wait for another holder before failing.
        lease_seconds: Object storage only: a lease not refreshed for this long is taken over.
    """

    def __init__(self, path: UPath, *, owner: str, wait_seconds: float = 0.0,
                 lease_seconds: float = 600.0) -> None:
        self.path = path
        self.wait_seconds = wait_seconds
        self.lease_seconds = lease_seconds
        self.token = secrets.token_hex(8)
        self.info = {"owner": owner, "host": socket.gethostname(), "pid": os.getpid(), "token": self.token}
        self._local = path.protocol in ("", "file", "local")
        self._handle: IO[str] | None = None
        self._refreshed = 0.0

    def __enter__(self) -> StepLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, waiting up to `wait_seconds`; raises `LockHeldError` after that."""
        with contextlib.suppress(Exception):  # object stores have no directories
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_seconds
        while not (self._try_local() if self._local else self._try_lease()):
            if time.monotonic() >= deadline:
                raise LockHeldError(self._held_message())
            time.sleep(_POLL_SECONDS)

    def refresh(self) -> None:
        """Keep a lease alive (a no-op on local disks; cheap: at most every lease/4 seconds)."""
        if self._local or time.monotonic() - self._refreshed < self.lease_seconds / 4:
            return
        self._write_lease()

    def release(self) -> None:
        """Give the lock up."""
        if self._local:
            if self._handle is not None:
                import fcntl

                fcntl.flock(self._handle, fcntl.LOCK_UN)
                self._handle.close()
                self._handle = None
            return
        with contextlib.suppress(Exception):
            if self._read().get("token") == self.token:
                self.path.unlink()

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
        handle.write(json.dumps({**self.info, "since": time.time()}))
        handle.flush()
        self._handle = handle
        return True

    def _try_lease(self) -> bool:
        held = self._read()
        fresh = held and time.time() - float(held.get("refreshed", 0)) < self.lease_seconds
        if fresh and not _holder_died(held):
            return held.get("token") == self.token
        self._write_lease()
        time.sleep(_POLL_SECONDS)  # a rival that wrote at the same moment: the last write wins
        return self._read().get("token") == self.token

    def _write_lease(self) -> None:
        now = time.time()
        since = self.info.get("since", now)
        self.info["since"] = since
        self.path.write_text(json.dumps({**self.info, "refreshed": now}))
        self._refreshed = time.monotonic()

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (FileNotFoundError, ValueError):
            return {}

    def _held_message(self) -> str:
        held = self._read()
        since = held.get("since")
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(since)) if since else "an unknown time"
        return (f"another execution of this asset and partition is running (run {held.get('owner', '?')} "
                f"on {held.get('host', '?')}, pid {held.get('pid', '?')}, since {when}); two at once "
                "would send the same writes twice. Wait for it to finish, or raise lock_wait_seconds.")  # fmt: skip


def _holder_died(held: dict[str, Any]) -> bool:
    """True when the lease was written on this host by a process that is gone (killed, even
    with SIGKILL): it can be taken over at once instead of after `lease_seconds`. A holder on
    another host cannot be checked, so its lease is waited out."""
    if held.get("host") != socket.gethostname() or not isinstance(held.get("pid"), int):
        return False
    if held["pid"] == os.getpid():
        return False
    try:
        os.kill(held["pid"], 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by another user
        return False
    return False
