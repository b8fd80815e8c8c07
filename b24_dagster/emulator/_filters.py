"""Filters with Bitrix operator prefixes, ordering, and v2 paging over a table.

A filter is a dict whose keys carry an operator prefix: ``{">ID": 5, "%TITLE": "deal"}``.

============  ==================================================================
``=`` (none)   equal; a list value means IN; ``""``/None matches an empty field
``!`` ``!=``   not equal (a list: NOT IN)
``>`` ``>=``   greater (or equal), typed: ints numerically, dates as instants
``<`` ``<=``   less (or equal); an empty field never compares
``%``          LIKE substring, case-insensitive (a list: any of them)
``!%``         not LIKE substring
``=%`` ``%=``  LIKE with the value as a pattern (``%`` any run, ``_`` one character),
               case-insensitive: ``"mol%"`` is a prefix, ``"%mol"`` a suffix
``!=%``        not LIKE pattern (also ``!%=``)
``@``          IN list;  ``!@`` NOT IN list
``><``         between two values inclusive;  ``!><`` not between
============  ==================================================================

Fields that hold lists (``observers``) match when any element matches. Fast path: when
the order is by id alone, rows are walked in id order from the bounds that the id conditions
give (bisection of the sorted id list), and without a count (``start=-1``) the walk stops
after one page, so an export over a million rows never scans.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from ._entities import Entity, Field, materialize
from ._store import Table

__all__ = ["FilterError", "Query", "Schema", "crm_schema", "parse_date", "run_query"]

Getter = Callable[[Any], Any]

_OPS = ("!=%", "!%=", "!><", "!@", "!%", "!=", ">=", "<=", "=%", "%=", "><",
        "@", "!", ">", "<", "=", "%")


class FilterError(ValueError):
    """A filter, order or select names a field the entity does not have."""

    def __init__(self, field: str, where: str = "filter") -> None:
        super().__init__(field)
        self.field = field
        self.where = where


class Schema:
    """How to read each filterable field of a table's rows: name -> (getter, kind)."""

    def __init__(self, fields: dict[str, tuple[Getter, str]], id_name: str,
                 tz_offset: int = 0) -> None:
        self.fields = fields
        self.id_name = id_name
        self.tz_offset = tz_offset

    def get(self, name: str) -> tuple[Getter, str] | None:
        """The getter and kind of field ``name``, or None."""
        return self.fields.get(name)


def crm_schema(entity: Entity, *, item: bool, tz_offset: int = 0) -> Schema:
    """The schema of a CRM entity type (camelCase and UPPER names for crm.item, UPPER for legacy)."""
    fields: dict[str, tuple[Getter, str]] = {}
    for f in entity.fields:
        getter = _getter(entity, f)
        if f.upper:
            fields[f.upper] = (getter, f.kind)
        if item and f.camel:
            fields[f.camel] = (getter, f.kind)
    fm = entity.by_camel.get("fm")
    if not item and fm is not None and fm.slot is not None:
        # The legacy lists filter by a multi-field's values (crm-contact-list.md: "EMAIL": "...").
        for typ in ("PHONE", "EMAIL", "WEB", "IM"):
            fields[typ] = (_multifield_getter(fm.slot, typ), "str")
    return Schema(fields, "id" if item else "ID", tz_offset)


def _multifield_getter(slot: int, typ: str) -> Getter:
    return lambda row: [m[3] for m in row[slot] or () if m[1] == typ]


def _getter(entity: Entity, f: Field) -> Getter:
    if f.slot is not None:
        slot = f.slot
        return lambda row: row[slot]
    key = f.camel or f.upper or ""
    if f.type == "string" and not f.read_only and not f.constant:
        # A stored string nothing derives (ORIGIN_ID...): read the extras dict, so that an
        # `@ORIGIN_ID` lookup over many rows does not build every record.
        extras, default, empty = entity.extras_slot, f.default, {}
        return lambda row: (row[extras] or empty).get(key, default)
    return lambda row: materialize(entity, row)[key]


def parse_date(value: Any, tz_offset: int = 0) -> float | None:
    """A date/datetime input (ISO 8601, ``YYYY-MM-DD[ HH:MM:SS]``, ``DD.MM.YYYY[ ...]``) as unix time."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    m = re.fullmatch(r"(\d{2})\.(\d{2})\.(\d{4})(.*)", text)
    if m:
        text = f"{m.group(3)}-{m.group(2)}-{m.group(1)}{m.group(4)}"
    try:
        dt = datetime.fromisoformat(text.replace(" ", "T", 1) if len(text) > 10 else text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC if tz_offset == 0 else timezone(timedelta(seconds=tz_offset)))
    return dt.timestamp()


def _convert(kind: str, value: Any, tz_offset: int) -> Any:
    """The filter value in the field's type; raises ValueError when it cannot be."""
    if value is None:
        return None
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, (int, float)):
            return value
        return int(str(value).strip())
    if kind == "float":
        return float(value)
    if kind == "date":
        ts = parse_date(value, tz_offset)
        if ts is None:
            raise ValueError(value)
        return ts
    return value if isinstance(value, str) else str(value)


