"""Run the whole demo pipeline against the local Bitrix24 emulator.

    python -m b24_dagster.demo            # materialize everything, then say where it all is
    python -m b24_dagster.demo --ui       # ... then start the Dagster UI on the demo home
    python -m b24_dagster.demo --stop     # stop the demo's local portal

The Dagster home is `$DAGSTER_HOME` when set, else `.b24_dagster_home/` in the repository.
With `BITRIX24_WEBHOOK_URL` set, the demo talks to that portal instead of the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from b24_dagster.demo._home import (
    BASE_ENV,
    DEFINITIONS_FILE,
    REPO_ROOT,
    WORKSPACE_FILE,
    data_dir,
    duckdb_path,
    point_dagster_cli_at_home,
    prepare_home,
)
from b24_dagster.demo._local_portal import (
    DEFAULT_HOME,
    IDLE_EXIT_SECONDS,
    LocalPortal,
    dagster_home,
    use_local_portal,
)

# `dagster dev` says it is superseded by `dg dev` at every start; the demo knows.
_QUIET_WARNINGS = "ignore:Function `dev_command` is superseded"


def _dagster_command() -> list[str]:
    """The `dagster` CLI of this interpreter's environment."""
    script = Path(sys.executable).parent / "dagster"
    return [str(script)] if script.exists() else [sys.executable, "-m", "dagster"]


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _python() -> str:
    """This interpreter as a command that works from the current directory (the venv's python)."""
    return shlex.quote(_display(Path(sys.executable)))


def _shown(command: list[str], env: dict[str, str]) -> str:
    """A `dagster` command as one can run it again from the current directory."""
    shown = [_display(Path(a)) if a.startswith("/") else a for a in command]
    return " ".join([f"DAGSTER_HOME={shlex.quote(env['DAGSTER_HOME'])}", *map(shlex.quote, shown)])


def _demo_command(home: Path, *flags: str) -> str:
    """`<python> -m b24_dagster.demo [--home H] <flags>`, as printed for the user."""
    home_flag = [] if home == DEFAULT_HOME.resolve() else ["--home", shlex.quote(_display(home))]
    return " ".join([_python(), "-m", "b24_dagster.demo", *home_flag, *flags])


def materialize_all(env: dict[str, str], log_path: Path, select: str = "*") -> int:
    """`dagster asset materialize -f definitions.py --select '*'`: the pipeline in one run.

    The full output goes to `log_path`; the terminal gets the INFO lines of the steps
    (chunk progress, row counts) and every error.
    """
    command = [
        *_dagster_command(), "asset", "materialize",
        "-f", str(DEFINITIONS_FILE),
        "--select", select,
    ]  # fmt: skip
    print("+ " + _shown(command, env), flush=True)
    print(f"  (full log: {_display(log_path)})", flush=True)
    tail: list[str] = []
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                log.write(line)
                tail = [*tail[-59:], line]
                shown = _progress_line(line)
                if shown:
                    print(shown, flush=True)
        except KeyboardInterrupt:  # Ctrl-C reached dagster too: let it stop its run
            proc.wait()
            raise
        status = proc.wait()
    if status != 0:
        print("".join(tail), end="", file=sys.stderr)
    return status


def _progress_line(line: str) -> str | None:
    """The part of a Dagster log line worth showing, or None."""
    if " - INFO - " in line:
        return "  " + line.rsplit(" - ", 1)[-1].rstrip()
    if " - ERROR - " in line:
        return "  ERROR " + line.rsplit(" - ", 1)[-1].rstrip()
    return None


