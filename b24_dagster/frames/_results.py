"""Results tables (Arrow, one row per command) back to pandas and to the source rows."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from b24_dagster.frames._compat import string_dtype
from b24_dagster.frames._values import key_strings

__all__ = ["FAILED_STATUSES", "STATUSES", "STATUS_DTYPE", "attach_keys", "failed_rows",
           "results_to_frame", "table_to_frame"]

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


#: The pandas dtype of each Arrow type (`table_to_frame`): nullable dtypes, so that a column's
#: dtype follows its type alone, never whether a run's values happen to have a null.
_NULLABLE: dict[pa.DataType, object] = {
    pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
    pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(), pa.bool_(): pd.BooleanDtype(),
    pa.float32(): pd.Float32Dtype(), pa.float64(): pd.Float64Dtype(),
    pa.string(): string_dtype(), pa.large_string(): string_dtype(),
}  # fmt: skip
#: The dtype of a results table's `status`: a categorical of every status, in order.
STATUS_DTYPE = pd.CategoricalDtype(pd.Index(STATUSES, dtype=string_dtype()))


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """Any Arrow table (an export, say) as a DataFrame, with the same dtypes in every run and
    on pandas 2.2 and 3.x alike.

    A column's dtype follows its Arrow type alone (never its values, so a run with nulls and a
    run without give the same frame): integers the nullable ``Int8`` ... ``Int64`` /
    ``UInt8`` ... ``UInt64`` of the same width, booleans ``boolean``, floats ``Float32`` /
    ``Float64``, text ``string`` (pyarrow storage); missing values are ``pd.NA`` in all of
    them. Timestamps are ``datetime64[<unit>, <tz>]`` (``NaT``), dates ``datetime.date``
    objects, other types as pyarrow converts them.

    Args:
        table: The table (e.g. a Parquet file read with pyarrow).

    Returns:
        One row per table row, with a default index.
    """
    return table.to_pandas(types_mapper=_NULLABLE.get)


def results_to_frame(table: pa.Table) -> pd.DataFrame:
    """A results table as a DataFrame, with the same dtypes in every run.

    The dtypes of :func:`table_to_frame` (``command_index`` ``Int64``, ``chunk_index``
    ``Int32``, text ``string``, whether or not a run had failures), and ``status`` a
    categorical of ``ok``/``error``/``not_run``/``unknown`` (:data:`STATUS_DTYPE`, so counts
    show every status); ``result`` stays JSON text. Key columns added by
    :meth:`CommandSet.with_results` come along.

    Args:
        table: A results table (``to_arrow()`` of a batch, chunk or run).

    Returns:
        One row per command, in the table's order, with a default index.
    """
    df = table_to_frame(table)
    if "status" in df.columns:
        df["status"] = df["status"].astype(STATUS_DTYPE)
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
