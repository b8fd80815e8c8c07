"""Every dtype a DataFrame can carry, to the exact params it becomes."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from b24_dagster.frames import commands_from_frame

FIXTURES = Path(__file__).parents[1] / "fixtures"


def fields_of(df: pd.DataFrame, **kwargs: object) -> list[dict[str, object]]:
    """The fields dict of each command built from ``df`` with crm.item.add."""
    cs = commands_from_frame(df, "crm.item.add", **kwargs)  # type: ignore[arg-type]
    return [params["fields"] for _, params in cs.calls]


def assert_plain(value: object) -> None:
    """Only plain Python values, all the way down."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert type(k) is str
            assert_plain(v)
    elif isinstance(value, list):
        for v in value:
            assert_plain(v)
    else:
        assert type(value) in (str, int, float, bool, Decimal, type(None)), type(value)


# --- nulls ----------------------------------------------------------------------------------


NULLS = [None, np.nan, pd.NA, pd.NaT]


@pytest.mark.parametrize("null", NULLS, ids=["None", "nan", "NA", "NaT"])
def test_each_null_is_omitted(null: object) -> None:
    df = pd.DataFrame({"title": pd.Series(["a", null], dtype=object)})
    assert fields_of(df) == [{"title": "a"}, {}]


@pytest.mark.parametrize("null", NULLS, ids=["None", "nan", "NA", "NaT"])
def test_each_null_is_sent_empty_on_request(null: object) -> None:
    df = pd.DataFrame({"title": pd.Series(["a", null], dtype=object)})
    assert fields_of(df, nulls="empty") == [{"title": "a"}, {"title": ""}]


def test_nulls_across_dtypes_omit_and_empty() -> None:
    df = pd.DataFrame({
        "i": pd.array([1, None], dtype="Int64"),
        "f": [1.5, np.nan],
        "s": pd.array(["x", None], dtype="string"),
        "t": pd.to_datetime(["2024-01-01", None]),
        "b": pd.array([True, None], dtype="boolean"),
        "c": pd.Categorical(["k", None]),
        "o": pd.Series([[1], None], dtype=object),
    })
    assert fields_of(df) == [
        {"i": 1, "f": 1.5, "s": "x", "t": "2024-01-01T00:00:00+00:00", "b": True, "c": "k",
         "o": [1]},
        {},
    ]
    assert fields_of(df, nulls="empty")[1] == {k: "" for k in df.columns}


def test_empty_multiple_field_is_an_empty_list() -> None:
    df = pd.DataFrame({"observers": pd.Series([[1, 2], None], dtype=object)})
    types = {"observers": {"type": "user", "isMultiple": True}}
    assert fields_of(df, nulls="empty", field_types=types) == [
        {"observers": [1, 2]}, {"observers": []}]


def test_all_null_columns() -> None:
    df = pd.DataFrame({"a": [None, None], "b": [np.nan, np.nan], "c": pd.Series([pd.NaT] * 2),
                       "d": pd.array([None, None], dtype="Int64")})
    assert fields_of(df) == [{}, {}]
    assert fields_of(df, nulls="empty") == [dict.fromkeys("abcd", "")] * 2


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint32",
                                   "uint64", "Int8", "Int32", "Int64", "UInt64",
                                   "int64[pyarrow]"])
def test_integer_dtypes_become_python_ints(dtype: str) -> None:
    df = pd.DataFrame({"n": pd.Series([1, 42], dtype=dtype)})
    out = fields_of(df)
    assert out == [{"n": 1}, {"n": 42}]
    assert all(type(f["n"]) is int for f in out)


def test_uint64_beyond_int64() -> None:
    df = pd.DataFrame({"n": np.array([2**64 - 1], dtype=np.uint64)})
    assert fields_of(df) == [{"n": 2**64 - 1}]


def test_nullable_int_with_missing() -> None:
    df = pd.DataFrame({"n": pd.array([7, None, -3], dtype="Int64")})
    out = fields_of(df)
    assert out == [{"n": 7}, {}, {"n": -3}]
    assert type(out[0]["n"]) is int


