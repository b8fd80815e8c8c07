"""The client's Arrow columns: the same arrays as ``pa.array``, without loading pandas."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from b24_dagster.client._arrow import int_column, string_column, utf8_column
from b24_dagster.client._results import CommandResult, rows_to_arrow

#: pa.array, the reference, imports pandas on its first call: no deadline.
_settings = settings(deadline=None)
_texts = st.one_of(st.none(), st.text(st.characters(blacklist_categories=["Cs"]), max_size=40))


@_settings
@given(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=130))
def test_int64_column_equals_pa_array(values: list[int | None]) -> None:
    got = int_column(values, pa.int64())
    got.validate(full=True)
    assert got.type == pa.int64() and got.null_count == values.count(None)
    assert got.equals(pa.array(values, pa.int64()))


@_settings
@given(st.lists(st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)), max_size=130))
def test_int32_column_equals_pa_array(values: list[int | None]) -> None:
    got = int_column(values, pa.int32())
    got.validate(full=True)
    assert got.equals(pa.array(values, pa.int32()))


@_settings
@given(st.lists(_texts, max_size=130))
def test_string_column_equals_pa_array(values: list[str | None]) -> None:
    got = string_column(values)
    got.validate(full=True)
    assert got.type == pa.string() and got.null_count == values.count(None)
    assert got.equals(pa.array(values, pa.string()))
    assert got.to_pylist() == values


@_settings
@given(st.lists(_texts, max_size=130))
def test_utf8_column_of_encoded_texts_equals_pa_array(values: list[str | None]) -> None:
    got = utf8_column([None if v is None else v.encode() for v in values])
    got.validate(full=True)
    assert got.null_count == values.count(None)
    assert got.equals(pa.array(values, pa.string()))


def test_a_value_out_of_range_is_refused() -> None:
    with pytest.raises(OverflowError):
        int_column([1, 2**31], pa.int32())


def test_a_lone_surrogate_becomes_a_question_mark_not_a_failed_column() -> None:
    got = string_column(["ok", "bad \ud800 text", None])
    got.validate(full=True)
    assert got.to_pylist() == ["ok", "bad ? text", None]
    with pytest.raises(UnicodeEncodeError):  # what pa.array does with the same column
        pa.array(["ok", "bad \ud800 text", None], pa.string())


def test_to_arrow_loads_no_pandas() -> None:
    # pa.array imports pandas on first use (half a second); the client's columns never call it.
    code = ("import sys; from b24_dagster.client._results import CommandResult, rows_to_arrow; "
            "t = rows_to_arrow([CommandResult(0, '0', 'crm.item.add', 0, 'ok', {'item': {'id': 1}}, "
            "total=3), CommandResult(1, '1', 'crm.item.add', 0, 'error', None, 'E', 'why')]); "
            "assert t.num_rows == 2 and t['result'][0].as_py() == '{\"item\":{\"id\":1}}'; "
            "import pyarrow as pa; assert 'pyarrow' in sys.modules; print('pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_result_holding_a_lone_surrogate_keeps_it_as_an_escape() -> None:
    data = {"title": "half a pair: \ud83d", "name": "Иван"}
    table = rows_to_arrow([CommandResult(0, "0", "crm.item.get", 0, "ok", data)])
    text = table["result"][0].as_py()
    assert "\\ud83d" in text and json.loads(text) == data


def test_the_pa_array_fallback_of_other_platforms_builds_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    import b24_dagster.client._arrow as arrow

    strings, ints = ["a", None, "Иван", "bad \ud800"], [1, None, -(2**40)]
    native = (string_column(strings), int_column(ints, pa.int64()))
    monkeypatch.setattr(arrow, "_NATIVE", False)
    assert string_column(strings).equals(native[0])
    assert int_column(ints, pa.int64()).equals(native[1])
