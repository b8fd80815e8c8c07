"""Proof that the webhook code reaches no log line, event, metadata, Parquet file or Dagster home.

The emulator runs outside the run (its own process, a code chosen here), `BITRIX24_WEBHOOK_URL`
points at it, Python's root logger is at DEBUG (where urllib3 logs request paths), and the
materialization meets both row failures and refused requests that are retried. Then every
place the run could write to is searched for the code.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pytest

from b24_dagster.emulator import start_subprocess
from b24_dagster.integration import (
    Bitrix24Resource,
    Bitrix24Storage,
    build_bitrix24_export_asset,
    build_bitrix24_reference_asset,
    build_bitrix24_replica_asset,
)
from tests.integration.test_batch_asset import import_assets, leads

CODE = "s3cr3tc0de4hygiene"


def _files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.fixture
def outside_emulator():
    # Every 4th request is refused twice in a row (503): the client must retry to finish.
    emulator = start_subprocess(["--code", CODE, "--rate", "0", "--seed-deals", "300",
                                 "--fault", "storm_503:every=4,length=2", "--fault-seed", "7"])
    try:
        yield emulator
    finally:
        emulator.stop()


def test_webhook_code_is_nowhere_after_a_run_with_failures_and_retries(
    outside_emulator, tmp_path, monkeypatch, capfd
) -> None:
    assert CODE in outside_emulator.webhook_url
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", outside_emulator.webhook_url)
    base = tmp_path / "data"
    log_file = tmp_path / "root-debug.log"
    root = logging.getLogger()
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.DEBUG)
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    (tmp_path / "dagster_home").mkdir()
    try:
        with dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
            deals = build_bitrix24_export_asset(name="deals", method="crm.deal.list")
            replica = build_bitrix24_replica_asset(entity="deal", history=True)   # and the replica's files
            result = dg.materialize(
                [*import_assets(leads(240, bad_every=8)), deals, replica, build_bitrix24_reference_asset()],
                instance=instance,
                raise_on_error=False,
                resources={
                    "bitrix24": Bitrix24Resource(
                        webhook_url=dg.EnvVar("BITRIX24_WEBHOOK_URL"),
                        requests_per_second=None, share_limits=False,
                        max_retries=6, backoff_seconds=0.01, backoff_max_seconds=0.05,
                    ),
                    "bitrix24_storage": Bitrix24Storage(base_path=str(base)),
                },
            )
            assert result.success
            materialization = next(
                m for m in result.asset_materializations_for_node("bitrix24__lead_import"))
            meta = materialization.metadata
            assert meta["error"].value == 30  # every 8th of 240 rows has an invalid e-mail
            assert meta["retries"].value > 0 and meta["refusals"].value > 0
            events = "\n".join(dg.serialize_value(e) for e in instance.all_logs(result.run_id))
            home = Path(instance.root_directory)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()

    captured = capfd.readouterr()
    # urllib3 did log its request lines at DEBUG, with the code redacted.
    assert '"POST /rest/1/***/batch HTTP/1.1"' in log_file.read_text()
    assert CODE not in events
    assert CODE not in captured.out and CODE not in captured.err
    assert _files_containing(tmp_path, CODE.encode()) == []
    assert list(home.rglob("*")), "the Dagster home was written to"
