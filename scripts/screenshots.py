#!/usr/bin/env python3
"""Take screenshots of the demo in the Dagster UI with headless Chromium, into docs/img/.

    .venv/bin/python scripts/screenshots.py [--port 3333] [--run-demo] [--only NAME ...]

Starts `dagster dev -w workspace.yaml` on the demo's Dagster home (loopback only), drives
Debian's `chromium` (`apt-get install -y chromium`) over the DevTools protocol on a pipe,
waits until each page's rendered text shows what the picture is for (checked before any
screenshot is saved), crops it to the panel that matters, then stops the UI by its process
group. The pictures: the asset graph around the write-back and the lead import, the lead
import's latest real materialization (partial-failure metadata, error reasons, sync counts),
a dry run of it (the sync plan) and the deal export's columns with the portal's titles.

The demo home needs two demo runs (so the lead import's latest run is a sync) and a dry run
of `bitrix24/lead_import` between them; `--run-demo` makes them first.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import select
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from b24_dagster.demo._home import prepare_home  # noqa: E402
from b24_dagster.demo._local_portal import dagster_home  # noqa: E402

OUT = REPO / "docs" / "img"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip
WIDTH, HEIGHT = 1600, 1000
MAX_BYTES = 400_000
DRY_RUN_CONFIG = {"ops": {"bitrix24__lead_import": {"config": {"dry_run": True}}}}
# No picture is saved while the page shows one of these (a panel still loading, an error).
NOT_SHOWN = ("Loading", "GraphQL error", "Something went wrong", "Error loading")


@dataclass(frozen=True)
class Shot:
    """One picture: the page, the texts its rendered page must show first, what to crop.

    `event` picks one event of the page's asset in its Events view: "latest" (the latest
    materialization) or "dry_run" (the latest dry run, an observation). `crop` is None (the
    whole window), ("rows", first, last, heading) (the metadata rows from the one labelled
    `first` to the one labelled `last`, from the event's heading when `heading`) or
    ("section", title) (an Overview section such as "Columns").
    """

    path: str
    file: str
    expect: tuple[str, ...]
    event: str | None = None
    crop: tuple[Any, ...] | None = None


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
        (
            "Materialized in run",
            "failure_rate",
            "error_reasons",
            "is invalid.",
            "not found",
            "does not exist",
        ),
        event="latest",
        crop=("rows", "commands", "error_reasons", True),
    ),
    Shot(
        "/assets/bitrix24/lead_import?view=events",
        "lead_import_sync.png",
        ("Materialized in run", "sync_mode", "rows_create", "rows_update", "rows_unchanged"),
        event="latest",
        crop=("rows", "sync_mode", "writes_planned", False),
    ),
    Shot(
        "/assets/bitrix24/lead_import?view=events",
        "lead_import_dry_run.png",
        ("Observed in run", "dry_run", "rows_create", "plan_uri", "plan_preview", "unchanged"),
        event="dry_run",
        crop=("rows", "sync_mode", "plan_preview", True),
    ),
    Shot(
        "/assets/bitrix24/deals",
        "deals_columns.png",
        ("Columns", "Column name", "STAGE_ID", "crm_status", "read-only"),
        crop=("section", "Columns"),
    ),
)

# The page's vertical overflow (the page itself and every scrolling panel), to grow the
# window until the whole panel is drawn.
_OVERFLOW_JS = """(() => Math.max(document.documentElement.scrollHeight - innerHeight,
  ...[...document.querySelectorAll('*')].map(e => {
    const y = getComputedStyle(e).overflowY;
    return y === 'auto' || y === 'scroll' ? e.scrollHeight - e.clientHeight : 0; })))()"""

# The clip of a crop (see Shot), in page pixels; throws when the page lacks what it names.
_CLIP_JS = """((crop) => {
  const pad = 12, rect = e => e.getBoundingClientRect();
  const exact = (sel, text) => [...document.querySelectorAll(sel)].find(e => e.textContent.trim() === text);
  const scrolls = e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowY);
  if (crop[0] === 'section') {
    const title = [...document.querySelectorAll('span, div')].find(
      e => e.childElementCount === 0 && e.textContent.trim() === crop[1]);
    const section = title && title.closest('button') && title.closest('button').parentElement;
    if (!section) throw new Error('no section ' + crop[1]);
    const r = rect(section);
    return {x: r.left - pad, y: r.top - pad, width: r.width + 2 * pad, height: r.height + 2 * pad};
  }
  const row = label => {
    const cell = exact('td', label);
    if (!cell) throw new Error('no metadata row ' + label);
    return cell.closest('tr');
  };
  const first = row(crop[1]), last = row(crop[2]);
  // The event's panel: the child of the scrolling column (the second scrolling ancestor of
  // the metadata table; the first is the table's own horizontal scroller).
  let panel = first.closest('table'), found = 0;
  while (panel.parentElement && !(scrolls(panel.parentElement) && ++found === 2)) panel = panel.parentElement;
  const p = rect(panel);
  // Rows end at their borders: a margin would show a slice of the next row.
  const top = crop[3] ? p.top : rect(first).top - 1;
  return {x: p.left + 1, y: top, width: p.width - 1, height: rect(last).bottom + 1 - top};
})"""


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


def graphql(base: str, query: str) -> dict[str, Any]:
    """One query or mutation to the UI's GraphQL endpoint; its `data`."""
    request = urllib.request.Request(
        base + "/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.loads(response.read())
    if answer.get("errors") or "data" not in answer:
        raise RuntimeError(f"GraphQL: {answer.get('errors')}")
    return answer["data"]


def dismiss_community_dialog(base: str) -> None:
    """Mark the UI's first-visit "Join the Dagster community" dialog as seen (it would cover
    the pages); the UI records that in the instance through this GraphQL mutation."""
    if graphql(base, "mutation { setNuxSeen }").get("setNuxSeen") is not True:
        raise RuntimeError("could not dismiss the community dialog")


def event_time(base: str, asset_path: str, which: str) -> str:
    """The timestamp (ms) of the asset's latest materialization ("latest") or of its latest
    dry run ("dry_run", an observation): the Events view's `time` parameter selects it."""
    keys = json.dumps(asset_path.split("/"))
    field = "assetObservations" if which == "dry_run" else "assetMaterializations"
    data = graphql(
        base,
        f"""{{ assetOrError(assetKey: {{path: {keys}}}) {{ ... on Asset {{
        {field}(limit: 50) {{ timestamp
          metadataEntries {{ label ... on BoolMetadataEntry {{ boolValue }} }} }} }} }} }}""",
    )
    for event in (data["assetOrError"] or {}).get(field) or []:
        dry = any(e["label"] == "dry_run" and e.get("boolValue") for e in event["metadataEntries"])
        if dry == (which == "dry_run"):
            return str(event["timestamp"])
    raise RuntimeError(f"no {which} event of {asset_path}: run with --run-demo")


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe):
    it reads commands on its fd 3 and writes answers on its fd 4, each JSON ending in NUL."""

    def __init__(self, profile: Path, width: int = WIDTH, height: int = HEIGHT) -> None:
        to_chrome, from_chrome = os.pipe(), os.pipe()
        # Above 9 so that bash's `3<&N 4>&M` cannot overwrite one with the other.
        theirs_in = fcntl.fcntl(to_chrome[0], fcntl.F_DUPFD, 10)
        theirs_out = fcntl.fcntl(from_chrome[1], fcntl.F_DUPFD, 10)
        os.close(to_chrome[0])
        os.close(from_chrome[1])
        wire = f'exec "$0" "$@" 3<&{theirs_in} 4>&{theirs_out} {theirs_in}<&- {theirs_out}>&-'
        command = ["/bin/bash", "-c", wire, _chromium(), *CHROMIUM_FLAGS,
                   f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(theirs_in, theirs_out),
            start_new_session=True,  # its own group, so close() can end its helpers too
        )
        os.close(theirs_in)
        os.close(theirs_out)
        self._out, self._in = to_chrome[1], from_chrome[0]
        self._buffer = b""
        self._id = 0
        self.size = (width, height)
        targets = self.send("Target.getTargets")["targetInfos"]
        target = next(t["targetId"] for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.page("Page.enable")
        self.resize(width, height)

    def send(
        self, method: str, session: str | None = None, timeout: float = 60.0, **params: Any
    ) -> Any:
        """Send one DevTools command and wait for its answer."""
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._out, data) :]
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._id:
                    if "error" in answer:
                        raise RuntimeError(f"{method}: {answer['error']}")
                    return answer.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise TimeoutError(f"Chromium did not answer {method} within {timeout:.0f} s")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk

    def page(self, method: str, **params: Any) -> Any:
        """A command to the page."""
        return self.send(method, session=self.session, **params)

    def resize(self, width: int, height: int) -> None:
        """The window's size in CSS pixels (one device pixel each)."""
        self.size = (width, height)
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        answer = self.page("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise RuntimeError(
                details.get("exception", {}).get("description") or details.get("text")
            )
        return answer["result"].get("value")

    def close(self) -> None:
        """Close the browser; kill its process group if it does not go."""
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        os.close(self._out)
        os.close(self._in)


