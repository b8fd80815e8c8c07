"""Write a benchmark's results: ``latest.md``, ``latest.json`` and ``latest.png``.

Written again after every scenario, so that an interrupted run still leaves what it measured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._report import records_json, targets
from ._runner import RunRecord
from ._scenarios import Scenario, Sizes

__all__ = ["RunInfo", "write_outputs"]


@dataclass(slots=True)
class RunInfo:
    """What a benchmark run was: its command, machine, sizes and what it has measured so far."""

    command: str
    started: dt.datetime
    machine: dict[str, Any]
    sizes: Sizes
    repeat: int
    scenarios: list[Scenario]
    records: list[RunRecord] = field(default_factory=list)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _head(info: RunInfo, goals: list[str], done: bool) -> list[str]:
    m = info.machine
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    state = "" if done else " (in progress: the scenarios measured so far)"
    lines = [
        "# b24-dagster benchmark", "",
        f"`{info.command}`{state}",
        f"run {info.started:%Y-%m-%d %H:%M} UTC, {info.seconds:.0f} s in all.", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, Python "
        f"{m['python']}, load average at start {m['load_average_at_start']} (shared machine).",
        f"Versions: {versions}; JS SDK: {m.get('jssdk', 'not run')}.", "",
        "Every client talks https to the same emulator (`b24_dagster.emulator`, hosted by the "
        "harness, which runs no client); clients alternate within each round, each run in "
        "its own process. CPU seconds: `getrusage(RUSAGE_SELF)` of the client process, "
        "start-up and imports included. Peak MB: the client process's peak resident set "
        "(`VmHWM`). Wall time: the work itself (client construction included, imports "
        "not). Created, duplicated, lost, requests, refused: counted by the emulator.", "",
    ]
    if goals:
        lines += ["Targets (reported, not asserted):", ""] + [f"- {g}" for g in goals] + [""]
    return lines


def write_outputs(out: Path, info: RunInfo, *, done: bool) -> list[str]:
    """Write the three files into ``out``; returns the target lines."""
    goals = targets(info.results)
    report = "\n".join(_head(info, goals, done)) + "\n" + "\n".join(info.sections)
    (out / "latest.md").write_text(report, encoding="utf-8")
    (out / "latest.json").write_text(json.dumps({
        "command": info.command, "started": info.started.isoformat(), "complete": done,
        "seconds": info.seconds, "machine": info.machine,
        "sizes": dataclasses.asdict(info.sizes), "repeat": info.repeat,
        "scenarios": [dataclasses.asdict(s) for s in info.scenarios],
        "summary": info.results, "runs": records_json(info.records)}, indent=1, default=str))
    from ._chart import write_chart

    measured = [s for s in info.scenarios if s.key in info.results]
    if measured:
        # matplotlib is in the bench extra; the tables need nothing more
        with contextlib.suppress(ImportError):
            write_chart(out / "latest.png", measured, info.results,
                        f"b24-dagster vs peers, {info.started:%Y-%m-%d} "
                        f"({info.machine['cores']} cores)")
    return goals
