"""The Parquet IO path: base location, layout, streaming row groups, atomic publish."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import AssetKey, MultiPartitionKey, asset, instance_for_test, materialize
from upath import UPath

from b24_dagster.integration import BASE_ENV, Bitrix24Storage, ParquetStreamWriter, read_parquet
from b24_dagster.integration._storage import INSTANCE_FOLDER, BaseLocationError

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string())])


def test_base_from_setting_env_or_default(tmp_path, monkeypatch):
    """Issue 21: the base never depends on the directory a process starts in (before, `./data`
    was resolved against it, and a run from elsewhere lost the sync state)."""
    monkeypatch.delenv(BASE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BaseLocationError, match="has no base location"):
        Bitrix24Storage().base()  # no instance outside a run: nowhere that outlives it
    for relative in ("data", "./data"):
        with pytest.raises(BaseLocationError, match="is relative"):
            Bitrix24Storage(base_path=relative).base()
    monkeypatch.setenv(BASE_ENV, "data")
    with pytest.raises(BaseLocationError, match="is relative"):
        Bitrix24Storage().base()
    monkeypatch.setenv(BASE_ENV, str(tmp_path / "env"))
    assert Bitrix24Storage().base() == UPath(tmp_path / "env")
    assert Bitrix24Storage(base_path=str(tmp_path / "x")).base() == UPath(tmp_path / "x")
    assert str(Bitrix24Storage(base_path="memory://lake/b24").base()).startswith("memory://")


def test_layout_of_partitions(tmp_path):
    storage = Bitrix24Storage(base_path=str(tmp_path))
    key = AssetKey(["bitrix24", "deals"])
    assert storage.path_for(key) == UPath(tmp_path / "bitrix24" / "deals.parquet")
    assert storage.path_for(key, "2025-01-02") == UPath(tmp_path / "bitrix24/deals/2025-01-02.parquet")
    multi = MultiPartitionKey({"portal": "eu/west", "date": "2025-01-02"})
    assert storage.path_for(key, multi) == UPath(
        tmp_path / "bitrix24/deals/date=2025-01-02/portal=eu_west.parquet"
    )


def test_stream_writes_one_row_group_per_write_and_publishes_atomically(tmp_path):
    path = UPath(tmp_path / "out" / "x.parquet")
    with ParquetStreamWriter(path, SCHEMA) as writer:
        for start in range(0, 150, 50):
            writer.write(pa.table({"id": list(range(start, start + 50)), "name": ["n"] * 50}))
            assert not path.exists()  # only the temporary file so far
    meta = pq.ParquetFile(str(path)).metadata
    assert (meta.num_rows, meta.num_row_groups) == (150, 3)
    assert read_parquet(path)["id"].to_pylist() == list(range(150))
    assert [p.name for p in path.parent.iterdir()] == ["x.parquet"]


def test_failure_keeps_previous_file_and_removes_temporary(tmp_path):
    path = UPath(tmp_path / "x.parquet")
    with ParquetStreamWriter(path, SCHEMA) as writer:
        writer.write(pa.table({"id": [1], "name": ["old"]}))
    with pytest.raises(RuntimeError), ParquetStreamWriter(path, SCHEMA) as writer:
        writer.write(pa.table({"id": [2], "name": ["new"]}))
        raise RuntimeError("boom")
    assert read_parquet(path)["name"].to_pylist() == ["old"]
    assert [p.name for p in path.parent.iterdir()] == ["x.parquet"]


def test_empty_file_has_the_schema(tmp_path):
    path = UPath(tmp_path / "empty.parquet")
    with ParquetStreamWriter(path, SCHEMA):
        pass
    table = read_parquet(path)
    assert table.num_rows == 0 and table.schema == SCHEMA


def test_object_store_path_through_fsspec():
    path = UPath("memory://lake/b24/x.parquet")
    with ParquetStreamWriter(path, SCHEMA) as writer:
        writer.write(pa.table({"id": [1, 2], "name": ["a", "b"]}))
    assert read_parquet(path).num_rows == 2


def test_without_a_base_the_runs_instance_storage_holds_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv(BASE_ENV, raising=False)

    @asset(required_resource_keys={"bitrix24_storage"})
    def where(context) -> None:
        context.add_output_metadata({"base": str(context.resources.bitrix24_storage.base())})

    with instance_for_test() as instance:
        result = materialize([where], resources={"bitrix24_storage": Bitrix24Storage()}, instance=instance)
        [event] = result.get_asset_materialization_events()
        assert event.materialization.metadata["base"].value == str(
            UPath(instance.storage_directory()) / INSTANCE_FOLDER)


def test_a_temporary_dagster_home_is_not_a_base(tmp_path, monkeypatch):
    """`dg dev` / `dg launch` without DAGSTER_HOME run on `.tmp_dagster_home_*`, removed at exit."""
    monkeypatch.delenv(BASE_ENV, raising=False)

    @asset(required_resource_keys={"bitrix24_storage"})
    def where(context) -> None:
        context.resources.bitrix24_storage.base()

    home = tmp_path / ".tmp_dagster_home_abc"
    home.mkdir()
    with instance_for_test(temp_dir=str(home)) as instance:
        result = materialize([where], resources={"bitrix24_storage": Bitrix24Storage()}, instance=instance,
                             raise_on_error=False)
    assert not result.success
    assert "ephemeral or temporary" in str(result.get_step_failure_events()[0].event_specific_data.error)
