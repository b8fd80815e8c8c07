"""One Arrow schema and one set of pandas dtypes per results or export file, whatever the run:
with or without failed rows, a sync's second run (rows unchanged, so never sent), a partition of
a partitioned asset, an empty export. The frames are those a downstream asset gets (loaded by
`Bitrix24Storage` in a run of its own), compared with the documented mapping, which is the same
on pandas 2.2 and 3.x (`python3 dev.py test-pandas2` runs this file on 2.2)."""

# No `from __future__ import annotations`: Dagster reads the assets' annotations.

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from b24_dagster import Bitrix24Client
from b24_dagster.frames._results import STATUS_DTYPE
from b24_dagster.integration import build_bitrix24_batch_asset, build_bitrix24_export_asset
from tests.integration.test_batch_asset import leads

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
#: docs/integration.md, "Results and exports as inputs of other assets".
RESULT_DTYPES = {
    "command_index": "Int64", "command_key": "string", "method": "string", "chunk_index": "Int32",
    "status": "category", "result": "string", "error_code": "string", "error_description": "string",
    "total": "Int64", "next": "Int64", "external_id": "string", "action": "string", "portal_id": "Int64",
    "error_reason": "string",
}  # fmt: skip
DEAL_SELECT = ["ID", "TITLE", "OPPORTUNITY", "CLOSED", "PROBABILITY", "DATE_MODIFY"]
EXPORT_DTYPES = {"ID": "Int64", "TITLE": "string", "OPPORTUNITY": "Float64", "CLOSED": "boolean",
                 "PROBABILITY": "Int64", "DATE_MODIFY": "datetime64[us, UTC]"}  # fmt: skip


class Runs:
    """An upstream asset and a reader of it; each `run` materializes the upstream, then the
    reader in a run of its own, and keeps the file's Arrow schema and the reader's frame."""

    def __init__(self, upstream: list, key: dg.AssetKey, resources, instance, partitions=None) -> None:
        self.upstream, self.key, self.resources, self.instance = upstream, key, resources, instance
        self.schemas: list[pa.Schema] = []
        self.frames: list[pd.DataFrame] = []
        seen = self.seen = {}

        @dg.asset(partitions_def=partitions, ins={"value": dg.AssetIn(key)})
        def reader(value: pd.DataFrame) -> None:
            seen["frame"] = value

        self.reader = reader

    def run(self, file, partition: str | None = None) -> pd.DataFrame:
        assets = [*self.upstream, self.reader]
        for selection in ([a.key for a in self.upstream], [self.reader.key]):
            result = dg.materialize(assets, selection=selection, resources=self.resources,
                                    instance=self.instance, partition_key=partition)  # fmt: skip
            assert result.success
        self.schemas.append(pq.read_schema(file))
        self.frames.append(self.seen.pop("frame"))
        return self.frames[-1]


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return frame.dtypes.astype(str).to_dict()


def _write_runs(rows: dict, resources, instance, name: str, partitions=None) -> Runs:
    @dg.asset(name=f"{name}_rows", partitions_def=partitions)
    def source() -> pd.DataFrame:
        return rows["frame"]

    asset = build_bitrix24_batch_asset(
        name=name, method="crm.lead.add", source=source.key, fields={"title": "TITLE", "email": "EMAIL"},
        key_column="external_id", partitions_def=partitions,
    )  # fmt: skip
    return Runs([source, asset], asset.key, resources, instance, partitions)


def test_results_have_one_schema_and_one_set_of_dtypes(b24_emulator, resources, base, instance):
    rows: dict[str, pd.DataFrame] = {}
    whole = _write_runs(rows, resources, instance, "lead_sync")
    daily = _write_runs(rows, resources, instance, "lead_sync_daily", DAILY)
    file = base / "bitrix24" / "lead_sync.parquet"

    rows["frame"] = leads(30, bad_every=None)
    first = whole.run(file)  # every row created
    rows["frame"] = leads(30, bad_every=5)
    second = whole.run(file)  # six updates refused, the other rows unchanged (never sent)
    rows["frame"] = leads(40, bad_every=5).iloc[30:]
    third = whole.run(file)  # new rows: creates, two refused
    rows["frame"] = leads(10, bad_every=None)
    day_ok = daily.run(base / "bitrix24" / "lead_sync_daily" / "2024-01-01.parquet", "2024-01-01")
    rows["frame"] = leads(10, bad_every=3)
    day_failed = daily.run(base / "bitrix24" / "lead_sync_daily" / "2024-01-02.parquet", "2024-01-02")

    # The runs differ in shape where a data-driven mapping would differ...
    assert first["status"].eq("ok").all() and first["chunk_index"].notna().all()
    assert second["status"].eq("error").sum() == 6 and second["chunk_index"].isna().sum() == 24
    assert third["status"].eq("error").sum() == 2 and day_failed["status"].eq("error").any()
    assert day_ok["error_code"].isna().all() and day_ok["status"].eq("ok").all()
    # ...and yet give one Arrow schema and one set of dtypes, the documented ones.
    schemas = whole.schemas + daily.schemas
    assert all(schema.equals(schemas[0]) for schema in schemas), [str(s) for s in schemas]
    for frame in whole.frames + daily.frames:
        assert _dtypes(frame) == RESULT_DTYPES
        assert frame["status"].dtype == STATUS_DTYPE
        assert frame["status"].cat.categories.tolist() == ["ok", "error", "not_run", "unknown"]


def test_exports_have_one_schema_and_one_set_of_dtypes(b24_emulator, resources, base, instance):
    full = build_bitrix24_export_asset(name="deals", method="crm.deal.list", select=DEAL_SELECT)
    daily = build_bitrix24_export_asset(name="deals_daily", method="crm.deal.list", select=DEAL_SELECT,
                                        incremental=True, start_date="2024-01-01")  # fmt: skip
    whole = Runs([full], full.key, resources, instance)
    days = Runs([daily], daily.key, resources, instance, daily.partitions_def)

    empty = whole.run(base / "bitrix24" / "deals.parquet")  # a portal without deals
    b24_emulator.portal.seed("deal", 300)
    with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None) as client:
        client.call("crm.deal.add", {"fields": {"TITLE": "Likely", "PROBABILITY": 40}})  # the seeded have none
    seeded = whole.run(base / "bitrix24" / "deals.parquet")
    day = days.run(base / "bitrix24" / "deals_daily" / "2024-01-01.parquet", "2024-01-01")
    quiet_day = days.run(base / "bitrix24" / "deals_daily" / "2025-06-01.parquet", "2025-06-01")

    assert len(empty) == 0 and len(seeded) == 301 and 0 < len(day) < 300 and len(quiet_day) == 0
    # An integer column with nulls in one run, none in another (the empty one):
    assert seeded["PROBABILITY"].isna().sum() == 300 and seeded["PROBABILITY"].max() == 40
    schemas = whole.schemas + days.schemas
    assert all(schema.equals(schemas[0]) for schema in schemas), [str(s) for s in schemas]
    for frame in whole.frames + days.frames:
        assert _dtypes(frame) == EXPORT_DTYPES
