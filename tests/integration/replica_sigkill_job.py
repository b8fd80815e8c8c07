"""Run the deals replica once (with history) against `BITRIX24_WEBHOOK_URL`, files under
`REPLICA_DIR`, and SIGKILL this process at the point `KILL_AT` names.

`KILL_AT` is `<event>:<n>`: the n-th (1-based) occurrence of

- `send`: a request, before it is sent;
- `answer`: a request, after the portal answered it and before the answer is used (the
  portal did its work; the run never learns it);
- `write`: a row group written to a temporary Parquet file;
- `close`: a file about to be renamed into place (its temporary file is complete);
- `closed`: a file just renamed into place;
- `link`: the replaced version about to be kept.

Run by `test_replica_sigkill.py`; the library code is not changed, only wrapped here.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from upath import UPath

from b24_dagster import Bitrix24Client
from b24_dagster.integration import _replica_run
from b24_dagster.integration._parquet import ParquetStreamWriter
from b24_dagster.integration._replica_entities import replica_entity
from b24_dagster.integration._replica_run import ReplicaPaths, ReplicaRun, ReplicaSpec

SELECT = ("ID", "TITLE", "STAGE_ID", "OPPORTUNITY", "ASSIGNED_BY_ID", "DATE_MODIFY")
SPEC = ReplicaSpec(replica_entity("deal"), SELECT, history=True)


def paths(folder: Path) -> ReplicaPaths:
    """The replica's files under `folder`."""
    base = UPath(folder)
    return ReplicaPaths(base / "deals.parquet", base / "versions", base / "deals_history.parquet",
                        base / "deals_stage_history.parquet")


def instrument(setter: Callable[[Any, str, Any], None], hit: Callable[[str], None]) -> None:
    """Call `hit(event)` at each event of a run (`setter` installs each wrapper)."""
    def wrap(owner: Any, attr: str, before: str | None, after: str | None) -> None:
        original = getattr(owner, attr)

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if before:
                hit(before)
            result = original(*args, **kwargs)
            if after:
                hit(after)
            return result

        setter(owner, attr, wrapped)

    wrap(Bitrix24Client, "_request", "send", "answer")
    wrap(ParquetStreamWriter, "write", "write", None)
    wrap(ParquetStreamWriter, "close", "close", "closed")
    wrap(_replica_run, "keep_version", "link", None)   # the name the run calls


def main() -> int:
    event, _, nth = os.environ["KILL_AT"].partition(":")
    target = int(nth or 0)
    seen: Counter[str] = Counter()

    def hit(name: str) -> None:
        seen[name] += 1
        if name == event and seen[name] == target:
            os.kill(os.getpid(), signal.SIGKILL)

    instrument(setattr, hit)
    with Bitrix24Client(os.environ["BITRIX24_WEBHOOK_URL"], requests_per_second=None, share_limits=False) as client:
        ReplicaRun(client, SPEC, paths(Path(os.environ["REPLICA_DIR"]))).execute()
    return 0


if __name__ == "__main__":
    sys.exit(main())
