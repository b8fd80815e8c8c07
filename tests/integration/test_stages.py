"""Each stage of the two batch steps on its own (`_sync_step`: recover, plan, dry run, publish;
`_send_step`: plan, resume), against the emulator over HTTP, without Dagster."""

from __future__ import annotations

import json
import logging
import time

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest
from upath import UPath

from b24_dagster.client import Bitrix24Client
from b24_dagster.client._entities import crm_entity_of
from b24_dagster.integration import _send_step, _sync_step
from b24_dagster.integration._batch_core import BatchSpec, build_commands
from b24_dagster.integration._journal import BatchJournal
from b24_dagster.integration._parquet import ParquetStreamWriter
from b24_dagster.integration._sync_fields import check_fields
from b24_dagster.integration._sync_plan import SyncSpec
from b24_dagster.integration._sync_state import fields_hash

LOG = logging.getLogger("test_stages")
SPEC = SyncSpec(mode="upsert", create_method="crm.lead.add", key_field="ORIGIN_ID")


def _client(emulator) -> Bitrix24Client:
    return Bitrix24Client(emulator.webhook_url, requests_per_second=None, share_limits=False)


def _sync_run(emulator, tmp_path, n: int = 4, **kwargs) -> _sync_step.SyncRun:
    keys = [f"K{i}" for i in range(n)]
    calls = _sync_step.sync_calls([("crm.lead.add", {"fields": {"TITLE": f"T{i}", "COMMENTS": "c"}})
                                   for i in range(n)], keys, SPEC)  # fmt: skip
    client = _client(emulator)
    fields = check_fields(client, crm_entity_of("crm.lead.add"), calls, ["TITLE", "COMMENTS"], label="leads",
                          creates=True, updates=True, given=SPEC.own_fields)  # fmt: skip
    return _sync_step.SyncRun(sync=SPEC, client=client, path=UPath(tmp_path / "leads.parquet"),
                              log=LOG, label="leads", calls=calls, keys=keys, key_name="key", fields=fields,
                              **kwargs)  # fmt: skip


def test_sync_plan_stage_sends_only_what_the_state_and_portal_call_for(b24_emulator, tmp_path):
    run = _sync_run(b24_emulator, tmp_path)
    with _client(b24_emulator) as client:
        client.call("crm.lead.add", {"fields": {"TITLE": "by hand", "ORIGIN_ID": "K1", "COMMENTS": "c"}})  # id 1
        client.call("crm.lead.add", {"fields": {"TITLE": "older", "ORIGIN_ID": "K2", "COMMENTS": "c"}})  # id 2
    applied = run.calls[0][1]["fields"]
    run.state.record("K0", status="ok", portal_id=77, sent_hash=fields_hash(applied), sent_fields=None)
    changed = {**run.calls[2][1]["fields"], "TITLE": "older"}
    run.state.record("K2", status="ok", portal_id=2, sent_hash=fields_hash(changed), sent_fields=json.dumps(changed))
    plan = _sync_step.plan(run)
    assert plan.actions == ["unchanged", "update", "update", "create"]
    assert plan.portal_ids == [77, 1, 2, None]
    assert plan.changed[1:3] == [["TITLE"], ["TITLE"]]  # compared with the records: only the titles differ
    assert [c[0] for c in plan.commands] == ["crm.lead.update", "crm.lead.update", "crm.lead.add"]
    assert plan.commands[1][1] == {"id": 2, "fields": {"TITLE": "T2"}}
    assert plan.changes[2] == [("TITLE", "older", "T2", "update")]
    assert (plan.lookups, plan.lookup_requests) == (1, 1)  # K1, K2 and K3 (unknown or changed), one command


def test_sync_recover_stage_reads_a_dead_runs_journal_and_waits_out_its_chunk(b24_emulator, tmp_path):
    run = _sync_run(b24_emulator, tmp_path, reconcile_delay_seconds=0.6)
    dead = BatchJournal(run.path, "run-dead", root=run.journal_root)
    dead.start()
    columns = {"row": [0, 3], "key": ["K0", "K3"], "action": ["create", "create"], "status": ["ok", "error"],
               "portal_id": [5, None], "fields_hash": ["h0", "h3"], "fields_json": ["{}", "{}"]}
    part = pa.table({f.name: columns.get(f.name, [None, None]) for f in _sync_step._JOURNAL_SCHEMA},
                    schema=_sync_step._JOURNAL_SCHEMA)  # fmt: skip
    dead.completed(0, part)
    dead.sending(1)  # the dead run's next chunk may still be running on the portal
    started = time.monotonic()
    folders = _sync_step.recover(run)
    assert time.monotonic() - started >= 0.5  # waited out the settle delay from the marker's time
    assert [f.name for f in folders] == ["run-dead"]
    assert run.state.keys["K0"].applied and run.state.keys["K0"].portal_id == 5
    assert run.state.keys["K3"].status == "error" and run.state.keys["K3"].attempts == 1
    assert run.recovered == 2


def test_sync_dry_run_stage_writes_only_the_plan(b24_emulator, tmp_path):
    run = _sync_run(b24_emulator, tmp_path)
    run.plan = _sync_step.plan(run)
    metadata = _sync_step.publish_plan(run)
    assert metadata["rows_create"] == 4 and metadata["dry_run"] is True
    assert not run.path.exists() and not run.state.path.exists()
    assert (_sync_step.sync_folder(run.path) / "plan.parquet").exists()


def _send_run(emulator, tmp_path, frame: pd.DataFrame, **kwargs) -> _send_step.SendRun:
    spec = BatchSpec(method="crm.lead.add", fields={"title": "TITLE"}, key_column="k")
    calls, keys = build_commands(spec, frame)
    return _send_step.SendRun(spec=spec, client=_client(emulator), path=UPath(tmp_path / "r.parquet"), log=LOG,
                              label="r", calls=calls, keys=keys, key_name="k", **kwargs)  # fmt: skip


def test_send_plan_stage_redrives_only_failed_rows(b24_emulator, tmp_path):
    frame = pd.DataFrame({"k": ["a", "b", "c"], "title": ["A", "B", "C"]})
    run = _send_run(b24_emulator, tmp_path, frame, mode="redrive")
    previous = run.schema.empty_table().to_pydict()
    previous.update(command_index=[0, 1, 2], command_key=["0", "1", "2"], status=["ok", "error", "not_run"],
                    k=["a", "b", "c"])  # fmt: skip
    columns = {f.name: previous.get(f.name) or [None] * 3 for f in run.schema}
    with ParquetStreamWriter(run.path, run.schema) as writer:
        writer.write(pa.table(columns, schema=run.schema))
    _send_step.plan(run)
    assert run.base_map == [1, 2] and [c[1]["fields"]["TITLE"] for c in run.to_send] == ["B", "C"]


def test_send_resume_stage_refuses_another_command_sets_unfinished_journal(b24_emulator, tmp_path):
    """Before: the journal of a run that died was deleted when the source changed, and the new
    run created its first chunks a second time (331 leads for 181 rows)."""
    frame = pd.DataFrame({"k": ["a", "b"], "title": ["A", "B"]})
    run = _send_run(b24_emulator, tmp_path, frame)
    old = BatchJournal(run.path, "some-older-command-set")
    old.start()
    old.sending(0)
    _send_step.plan(run)
    with pytest.raises(dg.Failure, match="a run that died left a journal of another command set"):
        _send_step.resume(run)
    assert (old.dir / "inflight-000000").exists()  # kept, not thrown away
