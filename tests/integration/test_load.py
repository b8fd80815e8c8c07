"""Memory stays flat: 100,000 commands through the batch asset vs 10,000 (run with `-m slow`).

Each size runs in a fresh Python process against an emulator in another process, and
reports commands/s and peak RSS: the child's `VmHWM`, since on Linux `ru_maxrss` of a
child started with fork+exec carries over the parent's peak (a pytest process that ran a
1M-row export before would make both sizes read the same ~930 MB).

    .venv/bin/python -m pytest tests/integration/test_load.py -m slow -s
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from b24_dagster.emulator import start_subprocess

CHILD = textwrap.dedent(
    """
    import json, os, re, sys, time
    import dagster as dg
    import pandas as pd
    from b24_dagster.integration import Bitrix24Resource, Bitrix24Storage, build_bitrix24_batch_asset

    n = int(sys.argv[1])
    frame = pd.DataFrame({"external_id": [f"L{i:07d}" for i in range(n)],
                          "title": [f"Lead {i}" for i in range(n)]})
    asset = build_bitrix24_batch_asset(name="load", method="crm.lead.add",
                                       source=lambda context: frame,
                                       fields={"title": "TITLE"}, key_column="external_id", sync="send")
    resources = {
        "bitrix24": Bitrix24Resource(webhook_url=dg.EnvVar("BITRIX24_WEBHOOK_URL"),
                                     requests_per_second=None, share_limits=False,
                                     operating_limit_seconds=1e9),
        "bitrix24_storage": Bitrix24Storage(),
    }
    started = time.perf_counter()
    result = dg.materialize([asset], resources=resources, instance=dg.DagsterInstance.ephemeral())
    elapsed = time.perf_counter() - started
    meta = result.asset_materializations_for_node("bitrix24__load")[0].metadata
    print(json.dumps({"n": n, "ok": meta["ok"].value, "rows": meta["dagster/row_count"].value,
                      "seconds": elapsed, "commands_per_second": meta["commands_per_second"].value,
                      "peak_rss_mb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024}))
    """
)


def _measure(n: int, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(n)], env=env, check=True,
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_of_100k_commands_within_50_mb_of_10k(tmp_path):
    # No rate limit and no operating-time budget: this measures our side, not the portal's.
    with start_subprocess(["--rate", "0", "--operating-limit", "1000000"]) as emulator:
        env = {**__import__("os").environ, "BITRIX24_WEBHOOK_URL": emulator.webhook_url,
               "B24_DAGSTER_BASE": str(tmp_path)}  # fmt: skip
        small = _measure(10_000, env)
        large = _measure(100_000, env)
    print(f"\n10k: {small}\n100k: {large}", flush=True)
    assert small["ok"] == small["rows"] == 10_000
    assert large["ok"] == large["rows"] == 100_000
    assert large["peak_rss_mb"] - small["peak_rss_mb"] < 50
