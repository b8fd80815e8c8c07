"""Run the official JS SDK's integration suite (vitest project ``jsSdk:integration``) on the emulator.

The suite's sources live in the SDK's repository, not in its npm package (which ships only
``dist/``), so this script takes a checkout of https://github.com/bitrix24/b24jssdk::

    git clone https://github.com/bitrix24/b24jssdk /tmp/b24jssdk
    .venv/bin/python scripts/jssdk_integration.py /tmp/b24jssdk

Nothing of the checkout is copied into this repository and the checkout itself is not
changed: the script copies what the suite needs (``test/``, ``packages/jssdk/src``,
``vitest.config.ts``) into a scratch folder (``--scratch``, default a new folder under the
system's temp dir), installs from the npm registry, with ``npm install``, the packages the
suite and the SDK's sources import (versions from the checkout's ``package.json`` files),
writes ``.env.test`` with ``B24_HOOK`` pointing at an emulator started with ``--tls`` (its CA
given to Node by ``NODE_EXTRA_CA_CERTS``), runs ``vitest run --project jsSdk:integration``,
stops the emulator by its pid and prints the counts. Extra arguments after ``--`` go to
vitest (e.g. ``-- -t "core"``). The exit status is vitest's.

Needs Node.js 20+ and npm on the PATH, and this repository's virtualenv (``python3 dev.py
test`` makes it) for the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the suite runs on, copied from the checkout (read-only there).
SUITE_PARTS = ("test", "packages/jssdk/src", "packages/jssdk/package.json", "vitest.config.ts")
# Root devDependencies the suite imports (vitest, dotenv) and types its sources reference.
ROOT_PACKAGES = ("vitest", "dotenv", "@types/node")
# The portal the suite expects (test/0_setup/hooks-integration-jssdk.ts, getMapId()): deal 2,
# contacts and companies 2..12 and task 2 exist; more than 150 companies after id 2 (the
# `start` paging test); the limits are a cloud portal's defaults. See prepare_portal() too.
EMULATOR_SEEDS = ("--seed-deals", "20", "--seed-contacts", "20", "--seed-companies", "300",
                  "--seed-leads", "20", "--seed-tasks", "20")
#: getMapId().taskWrong: a task id that does not exist (deleted before the run).
MISSING_TASK = 3
#: Companies titled "A..." created at run time: the list tests filter `=%title: "A%"` and
#: want more than 50, some created in the last six months.
RECENT_A_COMPANIES = 60


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The command line; everything after ``--`` is passed to vitest."""
    extra: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkout", type=Path, help="a git checkout of bitrix24/b24jssdk")
    p.add_argument("--scratch", type=Path, help="scratch folder (default: a new temp dir)")
    p.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"),
                   help="the Python that runs the emulator (default: this repo's .venv)")
    p.add_argument("--emulator-arg", action="append", default=[], metavar="ARG",
                   help="an extra argument for the emulator, e.g. --emulator-arg=--rate=0")
    p.add_argument("--report", type=Path, help="also write vitest's JSON report here")
    return p.parse_args(argv), extra


def dependency_specs(checkout: Path) -> list[str]:
    """``name@range`` for every package to install, as the checkout's manifests pin them."""
    root = json.loads((checkout / "package.json").read_text(encoding="utf-8"))
    sdk = json.loads((checkout / "packages/jssdk/package.json").read_text(encoding="utf-8"))
    specs = [f"{name}@{root['devDependencies'][name]}" for name in ROOT_PACKAGES]
    specs += [f"{name}@{rng}" for name, rng in sdk.get("dependencies", {}).items()]
    return specs


def prepare_scratch(checkout: Path, scratch: Path) -> None:
    """Copy the suite into ``scratch`` and install its packages there from the npm registry."""
    for part in SUITE_PARTS:
        src, dst = checkout / part, scratch / part
        if not src.exists():
            raise SystemExit(f"{src} is missing: is {checkout} a checkout of bitrix24/b24jssdk?")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dst)
    manifest = scratch / "package.json"
    if not manifest.exists():
        manifest.write_text(json.dumps({"name": "b24jssdk-suite", "private": True,
                                        "type": "module"}) + "\n", encoding="utf-8")
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error",
                    *dependency_specs(checkout)], cwd=scratch, check=True)


