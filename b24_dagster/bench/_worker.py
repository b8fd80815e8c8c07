"""One client run in its own process: ``python -m b24_dagster.bench._worker SPEC.json``.

The spec names the client and the task; the result (the adapter's figures plus this
process's CPU seconds from ``getrusage(RUSAGE_SELF)`` and its peak memory, start-up and
imports included) is written as JSON to ``spec["result_file"]``. Only the chosen client's
module is imported, so each process pays for its own library and nothing else.

Peak memory is ``VmHWM`` of ``/proc/self/status``: on Linux ``ru_maxrss`` also keeps the
high-water mark of the address space the process had before ``exec`` (the harness's, which
holds the emulator and its million deals), so it would charge the harness to every client.
``ru_maxrss`` is kept in the raw figures beside it.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
import traceback
from typing import Any

__all__ = ["ADAPTERS", "main"]

#: client name -> module with ``run(spec) -> dict``.
ADAPTERS = {
    "b24-dagster": "b24_dagster.bench._client_ours",
    "b24-dagster bulk": "b24_dagster.bench._client_ours",
    "b24-dagster+dagster": "b24_dagster.bench._client_dagster",
    "fast_bitrix24": "b24_dagster.bench._client_fast",
    "b24pysdk": "b24_dagster.bench._client_b24pysdk",
    "b24-dagster sync": "b24_dagster.bench._client_sync",
    "b24-dagster sync (checked)": "b24_dagster.bench._client_sync",
}


def peak_rss_mb() -> float | None:
    """``VmHWM`` (peak resident set of this process image) in MiB, where Linux gives it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def main(argv: list[str]) -> int:
    """Run the spec in ``argv[0]``; the exit code is 0 even when the client failed."""
    with open(argv[0], encoding="utf-8") as fh:
        spec: dict[str, Any] = json.load(fh)
    started = time.perf_counter()
    result: dict[str, Any]
    try:
        module = importlib.import_module(ADAPTERS[spec["client"]])
        result = module.run(spec)
    except Exception as exc:  # a client that fails is a result, not a crash of the bench
        result = {"error": f"{type(exc).__name__}: {exc}"[:500],
                  "traceback": traceback.format_exc()[-2000:]}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    result["ru_maxrss_mb"] = usage.ru_maxrss / 1024
    peak = peak_rss_mb()
    result["maxrss_mb"] = result["ru_maxrss_mb"] if peak is None else peak
    result["process_s"] = time.perf_counter() - started
    with open(spec["result_file"], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
