"""Aggregate the runs (median, min, max), compare with the best peer, write Markdown and JSON."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from ._runner import RunRecord
from ._scenarios import (
    OURS,
    OURS_BULK,
    OURS_DAGSTER,
    SYNC_CHECKED,
    SYNC_TRUSTED,
    Scenario,
    bucket_minimum,
    requests_minimum,
)

__all__ = ["COLUMNS", "aggregate", "markdown", "ratios", "targets"]

#: (metric, header, format) per task.
COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "writes": [("wall_s", "wall s", "{:.2f}"), ("wall_over_minimum", "× bucket min", "{:.3f}"),
               ("server_s", "emulator s", "{:.2f}"),
               ("cpu_s", "CPU s", "{:.2f}"), ("cpu_us_per_command", "CPU µs/cmd", "{:.1f}"),
               ("maxrss_mb", "peak MB", "{:.0f}"), ("requests", "requests", "{:.0f}"),
               ("refused", "refused", "{:.0f}"), ("created", "created", "{:.0f}"),
               ("failed", "failed", "{:.0f}"), ("unknown", "reported unknown", "{:.0f}"),
               ("faults_injected", "faults injected", "{:.0f}"),
               ("duplicated", "duplicated", "{:.0f}"), ("lost", "lost", "{:.0f}"),
               ("blocked", "blocked", "{:.0f}"), ("wall_over_budget_minimum", "× budget min", "{:.3f}"),
               ("throttle_wait_s", "waited on bucket s", "{:.1f}"),
               ("operating_wait_s", "waited on budget s", "{:.1f}")],
    "export": [("wall_s", "wall s", "{:.2f}"), ("server_s", "emulator s", "{:.2f}"),
               ("slowest_answer_s", "slowest answer s", "{:.2f}"),
               ("requests", "requests", "{:.0f}"),
               ("cpu_s", "CPU s", "{:.2f}"), ("cpu_us_per_row", "CPU µs/row", "{:.2f}"),
               ("maxrss_mb", "peak MB", "{:.0f}"), ("unique", "rows (distinct)", "{:.0f}"),
               ("repeated", "repeated", "{:.0f}")],
    "pipeline": [("wall_s", "wall s", "{:.2f}"), ("process_s", "process s (imports incl.)", "{:.2f}"),
                 ("cpu_s", "CPU s", "{:.2f}"),
                 ("maxrss_mb", "peak MB", "{:.0f}"), ("rows", "result rows", "{:.0f}"),
                 ("created", "created", "{:.0f}")],
    "sync": [("r1_requests", "run 1 requests", "{:.0f}"), ("r2_requests", "run 2 requests", "{:.0f}"),
             ("r3_requests", "run 3 requests", "{:.0f}"), ("r4_requests", "run 4 (state lost) requests", "{:.0f}"),
             ("r4_lookup_requests", "run 4 lookups", "{:.0f}"), ("r2_over_r1_requests", "run 2 ÷ run 1", "{:.2%}"),
             ("r1_writes", "run 1 writes", "{:.0f}"), ("r2_writes", "run 2 writes", "{:.0f}"),
             ("r3_writes", "run 3 writes", "{:.0f}"), ("r4_writes", "run 4 writes", "{:.0f}"),
             ("r1_wall_s", "run 1 s", "{:.1f}"), ("r2_wall_s", "run 2 s", "{:.1f}"), ("r3_wall_s", "run 3 s", "{:.1f}"),
             ("r4_wall_s", "run 4 s", "{:.1f}"),
             ("requests", "requests (portal)", "{:.0f}"), ("created", "created", "{:.0f}"),
             ("duplicated", "duplicated", "{:.0f}")],
}


def aggregate(records: Sequence[RunRecord]) -> dict[str, dict[str, Any]]:
    """client -> metric -> {median, min, max, n} over that client's successful runs."""
    out: dict[str, dict[str, Any]] = {}
    for rec in records:
        slot = out.setdefault(rec.client, {"_errors": [], "_values": {}})
        if rec.error:
            slot["_errors"].append(rec.error)
        for key, value in rec.metrics.items():
            if isinstance(value, bool):
                value = int(value)
            if isinstance(value, int | float):
                slot["_values"].setdefault(key, []).append(float(value))
    for slot in out.values():
        values = slot.pop("_values")
        for key, vs in values.items():
            slot[key] = {"median": statistics.median(vs), "min": min(vs), "max": max(vs),
                         "n": len(vs)}
    return out


def _cell(stat: dict[str, Any] | None, fmt: str) -> str:
    if stat is None:
        return "–"
    med, lo, hi = (fmt.format(stat[k]) for k in ("median", "min", "max"))
    return med if lo == hi else f"{med} ({lo}–{hi})"


