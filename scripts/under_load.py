"""Run tests beside CPU-bound processes: the suite must hold on a busy machine (issue 22).

    python3 scripts/under_load.py                      # the timing-sensitive tests, 2 hogs
    python3 scripts/under_load.py --hogs 2 -- -q tests # any pytest arguments after --

Starts ``--hogs`` processes that only spin (``while True: pass``), runs pytest with the
repository's virtualenv (``python3 dev.py test`` makes it), stops the spinners by their pid
and prints the load average before and after. The exit status is pytest's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
#: Tests that wait on processes, signals, timers or sockets, where a busy machine shows (about
#: 3 minutes beside 2 spinners on 2 cores; the whole suite so: 29 minutes).
TIMING_SENSITIVE = [
    "tests/demo/test_demo_leaves_nothing.py::test_ctrl_c_on_the_ui_ends_quietly_without_repeated_warnings",
    "tests/client/test_wire_sockets.py",
    "tests/client/test_wire_proxy.py",
    "tests/integration/test_sync_sigkill.py::test_sync_killed_three_times_then_every_key_once",
]


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() \
        else " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hogs", type=int, default=2, help="CPU-bound processes (default 2)")
    parser.add_argument("pytest_args", nargs="*", help="pytest arguments (after --)")
    args = parser.parse_args(argv)
    pytest_args = args.pytest_args or ["-q", "-p", "no:randomly", *TIMING_SENSITIVE]
    python = PYTHON if PYTHON.exists() else Path(sys.executable)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    started = time.monotonic()
    try:
        print(f"under load: {args.hogs} CPU-bound processes (pids "
              f"{', '.join(str(h.pid) for h in hogs)}); load average {_load()}", flush=True)
        status = subprocess.call([str(python), "-m", "pytest", *pytest_args], cwd=ROOT)
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()
    print(f"under load: pytest exited {status} after {time.monotonic() - started:.0f} s; "
          f"load average {_load()}", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