def summarize(home: Path, *, local_portal: bool = False) -> str:
    """Where the outputs are, what the import did, how to open the UI and, with the local
    portal, that it keeps running and how to stop it. Every command printed runs as printed."""
    from b24_dagster.demo._summary import import_summary, parquet_files

    base = data_dir(home)
    lines = [f"Parquet files under {_display(base)}:"]
    lines += [f"  {_display(p)}" for p in parquet_files(base)] or ["  (none)"]
    database = _display(duckdb_path(home))
    lines.append(f"dbt DuckDB database: {database}")
    query = (f"import duckdb; print(duckdb.connect({json.dumps(database)}, read_only=True)"
             f'.sql("from deals_by_stage_month"))')  # fmt: skip
    lines.append(f"  e.g. {_python()} -c {shlex.quote(query)}")
    lines.append(import_summary(base))
    dagster = shlex.quote(_display(Path(_dagster_command()[0])))
    lines.append("Open it in the Dagster UI:")
    lines.append(f"  DAGSTER_HOME={shlex.quote(str(home))} {dagster} dev -w "
                 f"{shlex.quote(_display(WORKSPACE_FILE))}   (or: {_demo_command(home, '--ui')})")  # fmt: skip
    if local_portal:
        portal = LocalPortal.for_home(home)
        lines.append(
            f"The local Bitrix24 portal keeps running (emulator pid {portal.pid()}, port "
            f"{portal.port()}) for the UI and later runs; it exits by itself after "
            f"{IDLE_EXIT_SECONDS / 60:.0f} minutes without a request, or once {_display(home)} "
            f"is deleted."
        )
        lines.append(f"  Stop it now: {_demo_command(home, '--stop')}")
    return "\n".join(lines)


def replica_act(env: dict[str, str], home: Path) -> int:
    """The portal changes (a deal deleted, one moved a stage on); the replica and dbt run again."""
    from b24_dagster.demo._replica_act import REPLICA_SELECTION, change_the_portal, replica_summary

    change = change_the_portal(env["BITRIX24_WEBHOOK_URL"])
    if change is None:
        print("The portal has too few open deals to show the replica at work; skipped.")
        return 0
    print(f"On the portal: deal {change.deleted} deleted, deal {change.moved} moved from {change.from_stage} "
          f"to {change.to_stage}. The replica again:", flush=True)
    status = materialize_all(env, home / "demo-replica-run.log", select=REPLICA_SELECTION)
    if status != 0:
        print(f"the replica's run failed (exit status {status})", file=sys.stderr)
        return status
    print(replica_summary(data_dir(home), duckdb_path(home), change) + "\n", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m b24_dagster.demo`; Ctrl-C ends it quietly (status 130)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="python -m b24_dagster.demo", description=__doc__)
    parser.add_argument(
        "--home", type=Path, help="Dagster home (default: $DAGSTER_HOME or .b24_dagster_home)"
    )
    parser.add_argument("--ui", action="store_true", help="start the Dagster UI afterwards")
    parser.add_argument("--port", type=int, default=3000, help="the UI's port (default 3000)")
    parser.add_argument("--no-run", action="store_true", help="skip the materialization")
    parser.add_argument("--stop", action="store_true", help="stop the demo's local portal and exit")
    args = parser.parse_args(argv)

    home = prepare_home(args.home.resolve() if args.home else dagster_home())
    os.environ["DAGSTER_HOME"] = str(home)
    if args.stop:
        stopped = LocalPortal.for_home(home).stop()
        print("local portal stopped" if stopped else "no local portal was running")
        return 0
    os.environ.setdefault(BASE_ENV, str(data_dir(home)))
    if home == DEFAULT_HOME.resolve() and point_dagster_cli_at_home(home):
        print(f"wrote .env: dagster and dg commands in {_display(REPO_ROOT) or '.'} now use "
              f"{_display(home)} as their Dagster home")  # fmt: skip
    local_portal = use_local_portal(home) is not None
    if local_portal:
        print(f"Bitrix24 portal: the local emulator of {_display(home)} (state in b24_portal/)")
    else:
        print("Bitrix24 portal: the one BITRIX24_WEBHOOK_URL names")
    env = dict(os.environ)

    if not args.no_run:
        started = time.monotonic()
        status = materialize_all(env, home / "demo-run.log")
        elapsed = time.monotonic() - started
        if status != 0:
            print(
                f"the pipeline failed (exit status {status}) after {elapsed:.0f} s", file=sys.stderr
            )
            return status
        print(f"\nThe pipeline ran in {elapsed:.0f} s.\n")
        status = replica_act(env, home)
        if status != 0:
            return status
    print(summarize(home, local_portal=local_portal), flush=True)

    if args.ui:
        dev = ["dev", "-w", str(WORKSPACE_FILE), "-h", "127.0.0.1", "-p", str(args.port)]
        command = [*_dagster_command(), *dev]
        print("+ " + _shown(command, env), flush=True)
        warnings = [w for w in (env.get("PYTHONWARNINGS"), _QUIET_WARNINGS) if w]
        env["PYTHONWARNINGS"] = ",".join(warnings)
        os.chdir(REPO_ROOT)
        os.execve(command[0], command, env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