def _median(agg: dict[str, Any], client: str, metric: str) -> float | None:
    stat = agg.get(client, {}).get(metric)
    return None if stat is None else float(stat["median"])


def ratios(s: Scenario, agg: dict[str, Any]) -> list[str]:
    """Lines comparing this project with the best peer on wall time, CPU and memory."""
    peers = [p for p in s.clients if p not in (OURS, OURS_DAGSTER, OURS_BULK) and p in agg
             and not agg[p]["_errors"]
             and not (s.number >= 7 and (_median(agg, p, "lost") or 0) > 0)]  # a peer that did not do the work
    if OURS not in agg or not peers:
        return []
    lines = []
    cpu = {"writes": "cpu_us_per_command", "export": "cpu_us_per_row"}.get(s.task, "cpu_s")
    for metric, label in (("wall_s", "wall time"), (cpu, "CPU"), ("maxrss_mb", "peak memory")):
        mine = _median(agg, OURS, metric)
        theirs = {p: v for p in peers if (v := _median(agg, p, metric)) is not None}
        if mine is None or not theirs:
            continue
        best = min(theirs, key=lambda p: theirs[p])
        if theirs[best] > 0:
            lines.append(f"{label}: {mine / theirs[best]:.2f}× the best peer ({best})")
    return lines