def test_float_column_of_whole_numbers_with_nan_becomes_ints() -> None:
    # An integer column with a gap is float64 in pandas; 5.0 must not reach the portal as "5.0".
    df = pd.DataFrame({"ASSIGNED_BY_ID": [5, None, 6]})
    assert df["ASSIGNED_BY_ID"].dtype == np.float64
    out = fields_of(df)
    assert out == [{"ASSIGNED_BY_ID": 5}, {}, {"ASSIGNED_BY_ID": 6}]
    assert type(out[0]["ASSIGNED_BY_ID"]) is int


def test_float_column_with_fractions_stays_float() -> None:
    out = fields_of(pd.DataFrame({"x": [1.0, 2.5, np.nan]}))
    assert out == [{"x": 1.0}, {"x": 2.5}, {}]
    assert type(out[0]["x"]) is float


def test_float_for_double_field_stays_float() -> None:
    out = fields_of(pd.DataFrame({"opportunity": [100.0, 200.0]}),
                    field_types={"opportunity": "double"})
    assert out == [{"opportunity": 100.0}, {"opportunity": 200.0}]
    assert type(out[0]["opportunity"]) is float


def test_fraction_refused_for_integer_field() -> None:
    df = pd.DataFrame({"assignedById": [1.0, 2.5]})
    with pytest.raises(ValueError, match=r"row 1 .*'assignedById'.*whole number"):
        fields_of(df, field_types={"assignedById": {"type": "user"}})


def test_float32_keeps_its_shortest_repr() -> None:
    out = fields_of(pd.DataFrame({"x": np.array([0.1, np.nan], dtype=np.float32)}))
    assert out == [{"x": 0.1}, {}]


def test_nullable_float64() -> None:
    out = fields_of(pd.DataFrame({"x": pd.array([1.25, None], dtype="Float64")}))
    assert out == [{"x": 1.25}, {}]


def test_huge_whole_floats_stay_floats() -> None:
    out = fields_of(pd.DataFrame({"x": [1e300, 2.0]}))
    assert out == [{"x": 1e300}, {"x": 2.0}]


def test_decimal_values_pass_unchanged() -> None:
    df = pd.DataFrame({"opportunity": [Decimal("1000.10"), Decimal("NaN"), None]})
    out = fields_of(df)
    assert out == [{"opportunity": Decimal("1000.10")}, {}, {}]
    assert isinstance(out[0]["opportunity"], Decimal)


def test_arrow_decimal_column() -> None:
    s = pd.Series([Decimal("19999.99"), None], dtype=pd.ArrowDtype(pa.decimal128(10, 2)))
    assert fields_of(pd.DataFrame({"m": s})) == [{"m": Decimal("19999.99")}, {}]


# --- dates and times ------------------------------------------------------------------------


def test_tz_aware_timestamps_keep_their_offset_per_row() -> None:
    s = pd.Series(pd.to_datetime(["2024-01-15 10:00:00.000", "2024-07-18 14:00:14.999"])
                  ).dt.tz_localize("Europe/Berlin")
    assert fields_of(pd.DataFrame({"begindate": s})) == [
        {"begindate": "2024-01-15T10:00:00+01:00"},
        {"begindate": "2024-07-18T14:00:14+02:00"},  # fractions are truncated
    ]


def test_negative_and_odd_offsets() -> None:
    s = pd.Series(pd.to_datetime(["2024-03-01 08:30"])).dt.tz_localize("America/St_Johns")
    t = pd.Series(pd.to_datetime(["2024-03-01 08:30"])).dt.tz_localize("Asia/Kathmandu")
    out = fields_of(pd.DataFrame({"a": s, "b": t}))
    assert out == [{"a": "2024-03-01T08:30:00-03:30", "b": "2024-03-01T08:30:00+05:45"}]


def test_naive_timestamps_are_utc_by_default() -> None:
    df = pd.DataFrame({"t": pd.to_datetime(["2024-07-18 14:00:14", None])})
    assert fields_of(df) == [{"t": "2024-07-18T14:00:14+00:00"}, {}]


