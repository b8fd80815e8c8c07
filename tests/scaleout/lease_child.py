"""The child processes of `test_lease_s3.py`, each run against moto's S3 server.

    python -m tests.scaleout.lease_child hold <s3 url> <endpoint> <lease seconds> [<host>]
        take the lease, print "held", keep it (the heartbeat refreshes it) until killed;
        with <host>, the lease says it was taken on that host (another machine, as the
        rival sees it)

`race` is the body of each racing process (started with multiprocessing's spawn), `publish`
that of each publishing process (forked by multiprocessing's fork server, which imported
everything once): it publishes version 0 or 1 of a results file (`kind` = results) or of a
sync state (`kind` = state), and with `kill` = N SIGKILLs itself right after its Nth S3 call
answered (0: before the first).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from upath import UPath

ROWS = 120_000


def s3_path(url: str, endpoint: str) -> UPath:
    # small blocks: a results file goes up as a multipart upload of several parts
    return UPath(url, endpoint_url=endpoint, default_block_size=5 * 2**20)


def table(version: int) -> Any:
    """Version 0 or 1 of a results file: about 12 MB of Parquet, three row groups' worth."""
    import numpy as np
    import pyarrow as pa

    blob = np.random.default_rng(version).bytes(48 * ROWS).hex()  # incompressible: 2 parts of 5 MB
    noise = [blob[i * 96 : (i + 1) * 96] for i in range(ROWS)]
    return pa.table({"key": [f"v{version}-{i:07d}" for i in range(ROWS)], "noise": noise, "version": [version] * ROWS})


def hold(url: str, endpoint: str, lease: float, host: str | None) -> None:
    from b24_dagster.integration._lock import StepLock, _identity

    identity = None if host is None else {**_identity(), "host": host, "boot": None, "pidns": None}
    lock = StepLock(s3_path(url, endpoint), owner=f"holder-{os.getpid()}", lease_seconds=lease, identity=identity)
    lock.acquire()
    print("held", flush=True)
    while True:
        time.sleep(1)
        lock.check()


def publish(url: str, endpoint: str, kind: str, version: int, kill: int | None, report: str | None = None) -> None:
    from b24_dagster.integration._parquet import ParquetStreamWriter
    from b24_dagster.integration._sync_state import KeyState, SyncState

    path = s3_path(url, endpoint)
    calls: list[str] = []

    def after(event_name: str, **_: Any) -> None:
        calls.append(event_name.rpartition(".")[2])
        if kill is not None and len(calls) == kill:
            os.kill(os.getpid(), signal.SIGKILL)

    fs = path.fs
    fs.connect()
    fs.s3.meta.events.register("after-call.s3", after)
    if kill == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "results":
        data = table(version)
        with ParquetStreamWriter(path, data.schema) as writer:
            for start in range(0, data.num_rows, ROWS // 3):
                writer.write(data.slice(start, ROWS // 3))
    else:
        state = SyncState(path)  # its file: <url's folder>/.<name>.sync/state.parquet
        state.keys = {f"K{i:05d}": KeyState(i + version * 10_000, f"h{version}", "{}", "ok", 0, None, 1.0)
                      for i in range(2_000 + version * 10)}  # fmt: skip
        state.save()
    print("calls", " ".join(calls), flush=True)
    if report is not None:
        Path(report).write_text(" ".join(calls))


def race(endpoint: str, bucket: str, lease: float, rounds: int, holders: Any, peak: Any, done: Any,
         lost: Any, seed: int) -> None:  # fmt: skip
    """Take the lease, prove it ours, count holders, give it up; until `rounds` rounds were
    done by all. Every S3 request of this process is delayed on its way out and on its way
    back: most by a few milliseconds, 1% by 0.1-0.4 s (writes landing late)."""
    from b24_dagster.integration._lock import StepLock

    rng = random.Random(seed)
    path = UPath(f"s3://{bucket}/.locks/race", endpoint_url=endpoint)

    async def late(**_: Any) -> None:
        await asyncio.sleep(rng.uniform(0.1, 0.4) if rng.random() < 0.01 else rng.uniform(0, 0.002))

    def refused(http_response: Any = None, **_: Any) -> None:
        if getattr(http_response, "status_code", 200) in (409, 412):
            with lost.get_lock():
                lost.value += 1

    fs = path.fs
    fs.connect()
    fs.s3.meta.events.register("before-send.s3", late)
    fs.s3.meta.events.register("after-call.s3", late)
    fs.s3.meta.events.register("after-call.s3", refused)
    while done.value < rounds:
        lock = StepLock(path, owner=f"racer-{seed}", wait_seconds=300, lease_seconds=lease, poll_seconds=0.3)
        lock.acquire()
        try:
            lock.check()  # what a step does before each write
            with holders.get_lock():
                holders.value += 1
                peak.value = max(peak.value, holders.value)
            time.sleep(rng.uniform(0, 0.003))
            with holders.get_lock():
                holders.value -= 1
            with done.get_lock():
                done.value += 1
        finally:
            lock.release()


def main(argv: list[str]) -> None:
    command, url, endpoint, *rest = argv
    if command == "hold":
        hold(url, endpoint, float(rest[0]), rest[1] if len(rest) > 1 else None)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
