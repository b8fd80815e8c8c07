"""Typed Arrow columns for list exports, from an entity's `*.fields` description.

Legacy lists (`crm.deal.list`, ...) return every scalar as a string; `crm.item.list` returns
typed JSON. Both become the same Arrow types here:

| Bitrix24 field type                                           | Arrow                    |
|---------------------------------------------------------------|--------------------------|
| integer, user, crm_lead, crm_company, crm_contact, crm_quote,  | int64                    |
| crm_category, location                                        |                          |
| double, money (`"100.50"`, or `"100.50|USD"`: the amount)     | float64                  |
| datetime                                                      | timestamp[us, tz=UTC]    |
| date                                                          | date32 (the portal's day)|
| char, boolean (`Y`/`N`, `true`/`false`, `1`/`0`)              | bool                     |
| anything multiple (`isMultiple`), dicts, lists                | string (JSON text)       |
| everything else                                               | string                   |

A value that does not parse as its type becomes null and is counted (`unparsed_values`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

__all__ = ["ColumnTyper", "arrow_type_of", "normalize_name"]

_INT = {"integer", "int", "user", "crm_lead", "crm_company", "crm_contact", "crm_quote",
        "crm_category", "location", "employee", "group"}
_FLOAT = {"double", "float", "money", "number"}
_BOOL = {"char", "boolean", "bool"}
_TRUE = {"y", "true", "1", "yes"}
_FALSE = {"n", "false", "0", "no", ""}
_TIMESTAMP = pa.timestamp("us", tz="UTC")


def normalize_name(name: str) -> str:
    """Case- and underscore-insensitive field name (`DATE_MODIFY` ~ `dateModify`)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def arrow_type_of(description: Mapping[str, Any] | None) -> pa.DataType:
    """The Arrow type of a field from its `*.fields` description (string when unknown)."""
    if not description:
        return pa.string()
    if description.get("isMultiple"):
        return pa.string()
    kind = str(description.get("type", "")).lower()
    if kind in _INT:
        return pa.int64()
    if kind in _FLOAT:
        return pa.float64()
    if kind == "datetime":
        return _TIMESTAMP
    if kind == "date":
        return pa.date32()
    if kind in _BOOL:
        return pa.bool_()
    return pa.string()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    return int(str(value).strip())


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float(str(value).split("|", 1)[0].strip())


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return None if text == "" else False
    raise ValueError(value)


def _datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    parsed = datetime.fromisoformat(str(value).strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    return date.fromisoformat(str(value).strip()[:10])


_CONVERTERS: dict[pa.DataType, Callable[[Any], Any]] = {
    pa.int64(): _int,
    pa.float64(): _float,
    pa.bool_(): _bool,
    _TIMESTAMP: _datetime,
    pa.date32(): _date,
}


class ColumnTyper:
    """Converts pages of row dicts to Arrow tables with one fixed schema.

    Args:
        descriptions: the `*.fields` result, name -> description.
        columns: the output columns, in order.
        overrides: column -> Arrow type (or a type name such as "int64"), beating the
            descriptions.
    """

    def __init__(
        self,
        descriptions: Mapping[str, Mapping[str, Any]],
        columns: Sequence[str],
        overrides: Mapping[str, pa.DataType | str] | None = None,
    ) -> None:
        by_norm = {normalize_name(k): v for k, v in descriptions.items() if isinstance(v, Mapping)}
        fields = []
        for column in columns:
            override = (overrides or {}).get(column)
            if override is not None:
                dtype = override if isinstance(override, pa.DataType) else pa.type_for_alias(override)
            else:
                dtype = arrow_type_of(descriptions.get(column) or by_norm.get(normalize_name(column)))
            fields.append(pa.field(column, dtype))
        self.schema = pa.schema(fields)
        self.unparsed = 0
        self._convert = [_CONVERTERS.get(f.type, _text) for f in fields]

    def table(self, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
        """One Arrow table of the rows (missing keys are null, unknown keys are dropped)."""
        rows = list(rows)
        arrays = []
        for f, convert in zip(self.schema, self._convert, strict=True):
            values = []
            for row in rows:
                raw = row.get(f.name)
                try:
                    values.append(convert(raw))
                except (ValueError, TypeError):
                    self.unparsed += 1
                    values.append(None)
            arrays.append(pa.array(values, type=f.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)


def columns_for(
    select: Sequence[str] | None,
    first_rows: Sequence[Mapping[str, Any]],
    descriptions: Mapping[str, Any],
) -> list[str]:
    """The export's columns.

    The explicit `select` (without wildcards) in its order, each named as the rows name it
    (`tasks.task.list` takes `select=["ID"]` and answers `id`); else the keys of the first
    page in order; else every described field.
    """
    seen: dict[str, None] = {}
    for row in first_rows:
        for key in row:
            seen.setdefault(key, None)
    if select:
        explicit = [s for s in select if "*" not in s]
        if explicit:
            by_norm = {normalize_name(k): k for k in seen}
            return [s if s in seen else by_norm.get(normalize_name(s), s) for s in explicit]
    if seen:
        return list(seen)
    return [k for k, v in descriptions.items() if isinstance(v, Mapping)]