def start_emulator(python: str, ca_file: Path, extra: list[str]) -> tuple[subprocess.Popen[str], str]:
    """Start the emulator with ``--tls``; returns the process and its webhook URL."""
    cmd = [python, "-m", "b24_dagster.emulator", "--tls", "--ca-file", str(ca_file),
           *EMULATOR_SEEDS, *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()   # the first line is the URL, or EOF if it failed
    if not line.startswith("https://"):
        stop_emulator(proc)
        raise SystemExit(f"the emulator did not start (first line: {line!r})")
    return proc, line


def _post(hook: str, method: str, params: dict[str, object], ca_file: Path) -> dict[str, object]:
    context = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(hook + method, data=json.dumps(params).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=context, timeout=30) as answer:
        return json.loads(answer.read())


def prepare_portal(hook: str, ca_file: Path) -> None:
    """Give the portal what the suite assumes beyond the seeds, through the REST API itself."""
    _post(hook, "tasks.task.delete", {"taskId": MISSING_TASK}, ca_file)
    titles = [f"A{chr(97 + i % 26)} company {i}" for i in range(RECENT_A_COMPANIES)]
    for first in range(0, len(titles), 50):
        cmd = {f"c{i}": "crm.item.add?" + urllib.parse.urlencode(
            {"entityTypeId": 4, "fields[title]": title})
            for i, title in enumerate(titles[first:first + 50], first)}
        answer = _post(hook, "batch", {"halt": 1, "cmd": cmd}, ca_file)
        errors = answer["result"]["result_error"]  # type: ignore[index]
        if errors:
            raise SystemExit(f"preparing the portal failed: {errors}")


def stop_emulator(proc: subprocess.Popen[str]) -> None:
    """Stop the emulator we started, by its pid (SIGTERM, then SIGKILL after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_suite(scratch: Path, hook: str, ca_file: Path, report: Path,
              extra: list[str]) -> int:
    """Run vitest's ``jsSdk:integration`` project; returns its exit status."""
    (scratch / ".env.test").write_text(f"B24_HOOK={hook}\n", encoding="utf-8")
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=str(ca_file))
    cmd = ["npx", "--no-install", "vitest", "run", "--project", "jsSdk:integration",
           "--reporter=default", "--reporter=json", f"--outputFile.json={report}", *extra]
    return subprocess.run(cmd, cwd=scratch, env=env, check=False).returncode


def print_counts(report: Path) -> None:
    """Passed / failed / skipped tests, and the names of the failed ones."""
    data = json.loads(report.read_text(encoding="utf-8"))
    failed = [f"{Path(f['name']).name}: {t['fullName']}" for f in data["testResults"]
              for t in f["assertionResults"] if t["status"] == "failed"]
    print(f"\nJS SDK jsSdk:integration on the emulator: {data['numPassedTests']} of "
          f"{data['numTotalTests']} passed, {data['numFailedTests']} failed, "
          f"{data['numPendingTests'] + data['numTodoTests']} skipped")
    for name in failed:
        print("  failed:", re.sub(r"\s+", " ", name))


def main(argv: list[str]) -> int:
    """Prepare, start the emulator, run the suite, stop the emulator, print the counts."""
    args, extra = parse_args(argv)
    checkout = args.checkout.resolve()
    scratch = (args.scratch or Path(tempfile.mkdtemp(prefix="b24jssdk-suite-"))).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"scratch folder: {scratch}", flush=True)
    prepare_scratch(checkout, scratch)
    ca_file = scratch / "emulator-ca.pem"
    report = (args.report or scratch / "vitest-report.json").resolve()
    proc, hook = start_emulator(args.python, ca_file, args.emulator_arg)
    try:
        prepare_portal(hook, ca_file)
        status = run_suite(scratch, hook, ca_file, report, extra)
    finally:
        stop_emulator(proc)
    if report.exists():
        print_counts(report)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