def capture(browser: Browser, base: str, shot: Shot, timeout: float = 90.0) -> Path:
    """Open the page, wait until its rendered text shows every expected name, grow the window
    until the panel is drawn whole, then save the (cropped) screenshot."""
    url = base + shot.path
    if shot.event:
        asset = shot.path.split("?")[0].removeprefix("/assets/")
        url += ("&" if "?" in url else "?") + "time=" + event_time(base, asset, shot.event)
    browser.resize(WIDTH, HEIGHT)
    browser.page("Page.navigate", url=url)
    deadline = time.monotonic() + timeout
    missing = list(shot.expect)
    while time.monotonic() < deadline:
        text = browser.evaluate("document.body ? document.body.innerText : ''") or ""
        missing = [name for name in shot.expect if name not in text]
        missing += [f"no {bad!r}" for bad in NOT_SHOWN if bad in text]
        if not missing:
            break
        time.sleep(1)
    if missing:
        raise RuntimeError(f"{url} does not show {missing}; not saving {shot.file}")
    for _ in range(5):  # the window as tall as the panel, so nothing is scrolled out of it
        overflow = int(browser.evaluate(_OVERFLOW_JS) or 0)
        if overflow <= 0 or shot.crop is None:
            break
        browser.resize(WIDTH, browser.size[1] + overflow)
        time.sleep(1)
    time.sleep(2)  # let the last images and fonts settle
    params: dict[str, Any] = {"format": "png"}
    if shot.crop:
        clip = browser.evaluate(f"{_CLIP_JS}({json.dumps(list(shot.crop))})")
        params["clip"] = {**{k: round(v) for k, v in clip.items()}, "scale": 1}
    png = base64.b64decode(browser.page("Page.captureScreenshot", **params)["data"])
    if len(png) < 10_000:
        raise RuntimeError(f"Chromium gave no usable screenshot of {url}")
    if len(png) > MAX_BYTES:
        raise RuntimeError(f"{shot.file}: {len(png)} bytes, over {MAX_BYTES}; crop it more")
    target = OUT / shot.file
    target.write_bytes(png)
    return target


