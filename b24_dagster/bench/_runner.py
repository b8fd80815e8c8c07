"""Run the scenarios: each client in its own process, alternating clients, repeated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._portal_host import BenchPortal
from ._scenarios import Scenario, bucket_minimum, budget_minimum, requests_minimum
from ._workload import EXPORT_SELECT

__all__ = ["RunRecord", "run_scenario"]


@dataclass(slots=True)
class RunRecord:
    """One client's run of one scenario: what the client process and the portal measured."""

    scenario: str
    client: str
    repeat: int
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _timeout(s: Scenario) -> float:
    """A generous bound on one run (a client that hangs must not hang the benchmark)."""
    seconds = 120.0 + s.n * (0.006 if s.task == "sync" else 0.002) + s.seed_deals * 0.00012
    if s.rate > 0:
        seconds += 4 * bucket_minimum(s.requests_minimum, s.rate, s.burst)
    if s.operating_limit:
        seconds += 2 * (s.operating_window or 600) * (s.operating_seconds / s.operating_limit + 1)
    return seconds


def _portal_metrics(portal: BenchPortal, s: Scenario, tag: str) -> dict[str, Any]:
    snap = portal.snapshot()
    out: dict[str, Any] = {"requests": snap.stats.get("requests", 0),
                           "refused": snap.stats.get("refused_503", 0),
                           "blocked": snap.stats.get("blocked_429", 0),
                           "server_s": snap.server_s, "slowest_answer_s": snap.slowest_s}
    if snap.faults:
        out["faults_injected"] = sum(snap.faults.values())
        out["faults"] = snap.faults
    if s.task in ("writes", "pipeline", "sync"):
        titles = portal.title_counts(f"{tag}-")
        out["created"] = sum(titles.values())
        out["duplicated"] = sum(c - 1 for c in titles.values() if c > 1)
        out["lost"] = s.n - len(titles)
    return out


def _one_run(portal: BenchPortal, s: Scenario, client: str, repeat: int, workdir: Path,
             env: dict[str, str], commands: dict[str, list[str]]) -> RunRecord:
    tag = f"b{uuid.uuid4().hex[:8]}"
    portal.prepare(rate=s.rate, burst=s.burst, seed_deals=s.seed_deals,
                   fault_rate=s.fault_rate, fault_seed=repeat)
    if s.task == "sync":  # what a sync sends, not the operating budget (issue 14's scenario)
        portal.emulator.configure(command_cost=0.0, write_cost=0.0)
    costs = {k: v for k in ("write_cost", "import_cost", "operating_limit", "operating_window")
             if (v := getattr(s, k)) is not None}
    if costs:
        portal.emulator.configure(**costs)
    run_dir = workdir / f"{s.key}-{client}-{repeat}"
    run_dir.mkdir(parents=True, exist_ok=True)
    spec = {"client": client, "task": s.task, "url": portal.url, "tag": tag, "n": s.n,
            "rate": s.rate, "burst": s.burst, "select": EXPORT_SELECT, "out_dir": str(run_dir),
            "operating_limit": s.operating_limit,
            "result_file": str(run_dir / "result.json")}
    (run_dir / "spec.json").write_text(json.dumps(spec))
    record = RunRecord(s.key, client, repeat)
    started = time.perf_counter()
    try:
        command = commands.get(client, [sys.executable, "-m", "b24_dagster.bench._worker"])
        proc = subprocess.run(
            [*command, str(run_dir / "spec.json")],
            env=env, cwd=run_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=_timeout(s), check=False)
    except subprocess.TimeoutExpired:
        record.error = f"timed out after {_timeout(s):.0f} s"
        record.metrics.update(_portal_metrics(portal, s, tag))
        return record
    record.metrics["elapsed_s"] = time.perf_counter() - started
    result_file = run_dir / "result.json"
    if not result_file.exists():
        tail = proc.stdout.decode(errors="replace")[-800:]
        record.error = f"the client process exited with {proc.returncode}: {tail}"
        return record
    result: dict[str, Any] = json.loads(result_file.read_text())
    result.pop("traceback", None)
    record.error = result.pop("error", None)
    record.metrics.update(result)
    record.metrics.update(_portal_metrics(portal, s, tag))
    if s.task == "writes" and s.n:
        record.metrics["cpu_us_per_command"] = record.metrics["cpu_s"] / s.n * 1e6
    if s.task == "export" and s.seed_deals:
        record.metrics["cpu_us_per_row"] = record.metrics["cpu_s"] / s.seed_deals * 1e6
        record.metrics["rows_exact"] = (record.metrics.get("unique") == s.seed_deals
                                        and record.metrics.get("repeated") == 0)
    if s.rate > 0 and "wall_s" in record.metrics:
        minimum = bucket_minimum(requests_minimum(s, client), s.rate, s.burst)
        record.metrics["bucket_minimum_s"] = minimum
        if minimum > 0:
            record.metrics["wall_over_minimum"] = record.metrics["wall_s"] / minimum
    if s.operating_limit and "wall_s" in record.metrics and "started_unix" in record.metrics:
        minimum = budget_minimum(s.operating_seconds, s.operating_limit, s.operating_window or 600,
                                 record.metrics["started_unix"])
        record.metrics["budget_minimum_s"] = minimum
        if minimum > 0:
            record.metrics["wall_over_budget_minimum"] = record.metrics["wall_s"] / minimum
    return record


def run_scenario(portal: BenchPortal, s: Scenario, *, repeat: int, workdir: Path,
                 log: Callable[[str], None],
                 commands: dict[str, list[str]] | None = None,
                 profile_dir: Path | None = None) -> list[RunRecord]:
    """Run ``s`` ``repeat`` times for each client, alternating clients within each round.

    ``commands`` maps a client that is not a Python worker (the JS SDK) to the command that
    runs one spec file. With ``profile_dir``, one more run of this project's client (not
    counted) is made under pyinstrument and its text profile written there.
    """
    env = dict(os.environ)
    env.update(REQUESTS_CA_BUNDLE=portal.ca_file, SSL_CERT_FILE=portal.ca_file,
               NODE_EXTRA_CA_CERTS=portal.ca_file, PYTHONUNBUFFERED="1", TQDM_DISABLE="1")
    records = []
    for r in range(repeat):
        for client in s.clients:
            rec = _one_run(portal, s, client, r, workdir, env, commands or {})
            m = rec.metrics
            brief = ", ".join(f"{k}={m[k]:.3g}" if isinstance(m.get(k), float) else f"{k}={m[k]}"
                              for k in ("wall_s", "cpu_s", "maxrss_mb", "requests", "refused",
                                        "duplicated", "lost", "rows") if k in m)
            log(f"  [{s.key}] {client} #{r + 1}: {brief}" + (f"  ERROR {rec.error}" if rec.error
                                                              else ""))
            records.append(rec)
    if profile_dir is not None and s.clients:
        client = s.clients[0]
        out = profile_dir / f"profile-{s.key}-{client}.txt"
        profiler = [sys.executable, "-m", "pyinstrument", "-r", "text", "-o", str(out),
                    "-m", "b24_dagster.bench._worker"]
        rec = _one_run(portal, s, client, repeat, workdir, env, {client: profiler})
        log(f"  [{s.key}] {client} profiled (not counted): {out}"
            + (f"  ERROR {rec.error}" if rec.error else ""))
    return records