def markdown(s: Scenario, agg: dict[str, Any], repeat: int) -> str:
    """One scenario as a Markdown section: a formula line, the table, the ratios."""
    limits = ("blocked", "throttle_wait_s", "operating_wait_s")  # the columns of issue 14's scenarios
    cols = [c for c in COLUMNS[s.task]
            if not (c[0] == "wall_over_minimum" and s.rate <= 0)
            and not (c[0] == "faults_injected" and s.fault_rate <= 0)
            and not (c[0] in limits and s.number < 7)
            and not (c[0] == "wall_over_budget_minimum" and not s.budget_bound)]
    lines = [f"### {s.key}. {s.title}", ""]
    if s.rate > 0:
        for per in dict.fromkeys(1000 if c == OURS_BULK else 50 for c in s.clients):
            needed = requests_minimum(s, OURS_BULK if per == 1000 else OURS)
            minimum = bucket_minimum(needed, s.rate, s.burst)
            lines += [f"Theoretical minimum{' (bulk import)' if per == 1000 else ''}: (requests − burst) / "
                      f"rate = ({needed} − {s.burst}) / {s.rate:g} = {minimum:.1f} s (ceil({s.n:,} / "
                      f"{per:,}) = {needed} requests, the bucket full at the start).", ""]
    if s.budget_bound:
        lines += [f"Operating time: {s.n:,} × {s.write_cost:g} s = {s.operating_seconds:g} s against a budget "
                  f"of {s.operating_limit:g} s per {s.operating_window} s: ceil({s.operating_seconds:g} / "
                  f"{s.operating_limit:g}) windows; the budget minimum of each run is counted from its start "
                  "to the last window's start.", ""]
    if s.task == "export":
        lines += [f"Fewest requests: ceil({s.seed_deals:,} / 2,500) = {s.requests_minimum}.", ""]
    lines.append("| client | " + " | ".join(h for _, h, _ in cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    for client in s.clients:
        slot = agg.get(client)
        if slot is None:
            lines.append(f"| {client} | " + " | ".join("not run" for _ in cols) + " |")
            continue
        cells = [_cell(slot.get(m), f) for m, _, f in cols]
        lines.append(f"| {client} | " + " | ".join(cells) + " |")
    errors = [(c, e) for c in s.clients for e in agg.get(c, {}).get("_errors", [])]
    lines.append("")
    lines.append(f"Median of {repeat} run(s) per client, (min–max) when they differ; clients "
                 "alternated within each round, each in its own process. Emulator s: the "
                 "emulator's own time answering (summed); requests: those that reached it.")
    if s.note:
        lines.append(f"- {s.note}")
    for client, err in dict.fromkeys(errors):
        lines.append(f"- {client} failed a run: {err}")
    if s.task == "pipeline":
        bare, dag = _median(agg, OURS, "wall_s"), _median(agg, OURS_DAGSTER, "wall_s")
        if bare is not None and dag is not None:
            lines.append(f"- Dagster overhead (median wall time, asset − bare client): "
                         f"{dag - bare:.2f} s")
        bare_p = _median(agg, OURS, "process_s")
        dag_p = _median(agg, OURS_DAGSTER, "process_s")
        if bare_p is not None and dag_p is not None:
            lines.append(f"- the same with the imports (whole process): {dag_p - bare_p:.2f} s")
    lines += [f"- {r}" for r in ratios(s, agg)]
    return "\n".join(lines) + "\n"


def targets(results: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's targets against what was measured (reported, never asserted)."""
    def med(key: str, client: str, metric: str) -> float | None:
        if results.get(key, {}).get(client, {}).get("_errors"):
            return None  # a failed run's partial figures are not the target's
        return _median(results.get(key, {}), client, metric)

    out = []
    if (x := med("1", OURS, "wall_over_minimum")) is not None:
        ref = med("1", OURS, "refused")
        out.append(f"S1 within 1.03× of the bucket minimum with zero refusals: {x:.3f}×, "
                   f"{ref:.0f} refused")
    mine, fast = med("2", OURS, "cpu_us_per_command"), med("2", "fast_bitrix24",
                                                           "cpu_us_per_command")
    if mine is not None and fast:
        out.append(f"S2 ≤ 0.5× fast_bitrix24's CPU/command: {mine:.1f} vs {fast:.1f} µs "
                   f"= {mine / fast:.2f}×")
    req, big, small = med("3", OURS, "requests"), med("3", OURS, "maxrss_mb"), \
        med("3-small", OURS, "maxrss_mb")
    if req is not None:
        out.append(f"S3 requests = minimum + constant: {req:.0f} requests")
    if big is not None and small is not None:
        out.append(f"S3 memory flat (1M within 50 MB of 10k): {big:.0f} MB vs {small:.0f} MB "
                   f"(+{big - small:.0f} MB)")
    mine, sdk = med("3", OURS, "cpu_us_per_row"), med("3", "b24pysdk", "cpu_us_per_row")
    if mine is not None and sdk:
        out.append(f"S3 CPU/row ≤ b24pysdk's (ours writes typed Parquet): {mine:.2f} vs "
                   f"{sdk:.2f} µs = {mine / sdk:.2f}×")
    bare, dag = med("4", OURS, "wall_s"), med("4", OURS_DAGSTER, "wall_s")
    if bare is not None and dag is not None:
        out.append(f"S4 Dagster overhead < 3 s: {dag - bare:.2f} s")
    dup, lost = med("5", OURS, "duplicated"), med("5", OURS, "lost")
    if dup is not None and lost is not None:
        out.append(f"S5 zero duplicated, zero lost: {dup:.0f} duplicated, {lost:.0f} lost")
    for client in (SYNC_TRUSTED, SYNC_CHECKED):
        share, writes3 = med("6", client, "r2_over_r1_requests"), med("6", client, "r3_writes")
        if share is not None and writes3 is not None:
            out.append(f"S6 ({client}) run 2 ≤ 3% of run 1's requests, run 3 no write: {share:.2%}, "
                       f"{writes3:.0f} writes")
        lost, writes4 = med("6", client, "r4_requests"), med("6", client, "r4_writes")
        if lost is not None and writes4 is not None:
            out.append(f"S6 ({client}) run 4, the state deleted: {lost:.0f} requests "
                       f"({med('6', client, 'r4_lookup_requests') or 0:.0f} lookups), {writes4:.0f} writes")
    add, bulk = med("7", OURS, "requests"), med("7", OURS_BULK, "requests")
    if add is not None and bulk is not None:
        out.append(f"S7 bulk import: {bulk:.0f} requests vs {add:.0f} with crm.item.add; wall "
                   f"{med('7', OURS_BULK, 'wall_s') or 0:.1f} s vs {med('7', OURS, 'wall_s') or 0:.1f} s; "
                   f"refused {med('7', OURS_BULK, 'refused') or 0:.0f}, duplicated "
                   f"{med('7', OURS_BULK, 'duplicated') or 0:.0f}, lost {med('7', OURS_BULK, 'lost') or 0:.0f}")
    if (x := med("8", OURS_BULK, "requests")) is not None:
        out.append(f"S8 bulk import at 2/s burst 50: {x:.0f} requests, wall {med('8', OURS_BULK, 'wall_s') or 0:.1f} s "
                   f"= {med('8', OURS_BULK, 'wall_over_minimum') or 0:.3f}× the bucket minimum")
    if (x := med("9", OURS, "blocked")) is not None:
        out.append(f"S9 the budget binds, never blocked: {x:.0f} blocked, wall "
                   f"{med('9', OURS, 'wall_over_budget_minimum') or 0:.3f}× the budget minimum")
    for key in ("1", "2", "3", "3-small", "5", "7", "8", "9"):
        errors = results.get(key, {}).get(OURS, {}).get("_errors")
        if errors:
            out.append(f"S{key}: b24-dagster failed a run, so its targets there are not "
                       f"measured: {errors[0][:160]}")
    return out


def records_json(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Every run, raw."""
    return [asdict(r) for r in records]