def test_naive_timestamps_in_a_timezone() -> None:
    df = pd.DataFrame({"t": pd.to_datetime(["2024-07-18 14:00:14", "2024-01-18 14:00:14"])})
    assert fields_of(df, timezone="Europe/Berlin") == [
        {"t": "2024-07-18T14:00:14+02:00"}, {"t": "2024-01-18T14:00:14+01:00"}]
    assert fields_of(df, timezone=ZoneInfo("UTC"))[0] == {"t": "2024-07-18T14:00:14+00:00"}


def test_nonexistent_wall_time_refused() -> None:
    df = pd.DataFrame({"t": pd.to_datetime(["2024-03-31 02:30:00"])})
    with pytest.raises(ValueError, match=r"row 0 .*'t'.*does not exist or is ambiguous"):
        fields_of(df, timezone="Europe/Berlin")


def test_date_field_gets_a_date() -> None:
    s = pd.Series(pd.to_datetime(["2024-06-18 23:30"])).dt.tz_localize("Europe/Berlin")
    out = fields_of(pd.DataFrame({"begindate": s}), field_types={"begindate": "date"})
    assert out == [{"begindate": "2024-06-18"}]


def test_python_dates_and_datetimes_in_object_columns() -> None:
    df = pd.DataFrame({"d": pd.Series([dt.date(2024, 1, 2), None], dtype=object),
                       "t": pd.Series([dt.datetime(2024, 1, 2, 3, 4, 5, 600),
                                       dt.datetime(2024, 1, 2, 3, 4, 5,
                                                   tzinfo=dt.timezone(dt.timedelta(hours=3)))],
                                      dtype=object)})
    assert fields_of(df) == [{"d": "2024-01-02", "t": "2024-01-02T03:04:05+00:00"},
                             {"t": "2024-01-02T03:04:05+03:00"}]


def test_arrow_timestamp_and_date_columns() -> None:
    ts = pd.Series([pd.Timestamp("2024-01-01 12:00", tz="UTC"), None],
                   dtype=pd.ArrowDtype(pa.timestamp("us", tz="UTC")))
    d = pd.Series([dt.date(2024, 5, 6), None], dtype=pd.ArrowDtype(pa.date32()))
    assert fields_of(pd.DataFrame({"ts": ts, "d": d})) == [
        {"ts": "2024-01-01T12:00:00+00:00", "d": "2024-05-06"}, {}]


def test_second_resolution_datetimes() -> None:
    s = pd.Series(pd.to_datetime(["2024-01-01 00:00:01"])).astype("datetime64[s]")
    assert fields_of(pd.DataFrame({"t": s})) == [{"t": "2024-01-01T00:00:01+00:00"}]


# --- booleans -------------------------------------------------------------------------------


def test_booleans_become_y_n_for_char_fields_of_a_legacy_fields_answer() -> None:
    deal_fields = {"OPENED": {"type": "char", "isMultiple": False},
                   "IS_MANUAL_OPPORTUNITY": {"type": "char"}, "FLAG": {"type": "integer"}}
    df = pd.DataFrame({"OPENED": [True, False], "IS_MANUAL_OPPORTUNITY": [False, True],
                       "OTHER": [True, False]})
    assert fields_of(df, field_types={"result": deal_fields}) == [
        {"OPENED": "Y", "IS_MANUAL_OPPORTUNITY": "N", "OTHER": True},
        {"OPENED": "N", "IS_MANUAL_OPPORTUNITY": "Y", "OTHER": False}]


def test_booleans_become_y_n_for_boolean_fields_of_crm_item_fields() -> None:
    item_fields = {"fields": {"opened": {"type": "boolean", "upperName": "OPENED"}}}
    df = pd.DataFrame({"opened": pd.array([True, None], dtype="boolean"),
                       "OPENED": pd.array([False, True], dtype="bool[pyarrow]")})
    assert fields_of(df, field_types=item_fields) == [{"opened": "Y", "OPENED": "N"},
                                                      {"OPENED": "Y"}]


def test_plain_booleans_stay_bool() -> None:
    out = fields_of(pd.DataFrame({"flag": np.array([True, False])}))
    assert out == [{"flag": True}, {"flag": False}]
    assert type(out[0]["flag"]) is bool


