"""The one Parquet IO path: streaming, atomic writes and reads over `UPath`.

`ParquetStreamWriter` writes one row group per `write()` (one per chunk of a batch run or
page group of an export), so memory holds one chunk at a time, never the whole output. It
writes to a temporary name beside the target and renames it into place on `close()`, so a
reader sees either the previous file or the complete new one; a failed run leaves the
previous file untouched (the temporary file is removed). Object stores have no atomic
rename: there the new object appears when the copy completes.
"""

from __future__ import annotations

import contextlib
import uuid
from types import TracebackType
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

__all__ = ["ParquetStreamWriter", "read_parquet", "uri_of"]


def uri_of(path: UPath) -> str:
    """A displayable URI of a path (`file:///…` locally, the fsspec URL otherwise)."""
    text = str(path)
    return text if "://" in text else UPath(text).absolute().as_uri()


class ParquetStreamWriter:
    """Write a Parquet file row group by row group, then publish it atomically.

    Example:
        ```python
        with ParquetStreamWriter(UPath("data/x.parquet"), schema) as writer:
            for table in chunks:
                writer.write(table)
        ```
    A `with` block that raises discards the temporary file and keeps the old target.
    """

    def __init__(self, path: UPath, schema: pa.Schema, *, compression: str = "zstd") -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self.row_groups = 0
        self._tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        self._handle: IO[bytes] | None = None
        self._writer: pq.ParquetWriter | None = None
        self._compression = compression

    def open(self) -> ParquetStreamWriter:
        """Create the parent directory and the temporary file."""
        with contextlib.suppress(Exception):  # object stores have no directories
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self._tmp.open("wb")
        self._writer = pq.ParquetWriter(self._handle, self.file_schema, compression=self._compression)
        return self

    @property
    def file_schema(self) -> pa.Schema:
        """The schema of the file (the schema given; a subclass may add derived columns)."""
        return self.schema

    def to_file(self, table: pa.Table) -> pa.Table:
        """`table` as written: its columns in the file's order and types."""
        return table.select(self.schema.names).cast(self.schema)

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        """Append `table` as one row group (cast to the file's schema; empty tables are skipped)."""
        if self._writer is None:
            self.open()
        assert self._writer is not None
        if table.num_rows == 0:
            return
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        table = self.to_file(table)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self.rows += table.num_rows
        self.row_groups += 1

    def close(self) -> UPath:
        """Finish the file and rename it into place; returns the final path."""
        if self._writer is None:
            self.open()
        assert self._writer is not None and self._handle is not None
        self._writer.close()  # an empty file still gets the schema
        self._handle.close()
        self._writer = None
        _publish(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target is left as it was."""
        for closer in (self._writer, self._handle):
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer.close()
        self._writer = None
        with contextlib.suppress(Exception):
            self._tmp.unlink()

    def __enter__(self) -> ParquetStreamWriter:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _publish(tmp: UPath, target: UPath) -> None:
    """Move `tmp` onto `target`: `os.replace` locally (atomic), the filesystem's move elsewhere."""
    if hasattr(tmp, "replace") and tmp.protocol in ("", "file", "local"):
        tmp.replace(target)
        return
    with contextlib.suppress(FileNotFoundError):
        if target.exists():
            target.unlink()
    tmp.rename(target)


def read_parquet(path: UPath, **kwargs: Any) -> pa.Table:
    """Read a whole Parquet file written by this module."""
    with path.open("rb") as handle:
        return pq.read_table(handle, **kwargs)


def iter_parquet_batches(path: UPath, *, batch_size: int = 10_000) -> Any:
    """Yield the record batches of a Parquet file (memory stays at one batch)."""
    with path.open("rb") as handle:
        yield from pq.ParquetFile(handle).iter_batches(batch_size=batch_size)
