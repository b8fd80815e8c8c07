#!/usr/bin/env python3
"""Take screenshots of the demo in the Dagster UI with headless Chromium, into docs/img/.

    .venv/bin/python scripts/screenshots.py [--port 3333] [--run-demo]

Starts `dagster dev -w workspace.yaml` on the demo's Dagster home (loopback only), waits for
the pages to show the demo's asset names (checked in the DOM Chromium renders, before any
screenshot is saved), saves the asset graph and the lead import's results asset with its
partial-failure metadata, then stops the UI by its process group. Needs Debian's
`chromium` (`apt-get install -y chromium`) and a demo home where the demo has run
(`--run-demo` runs it first).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from b24_dagster.demo._home import prepare_home  # noqa: E402
from b24_dagster.demo._local_portal import dagster_home  # noqa: E402

OUT = REPO / "docs" / "img"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1600,1000",
]  # fmt: skip


@dataclass(frozen=True)
class Shot:
    """One page to capture and the texts its DOM must contain first."""

    path: str
    file: str
    expect: tuple[str, ...]


# The global lineage page collapses each asset group into a box, so the lineage is shown
# from the asset pages, which draw every upstream asset.
SHOTS = (
    Shot(
        "/assets/bitrix24/stale_deal_flags?view=lineage&lineageScope=upstream&lineageDepth=5",
        "lineage_write_back.png",
        ("stale_deal_flags", "stale_deals", "stg_deals", "deals"),
    ),
    Shot(
        "/assets/import_failures_by_error_code?view=lineage&lineageScope=upstream&lineageDepth=3",
        "lineage_lead_import.png",
        ("import_failures_by_error_code", "stg_lead_import_results", "lead_import"),
    ),
    Shot(
        "/assets/bitrix24/lead_import?view=events",
        "lead_import_results.png",
        ("lead_import", "failure_rate", "first_failures", "WEB-20250017"),
    ),
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    sys.exit("Chromium not found: apt-get update && apt-get install -y chromium")


def _reset_signals() -> None:
    # `dagster dev` started from a non-interactive shell inherits SIG_IGN for SIGINT and then
    # ignores the SIGINT it relies on for a clean shutdown; restore the defaults before exec.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_ui(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start `dagster dev` for the demo in its own process group."""
    dagster = Path(sys.executable).parent / "dagster"
    command = [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_reset_signals,
            start_new_session=True,
        )


def stop_ui(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Stop the UI and everything it started (its process group): SIGINT, then SIGKILL."""
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    # Children of the group (code server, daemon) may outlive the leader for a moment.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until `url` answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"dagster dev exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    sys.exit(f"{url} did not answer within {timeout:.0f} s")


def dismiss_community_dialog(base: str) -> None:
    """Mark the UI's first-visit "Join the Dagster community" dialog as seen (it would cover
    the pages); the UI records that in the instance through this GraphQL mutation."""
    request = urllib.request.Request(
        base + "/graphql",
        data=json.dumps({"query": "mutation { setNuxSeen }"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    if answer.get("data", {}).get("setNuxSeen") is not True:
        raise RuntimeError(f"could not dismiss the community dialog: {answer}")


def chromium(args: list[str], profile: Path, timeout: float = 120.0) -> str:
    """Run headless Chromium once; return its stdout."""
    command = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    done = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    return done.stdout.decode("utf-8", "replace")


def capture(base: str, shot: Shot, profile: Path, budget_ms: int, attempts: int = 6) -> Path:
    """Check the page's DOM for the expected names, then save its screenshot."""
    url = base + shot.path
    missing: list[str] = list(shot.expect)
    for _ in range(attempts):
        dom = chromium([f"--virtual-time-budget={budget_ms}", "--dump-dom", url], profile)
        missing = [name for name in shot.expect if name not in dom]
        if not missing:
            break
        time.sleep(2)
    if missing:
        raise RuntimeError(f"{url} does not show {missing}; not saving {shot.file}")
    target = OUT / shot.file
    chromium([f"--virtual-time-budget={budget_ms}", f"--screenshot={target}", url], profile)
    if not target.exists() or target.stat().st_size < 10_000:
        raise RuntimeError(f"Chromium saved no usable screenshot of {url}")
    return target


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3333)
    parser.add_argument(
        "--budget-ms", type=int, default=20_000, help="Chromium virtual time per page"
    )
    parser.add_argument("--run-demo", action="store_true", help="run the demo pipeline first")
    args = parser.parse_args()

    home = prepare_home(dagster_home())
    if args.run_demo:
        status = subprocess.call(
            [sys.executable, "-m", "b24_dagster.demo"],
            cwd=REPO,
            env={**os.environ, "DAGSTER_HOME": str(home)},
        )
        if status:
            return status
    OUT.mkdir(parents=True, exist_ok=True)
    log = home / "screenshots-dagster-dev.log"
    proc = start_ui(home, args.port, log)
    try:
        base = f"http://127.0.0.1:{args.port}"
        wait_http(base + "/server_info", proc, timeout=120)
        dismiss_community_dialog(base)
        with tempfile.TemporaryDirectory(prefix="b24-chromium-") as profile:
            for shot in SHOTS:
                saved = capture(base, shot, Path(profile), args.budget_ms)
                print(f"saved {saved.relative_to(REPO)}")
    finally:
        stop_ui(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
