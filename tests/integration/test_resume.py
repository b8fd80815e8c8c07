"""A step that stops mid-run resumes after the recorded chunks, and never sends a chunk twice."""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.parquet as pq

from b24_dagster.client import Bitrix24Client
from b24_dagster.integration import UNKNOWN_CHECK
from tests.integration.test_batch_asset import (
    ASSET,
    _commands_sent,
    checks,
    import_assets,
    leads,
    run,
)


def _crash_at(monkeypatch, chunk: int) -> None:
    """Make the run stop right after chunk `chunk` was sent (and committed), before its answer
    is handed out: what a killed worker leaves behind."""
    real = Bitrix24Client.batch_by_chunk

    def crashing(self, calls, *args, **kwargs):
        for index, result in enumerate(real(self, calls, *args, **kwargs)):
            if index == chunk:
                raise RuntimeError("worker lost")
            yield result

    monkeypatch.setattr(Bitrix24Client, "batch_by_chunk", crashing)


def test_resume_sends_only_the_chunks_not_recorded(b24_emulator, resources, base, instance, monkeypatch):
    frame = leads(180, bad_every=None)  # chunks of 50, 50, 50, 30
    with monkeypatch.context() as patch:
        _crash_at(patch, 2)
        crashed = run(import_assets(frame), resources, instance)
    assert not crashed.success
    assert b24_emulator.counts()["lead"] == 150  # chunk 2 was applied, its answer was lost
    assert not (base / "bitrix24" / "lead_import.parquet").exists()

    sent_before = _commands_sent(b24_emulator)
    result = run(import_assets(frame), resources, instance)
    assert result.success
    assert _commands_sent(b24_emulator) - sent_before == 30  # only the chunk never sent
    assert b24_emulator.counts()["lead"] == 180  # nothing created twice

    table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
    assert table["command_index"].to_pylist() == list(range(180))
    assert table["external_id"].to_pylist() == list(frame["external_id"])
    statuses = table["status"].to_pylist()
    assert statuses == ["ok"] * 100 + ["unknown"] * 50 + ["ok"] * 30
    assert table["chunk_index"].to_pylist() == [i // 50 for i in range(180)]
    assert set(pc.unique(table["error_code"].filter(pc.equal(table["status"], "unknown"))).to_pylist()) == {"JOURNAL_INTERRUPTED"}
    [mat] = result.asset_materializations_for_node(ASSET)
    assert mat.metadata["resumed_chunks"].value == 2 and mat.metadata["commands_sent"].value == 30
    assert not checks(result)[UNKNOWN_CHECK].passed
    assert not any(p.name.endswith(".journal") for p in (base / "bitrix24").iterdir())

    # A finished journal does not block a new materialization: everything is sent again.
    sent_before = _commands_sent(b24_emulator)
    assert run(import_assets(frame), resources, instance).success
    assert _commands_sent(b24_emulator) - sent_before == 180


def test_a_refused_webhook_leaves_nothing_to_resume(b24_emulator, resources, base, instance, monkeypatch):
    frame = leads(60, bad_every=None)
    good = b24_emulator.webhook_url
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", good.replace("/rest/1/", "/rest/1/x"))
    assert not run(import_assets(frame), resources, instance).success
    monkeypatch.setenv("BITRIX24_WEBHOOK_URL", good)
    result = run(import_assets(frame), resources, instance)
    assert result.success
    assert pq.read_table(base / "bitrix24" / "lead_import.parquet")["status"].to_pylist() == ["ok"] * 60
    assert b24_emulator.counts()["lead"] == 60