def _like(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL)


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def _predicate(op: str, kind: str, value: Any, tz: int) -> Callable[[Any], bool]:
    """A test of one field value for operator ``op`` (without the negation)."""
    if op in ("=", "@"):
        values = _as_list(value) if (op == "@" or isinstance(value, (list, dict))) else [value]
        empty = any(v is None or v == "" for v in values) and op == "="
        wanted = set()
        for v in values:
            if v is None or v == "":
                continue
            try:
                wanted.add(_convert(kind, v, tz))
            except (ValueError, TypeError):
                continue
        return _In(wanted, empty)
    if op in (">", ">=", "<", "<="):
        try:
            bound = _convert(kind, value, tz)
        except (ValueError, TypeError):
            return lambda x: False
        if bound is None or bound == "":
            return lambda x: False
        if op == ">":
            return lambda x: x is not None and x != "" and x > bound
        if op == ">=":
            return lambda x: x is not None and x != "" and x >= bound
        if op == "<":
            return lambda x: x is not None and x != "" and x < bound
        return lambda x: x is not None and x != "" and x <= bound
    if op == "%":
        needles = [str(v).lower() for v in _as_list(value)]
        return lambda x: x is not None and any(n in str(x).lower() for n in needles)
    if op in ("=%", "%="):
        patterns = [_like(str(v)) for v in _as_list(value)]
        return lambda x: x is not None and any(p.fullmatch(str(x)) for p in patterns)
    if op == "><":
        pair = _as_list(value)
        try:
            lo, hi = _convert(kind, pair[0], tz), _convert(kind, pair[1], tz)
        except (ValueError, TypeError, IndexError):
            return lambda x: False
        return lambda x: x is not None and x != "" and lo <= x <= hi
    raise AssertionError(op)


class _In:
    """Equality with one of `wanted` (and, with `empty`, an empty value): indexable."""

    __slots__ = ("empty", "wanted")

    def __init__(self, wanted: set[Any], empty: bool) -> None:
        self.wanted, self.empty = wanted, empty

    def __call__(self, x: Any) -> bool:
        return x in self.wanted or (self.empty and (x is None or x == ""))


#: Tables smaller than this are scanned: an index would cost more than it saves.
INDEX_MIN_ROWS = 2_000


def _indexed_ids(table: Table, conds: list[Any]) -> list[int] | None:
    """The sorted ids that can satisfy an equality / IN condition, from an index of its field
    (built on first use, rebuilt after writes); None when no condition can use one.

    A lookup of many keys (``{"@ORIGIN_ID": [...50 keys]}``, 50 commands a batch) would
    otherwise scan the whole table once per command.
    """
    if len(table) < INDEX_MIN_ROWS:
        return None
    cond = next((c for c in conds if isinstance(c, Condition) and not c.negate
                 and isinstance(c.test, _In) and not c.test.empty), None)  # fmt: skip
    if cond is None:
        return None
    built = table.indexes.get(cond.field)
    if built is None or built[0] != table.version:
        index: dict[Any, list[int]] = {}
        for id_, row in table.iter_from():
            value = cond.getter(row)
            for v in (value if isinstance(value, list) else (value,)):
                try:
                    index.setdefault(v, []).append(id_)
                except TypeError:  # an unhashable value: not indexable, scan instead
                    return None
        built = (table.version, index)
        table.indexes[cond.field] = built
    ids: set[int] = set()
    for wanted in cond.test.wanted:
        ids.update(built[1].get(wanted, ()))
    return sorted(ids)


def split_operator(key: str) -> tuple[str, str]:
    """``">=DATE_MODIFY"`` -> ``(">=", "DATE_MODIFY")``; no prefix -> ``("=", key)``."""
    for op in _OPS:
        if key.startswith(op):
            return op, key[len(op):]
    return "=", key


class Condition:
    """One compiled filter condition."""

    __slots__ = ("field", "getter", "negate", "op", "test", "value")

    def __init__(self, field: str, getter: Getter, op: str, value: Any, test: Callable[[Any], bool],
                 negate: bool) -> None:
        self.field, self.getter, self.op, self.value = field, getter, op, value
        self.test, self.negate = test, negate

    def __call__(self, row: Any) -> bool:
        x = self.getter(row)
        hit = any(self.test(v) for v in x) if isinstance(x, list) else self.test(x)
        return hit != self.negate


_NEGATED = {"!": "=", "!=": "=", "!@": "@", "!%": "%", "!=%": "=%", "!%=": "=%", "!><": "><"}


def compile_filter(schema: Schema, filt: dict[str, Any], *, strict: bool) -> list[Condition]:
    """Compile a filter dict; unknown fields raise :class:`FilterError` when ``strict``, else are ignored."""
    conds: list[Condition] = []
    for key, value in filt.items():
        op, name = split_operator(str(key))
        found = schema.get(name)
        if found is None:
            if strict:
                raise FilterError(name)
            continue
        getter, kind = found
        base = _NEGATED.get(op, op)
        conds.append(Condition(name, getter, base, value,
                               _predicate(base, kind, value, schema.tz_offset), op in _NEGATED))
    return conds


