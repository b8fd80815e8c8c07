"""Results tables: keys joined back by command_index, pandas dtypes, failed source rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from b24_dagster.frames import commands_from_frame, failed_rows, results_to_frame
from b24_dagster.frames._results import STATUS_DTYPE

SCHEMA = pa.schema([
    ("command_index", pa.int64()), ("command_key", pa.string()), ("method", pa.string()),
    ("chunk_index", pa.int32()), ("status", pa.string()), ("result", pa.string()),
    ("error_code", pa.string()), ("error_description", pa.string()),
    ("total", pa.int64()), ("next", pa.int64()),
])


def results(statuses: list[str], *, start: int = 0, method: str = "crm.lead.add") -> pa.Table:
    """A results table in the DESIGN.md row contract, one row per status."""
    n = len(statuses)
    idx = list(range(start, start + n))
    return pa.table({
        "command_index": idx,
        "command_key": [str(i) for i in idx],
        "method": [method] * n,
        "chunk_index": [i // 50 for i in idx],
        "status": statuses,
        "result": [json.dumps(i + 100) if s == "ok" else None for i, s in zip(idx, statuses,
                                                                               strict=True)],
        "error_code": ["CRM_FIELD_ERROR_VALUE_NOT_VALID" if s == "error" else None
                       for s in statuses],
        "error_description": ["bad e-mail" if s == "error" else None for s in statuses],
        "total": [None] * n,
        "next": [None] * n,
    }, schema=SCHEMA)


@pytest.fixture
def source() -> pd.DataFrame:
    return pd.DataFrame({"sid": [10, 11, 12, 13, 14],
                         "EMAIL": ["a@x.io", "bad", "c@x.io", "d@x.io", "e@x.io"]},
                        index=list("abcde"))


def test_with_results_adds_keys_by_command_index(source: pd.DataFrame) -> None:
    cs = commands_from_frame(source, "crm.lead.add", key_column="sid")
    table = cs.with_results(results(["ok", "error", "ok", "not_run", "unknown"]))
    assert table.column_names[-1] == "sid"
    assert table.schema.field("sid").type == pa.string()
    assert table.column("sid").to_pylist() == ["10", "11", "12", "13", "14"]


def test_with_results_on_one_chunk_out_of_order(source: pd.DataFrame) -> None:
    cs = commands_from_frame(source, "crm.lead.add", key_column="sid")
    chunk = results(["ok", "error"], start=3).take([1, 0])
    assert cs.with_results(chunk).column("sid").to_pylist() == ["14", "13"]


def test_with_results_checks_its_input(source: pd.DataFrame) -> None:
    cs = commands_from_frame(source, "crm.lead.add", key_column="sid")
    with pytest.raises(ValueError, match="out of range"):
        cs.with_results(results(["ok"], start=5))
    with pytest.raises(ValueError, match="no command_index"):
        cs.with_results(pa.table({"status": ["ok"]}))
    clash = commands_from_frame(source.rename(columns={"sid": "status"}), "crm.lead.add",
                                key_column="status")
    with pytest.raises(ValueError, match="already has a column named 'status'"):
        clash.with_results(results(["ok"] * 5))


def test_with_results_without_key_is_unchanged(source: pd.DataFrame) -> None:
    table = results(["ok"] * 5)
    assert commands_from_frame(source, "crm.lead.add").with_results(table) is table


def test_results_to_frame_dtypes(source: pd.DataFrame) -> None:
    cs = commands_from_frame(source, "crm.lead.add", key_column="sid")
    df = results_to_frame(cs.with_results(results(["ok", "error", "ok", "not_run", "unknown"])))
    assert len(df) == 5
    # Nullable dtypes whether or not a column has nulls: the same in every run.
    assert str(df["command_index"].dtype) == "Int64" and str(df["chunk_index"].dtype) == "Int32"
    assert str(df["total"].dtype) == "Int64" and df["total"].isna().all()
    assert isinstance(df["status"].dtype, pd.CategoricalDtype) and df["status"].dtype == STATUS_DTYPE
    assert list(df["status"].cat.categories) == ["ok", "error", "not_run", "unknown"]
    assert df["status"].value_counts()["unknown"] == 1
    assert str(df["error_code"].dtype) == "string" and df["error_code"].dtype.na_value is pd.NA
    assert df["result"].iloc[0] == "100" and pd.isna(df["result"].iloc[1])
    assert df["sid"].tolist() == ["10", "11", "12", "13", "14"]


def test_results_to_frame_of_an_empty_table() -> None:
    df = results_to_frame(SCHEMA.empty_table())
    assert len(df) == 0 and list(df.columns) == SCHEMA.names


def test_failed_rows_join_back_to_the_source(source: pd.DataFrame) -> None:
    cs = commands_from_frame(source, "crm.lead.add", key_column="sid")
    table = cs.with_results(results(["ok", "error", "ok", "not_run", "unknown"]))
    failed = failed_rows(table, source, "sid")
    assert list(failed.index) == ["b", "d", "e"]
    assert failed["EMAIL"].tolist() == ["bad", "d@x.io", "e@x.io"]
    assert failed["b24_status"].tolist() == ["error", "not_run", "unknown"]
    assert failed["b24_error_code"].iloc[0] == "CRM_FIELD_ERROR_VALUE_NOT_VALID"
    assert failed["b24_error_description"].iloc[0] == "bad e-mail"
    assert pd.isna(failed["b24_error_code"].iloc[1])
    plain = failed_rows(table, source, "sid", with_outcome=False)
    assert list(plain.columns) == ["sid", "EMAIL"]


def test_failed_rows_float_keys_match_their_int_strings() -> None:
    source = pd.DataFrame({"k": [1.0, 2.0, np.nan], "t": ["a", "b", "c"]})
    table = pa.table({"command_index": [0, 1], "status": ["error", "ok"], "k": ["1", "2"]})
    assert failed_rows(table, source, "k")["t"].tolist() == ["a"]


def test_failed_rows_none_failed(source: pd.DataFrame) -> None:
    cs = commands_from_frame(source, "crm.lead.add", key_column="sid")
    failed = failed_rows(cs.with_results(results(["ok"] * 5)), source, "sid")
    assert len(failed) == 0 and {"sid", "EMAIL"} <= set(failed.columns)


def test_failed_rows_needs_the_key_column(source: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="with_results"):
        failed_rows(results(["ok"] * 5), source, "sid")
    with pytest.raises(ValueError, match="source DataFrame has no column"):
        failed_rows(pa.table({"status": ["ok"], "zz": ["1"]}), source, "zz")


def test_public_names() -> None:
    import b24_dagster.frames as frames

    assert sorted(frames.__all__) == [
        "CommandSet", "CommandValidationError", "FAILED_STATUSES", "MULTIFIELD_NAMES",
        "STATUSES", "commands_from_frame", "failed_rows", "results_to_frame", "table_to_frame"]
    from b24_dagster.errors import CommandValidationError

    assert frames.CommandValidationError is CommandValidationError


def test_table_to_frame_gives_the_same_dtypes_on_pandas_2_and_3() -> None:
    import datetime as dt

    from b24_dagster.frames import table_to_frame

    table = pa.table({
        "ID": pa.array([1, 2, 3], pa.int64()),
        "COMPANY_ID": pa.array([7, None, 9], pa.int64()),
        "TITLE": pa.array(["a", None, "c"], pa.string()),
        "OPENED": pa.array([True, False, True]),
        "CLOSED": pa.array([True, None, False]),
        "OPPORTUNITY": pa.array([1.5, None, 2.0]),
        "DATE_MODIFY": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC)] * 3, pa.timestamp("us", "UTC")),
        "SMALL": pa.array([1, 2, 3], pa.int32()),
    })  # fmt: skip
    df = table_to_frame(table)
    # By type alone: a column without nulls gets the dtype of one with them.
    assert df.dtypes.astype(str).to_dict() == {
        "ID": "Int64", "COMPANY_ID": "Int64", "TITLE": "string", "OPENED": "boolean", "CLOSED": "boolean",
        "OPPORTUNITY": "Float64", "DATE_MODIFY": "datetime64[us, UTC]", "SMALL": "Int32"}  # fmt: skip
    assert df["TITLE"].dtype.na_value is pd.NA and df["TITLE"].dtype.storage == "pyarrow"
    assert pd.isna(df["TITLE"].iloc[1]) and df["TITLE"].iloc[2] == "c"
    assert df["CLOSED"].isna().tolist() == [False, True, False] and df["OPENED"].tolist() == [True, False, True]
    assert df["COMPANY_ID"].tolist()[0] == 7 and df["COMPANY_ID"].isna().tolist() == [False, True, False]
