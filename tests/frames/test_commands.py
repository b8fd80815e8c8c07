"""Command sets: shapes of params, ids and keys, bad input refused before any request."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from b24_dagster.errors import CommandValidationError
from b24_dagster.frames import CommandSet, commands_from_frame


@pytest.fixture
def leads() -> pd.DataFrame:
    return pd.DataFrame({
        "source_id": ["s1", "s2", "s3"],
        "title": ["A", "B", None],
        "assigned": pd.array([1, None, 3], dtype="Int64"),
    }, index=["a", "b", "c"])


# --- shapes ---------------------------------------------------------------------------------


def test_add_with_mapping_constant_params_and_key(leads: pd.DataFrame) -> None:
    cs = commands_from_frame(leads, "crm.item.add", params={"entityTypeId": 1},
                             fields={"title": "title", "assigned": "assignedById"},
                             key_column="source_id")
    assert isinstance(cs, CommandSet)
    assert len(cs) == 3
    assert cs.method == "crm.item.add"
    assert cs.calls == [
        ("crm.item.add", {"entityTypeId": 1, "fields": {"title": "A", "assignedById": 1}}),
        ("crm.item.add", {"entityTypeId": 1, "fields": {"title": "B"}}),
        ("crm.item.add", {"entityTypeId": 1, "fields": {"assignedById": 3}}),
    ]
    assert cs.key_name == "source_id"
    assert cs.keys is not None and cs.keys.type == pa.string()
    assert cs.keys.to_pylist() == ["s1", "s2", "s3"]


def test_default_fields_are_all_columns_but_id_and_key(leads: pd.DataFrame) -> None:
    leads = leads.assign(ID=[10, 11, 12])
    cs = commands_from_frame(leads, "crm.lead.update", id_column="ID", id_param="ID",
                             key_column="source_id")
    assert cs.calls[0] == ("crm.lead.update", {"ID": 10, "fields": {"title": "A",
                                                                     "assigned": 1}})
    assert cs.calls[2] == ("crm.lead.update", {"ID": 12, "fields": {"assigned": 3}})


def test_update_with_float_ids_from_a_gappy_int_column() -> None:
    df = pd.DataFrame({"id": [5.0, 7.0], "title": ["x", "y"]})
    cs = commands_from_frame(df, "crm.item.update", id_column="id",
                             params={"entityTypeId": 2})
    assert cs.calls == [
        ("crm.item.update", {"entityTypeId": 2, "id": 5, "fields": {"title": "x"}}),
        ("crm.item.update", {"entityTypeId": 2, "id": 7, "fields": {"title": "y"}}),
    ]
    assert type(cs.calls[0][1]["id"]) is int


def test_string_ids_are_kept() -> None:
    df = pd.DataFrame({"code": ["USD", "EUR"], "sort": [1, 2]})
    cs = commands_from_frame(df, "crm.currency.update", id_column="code")
    assert cs.calls[1] == ("crm.currency.update", {"id": "EUR", "fields": {"sort": 2}})


def test_delete_has_no_fields() -> None:
    df = pd.DataFrame({"id": np.array([3, 4], dtype=np.int32), "title": ["x", "y"]})
    cs = commands_from_frame(df, "crm.item.delete", id_column="id", params={"entityTypeId": 1})
    assert cs.calls == [("crm.item.delete", {"entityTypeId": 1, "id": 3}),
                        ("crm.item.delete", {"entityTypeId": 1, "id": 4})]


def test_fields_at_top_level() -> None:
    df = pd.DataFrame({"NAME": ["x"], "id": [9]})
    cs = commands_from_frame(df, "user.update", fields_param=None, id_column="id",
                             id_param="ID", params={"LANG": "en"})
    assert cs.calls == [("user.update", {"LANG": "en", "ID": 9, "NAME": "x"})]


def test_default_fields_from_params_are_overridden_by_rows() -> None:
    df = pd.DataFrame({"TITLE": ["x", "y"], "STAGE_ID": [None, "WON"]})
    cs = commands_from_frame(df, "crm.deal.add",
                             params={"fields": {"CATEGORY_ID": 0, "STAGE_ID": "NEW"}})
    assert cs.calls == [
        ("crm.deal.add", {"fields": {"CATEGORY_ID": 0, "STAGE_ID": "NEW", "TITLE": "x"}}),
        ("crm.deal.add", {"fields": {"CATEGORY_ID": 0, "STAGE_ID": "WON", "TITLE": "y"}}),
    ]


def test_fields_function_per_row() -> None:
    df = pd.DataFrame({"first": ["Ann", "Bob"], "last": ["Lee", None],
                       "when": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                       "n": pd.array([1, None], dtype="Int64")})

    def build(row: object) -> dict[str, object]:
        assert isinstance(row, dict)
        assert row["n"] is None or type(row["n"]) is int
        return {"TITLE": f"{row['first']} {row['last'] or ''}".strip(), "NAME": row["first"],
                "LAST_NAME": row["last"], "DATE": row["when"], "OPENED": True,
                "PHONE": "+1", "N": row["n"]}

    cs = commands_from_frame(df, "crm.lead.add", fields=build, field_types={"OPENED": "char"})
    assert cs.calls[1] == ("crm.lead.add", {"fields": {
        "TITLE": "Bob", "NAME": "Bob", "DATE": "2024-01-02T00:00:00+00:00", "OPENED": "Y",
        "PHONE": [{"VALUE": "+1", "VALUE_TYPE": "WORK"}]}})
    empty = commands_from_frame(df, "crm.lead.add", fields=build, nulls="empty")
    assert empty.calls[1][1]["fields"]["LAST_NAME"] == ""


def test_fields_function_errors_name_the_row() -> None:
    df = pd.DataFrame({"a": [1, 2]}, index=[10, 20])
    with pytest.raises(CommandValidationError, match=r"row 1 \(index 20\).*KeyError"):
        commands_from_frame(df, "crm.lead.add",
                            fields=lambda r: {"X": r["a"]} if r["a"] == 1 else {"X": r["zz"]})
    with pytest.raises(CommandValidationError, match=r"row 0 .*'X'.*bytes"):
        commands_from_frame(df, "crm.lead.add", fields=lambda r: {"X": b"raw"})
    with pytest.raises(CommandValidationError, match="not a mapping"):
        commands_from_frame(df, "crm.lead.add", fields=lambda r: [1])  # type: ignore[arg-type,return-value]


def test_keys_are_strings_and_int_keys_never_get_a_dot_zero() -> None:
    df = pd.DataFrame({"k": [1.0, 2.0, 30.0], "t": ["a", "b", "c"]})
    cs = commands_from_frame(df, "crm.lead.add", key_column="k")
    assert cs.keys is not None and cs.keys.to_pylist() == ["1", "2", "30"]
    df2 = pd.DataFrame({"k": np.array([7, 8], dtype=np.uint16), "t": ["a", "b"]})
    keys = commands_from_frame(df2, "crm.lead.add", key_column="k").keys
    assert keys is not None and keys.to_pylist() == ["7", "8"]


def test_key_may_also_be_a_field() -> None:
    df = pd.DataFrame({"ORIGIN_ID": ["o1"], "TITLE": ["t"]})
    cs = commands_from_frame(df, "crm.deal.add", key_column="ORIGIN_ID",
                             fields={"ORIGIN_ID": "ORIGIN_ID", "TITLE": "TITLE"})
    assert cs.calls[0][1]["fields"] == {"ORIGIN_ID": "o1", "TITLE": "t"}


# --- edges ----------------------------------------------------------------------------------


def test_empty_frame_gives_an_empty_set() -> None:
    df = pd.DataFrame({"k": pd.Series([], dtype="str"), "title": pd.Series([], dtype="str")})
    cs = commands_from_frame(df, "crm.lead.add", key_column="k")
    assert len(cs) == 0 and list(cs.calls) == []
    assert cs.keys is not None and len(cs.keys) == 0 and cs.keys.type == pa.string()
    assert len(commands_from_frame(pd.DataFrame(), "crm.lead.add")) == 0


def test_empty_frame_still_checks_columns() -> None:
    with pytest.raises(CommandValidationError, match="'nope'"):
        commands_from_frame(pd.DataFrame({"a": []}), "crm.lead.add", fields={"nope": "X"})


def test_one_row() -> None:
    cs = commands_from_frame(pd.DataFrame({"TITLE": ["only"]}), "crm.lead.add")
    assert cs.calls == [("crm.lead.add", {"fields": {"TITLE": "only"}})]


def test_very_long_strings_pass_whole() -> None:
    text = "x" * (1 << 20) + "é"
    cs = commands_from_frame(pd.DataFrame({"COMMENTS": [text, "short"]}), "crm.lead.add")
    assert cs.calls[0][1]["fields"]["COMMENTS"] == text


def test_100k_rows_are_correct() -> None:
    n = 100_000
    rng = np.random.default_rng(7)
    df = pd.DataFrame({
        "key": np.arange(n),
        "TITLE": [f"Lead {i}" for i in range(n)],
        "ASSIGNED_BY_ID": pd.array(np.where(np.arange(n) % 10 == 0, None, np.arange(n) % 9 + 1),
                                   dtype="Int64"),
        "OPPORTUNITY": np.where(np.arange(n) % 7 == 0, np.nan, rng.random(n) * 1000),
        "OPENED": np.arange(n) % 2 == 0,
        "PHONE": [f"+1 555 {i:07d}" for i in range(n)],
    })
    cs = commands_from_frame(df, "crm.lead.add", key_column="key",
                             field_types={"OPENED": "char"})
    assert len(cs) == n
    for i in (0, 1, 7, 10, 12345, n - 1):
        fields = cs.calls[i][1]["fields"]
        assert fields["TITLE"] == f"Lead {i}"
        assert fields.get("ASSIGNED_BY_ID") == (None if i % 10 == 0 else i % 9 + 1)
        assert ("OPPORTUNITY" in fields) == (i % 7 != 0)
        assert fields["OPENED"] == ("Y" if i % 2 == 0 else "N")
        assert fields["PHONE"] == [{"VALUE": f"+1 555 {i:07d}", "VALUE_TYPE": "WORK"}]
    assert cs.keys is not None and cs.keys[n - 1].as_py() == str(n - 1)


# --- refused before any request ---------------------------------------------------------------


def test_unknown_columns_refused(leads: pd.DataFrame) -> None:
    with pytest.raises(CommandValidationError, match=r"fields names columns \['nope'\]"):
        commands_from_frame(leads, "crm.lead.add", fields={"nope": "TITLE"})
    with pytest.raises(CommandValidationError, match="id_column 'nope'"):
        commands_from_frame(leads, "crm.lead.update", id_column="nope")
    with pytest.raises(CommandValidationError, match="key_column 'nope'"):
        commands_from_frame(leads, "crm.lead.add", key_column="nope")


def test_duplicate_keys_refused_naming_both_rows() -> None:
    df = pd.DataFrame({"k": ["x", "y", "x"], "t": [1, 2, 3]}, index=[100, 101, 102])
    with pytest.raises(CommandValidationError,
                       match=r"row 2 \(index 102\), column 'k': duplicate key 'x', also in "
                             r"row 0 \(index 100\)") as info:
        commands_from_frame(df, "crm.lead.add", key_column="k")
    assert info.value.index == 2


def test_duplicate_keys_after_string_conversion_refused() -> None:
    df = pd.DataFrame({"k": pd.Series([1, "1"], dtype=object)})
    with pytest.raises(CommandValidationError, match="duplicate key '1'"):
        commands_from_frame(df, "crm.lead.add", key_column="k")


def test_missing_keys_refused() -> None:
    df = pd.DataFrame({"k": ["a", None, None], "t": [1, 2, 3]})
    with pytest.raises(CommandValidationError,
                       match=r"row 1 \(index 1\), column 'k': the key is missing \(1 more"):
        commands_from_frame(df, "crm.lead.add", key_column="k")


def test_update_without_id_column_refused() -> None:
    with pytest.raises(CommandValidationError, match="needs id_column"):
        commands_from_frame(pd.DataFrame({"t": [1]}), "crm.deal.update")


@pytest.mark.parametrize(("ids", "message"), [
    ([1.0, np.nan], r"row 1 \(index 'r1'\), column 'id': nan: the id is missing"),
    ([1, None], r"row 1 .*the id is missing"),
    ([1.0, np.inf], r"row 1 .*invalid id: infinite"),
    ([1.0, 2.5], r"row 1 .*invalid id: .*whole number"),
    ([1, 0], r"row 1 .*invalid id \(ids are positive"),
    ([-4, 2], r"row 0 .*invalid id"),
    (["7", " "], r"row 1 .*invalid id"),
])
def test_invalid_ids_refused(ids: list[object], message: str) -> None:
    df = pd.DataFrame({"id": ids, "t": ["a", "b"]}, index=["r0", "r1"])
    with pytest.raises(CommandValidationError, match=message):
        commands_from_frame(df, "crm.item.delete", id_column="id")


def test_boolean_or_datetime_ids_refused() -> None:
    with pytest.raises(CommandValidationError, match="dtype bool"):
        commands_from_frame(pd.DataFrame({"id": [True]}), "crm.item.delete", id_column="id")


@pytest.mark.parametrize(("value", "message"), [
    (b"raw", "bytes cannot be sent"),
    (object(), "type object cannot be sent"),
    ({1, 2}, "type set cannot be sent"),
    (complex(1, 2), "type complex cannot be sent"),
    (float("inf"), "infinite"),
    (Exception("x"), "type Exception cannot be sent"),
])
def test_unserializable_values_refused_naming_row_and_column(value: object, message: str) -> None:
    bad = pd.Series(["fine", value, "fine"], dtype=object, index=["x", "y", "z"])
    df = pd.DataFrame({"ok": ["a", "b", "c"], "bad": bad}, index=["x", "y", "z"])
    with pytest.raises(CommandValidationError,
                       match=rf"crm.lead.add: row 1 \(index 'y'\), column 'bad': .*{message}"):
        commands_from_frame(df, "crm.lead.add")


def test_inf_in_a_float_column_refused() -> None:
    df = pd.DataFrame({"x": [1.0, -np.inf, np.inf]})
    with pytest.raises(CommandValidationError, match=r"row 1 .*'x'.*infinite.*\(1 more"):
        commands_from_frame(df, "crm.lead.add")


def test_unserializable_inside_a_list_refused() -> None:
    df = pd.DataFrame({"x": pd.Series([[1, object()]], dtype=object)})
    with pytest.raises(CommandValidationError, match="row 0 .*'x'"):
        commands_from_frame(df, "crm.lead.add")


def test_unsupported_dtypes_refused() -> None:
    df = pd.DataFrame({"d": pd.to_timedelta([1, 2], unit="s")})
    with pytest.raises(CommandValidationError, match="column 'd'.*dtype timedelta64"):
        commands_from_frame(df, "crm.lead.add")


def test_bad_categories_are_reported_at_their_first_row() -> None:
    df = pd.DataFrame({"x": pd.Categorical([1.0, 2.0, np.inf, np.inf])}, index=list("abcd"))
    with pytest.raises(CommandValidationError, match=r"row 2 \(index 'c'\).*\(1 more"):
        commands_from_frame(df, "crm.lead.add")


def test_unused_bad_category_is_harmless() -> None:
    df = pd.DataFrame({"x": pd.Categorical([1.0], categories=[1.0, np.inf])})
    assert commands_from_frame(df, "crm.lead.add").calls[0][1]["fields"] == {"x": 1}


def test_argument_errors() -> None:
    df = pd.DataFrame({"a": [1]})
    for bad in ("", "crm lead add", "batch", None):
        with pytest.raises(CommandValidationError):
            commands_from_frame(df, bad)  # type: ignore[arg-type]
    with pytest.raises(CommandValidationError, match="nulls"):
        commands_from_frame(df, "crm.lead.add", nulls="drop")  # type: ignore[arg-type]
    with pytest.raises(CommandValidationError, match="DataFrame"):
        commands_from_frame([{"a": 1}], "crm.lead.add")  # type: ignore[arg-type]
    with pytest.raises(CommandValidationError, match="timezone"):
        commands_from_frame(df, "crm.lead.add", timezone="Mars/Olympus")
    with pytest.raises(CommandValidationError, match="both map to field 'X'"):
        commands_from_frame(df.assign(b=2), "crm.lead.add", fields={"a": "X", "b": "X"})
    with pytest.raises(CommandValidationError, match="duplicate column"):
        commands_from_frame(pd.DataFrame([[1, 2]], columns=["a", "a"]), "crm.lead.add")
    with pytest.raises(CommandValidationError, match="column label 0"):
        commands_from_frame(pd.DataFrame([[1]]), "crm.lead.add")
    with pytest.raises(CommandValidationError, match="clash"):
        commands_from_frame(df, "user.add", fields_param=None, params={"a": 1})
    with pytest.raises(CommandValidationError, match="both a constant param"):
        commands_from_frame(df, "crm.item.update", id_column="a", params={"id": 1})


def test_refusal_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        commands_from_frame(pd.DataFrame({"x": [b"1"]}), "crm.lead.add")


@pytest.mark.slow
def test_a_million_rows() -> None:
    n = 1_000_000
    df = pd.DataFrame({"k": np.arange(n), "TITLE": ["t"] * n, "N": np.where(
        np.arange(n) % 3 == 0, np.nan, 1.0)})
    cs = commands_from_frame(df, "crm.lead.add", key_column="k")
    assert len(cs) == n
    assert cs.calls[3][1]["fields"] == {"TITLE": "t"}
    assert cs.calls[4][1]["fields"] == {"TITLE": "t", "N": 1}


# --- block_rows: lazy commands, checked up front --------------------------------------------


def mixed_frame(n: int) -> pd.DataFrame:
    i = np.arange(n)
    return pd.DataFrame({
        "k": i, "TITLE": [f"t{j}" for j in range(n)],
        "N": np.where(i % 3 == 0, np.nan, i * 1.0),  # whole numbers, with gaps
        "F": np.where(i == n - 1, 0.5, 1.0),  # one fraction, in the last block only
        "OPENED": i % 2 == 0, "PHONE": [f"+{j}" for j in range(n)],
    }, index=i + 1000)


def test_block_rows_gives_the_same_commands_lazily() -> None:
    df = mixed_frame(1003)
    eager = commands_from_frame(df, "crm.lead.add", key_column="k",
                                field_types={"OPENED": "char"})
    lazy = commands_from_frame(df, "crm.lead.add", key_column="k", block_rows=100,
                               field_types={"OPENED": "char"})
    assert not isinstance(lazy.calls, list)
    assert len(lazy) == 1003
    assert list(lazy.calls) == list(eager.calls)
    assert lazy.calls == eager.calls
    assert lazy.calls[0][1]["fields"]["F"] == 1.0  # the column's fraction decides, not the block's
    assert type(lazy.calls[0][1]["fields"]["F"]) is float
    assert lazy.calls[-1] == eager.calls[-1]
    assert lazy.calls[250:252] == list(eager.calls[250:252])
    assert lazy.keys is not None and lazy.keys.equals(eager.keys)
    with pytest.raises(IndexError):
        lazy.calls[1003]


def test_block_rows_checks_every_block_before_returning() -> None:
    df = mixed_frame(500)
    df["BAD"] = pd.Series([None] * 499 + [b"x"], dtype=object, index=df.index)
    with pytest.raises(CommandValidationError,
                       match=r"row 499 \(index 1499\), column 'BAD': b'x': bytes") as info:
        commands_from_frame(df, "crm.lead.add", block_rows=64)
    assert info.value.index == 499
    ids = pd.DataFrame({"id": [1.0] * 300 + [np.nan], "T": ["x"] * 301})
    with pytest.raises(CommandValidationError, match=r"row 300 .*the id is missing"):
        commands_from_frame(ids, "crm.item.update", id_column="id", block_rows=64)


def test_unsupported_dtype_of_an_empty_frame_names_the_column() -> None:
    df = pd.DataFrame({"d": pd.Series([], dtype="timedelta64[ns]")})
    with pytest.raises(CommandValidationError, match=r"^crm.lead.add: column 'd': .*timedelta"):
        commands_from_frame(df, "crm.lead.add")


def test_lazy_commands_do_not_see_later_edits_of_the_frame() -> None:
    df = mixed_frame(300)
    lazy = commands_from_frame(df, "crm.lead.add", block_rows=100)
    df.loc[1250, "TITLE"] = "edited"
    df["PHONE"] = b"raw"
    assert lazy.calls[250][1]["fields"]["TITLE"] == "t250"
    with pytest.raises(CommandValidationError, match="block_rows"):
        commands_from_frame(df, "crm.lead.add", block_rows=0)


def test_keys_of_a_fractional_float_column_and_unusable_keys() -> None:
    df = pd.DataFrame({"k": [1.0, 1.5], "t": ["a", "b"]})
    keys = commands_from_frame(df, "crm.lead.add", key_column="k").keys
    assert keys is not None and keys.to_pylist() == ["1", "1.5"]
    bad = pd.DataFrame({"k": pd.Series(["a", ["x"]], dtype=object), "t": [1, 2]})
    with pytest.raises(CommandValidationError, match=r"row 1 .*'k'.*key of type list"):
        commands_from_frame(bad, "crm.lead.add", key_column="k")
