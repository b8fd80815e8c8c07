"""Rows to fields dicts and params, keys and ids: the hot path, converted column by column."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from b24_dagster.frames._values import (
    NULL,
    CommandValidationError,
    Converted,
    FieldInfo,
    ValueRefused,
    convert_column,
    convert_value,
    field_info,
    key_strings,
)

__all__ = ["assemble", "gc_paused", "ids_of", "keys_of", "refusal", "rows_from_columns",
           "rows_from_function"]


def _label(df: pd.DataFrame, position: int) -> str:
    label = df.index[position]
    return repr(label.item() if isinstance(label, np.generic) else label)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def refusal(df: pd.DataFrame, method: str, position: int, column: Any, reason: str,
            count: int = 1, *, show_value: bool = True, offset: int = 0) -> CommandValidationError:
    """The error for a bad value at ``position`` of ``column`` (of rows from ``offset``)."""
    if position >= len(df):  # a column-level refusal (e.g. its dtype) of an empty frame
        return CommandValidationError(f"{method}: column {column!r}: {reason}")
    row = offset + position
    where = f"{method}: row {row} (index {_label(df, position)}), column {column!r}"
    if show_value and column in df.columns:
        value = df[column].iloc[position]
        reason = f"{_short(value.item() if isinstance(value, np.generic) else value)}: {reason}"
    more = f" ({count - 1} more rows like it)" if count > 1 else ""
    return CommandValidationError(f"{where}: {reason}{more}", index=row)


@contextmanager
def gc_paused() -> Iterator[None]:
    # Building a million small dicts triggers the cyclic collector over and over (each
    # pass scanning every dict built so far); none of them can form a cycle.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# ---------------------------------------------------------------------------------------------
# Keys and ids


def keys_of(df: pd.DataFrame, column: str | None, method: str, tz: dt.tzinfo) -> list[str] | None:
    if column is None:
        return None
    try:
        keys = key_strings(df[column], tz)
    except ValueRefused as exc:
        raise refusal(df, method, exc.position, column, exc.reason, exc.count) from None
    if None not in keys and len(set(keys)) == len(keys):
        return keys  # type: ignore[return-value]
    series = pd.Series(keys, dtype=object)
    missing = series.isna().to_numpy()
    if missing.any():
        positions = np.flatnonzero(missing)
        raise refusal(df, method, int(positions[0]), column, "the key is missing",
                      len(positions), show_value=False)
    dupes = series.duplicated(keep=False).to_numpy()
    if dupes.any():
        positions = np.flatnonzero(dupes)
        first = int(positions[0])
        other = int(positions[1:][series.iloc[positions[1:]].to_numpy() == keys[first]][0])
        raise refusal(df, method, other, column,
                      f"duplicate key {_short(keys[first])}, also in row {first} "
                      f"(index {_label(df, first)})", len(positions) - 1, show_value=False)
    return keys  # type: ignore[return-value]


def ids_of(df: pd.DataFrame, column: str, id_param: str, method: str, tz: dt.tzinfo,
         offset: int) -> list[Any]:
    s = df[column]
    if pd.api.types.is_bool_dtype(s.dtype) or s.dtype.kind in "mM" or isinstance(
            s.dtype, pd.DatetimeTZDtype):
        raise CommandValidationError(f"{method}: id_column {column!r} has dtype {s.dtype}; "
                                     f"ids are whole numbers or strings")
    try:
        converted = convert_column(s, FieldInfo(id_param, "int"), tz)
    except ValueRefused as exc:
        raise refusal(df, method, exc.position, column, f"invalid id: {exc.reason}",
                      exc.count, offset=offset) from None
    if converted.nulls is not None:
        positions = np.flatnonzero(converted.nulls)
        raise refusal(df, method, int(positions[0]), column, "the id is missing",
                      len(positions), offset=offset)
    values = converted.values
    bad = [i for i, v in enumerate(values)
           if not ((type(v) is int and v > 0) or (type(v) is str and v.strip()))]
    if bad:
        raise refusal(df, method, bad[0], column,
                      "invalid id (ids are positive whole numbers or non-empty strings)",
                      len(bad), offset=offset)
    return values


def _empty_value(info: FieldInfo) -> Any:
    return [] if info.multiple else ""


def rows_from_columns(df: pd.DataFrame, infos: Mapping[Any, FieldInfo], method: str,
                       nulls: str, tz: dt.tzinfo, offset: int) -> list[dict[str, Any]]:
    n = len(df)
    names: list[str] = []
    columns: list[Converted] = []
    for column, info in infos.items():
        try:
            converted = convert_column(df[column], info, tz)
        except ValueRefused as exc:
            raise refusal(df, method, exc.position, column, exc.reason, exc.count,
                          offset=offset) from None
        if nulls == "empty" and converted.nulls is not None:
            values = converted.values
            for i in np.flatnonzero(converted.nulls).tolist():
                values[i] = _empty_value(info)
            converted = Converted(values, None)
        names.append(info.name)
        columns.append(converted)
    if not names:
        return [{} for _ in range(n)]
    # zip(strict=True) costs ~40% here; every list has len(df) items by construction.
    rows = [dict(zip(names, values, strict=False))
            for values in zip(*(c.values for c in columns), strict=False)]
    for name, converted in zip(names, columns, strict=True):
        if converted.nulls is not None:
            for i in np.flatnonzero(converted.nulls).tolist():
                del rows[i][name]
    return rows


def rows_from_function(df: pd.DataFrame, fn: Callable[[Mapping[str, Any]], Mapping[str, Any]],
                        method: str, nulls: str, types: Mapping[str, FieldInfo],
                        tz: dt.tzinfo, offset: int) -> list[dict[str, Any]]:
    columns = list(df.columns)
    data = [df[c].to_numpy(dtype=object, na_value=None).tolist() for c in columns]
    infos: dict[str, FieldInfo] = {}
    rows: list[dict[str, Any]] = []
    for position, values in enumerate(zip(*data, strict=True) if data else ((),) * len(df)):
        record = dict(zip(columns, values, strict=True))
        try:
            out = fn(record)
        except Exception as exc:
            raise CommandValidationError(
                f"{method}: row {offset + position} (index {_label(df, position)}): the fields "
                f"function raised {type(exc).__name__}: {exc}", index=offset + position) from exc
        if not isinstance(out, Mapping):
            raise CommandValidationError(
                f"{method}: row {offset + position} (index {_label(df, position)}): the fields "
                f"function returned {type(out).__name__}, not a mapping", index=offset + position)
        row: dict[str, Any] = {}
        for name, value in out.items():
            info = infos.get(name)
            if info is None:
                if not isinstance(name, str) or not name:
                    raise CommandValidationError(
                        f"{method}: row {offset + position} (index {_label(df, position)}): the fields "
                        f"function returned field name {name!r}", index=offset + position)
                info = infos[name] = field_info(name, types)
            try:
                converted = convert_value(value, info, tz)
            except ValueError as exc:
                raise refusal(df, method, position, name, f"{_short(value)}: {exc}",
                              show_value=False, offset=offset) from None
            if converted is NULL:
                if nulls == "empty":
                    row[name] = _empty_value(info)
            else:
                row[name] = converted
        rows.append(row)
    return rows


def assemble(method: str, rows: list[dict[str, Any]], ids: list[Any] | None,
              const: dict[str, Any], fields_param: str | None, id_param: str,
              no_fields: bool) -> list[tuple[str, dict[str, Any]]]:
    if no_fields:
        if ids is None:
            return [(method, dict(const)) for _ in rows]
        return [(method, {**const, id_param: i}) for i in ids]
    if fields_param is None:
        if ids is None:
            return [(method, {**const, **row}) for row in rows]
        return [(method, {**const, id_param: i, **row})
                for i, row in zip(ids, rows, strict=False)]
    if ids is None:
        if not const:
            return [(method, {fields_param: row}) for row in rows]
        return [(method, {**const, fields_param: row}) for row in rows]
    return [(method, {**const, id_param: i, fields_param: row})
            for i, row in zip(ids, rows, strict=False)]
