"""Single values to plain Python: object-column cells, a fields function's output, constants."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from b24_dagster.frames._fieldtypes import DEFAULT_VALUE_TYPE, MAX_EXACT, FieldInfo

__all__ = ["NULL", "convert_value", "format_datetime", "is_null", "sanitize_constant"]


class _Null:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL"


#: Returned by :func:`convert_value` for a null.
NULL: Any = _Null()


def is_null(value: Any) -> bool:
    """Whether a scalar is one of pandas' nulls (None, NaN, NaT, pd.NA, Decimal NaN)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    if isinstance(value, Decimal):
        return value.is_nan()
    return isinstance(value, np.datetime64 | np.timedelta64) and bool(np.isnat(value))


def format_datetime(value: dt.datetime, tz: dt.tzinfo) -> str:
    """ISO 8601 with offset, whole seconds; naive values are wall time in ``tz``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.isoformat(timespec="seconds")


def convert_value(value: Any, info: FieldInfo, tz: dt.tzinfo) -> Any:
    """Convert one Python/numpy/pandas value for target field ``info``; :data:`NULL` for nulls.

    Raises:
        ValueError: the value cannot be sent (the message says why).
    """
    if is_null(value):
        return NULL
    if info.kind == "multi":
        return _multi_value(value, tz, info.value_type)
    return _scalar(value, info, tz)


def _scalar(value: Any, info: FieldInfo, tz: dt.tzinfo) -> Any:
    if isinstance(value, str):
        return value if type(value) is str else str(value)  # np.str_, StrEnum
    if isinstance(value, bool | np.bool_):
        if info.kind == "yn":
            return "Y" if value else "N"
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        if math.isinf(f):
            raise ValueError("infinite values cannot be sent")
        if info.kind == "int":
            if not f.is_integer() or abs(f) >= MAX_EXACT:
                raise ValueError(f"{f!r} is not a whole number, and the field takes integers")
            return int(f)
        return f
    if isinstance(value, Decimal):
        if value.is_infinite():
            raise ValueError("infinite values cannot be sent")
        if info.kind == "int":
            if value != value.to_integral_value():
                raise ValueError(f"{value} is not a whole number, and the field takes integers")
            return int(value)
        return value
    if isinstance(value, dt.datetime):
        if info.kind == "date":
            return value.date().isoformat()
        return format_datetime(value, tz)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return _scalar(pd.Timestamp(value).to_pydatetime(), info, tz)
    if isinstance(value, list | tuple | np.ndarray):
        return [_nested(v, tz) for v in value]
    if isinstance(value, Mapping):
        return {_key(k): _nested(v, tz) for k, v in value.items()}
    if isinstance(value, bytes | bytearray | memoryview):
        raise ValueError("bytes cannot be sent; decode them to str (base64 for a file field)")
    raise ValueError(f"a value of type {type(value).__name__} cannot be sent")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, int | np.integer) and not isinstance(key, bool | np.bool_):
        return str(int(key))
    raise ValueError(f"dict keys must be strings, not {type(key).__name__}")


def _nested(value: Any, tz: dt.tzinfo) -> Any:
    if is_null(value):
        return None
    return _scalar(value, FieldInfo(""), tz)


def _multi_value(value: Any, tz: dt.tzinfo, vt: str | None = DEFAULT_VALUE_TYPE) -> Any:
    def item(text: str) -> dict[str, str]:
        return {"VALUE": text, "VALUE_TYPE": vt} if vt else {"VALUE": text}

    if isinstance(value, str):
        return NULL if value == "" else [item(str(value))]
    if isinstance(value, int | np.integer | float | np.floating | Decimal) and not isinstance(
            value, bool | np.bool_):
        number = _scalar(value, FieldInfo("", "int" if float(value).is_integer() else "any"), tz)
        return [item(str(number))]
    if isinstance(value, Mapping):
        item = _scalar(value, FieldInfo(""), tz)
        return [item] if "VALUE" in item else item
    if isinstance(value, list | tuple | np.ndarray):
        items: list[Any] = []
        for v in value:
            if is_null(v) or (isinstance(v, str) and v == ""):
                continue
            if isinstance(v, str):
                items.append(item(str(v)))
            elif isinstance(v, Mapping):
                items.append(_scalar(v, FieldInfo(""), tz))
            else:
                raise ValueError(
                    f"multi-field items must be strings or {{VALUE, VALUE_TYPE}} dicts, "
                    f"not {type(v).__name__}")
        return items
    raise ValueError(f"a value of type {type(value).__name__} cannot be sent to a multi-field")


def sanitize_constant(value: Any, tz: dt.tzinfo) -> Any:
    """Convert a constant param (any nesting) to plain Python; nulls become ``None``."""
    return _nested(value, tz)
