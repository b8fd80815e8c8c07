"""Results tables (Arrow, one row per command) back to pandas and to the source rows."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from b24_dagster.frames._compat import string_dtype
from b24_dagster.frames._values import key_strings

__all__ = ["FAILED_STATUSES", "STATUSES", "attach_keys", "failed_rows", "results_to_frame",
           "table_to_frame"]

#: Every command status of the results contract, in order.
STATUSES = ("ok", "error", "not_run", "unknown")
#: The statuses whose source rows :func:`failed_rows` returns.
FAILED_STATUSES = ("error", "not_run", "unknown")
#: The result columns :func:`failed_rows` adds to the source rows.
_OUTCOME_COLUMNS = {"status": "b24_status", "error_code": "b24_error_code",
                    "error_description": "b24_error_description"}


def attach_keys(table: pa.Table, keys: pa.Array | None, key_name: str | None) -> pa.Table:
    """Append ``keys[command_index]`` to ``table`` as column ``key_name``."""
    if keys is None or key_name is None:
        return table
    if "command_index" not in table.column_names:
        raise ValueError("the results table has no command_index column")
    if key_name in table.column_names:
        raise ValueError(f"the results table already has a column named {key_name!r}; "
                         f"rename the key column")
    index = table.column("command_index")
    if index.null_count:
        raise ValueError("the results table has a null command_index")
    if len(index) and (pc.min(index).as_py() < 0 or pc.max(index).as_py() >= len(keys)):
        raise ValueError(f"command_index out of range for a command set of {len(keys)} commands")
    return table.append_column(pa.field(key_name, pa.string()),
                               keys.take(index.cast(pa.int64())))


def _types_mapper(table: pa.Table) -> dict[pa.DataType, object]:
    # Text is pandas 3's str dtype on 2.2 as well; integer columns with nulls (total, next)
    # become nullable Int64 instead of float64, booleans with nulls nullable boolean.
    mapper: dict[pa.DataType, object] = {pa.string(): string_dtype(),
                                         pa.large_string(): string_dtype()}
    if any(pa.types.is_integer(c.type) and c.null_count for c in table.columns):
        mapper.update({pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int32Dtype()})
    if any(pa.types.is_boolean(c.type) and c.null_count for c in table.columns):
        mapper[pa.bool_()] = pd.BooleanDtype()
    return mapper


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """Any Arrow table (an export, say) as a DataFrame, alike on pandas 2.2 and 3.x.

    Text uses the ``str`` dtype; integer and boolean columns stay numpy ``int64``/``bool``
    unless they have nulls, then nullable ``Int64``/``boolean`` (never float64 or object);
    timestamps keep their time zone.

    Args:
        table: The table (e.g. a Parquet file read with pyarrow).

    Returns:
        One row per table row, with a default index.
    """
    mapper = _types_mapper(table)
    df = table.to_pandas(types_mapper=mapper.get)
    for column in table.column_names:
        kind = table.schema.field(column).type
        if column not in df or table.column(column).null_count:
            continue
        if pa.types.is_integer(kind):
            df[column] = df[column].astype(kind.to_pandas_dtype())
        elif pa.types.is_boolean(kind):
            df[column] = df[column].astype(bool)
    return df


def results_to_frame(table: pa.Table) -> pd.DataFrame:
    """A results table as a DataFrame with dtypes that suit it.

    Integer columns stay integers (nullable ``Int64``/``Int32`` when a column has nulls,
    such as ``total`` and ``next`` outside list commands), strings use pandas' string dtype,
    ``status`` is a categorical of ``ok``/``error``/``not_run``/``unknown`` (so counts show
    every status), and ``result`` stays JSON text. Key columns added by
    :meth:`CommandSet.with_results` come along.

    Args:
        table: A results table (``to_arrow()`` of a batch, chunk or run).

    Returns:
        One row per command, in the table's order, with a default index.
    """
    df = table_to_frame(table)
    if "status" in df.columns:
        df["status"] = pd.Categorical(df["status"], categories=list(STATUSES))
    return df


def failed_rows(table: pa.Table, source: pd.DataFrame, key_column: str, *,
                with_outcome: bool = True) -> pd.DataFrame:
    """The source rows whose command failed: status ``error``, ``not_run`` or ``unknown``.

    Rows join on the key column, compared as strings the way
    :func:`commands_from_frame` carried them (so an integer key that pandas turned into
    float64 still matches). Rows keep the source's order and index.

    Args:
        table: Results with the key column (:meth:`CommandSet.with_results`).
        source: The DataFrame the commands were built from.
        key_column: The key column, in both ``table`` and ``source``.
        with_outcome: Add ``b24_status``, ``b24_error_code`` and ``b24_error_description``.

    Returns:
        The failed source rows (empty, with the source's columns, when none failed).

    Raises:
        ValueError: ``key_column`` is missing from ``table`` or ``source``.
    """
    if key_column not in table.column_names:
        raise ValueError(f"the results table has no column {key_column!r}; add it with "
                         f"CommandSet.with_results")
    if key_column not in source.columns:
        raise ValueError(f"the source DataFrame has no column {key_column!r}")
    failed = table.filter(pc.is_in(table.column("status"),
                                   value_set=pa.array(FAILED_STATUSES, pa.string())))
    wanted = ["status", "error_code", "error_description"]
    outcome = failed.select([key_column] + [c for c in wanted if c in failed.column_names])
    by_key = pd.DataFrame({c: outcome.column(c).to_pylist() for c in outcome.column_names})
    by_key = by_key.drop_duplicates(subset=key_column, keep="last").set_index(key_column)
    keys = pd.Series(key_strings(source[key_column]), index=source.index, dtype=object)
    mask = keys.isin(by_key.index).to_numpy()
    rows = source.loc[mask].copy()
    if with_outcome:
        matched = by_key.reindex(keys[mask].to_numpy())
        for column, name in _OUTCOME_COLUMNS.items():
            if column in matched.columns:
                rows[name] = pd.array(matched[column].to_numpy(), dtype=string_dtype())
    return rows