def test_object_booleans_for_char_field() -> None:
    df = pd.DataFrame({"OPENED": pd.Series([True, np.bool_(False), None], dtype=object)})
    assert fields_of(df, field_types={"OPENED": "char"}) == [{"OPENED": "Y"}, {"OPENED": "N"},
                                                             {}]


# --- strings and categoricals ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [object, "str", "string", "string[pyarrow]",
                                   pd.ArrowDtype(pa.string())])
def test_string_dtypes(dtype: object) -> None:
    df = pd.DataFrame({"title": pd.Series(["Lead #1", None, ""], dtype=dtype)})
    assert fields_of(df) == [{"title": "Lead #1"}, {}, {"title": ""}]


def test_unicode_and_control_characters_pass_unchanged() -> None:
    text = "Zoë & Jürgen 日本 \t\n\"quoted\" %26 [x]=1"
    assert fields_of(pd.DataFrame({"t": [text]})) == [{"t": text}]


def test_categorical_sends_its_values() -> None:
    df = pd.DataFrame({"stage": pd.Categorical(["NEW", None, "WON", "NEW"],
                                               categories=["WON", "NEW", "UNUSED"])})
    assert fields_of(df) == [{"stage": "NEW"}, {}, {"stage": "WON"}, {"stage": "NEW"}]


def test_categorical_of_numbers_and_bools() -> None:
    df = pd.DataFrame({"n": pd.Categorical([3, 1, 3]), "f": pd.Categorical([1.0, np.nan, 2.0]),
                       "OPENED": pd.Categorical([True, False, True])})
    out = fields_of(df, field_types={"OPENED": "char"})
    assert out == [{"n": 3, "f": 1, "OPENED": "Y"}, {"n": 1, "OPENED": "N"},
                   {"n": 3, "f": 2, "OPENED": "Y"}]
    assert type(out[0]["n"]) is int


def test_categorical_of_phones_does_not_share_objects() -> None:
    df = pd.DataFrame({"PHONE": pd.Categorical(["+1", "+1"])})
    out = fields_of(df)
    assert out[0] == out[1] == {"PHONE": [{"VALUE": "+1", "VALUE_TYPE": "WORK"}]}
    assert out[0]["PHONE"] is not out[1]["PHONE"]


def test_categorical_of_timestamps() -> None:
    df = pd.DataFrame({"t": pd.Categorical(pd.to_datetime(["2024-01-01", "2024-01-01"]))})
    assert fields_of(df) == [{"t": "2024-01-01T00:00:00+00:00"}] * 2


# --- multi-fields, lists, dicts -------------------------------------------------------------


def test_multifield_lists_pass_as_given() -> None:
    phones = [{"VALUE": "+49 30 1234", "VALUE_TYPE": "MOBILE"}]
    df = pd.DataFrame({"PHONE": pd.Series([phones, None], dtype=object)})
    assert fields_of(df) == [{"PHONE": phones}, {}]


def test_plain_string_for_a_multifield_is_wrapped() -> None:
    df = pd.DataFrame({"phone": ["+1 555 0100", None, ""], "mail": ["a@example.com", "", None]})
    out = fields_of(df, fields={"phone": "PHONE", "mail": "EMAIL"})
    assert out == [
        {"PHONE": [{"VALUE": "+1 555 0100", "VALUE_TYPE": "WORK"}],
         "EMAIL": [{"VALUE": "a@example.com", "VALUE_TYPE": "WORK"}]},
        {}, {}]


def test_multifield_from_numbers_lists_of_strings_and_single_dicts() -> None:
    df = pd.DataFrame({
        "PHONE": pd.Series([79001234567, None], dtype="Int64"),
        "EMAIL": pd.Series([["a@x.io", "b@x.io"], {"VALUE": "c@x.io", "VALUE_TYPE": "HOME"}],
                           dtype=object),
    })
    assert fields_of(df) == [
        {"PHONE": [{"VALUE": "79001234567", "VALUE_TYPE": "WORK"}],
         "EMAIL": [{"VALUE": "a@x.io", "VALUE_TYPE": "WORK"},
                   {"VALUE": "b@x.io", "VALUE_TYPE": "WORK"}]},
        {"EMAIL": [{"VALUE": "c@x.io", "VALUE_TYPE": "HOME"}]}]


