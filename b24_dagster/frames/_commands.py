"""DataFrame rows to Bitrix24 commands: one ``(method, params)`` per row, in row order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

from b24_dagster.frames._compat import snapshot
from b24_dagster.frames._fieldtypes import DEFAULT_VALUE_TYPE, MULTIFIELD_NAMES
from b24_dagster.frames._results import attach_keys
from b24_dagster.frames._rows import (
    assemble,
    gc_paused,
    ids_of,
    keys_of,
    refusal,
    rows_from_columns,
    rows_from_function,
)
from b24_dagster.frames._values import (
    CommandValidationError,
    FieldInfo,
    ValueRefused,
    convert_column,
    field_info,
    normalize_field_types,
    resolve_tz,
    sanitize_constant,
    whole_numbers,
)

__all__ = ["CommandSet", "commands_from_frame"]

FieldsSpec = Mapping[str, str] | Callable[[Mapping[str, Any]], Mapping[str, Any]] | None


@dataclass(frozen=True)
class CommandSet:
    """Commands built from a DataFrame, ready for ``Bitrix24Client.batch_by_chunk``.

    Attributes:
        method: The method of every command (e.g. ``"crm.item.add"``).
        calls: One ``(method, params)`` tuple per source row, in row order; ``params`` holds
            only plain Python values.
        keys: The key column's values as strings, aligned with ``calls`` (``None`` when no
            key column was given).
        key_name: The key column's name (the column :meth:`with_results` adds).
    """

    method: str
    calls: Sequence[tuple[str, dict[str, Any]]]
    keys: pa.Array | None = None
    key_name: str | None = None

    def __len__(self) -> int:
        return len(self.calls)

    def with_results(self, table: pa.Table) -> pa.Table:
        """Add the key column to a results table (the whole run's, or one chunk's).

        Rows are matched by ``command_index`` (the position of the command in ``calls``), so
        this works on any subset of the results, in any order.

        Args:
            table: A results table from ``to_arrow()`` of a batch, chunk or run.

        Returns:
            ``table`` with a string column named :attr:`key_name` appended (``table``
            unchanged when the set has no key column).

        Raises:
            ValueError: ``table`` has no ``command_index`` column, an index is out of range,
                or a column named :attr:`key_name` already exists.
        """
        return attach_keys(table, self.keys, self.key_name)


def commands_from_frame(
    df: pd.DataFrame,
    method: str,
    *,
    fields: FieldsSpec = None,
    fields_param: str | None = "fields",
    id_column: str | None = None,
    id_param: str = "id",
    params: Mapping[str, Any] | None = None,
    key_column: str | None = None,
    nulls: Literal["omit", "empty"] = "omit",
    field_types: Mapping[str, Any] | None = None,
    timezone: str | dt.tzinfo | None = None,
    block_rows: int | None = None,
    multi_value_type: str | None = DEFAULT_VALUE_TYPE,
) -> CommandSet:
    """Turn each row of ``df`` into one command, checking everything before any request.

    Columns are converted once each, with vectorized operations, so a million rows take
    seconds. The values that reach ``params`` are plain Python ``int``, ``float``, ``str``,
    ``bool``, ``Decimal``, ``list`` and ``dict`` (never a numpy scalar):

    * Nulls (``None``, ``NaN``, ``NaT``, ``pd.NA``) leave the field out (``nulls="omit"``),
      or send it empty (``nulls="empty"``: ``""``, or ``[]`` for a field that
      ``field_types`` marks as multiple), which clears it on an update.
    * Integers (numpy or nullable) stay integers. A float column whose values are all whole
      is sent as integers: pandas stores an integer column with a missing value as float64,
      and ``5.0`` must reach an id or user field as ``5``, not ``"5.0"``. A field that
      ``field_types`` types as an integer or reference refuses fractions; one typed
      ``double`` keeps floats. ``inf`` is refused. ``Decimal`` values are passed as they are.
    * Timestamps become ISO 8601 with offset, whole seconds (``2024-07-18T14:00:14+02:00``);
      naive ones are UTC, or wall time in ``timezone``; ``date`` fields get ``YYYY-MM-DD``.
    * Booleans become ``"Y"``/``"N"`` for fields typed ``char`` (legacy ``*.fields``) or
      ``boolean`` (``crm.item.fields``), and stay ``true``/``false`` otherwise.
    * Categoricals send their values. Lists and dicts are sent as they are (with their
      contents converted by the same rules).
    * Multi-fields (``PHONE``, ``EMAIL``, ``WEB``, ``IM``, ``LINK``, or type
      ``crm_multifield``) take ``[{"VALUE": ..., "VALUE_TYPE": ...}]``; a plain string is
      wrapped as ``[{"VALUE": s, "VALUE_TYPE": "WORK"}]`` (a list of strings item by item;
      an empty string is a null).

    Args:
        df: One row per command. Its index is only used to name rows in errors.
        method: The REST method of every command, e.g. ``"crm.item.add"``,
            ``"crm.deal.update"``, ``"crm.item.delete"``.
        fields: Which columns go where: a mapping ``{column: field name}``, or a function
            called once per row with ``{column: value}`` (plain Python values, ``None`` for
            nulls, ``Timestamp`` for datetimes) that returns the fields dict (slower: it runs
            per row). ``None``: every column except ``id_column`` and ``key_column``, under
            its own name; for ``*.delete`` methods, ``None`` means no fields at all.
        fields_param: The param that holds the fields (``"fields"``); ``None`` puts them at
            the top level of ``params``.
        id_column: The column with the record id, required for ``*.update`` and
            ``*.delete``. Ids must be present: positive whole numbers, or non-empty strings.
        id_param: The param the id goes to (``"id"``; ``"ID"`` for methods that want it).
        params: Constant params of every command, e.g. ``{"entityTypeId": 1}``. A mapping
            under ``fields_param`` gives default fields, which row values override.
        key_column: A column that identifies rows; carried to the results as strings
            (:meth:`CommandSet.with_results`) so failures join back. Keys must be unique
            and present.
        nulls: ``"omit"`` or ``"empty"``, see above.
        field_types: The entity's ``*.fields`` answer (whole response, ``result``, or
            ``{name: type}``); types decide Y/N booleans, integers, dates, multi-fields.
        timezone: The zone of naive timestamps (a name such as ``"Europe/Berlin"`` or a
            ``tzinfo``); ``None`` reads them as UTC.
        multi_value_type: The ``VALUE_TYPE`` a plain string gets in a multi-field (``"WORK"``);
            None sends none, so that a sync can keep the type each value has on the portal.
        block_rows: Build commands this many rows at a time, when they are read
            (``calls`` is then a lazy sequence and memory stays flat for any number of
            rows); every row is still checked before this function returns, at the cost of
            converting twice (a ``fields`` function runs again at each reading). ``None``
            builds them all now, as a list.

    Returns:
        The :class:`CommandSet`; empty for an empty DataFrame.

    Raises:
        CommandValidationError: bad input, naming the row (position and index label) and
            the column: an unknown column, a duplicate or missing key, a missing or invalid
            id, a value that cannot be sent (bytes, arbitrary objects, ``inf``...).

    Example:
        >>> cs = commands_from_frame(df, "crm.item.add", params={"entityTypeId": 1},
        ...                          fields={"title": "title", "phone": "PHONE"},
        ...                          key_column="source_id")
        >>> run = client.batch_by_chunk(cs.calls, halt_on_error=False)
        >>> results = cs.with_results(run.to_arrow())
    """
    _check_arguments(df, method, nulls, fields_param, id_param)
    if block_rows is not None and (isinstance(block_rows, bool) or not isinstance(block_rows, int)
                                   or block_rows < 1):
        raise CommandValidationError(f"block_rows must be a positive int, got {block_rows!r}")
    tz = resolve_tz(timezone)
    types = normalize_field_types(field_types)
    if multi_value_type != DEFAULT_VALUE_TYPE:
        multi = set(MULTIFIELD_NAMES) | {n for n, i in types.items() if i.kind == "multi"}
        types = {**types, **{n: replace(types.get(n) or FieldInfo(n, "multi", True), value_type=multi_value_type)
                             for n in multi}}  # fmt: skip
    for label, column in (("id_column", id_column), ("key_column", key_column)):
        if column is not None and column not in df.columns:
            raise CommandValidationError(f"{method}: {label} {column!r} is not a column of the "
                                         f"DataFrame (columns: {_names(df)})")
    action = method.rsplit(".", 1)[-1]
    const = {str(k): sanitize_constant(v, tz) for k, v in (params or {}).items()}
    if id_column is not None and id_param in const:
        raise CommandValidationError(f"{method}: {id_param!r} is both a constant param and "
                                     f"taken from id_column {id_column!r}")
    if action in ("update", "delete") and id_column is None and id_param not in const:
        raise CommandValidationError(f"{method}: an {action} needs id_column (the column of "
                                     f"record ids)")
    default_fields: dict[str, Any] = {}
    if fields_param is not None and isinstance(const.get(fields_param), dict):
        default_fields = const.pop(fields_param)

    keys = keys_of(df, key_column, method, tz)
    mapping: dict[Any, str] = {}
    if not callable(fields):
        mapping = _field_mapping(df, fields, method, action, id_column, key_column)
        if fields_param is None:
            clash = sorted(set(mapping.values()) & (set(const) | {id_param}))
            if clash:
                raise CommandValidationError(f"{method}: fields {clash} clash with params of "
                                             f"the same name")
    lazy = block_rows is not None and len(df) > block_rows
    builder = _Builder(
        # A later edit of the caller's frame does not reach the lazy commands.
        df=snapshot(df) if lazy else df, method=method, fields=fields if callable(fields) else None,
        infos=_column_infos(df, mapping, types), types=types, fields_param=fields_param,
        id_column=id_column, id_param=id_param, const=const, default_fields=default_fields,
        nulls=nulls, tz=tz, no_fields=action == "delete" and fields is None)
    calls: Sequence[tuple[str, dict[str, Any]]]
    if not lazy or block_rows is None:
        calls = builder.build(0, len(df))
    else:
        for start in range(0, len(df), block_rows):
            builder.check(start, min(len(df), start + block_rows))
        calls = BlockCalls(builder.build, len(df), block_rows)
    return CommandSet(
        method=method,
        calls=calls,
        keys=None if keys is None else pa.array(keys, type=pa.string()),
        key_name=key_column,
    )


class BlockCalls(Sequence[tuple[str, dict[str, Any]]]):
    """Commands built ``block_rows`` rows at a time, when they are read.

    Iterating builds one block after another and keeps none, so memory stays flat however
    many rows there are; indexing builds (and keeps) the block that holds the index.
    """

    def __init__(self, build: Callable[[int, int], list[tuple[str, dict[str, Any]]]], n: int,
                 block_rows: int) -> None:
        self._build = build
        self._n = n
        self._block_rows = block_rows
        self._cached: tuple[int, list[tuple[str, dict[str, Any]]]] | None = None

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for start in range(0, self._n, self._block_rows):
            yield from self._build(start, min(self._n, start + self._block_rows))

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError("command index out of range")
        start = index - index % self._block_rows
        if self._cached is None or self._cached[0] != start:
            self._cached = (start, self._build(start, min(self._n, start + self._block_rows)))
        return self._cached[1][index - start]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == self._n and all(a == b for a, b in zip(self, other,
                                                                         strict=False))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class _Builder:
    """Everything resolved once; ``build(start, stop)`` makes the commands of those rows."""

    df: pd.DataFrame
    method: str
    fields: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None
    infos: dict[Any, FieldInfo]
    types: Mapping[str, FieldInfo]
    fields_param: str | None
    id_column: str | None
    id_param: str
    const: dict[str, Any]
    default_fields: dict[str, Any]
    nulls: str
    tz: dt.tzinfo
    no_fields: bool

    def check(self, start: int, stop: int) -> None:
        """Refuse bad input in rows ``start:stop`` without building their commands."""
        df = self.df.iloc[start:stop]
        if self.id_column is not None:
            ids_of(df, self.id_column, self.id_param, self.method, self.tz, start)
        if self.fields is not None:
            self.build(start, stop)
            return
        if self.no_fields:
            return
        for column, info in self.infos.items():
            try:
                convert_column(df[column], info, self.tz)
            except ValueRefused as exc:
                raise refusal(df, self.method, exc.position, column, exc.reason, exc.count,
                              offset=start) from None

    def build(self, start: int, stop: int) -> list[tuple[str, dict[str, Any]]]:
        """The commands of rows ``start:stop``."""
        df = self.df if (start, stop) == (0, len(self.df)) else self.df.iloc[start:stop]
        ids = None
        if self.id_column is not None:
            ids = ids_of(df, self.id_column, self.id_param, self.method, self.tz, start)
        with gc_paused():
            if self.no_fields:
                rows: list[dict[str, Any]] = [{}] * len(df)
            elif self.fields is not None:
                rows = rows_from_function(df, self.fields, self.method, self.nulls, self.types,
                                           self.tz, start)
            else:
                rows = rows_from_columns(df, self.infos, self.method, self.nulls, self.tz, start)
            if self.default_fields:
                rows = [{**self.default_fields, **row} for row in rows]
            return assemble(self.method, rows, ids, self.const, self.fields_param,
                             self.id_param, self.no_fields)


def _column_infos(df: pd.DataFrame, mapping: Mapping[Any, str],
                  types: Mapping[str, FieldInfo]) -> dict[Any, FieldInfo]:
    """The target field of each mapped column; float columns decide int-or-float once."""
    infos: dict[Any, FieldInfo] = {}
    for column, target in mapping.items():
        info = field_info(target, types)
        s = df[column]
        if info.kind == "any" and pd.api.types.is_float_dtype(s.dtype) and not isinstance(
                s.dtype, pd.CategoricalDtype):
            # Decided on the whole column, so that blocks built apart agree.
            info = replace(info, kind="int" if whole_numbers(s) else "float")
        infos[column] = info
    return infos


# ---------------------------------------------------------------------------------------------
# Checks and errors


def _check_arguments(df: Any, method: Any, nulls: Any, fields_param: Any, id_param: Any) -> None:
    if not isinstance(df, pd.DataFrame):
        raise CommandValidationError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if not isinstance(method, str) or not method or any(c.isspace() for c in method):
        raise CommandValidationError(f"method must be a method name, got {method!r}")
    if method == "batch":
        raise CommandValidationError("method 'batch' cannot be a command (no nested batch)")
    if nulls not in ("omit", "empty"):
        raise CommandValidationError(f"nulls must be 'omit' or 'empty', got {nulls!r}")
    if fields_param is not None and (not isinstance(fields_param, str) or not fields_param):
        raise CommandValidationError(f"fields_param must be a param name or None, "
                                     f"got {fields_param!r}")
    if not isinstance(id_param, str) or not id_param:
        raise CommandValidationError(f"id_param must be a param name, got {id_param!r}")
    if not df.columns.is_unique:
        dupes = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
        raise CommandValidationError(f"{method}: duplicate column names {dupes}")


def _names(df: pd.DataFrame) -> str:
    names = [str(c) for c in df.columns[:20]]
    return ", ".join(names) + (", ..." if len(df.columns) > 20 else "")


# ---------------------------------------------------------------------------------------------
# Fields


def _field_mapping(df: pd.DataFrame, fields: Mapping[str, str] | None, method: str,
                   action: str, id_column: str | None, key_column: str | None) -> dict[Any, str]:
    if fields is None:
        if action == "delete":
            return {}
        mapping: dict[Any, str] = {}
        for column in df.columns:
            if column in (id_column, key_column):
                continue
            if not isinstance(column, str) or not column:
                raise CommandValidationError(f"{method}: column label {column!r} is not a "
                                             f"field name; pass fields={{column: field}}")
            mapping[column] = column
        return mapping
    if not isinstance(fields, Mapping):
        raise CommandValidationError(f"{method}: fields must be a mapping, a function or None, "
                                     f"not {type(fields).__name__}")
    unknown = [c for c in fields if c not in df.columns]
    if unknown:
        raise CommandValidationError(f"{method}: fields names columns {unknown} that are not in "
                                     f"the DataFrame (columns: {_names(df)})")
    targets: dict[str, Any] = {}
    for column, target in fields.items():
        if not isinstance(target, str) or not target:
            raise CommandValidationError(f"{method}: column {column!r} maps to {target!r}, "
                                         f"which is not a field name")
        if target in targets:
            raise CommandValidationError(f"{method}: columns {targets[target]!r} and "
                                         f"{column!r} both map to field {target!r}")
        targets[target] = column
    return dict(fields)

