"""The lease lock of object storage (`_lock.StepLock` on a non-local path; fsspec's memory
filesystem stands in for S3 here, moto's real endpoint in `tests/scaleout/test_s3_storage.py`)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from upath import UPath

from b24_dagster.integration._lock import LockHeldError, StepLock


def _lease(path: UPath, **fields: object) -> None:
    path.write_text(json.dumps({"owner": "run-1", "token": "t0", "since": time.time(),
                                "refreshed": time.time(), **fields}))  # fmt: skip


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lease_of_a_process_gone_from_this_host_is_taken_over_at_once(tmp_path) -> None:
    path = UPath(f"memory://{tmp_path.name}/dead/lock")
    _lease(path, host=socket.gethostname(), pid=_dead_pid())
    with StepLock(path, owner="run-2") as lock:
        assert json.loads(path.read_text())["token"] == lock.token


def test_a_fresh_lease_of_a_live_or_remote_holder_is_waited_for(tmp_path) -> None:
    for name, host, pid in (("live", socket.gethostname(), None), ("remote", "another-host", _dead_pid())):
        path = UPath(f"memory://{tmp_path.name}/{name}/lock")
        holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            _lease(path, host=host, pid=pid or holder.pid)
            with pytest.raises(LockHeldError, match="run-1"):
                StepLock(path, owner="run-2").acquire()
        finally:
            holder.kill()
            holder.wait()
