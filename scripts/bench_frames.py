"""Time DataFrame -> commands on a million mixed rows, and report peak memory.

Usage::

    .venv/bin/python scripts/bench_frames.py [--rows 1000000] [--repeat 3]

Eight columns of the kinds a CRM import carries: str, int, nullable int, float with NaN,
tz-aware Timestamp, bool (sent as Y/N), category, and a phone (string wrapped into the
multi-field list). Peak memory is the process's peak resident set (VmHWM), read before the
DataFrame is built, after it is built, and after the commands are built.
"""

from __future__ import annotations

import argparse
import gc
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from b24_dagster.frames import commands_from_frame


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def make_frame(n: int) -> pd.DataFrame:
    """``n`` rows of eight mixed columns, with nulls where real data has them."""
    rng = np.random.default_rng(42)
    i = np.arange(n)
    return pd.DataFrame({
        "source_id": pd.Series([f"src-{k}" for k in range(n)], dtype="str"),
        "title": pd.Series([f"Lead #{k}" for k in range(n)], dtype="str"),
        "assigned": (i % 10 + 1).astype(np.int64),
        "company": pd.array(np.where(i % 4 == 0, None, i % 1000 + 1), dtype="Int64"),
        "opportunity": np.where(i % 5 == 0, np.nan, np.round(rng.random(n) * 10_000, 2)),
        "created": pd.Series(pd.date_range("2024-01-01", periods=n, freq="37s",
                                           tz="Europe/Berlin")),
        "opened": i % 3 != 0,
        "stage": pd.Categorical(np.array(["NEW", "IN_PROCESS", "PROCESSED", "JUNK"])[i % 4]),
        "phone": pd.Series([f"+49 30 {k:07d}" for k in range(n)], dtype="str"),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--block-rows", type=int, default=None,
                        help="build lazily, this many rows at a time, and time one full pass "
                             "over the commands as well")
    args = parser.parse_args()

    base = peak_rss_mb()
    df = make_frame(args.rows)
    with_frame = peak_rss_mb()
    fields = {"title": "TITLE", "assigned": "ASSIGNED_BY_ID", "company": "COMPANY_ID",
              "opportunity": "OPPORTUNITY", "created": "BEGINDATE", "opened": "OPENED",
              "stage": "STATUS_ID", "phone": "PHONE"}
    times = []
    for _ in range(args.repeat):
        gc.collect()
        start = time.perf_counter()
        commands = commands_from_frame(df, "crm.lead.add", fields=fields, key_column="source_id",
                                       field_types={"OPENED": {"type": "char"}},
                                       block_rows=args.block_rows)
        if args.block_rows is not None:
            for _ in commands.calls:
                pass
        times.append(time.perf_counter() - start)
        peak = peak_rss_mb()
        if len(times) < args.repeat:
            del commands
    mode = "one list" if args.block_rows is None else (
        f"lazy blocks of {args.block_rows:,} (check pass + one full iteration)")
    print(f"python {platform.python_version()}, pandas {pd.__version__}, "
          f"{args.rows:,} rows x {len(fields)} fields + key, {mode}")
    print(f"commands_from_frame: best {min(times):.2f} s, runs "
          + ", ".join(f"{t:.2f}" for t in times)
          + f" ({args.rows / min(times):,.0f} rows/s)")
    print(f"peak RSS: {base:.0f} MiB at start, {with_frame:.0f} MiB with the DataFrame, "
          f"{peak:.0f} MiB with the commands (+{peak - with_frame:.0f} MiB)")
    print("first command:", commands.calls[0])


if __name__ == "__main__":
    main()
