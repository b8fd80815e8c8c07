"""``python -m b24_dagster.bench``: every scenario, every client, one emulator, one table.

Examples::

    python -m b24_dagster.bench                    # the default set, 3 runs each
    python -m b24_dagster.bench --scenario 1,2 --repeat 5
    python -m b24_dagster.bench --quick            # tiny sizes: a smoke run
    python -m b24_dagster.bench --full             # + the real standard plan (2/s, burst 50)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import importlib.util
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ._machine import machine_info
from ._outputs import RunInfo, write_outputs
from ._portal_host import BenchPortal
from ._report import aggregate, markdown
from ._runner import run_scenario
from ._scenarios import Sizes, build_scenarios

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m b24_dagster.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="1,2,3,4,5,6,7,8,9",
                   help="comma-separated scenario numbers (default: all, 1-9)")
    p.add_argument("--repeat", type=int, default=3, help="runs per client (default 3)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    p.add_argument("--full", action="store_true",
                   help="add scenario 1 at the real standard plan (2/s, burst 50; minutes) and "
                        "the JS SDK in the large export")
    p.add_argument("--export-repeat", type=int, default=1,
                   help="runs per client of the large export, scenario 3 (default 1: about a "
                        "minute each at 1,000,000 rows); at most --repeat")
    p.add_argument("--clients", default="",
                   help="comma-separated subset of clients to run (default: all)")
    p.add_argument("--no-jssdk", action="store_true",
                   help="leave out the official JS SDK (it runs when Node.js and npm are there)")
    p.add_argument("--profile", action="store_true",
                   help="after each scenario, one more run of this project's client under "
                        "pyinstrument (not counted); text profiles go to the results folder")
    p.add_argument("--out", default="bench_results", help="results folder (default bench_results)")
    for field in dataclasses.fields(Sizes):
        p.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default),
                       default=None, help=f"size override (default {field.default})")
    return p


def _sizes(args: argparse.Namespace) -> Sizes:
    base = Sizes.quick() if args.quick else Sizes()
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Sizes)
                 if getattr(args, f.name) is not None}
    return dataclasses.replace(base, **overrides)


def _log(line: str) -> None:
    print(line, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (0 even when a client failed a run)."""
    args = _parser().parse_args(argv)
    try:
        selected = {int(x) for x in args.scenario.split(",") if x.strip()}
    except ValueError:
        print(f"error: --scenario takes numbers like 1,2 (got {args.scenario!r})", file=sys.stderr)
        return 2
    if args.repeat < 1 or not selected <= set(range(1, 10)):
        print("error: --repeat must be >= 1 and scenarios 1-9", file=sys.stderr)
        return 2
    sizes = _sizes(args)
    machine = machine_info()
    commands: dict[str, list[str]] = {}
    if args.no_jssdk:
        js_note = "not run: --no-jssdk"
    else:
        from ._client_jssdk import CLIENT, prepare_jssdk

        js_command, js_note = prepare_jssdk()
        if js_command is not None:
            commands[CLIENT] = js_command
    machine["jssdk"] = js_note
    scenarios = build_scenarios(sizes, selected, full=args.full, export_repeat=args.export_repeat,
                                extra_peers=tuple(commands))
    if args.clients:
        wanted = {c.strip() for c in args.clients.split(",") if c.strip()}
        scenarios = [dataclasses.replace(s, clients=tuple(c for c in s.clients if c in wanted))
                     for s in scenarios]
        scenarios = [s for s in scenarios if s.clients]
    started = dt.datetime.now(dt.UTC)
    command = "python -m b24_dagster.bench " + " ".join(
        argv if argv is not None else sys.argv[1:])
    info = RunInfo(command.strip(), started, machine, sizes, args.repeat, scenarios)
    _log(f"b24-dagster bench, {started:%Y-%m-%d %H:%M} UTC")
    _log(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, "
         f"Python {machine['python']}; load average {machine['load_average_at_start']}")
    _log(f"JS SDK: {js_note}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="b24bench-runs-"))
    portal = BenchPortal()
    _log(f"emulator: {portal.http_front}")
    t0 = time.perf_counter()
    try:
        for s in scenarios:
            _log(f"scenario {s.key}: {s.title}")
            repeat = min(args.repeat, s.max_repeat or args.repeat)
            recs = run_scenario(portal, s, repeat=repeat, workdir=workdir, log=_log,
                                commands=commands, profile_dir=out if args.profile else None)
            info.records += recs
            info.results[s.key] = aggregate(recs)
            info.sections.append(markdown(s, info.results[s.key], repeat))
            _log(info.sections[-1])
            info.seconds = time.perf_counter() - t0
            write_outputs(out, info, done=False)
    finally:
        portal.close()
        shutil.rmtree(workdir, ignore_errors=True)
    info.seconds = time.perf_counter() - t0
    goals = write_outputs(out, info, done=True)
    _log("\n".join(["", "Targets:"] + [f"- {g}" for g in goals]))
    charted = importlib.util.find_spec("matplotlib") is not None  # the chart is skipped without it
    files = [out / "latest.md", *([out / "latest.png"] if charted else []), out / "latest.json"]
    _log("wrote " + ", ".join(map(str, files)) + ("" if charted else
         " (no chart: matplotlib is not installed; `python3 dev.py bench` installs it)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