class Query:
    """A compiled list request: conditions, order, and the page wanted."""

    def __init__(self, conds: list[Condition], order: list[tuple[Getter, bool, str]],
                 start: int, page_size: int, *, count: bool | None = None) -> None:
        self.conds = conds
        self.order = order          # (getter, descending, name)
        self.start = start          # -1: no count (v2 ``start=-1``)
        self.page_size = page_size
        self.count = start >= 0 if count is None else count


def compile_order(schema: Schema, order: Any, *, strict: bool) -> list[tuple[Getter, bool, str]]:
    """``{"ID": "DESC", "TITLE": "ASC"}`` -> getters with directions (unknown fields per ``strict``)."""
    out: list[tuple[Getter, bool, str]] = []
    if not isinstance(order, dict):
        return out
    for name, direction in order.items():
        found = schema.get(str(name))
        if found is None:
            if strict:
                raise FilterError(str(name), "order")
            continue
        out.append((found[0], str(direction).upper() == "DESC", str(name)))
    return out


def _id_bounds(schema: Schema, conds: Iterable[Condition]) -> tuple[int | None, int | None, bool]:
    """Bounds on id from the id conditions, and whether those conditions were all there is."""
    low: int | None = None
    high: int | None = None
    only_bounds = True
    for c in conds:
        if (c.field.lower() != "id" or c.negate or isinstance(c.value, (list, dict))
                or c.op not in (">", ">=", "<", "<=", "=")):
            only_bounds = False
            continue
        if c.value is None or str(c.value) == "":
            # A comparison with an empty value matches nothing (an unresolved `$result[...]`
            # after a short page): an empty range, not a scan of the whole table.
            return 1, 0, only_bounds
        try:
            v = int(str(c.value))
        except ValueError:
            only_bounds = False
            continue
        if c.op in (">", ">="):
            v = v + 1 if c.op == ">" else v
            low = v if low is None else max(low, v)
        elif c.op in ("<", "<="):
            v = v - 1 if c.op == "<" else v
            high = v if high is None else min(high, v)
        elif c.op == "=":
            low = v if low is None else max(low, v)
            high = v if high is None else min(high, v)
    return low, high, only_bounds


def run_query(table: Table, schema: Schema, q: Query) -> tuple[list[Any], int, int | None]:
    """Run a list query: ``(rows of the page, total, next)``; total 0 and next None when start=-1."""
    conds = q.conds
    count = q.count
    offset = max(q.start, 0)
    size = q.page_size
    by_id = not q.order or (len(q.order) == 1 and q.order[0][2].lower() == "id")
    if by_id:
        descending = bool(q.order) and q.order[0][1]
        low, high, only_bounds = _id_bounds(schema, conds)
        if only_bounds and count:
            # Nothing but id bounds: the count is a bisection, the page a slice.
            ids = table.ids
            lo = 0 if low is None else bisect.bisect_left(ids, low)
            hi = len(ids) if high is None else bisect.bisect_right(ids, high)
            total = max(0, hi - lo)
            if descending:
                first, last = hi - 1 - offset, max(lo, hi - offset - size) - 1
                chosen = ids[first:last:-1] if last >= 0 else ids[first::-1]
            else:
                chosen = ids[lo + offset:min(hi, lo + offset + size)]
            page = [table.rows[i] for i in chosen] if total > offset else []
            return page, total, (offset + size if total > offset + size else None)
        page: list[Any] = []
        seen = 0
        indexed = _indexed_ids(table, conds)
        rows_in_order = (table.iter_from(low, high, descending=descending) if indexed is None
                         else _rows_of(table, indexed, low, high, descending))  # fmt: skip
        for _, row in rows_in_order:
            if conds and not all(c(row) for c in conds):
                continue
            if offset <= seen < offset + size:
                page.append(row)
            seen += 1
            if not count and seen >= offset + size:
                break
        if not count:
            return page, 0, None
        nxt = offset + size if seen > offset + size else None
        return page, seen, nxt
    rows = [row for _, row in table.iter_from() if all(c(row) for c in conds)]
    for getter, desc, _ in reversed(q.order):
        rows.sort(key=lambda r, g=getter: _sort_key(g(r)), reverse=desc)
    page = rows[offset:offset + size]
    if not count:
        return page, 0, None
    nxt = offset + size if len(rows) > offset + size else None
    return page, len(rows), nxt


def _rows_of(table: Table, ids: list[int], low: int | None, high: int | None,
             descending: bool) -> Iterator[tuple[int, Any]]:
    """(id, row) of the given sorted ids within the bounds, in id order."""
    chosen = [i for i in ids if (low is None or i >= low) and (high is None or i <= high)]
    for id_ in (reversed(chosen) if descending else chosen):
        yield id_, table.rows[id_]


def _sort_key(v: Any) -> tuple[bool, Any]:
    if isinstance(v, list):
        v = v[0] if v else None
    return (v is not None and v != "", v if v is not None else "")