def test_multifield_known_from_field_types() -> None:
    df = pd.DataFrame({"ufPhones": ["+1"]})
    out = fields_of(df, field_types={"ufPhones": {"type": "crm_multifield", "isMultiple": True}})
    assert out == [{"ufPhones": [{"VALUE": "+1", "VALUE_TYPE": "WORK"}]}]


def test_nested_values_are_made_plain() -> None:
    nested = {"a": np.int64(3), "b": [np.float64(1.5), np.nan, pd.Timestamp("2024-01-01")],
              "c": (1, 2), "d": np.array([1, 2]), 5: True}
    out = fields_of(pd.DataFrame({"x": pd.Series([nested], dtype=object)}))
    assert out == [{"x": {"a": 3, "b": [1.5, None, "2024-01-01T00:00:00+00:00"], "c": [1, 2],
                          "d": [1, 2], "5": True}}]
    assert_plain(out)


def test_arrow_list_and_struct_columns() -> None:
    s = pd.Series([[{"VALUE": "+1", "VALUE_TYPE": "WORK"}], None],
                  dtype=pd.ArrowDtype(pa.list_(pa.struct([("VALUE", pa.string()),
                                                          ("VALUE_TYPE", pa.string())]))))
    assert fields_of(pd.DataFrame({"PHONE": s})) == [
        {"PHONE": [{"VALUE": "+1", "VALUE_TYPE": "WORK"}]}, {}]


def test_mixed_object_column() -> None:
    df = pd.DataFrame({"x": pd.Series([1, "two", 3.5, np.int32(4), True, None,
                                       Decimal("6.10"), pd.Timestamp("2024-01-01", tz="UTC")],
                                      dtype=object)})
    out = fields_of(df)
    assert [f.get("x") for f in out] == [1, "two", 3.5, 4, True, None, Decimal("6.10"),
                                         "2024-01-01T00:00:00+00:00"]
    assert_plain(out)


def test_every_param_is_plain_python() -> None:
    df = pd.DataFrame({
        "a": np.array([1, 2], dtype=np.int32), "b": [1.5, np.nan],
        "c": pd.array([1, None], dtype="Int64"), "d": np.array([True, False]),
        "e": pd.Categorical(["x", "y"]), "f": pd.to_datetime(["2024-01-01", None]),
    })
    cs = commands_from_frame(df, "crm.item.add", params={"entityTypeId": np.int64(1)})
    assert_plain([p for _, p in cs.calls])


# --- fixtures: a crm.item.add / crm.deal.add row round-trips through a DataFrame --------------


def test_fixture_item_rebuilds_its_fields() -> None:
    item = json.loads((FIXTURES / "crm_item_add.json").read_text())["result"]["item"]
    keep = ["title", "assignedById", "opened", "opportunity", "currencyId", "begindate"]
    df = pd.DataFrame([{k: item[k] for k in keep}])
    df["begindate"] = pd.to_datetime(df["begindate"])  # offset +02:00 kept
    df["opened"] = df["opened"] == "Y"
    out = fields_of(df, field_types={"opened": "boolean", "opportunity": "double"})
    assert out == [{k: item[k] for k in keep}]


def test_legacy_deal_strings_pass_unchanged() -> None:
    deal = json.loads((FIXTURES / "crm_deal_get.json").read_text())["result"]
    keep = ["TITLE", "STAGE_ID", "OPPORTUNITY", "ASSIGNED_BY_ID", "OPENED", "BEGINDATE"]
    df = pd.DataFrame([{k: deal[k] for k in keep}])
    cs = commands_from_frame(df, "crm.deal.add")
    assert cs.calls == [("crm.deal.add", {"fields": {k: deal[k] for k in keep}})]


def test_numpy_strings_become_plain_str() -> None:
    df = pd.DataFrame({"a": pd.Series(np.array(["x", "y"]).astype(object), dtype=object),
                       "b": pd.Series([np.str_("z"), 1], dtype=object)})
    df.loc[0, "a"] = np.str_("x")
    out = fields_of(df)
    assert out == [{"a": "x", "b": "z"}, {"a": "y", "b": 1}]
    assert_plain(out)
