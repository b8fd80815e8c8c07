"""Several portals: one partition per portal, one run per portal at a time (run queue)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.storage.dagster_run import DagsterRunStatus
from dagster._core.test_utils import instance_for_test
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from b24_dagster.demo._home import DAGSTER_YAML, PORTAL_TAG
from b24_dagster.demo.multi_portal import build_multi_portal_definitions
from tests.demo.helpers import REPO, UNUSED_WEBHOOK

JOB = "bitrix24_portals_deals_job"


@pytest.fixture
def portal_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Webhooks for both portals (never called: the run launcher only records runs)."""
    for name in ("MAIN", "BRANCH"):
        monkeypatch.setenv(f"BITRIX24_WEBHOOK_URL__{name}", UNUSED_WEBHOOK)
    monkeypatch.setenv("B24_DAGSTER_PORTALS", "main,branch")
    monkeypatch.setenv("B24_DAGSTER_BASE", str(tmp_path / "data"))


def test_partitions_are_portal_by_day(portal_env: None) -> None:
    defs = build_multi_portal_definitions()
    deals = defs.resolve_assets_def(dg.AssetKey(["bitrix24_portals", "deals"]))
    pdef = deals.partitions_def
    assert isinstance(pdef, dg.MultiPartitionsDefinition)
    assert pdef.get_partitions_def_for_dimension("portal").get_partition_keys() == [
        "main",
        "branch",
    ]


def test_schedule_tags_each_run_with_its_portal(portal_env: None) -> None:
    defs = build_multi_portal_definitions()
    schedule = defs.resolve_schedule_def(f"{JOB.removesuffix('_job')}_schedule")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2025, 3, 2, 3, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    requests = schedule.evaluate_tick(context).run_requests or []
    assert [(r.tags[PORTAL_TAG], str(r.partition_key)) for r in requests] == [
        ("main", "2025-03-01|main"),
        ("branch", "2025-03-01|branch"),
    ]


def test_second_run_for_the_same_portal_stays_queued(portal_env: None) -> None:
    """Under a QueuedRunCoordinator with the demo home's dagster.yaml, one run per portal."""
    overrides = yaml.safe_load(DAGSTER_YAML)
    overrides["run_launcher"] = {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}
    job_def = build_multi_portal_definitions().resolve_job_def(JOB)
    target = ModuleTarget(
        module_name="b24_dagster.demo.multi_portal",
        attribute=None,
        working_directory=str(REPO),
        location_name="multi_portal",
    )
    with (
        instance_for_test(overrides=overrides) as instance,
        WorkspaceProcessContext(instance, target) as workspace,
    ):
        request_context = workspace.create_request_context()
        location = request_context.get_code_location("multi_portal")
        remote_job = location.get_repository("__repository__").get_full_job(JOB)
        run_ids = []
        for portal, day in (
            ("main", "2025-03-01"),
            ("main", "2025-03-02"),
            ("branch", "2025-03-01"),
        ):
            run = instance.create_run_for_job(
                job_def=job_def,
                remote_job_origin=remote_job.get_remote_origin(),
                job_code_origin=remote_job.get_python_origin(),
                tags={
                    PORTAL_TAG: portal,
                    "dagster/partition": f"{day}|{portal}",
                    "dagster/partition/portal": portal,
                    "dagster/partition/date": day,
                },
            )
            instance.submit_run(run.run_id, request_context)
            run_ids.append(run.run_id)
        assert {instance.get_run_by_id(r).status for r in run_ids} == {DagsterRunStatus.QUEUED}

        list(QueuedRunCoordinatorDaemon(interval_seconds=1).run_iteration(workspace))

        statuses = [instance.get_run_by_id(r).status for r in run_ids]
        assert statuses == [
            DagsterRunStatus.STARTING,  # main, first day: launched
            DagsterRunStatus.QUEUED,  # main, second day: waits for the first
            DagsterRunStatus.STARTING,  # branch: another portal, launched
        ]