def run_demo(home: Path) -> int:
    """A demo run, a dry run of the lead import (an observation), and a second demo run: its
    lead import is a sync of rows already sent, the picture of lead_import_sync.png."""
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    dagster = Path(sys.executable).parent / "dagster"
    demo = [sys.executable, "-m", "b24_dagster.demo"]
    dry_run = [str(dagster), "asset", "materialize", "-f", "definitions.py",
               "--select", "bitrix24/lead_import", "--config-json", json.dumps(DRY_RUN_CONFIG)]  # fmt: skip
    for command in (demo, dry_run, demo):
        if status := subprocess.call(command, cwd=REPO, env=env):
            return status
    return 0


def main() -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3333)
    parser.add_argument(
        "--run-demo", action="store_true", help="run the demo, a dry run, the demo again first"
    )
    parser.add_argument("--only", nargs="*", help="only these files (e.g. deals_columns.png)")
    args = parser.parse_args()

    home = prepare_home(dagster_home())
    if args.run_demo and (status := run_demo(home)):
        return status
    shots = [s for s in SHOTS if not args.only or s.file in args.only]
    OUT.mkdir(parents=True, exist_ok=True)
    log = home / "screenshots-dagster-dev.log"
    proc = start_ui(home, args.port, log)
    try:
        base = f"http://127.0.0.1:{args.port}"
        wait_http(base + "/server_info", proc, timeout=180)
        dismiss_community_dialog(base)
        with tempfile.TemporaryDirectory(prefix="b24-chromium-") as profile:
            browser = Browser(Path(profile))
            try:
                for shot in shots:
                    saved = capture(browser, base, shot)
                    print(f"saved {saved.relative_to(REPO)} ({saved.stat().st_size // 1000} KB)")
            finally:
                browser.close()
    finally:
        stop_ui(proc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
