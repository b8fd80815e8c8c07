"""pandas values to plain Python parameter values, one column at a time.

Each column is converted once, with vectorized pandas/numpy operations, into a Python list of
values that are ready to send (``int``, ``float``, ``str``, ``bool``, ``Decimal``, ``list``,
``dict``), plus a mask of the rows that hold a null. Only object columns (mixed Python values,
lists, dicts) are converted value by value, because that is what they are.

Rules (the public docstring of :func:`b24_dagster.frames.commands_from_frame` repeats them):

* Nulls are ``None``, ``NaN``, ``NaT``, ``pd.NA`` and ``Decimal("NaN")``.
* Floats: a float column whose non-null values are all whole numbers is sent as ``int``
  (an integer column that held a NaN became float64 in pandas, and ``5.0`` must not reach an
  id-like field as ``"5.0"``). A field typed as an integer or a reference (``integer``,
  ``user``, ``crm_company``...) refuses a fraction; a field typed ``double`` keeps floats.
  ``inf`` is refused (JSON has no infinity).
* Timestamps become ISO 8601 with an offset and whole seconds (fractions are truncated):
  ``2024-07-18T14:00:14+02:00``. Naive timestamps are taken as UTC, or as wall time in the
  ``timezone`` given. A field typed ``date`` gets ``YYYY-MM-DD``.
* Booleans become ``"Y"``/``"N"`` for fields typed ``char`` or ``boolean`` and stay ``bool``
  otherwise.
* Multi-fields (``PHONE``, ``EMAIL``, ``WEB``, ``IM``, ``LINK``, or type ``crm_multifield``)
  take lists of ``{"VALUE", "VALUE_TYPE"}`` dicts; a plain string (or number) is wrapped as
  ``[{"VALUE": "...", "VALUE_TYPE": "WORK"}]``, a list of strings item by item, and an empty
  string counts as null.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from b24_dagster.errors import CommandValidationError
from b24_dagster.frames._fieldtypes import (
    DEFAULT_VALUE_TYPE,
    MAX_EXACT,
    MULTIFIELD_NAMES,
    FieldInfo,
    field_info,
    normalize_field_types,
    resolve_tz,
)
from b24_dagster.frames._scalars import NULL, convert_value, sanitize_constant

__all__ = [
    "MULTIFIELD_NAMES",
    "NULL",
    "CommandValidationError",
    "Converted",
    "FieldInfo",
    "ValueRefused",
    "convert_column",
    "convert_value",
    "field_info",
    "key_strings",
    "normalize_field_types",
    "resolve_tz",
    "sanitize_constant",
    "whole_numbers",
]


class ValueRefused(Exception):  # noqa: N818 - internal signal, turned into CommandValidationError
    """A value that cannot be sent, at ``position`` of the column being converted."""

    def __init__(self, position: int, reason: str, count: int = 1) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason
        self.count = count


@dataclass(frozen=True, slots=True)
class Converted:
    """A converted column: one value per row; ``nulls`` marks rows whose value is null."""

    values: list[Any]
    nulls: np.ndarray | None


# ---------------------------------------------------------------------------------------------
# Columns


def convert_column(s: pd.Series, info: FieldInfo, tz: dt.tzinfo) -> Converted:
    """Convert one column for target field ``info``.

    Raises:
        ValueRefused: a value cannot be sent (position within ``s``).
    """
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _categorical(s, info, tz)
    if isinstance(dtype, pd.ArrowDtype):
        if pa.types.is_timestamp(dtype.pyarrow_dtype):
            return _datetimes(s, info, tz)
    elif isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        return _datetimes(s, info, tz)
    if pd.api.types.is_bool_dtype(dtype):
        return _booleans(s, info)
    if pd.api.types.is_integer_dtype(dtype):
        return _integers(s, info)
    if pd.api.types.is_float_dtype(dtype):
        return _floats(s, info)
    if isinstance(dtype, pd.StringDtype) or (
            isinstance(dtype, pd.ArrowDtype) and pa.types.is_string(dtype.pyarrow_dtype)):
        return _strings(s, info)
    if isinstance(dtype, pd.ArrowDtype):
        return _objects(pd.Series(pa.array(s.array).to_pylist(), dtype=object), info, tz)
    if isinstance(dtype, np.dtype) and dtype.kind == "O":
        inferred = pd.api.types.infer_dtype(s, skipna=True)
        if inferred == "string":
            return _strings(s, info)
        if inferred == "empty":
            return Converted([None] * len(s), np.ones(len(s), dtype=bool))
        return _objects(s, info, tz)
    raise ValueRefused(0, f"columns of dtype {dtype} cannot be sent", len(s))


def _nulls(s: pd.Series) -> np.ndarray | None:
    mask = s.isna().to_numpy(dtype=bool)
    return mask if mask.any() else None


def _mask(nulls: np.ndarray | None, n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool) if nulls is None else nulls


def _first(mask: np.ndarray, reason: str) -> ValueRefused:
    positions = np.flatnonzero(mask)
    return ValueRefused(int(positions[0]), reason, len(positions))


def _wrap_multi(values: list[Any], nulls: np.ndarray, vt: str | None = DEFAULT_VALUE_TYPE) -> Converted:
    """Wrap each non-null value as a one-item multi-field list; ``nulls`` includes ``""``.
    ``vt`` is the ``VALUE_TYPE`` of each (None: none sent)."""
    if not nulls.any():
        if vt is None:
            return Converted([[{"VALUE": v}] for v in values], None)
        return Converted([[{"VALUE": v, "VALUE_TYPE": vt}] for v in values], None)
    out: list[Any] = [None] * len(values)
    for i in np.flatnonzero(~nulls).tolist():
        out[i] = [{"VALUE": values[i], "VALUE_TYPE": vt} if vt else {"VALUE": values[i]}]
    return Converted(out, nulls)


def _booleans(s: pd.Series, info: FieldInfo) -> Converted:
    nulls = _nulls(s)
    arr = s.to_numpy(dtype=bool, na_value=False)
    if info.kind == "yn":
        yes_no = ("N", "Y")  # two shared str objects, not a million copies
        return Converted([yes_no[b] for b in arr.tolist()], nulls)
    return Converted(arr.tolist(), nulls)


def _integers(s: pd.Series, info: FieldInfo) -> Converted:
    nulls = _nulls(s)
    target = "uint64" if str(s.dtype).lower().startswith("uint64") else "int64"
    values = s.to_numpy(dtype=target, na_value=0).tolist()
    if info.kind == "multi":
        return _wrap_multi([str(v) for v in values], _mask(nulls, len(values)), info.value_type)
    return Converted(values, nulls)


def _floats(s: pd.Series, info: FieldInfo) -> Converted:
    if s.dtype in (np.float16, np.float32) or str(s.dtype) in ("Float32", "float[pyarrow]"):
        # float32 0.1 is 0.10000000149011612 as a float64; its shortest repr is what was meant.
        arr32 = s.to_numpy(dtype=np.float32, na_value=np.nan)
        arr = arr32.astype(str).astype(np.float64)
    else:
        arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
    nan = np.isnan(arr)
    inf = np.isinf(arr)
    if inf.any():
        raise _first(inf, "infinite values cannot be sent")
    nulls = nan if nan.any() else None
    filled = np.where(nan, 0.0, arr)
    whole = filled == np.floor(filled)
    small = np.abs(filled) < MAX_EXACT
    if info.kind == "int":
        if not whole.all():
            raise _first(~whole, "is not a whole number, and the field takes integers")
        if not small.all():
            raise _first(~small, "is too large for an integer field")
        return Converted(filled.astype(np.int64).tolist(), nulls)
    as_int = info.kind != "float" and bool(whole.all() and small.all())
    values = filled.astype(np.int64).tolist() if as_int else filled.tolist()
    if info.kind == "multi":
        return _wrap_multi([str(v) for v in values], nan, info.value_type)
    return Converted(values, nulls)


def whole_numbers(s: pd.Series) -> bool:
    """Whether every finite value of a float column is a whole number an int holds exactly."""
    arr = s.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = arr[np.isfinite(arr)]
    return bool(np.all(arr == np.floor(arr)) and np.all(np.abs(arr) < MAX_EXACT))


def _strings(s: pd.Series, info: FieldInfo) -> Converted:
    nulls = _nulls(s)
    values = s.to_numpy(dtype=object, na_value=None).tolist()
    if s.dtype == np.dtype(object):  # cells may be np.str_ or a str subclass
        values = [v if type(v) is str or v is None else str(v) for v in values]
    if info.kind == "multi":
        empty = (s == "").to_numpy(dtype=bool, na_value=False)
        return _wrap_multi(values, empty | _mask(nulls, len(values)), info.value_type)
    return Converted(values, nulls)


def _offset_text(seconds: int) -> str:
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _datetimes(s: pd.Series, info: FieldInfo, tz: dt.tzinfo) -> Converted:
    if isinstance(s.dtype, pd.ArrowDtype):
        arrow_type = s.dtype.pyarrow_dtype
        s = s.astype(pd.DatetimeTZDtype(arrow_type.unit, arrow_type.tz) if arrow_type.tz
                     else f"datetime64[{arrow_type.unit}]")
    nat = s.isna().to_numpy(dtype=bool)
    nulls = nat if nat.any() else None
    if s.dt.tz is None:
        if tz is dt.UTC:
            wall = s.to_numpy()
            offsets: list[str] | str = "+00:00"
        else:
            s = s.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
            gone = s.isna().to_numpy(dtype=bool) & ~nat
            if gone.any():
                raise _first(gone, f"does not exist or is ambiguous as wall time in {tz}")
    if s.dt.tz is not None:
        wall = s.dt.tz_localize(None).to_numpy()
        utc = s.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
        delta = (wall - utc).astype("timedelta64[s]").view(np.int64)
        seconds = np.where(nat, 0, delta)
        distinct, inverse = np.unique(seconds, return_inverse=True)
        texts = np.array([_offset_text(int(x)) for x in distinct], dtype=object)
        offsets = texts[inverse].tolist()
    if info.kind == "date":
        return Converted(np.datetime_as_string(wall, unit="D").tolist(), nulls)
    stamps = np.datetime_as_string(wall, unit="s").tolist()
    if isinstance(offsets, str):
        return Converted([t + offsets for t in stamps], nulls)
    return Converted([t + o for t, o in zip(stamps, offsets, strict=False)], nulls)


def _categorical(s: pd.Series, info: FieldInfo, tz: dt.tzinfo) -> Converted:
    codes = s.cat.codes.to_numpy()
    missing = codes < 0
    used = np.unique(codes[~missing])
    categories = pd.Series(s.cat.categories[used])
    try:
        converted = convert_column(categories, info, tz)
    except ValueRefused as exc:
        rows = codes == used[exc.position]
        raise _first(rows, exc.reason) from None
    lookup = np.empty(len(s.cat.categories) + 1, dtype=object)  # last slot: the null code -1
    for code, value in zip(used.tolist(), converted.values, strict=True):
        lookup[code] = value
    values = lookup[codes].tolist()
    nulls = missing.copy()
    if converted.nulls is not None:
        for code in used[converted.nulls].tolist():
            nulls |= codes == code
    if values and isinstance(next((v for v in values if v is not None), None), (list, dict)):
        # Rows must not share one mutable object: a caller may edit one command's params.
        values = [_copy_nested(v) for v in values]
    return Converted(values, nulls if nulls.any() else None)


def _copy_nested(value: Any) -> Any:
    if isinstance(value, list):
        return [_copy_nested(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy_nested(v) for k, v in value.items()}
    return value


def _objects(s: pd.Series, info: FieldInfo, tz: dt.tzinfo) -> Converted:
    raw = s.tolist()
    values: list[Any] = [None] * len(raw)
    nulls = np.zeros(len(raw), dtype=bool)
    for i, v in enumerate(raw):
        try:
            out = convert_value(v, info, tz)
        except ValueError as exc:
            raise ValueRefused(i, str(exc)) from None
        if out is NULL:
            nulls[i] = True
        else:
            values[i] = out
    return Converted(values, nulls if nulls.any() else None)


# ---------------------------------------------------------------------------------------------
# Keys


def key_strings(s: pd.Series, tz: dt.tzinfo = dt.UTC) -> list[str | None]:
    """The values of a key column as strings (``None`` for nulls), as results carry them.

    Integers and whole floats give ``"5"`` (never ``"5.0"``), so an integer key column that
    pandas turned into float64 still matches.
    """
    converted = convert_column(s, FieldInfo(""), tz)
    nulls = converted.nulls
    values = converted.values
    if isinstance(s.dtype, pd.StringDtype):
        out: list[str | None] = values
    else:
        try:
            out = [v if type(v) is str else _key_text(v) for v in values]
        except ValueError as exc:
            bad = next(i for i, v in enumerate(values) if not _keyable(v))
            raise ValueRefused(bad, str(exc)) from None
    if nulls is not None:
        for i in np.flatnonzero(nulls).tolist():
            out[i] = None
    return out


def _key_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # the same key whatever the other values of its column are
    if isinstance(value, int | float | Decimal):
        return str(value)
    raise ValueError(f"a key of type {type(value).__name__} cannot be used")


def _keyable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | Decimal)
