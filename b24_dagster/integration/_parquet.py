"""The one Parquet IO path: streaming, atomic writes and reads over `UPath`.

`ParquetStreamWriter` writes one row group per `write()` (one per chunk of a batch run or
page group of an export), so memory holds one chunk at a time, never the whole output. It is
the one way every file of the integration is published (results, exports, the sync state,
the plan, journal parts): a reader sees either the previous file or the complete new one,
never a mix and never nothing, and a writer that fails (or is killed) leaves the previous
file as it was.

- Local disk: the file is written under a temporary name beside the target, flushed to disk
  (`fsync`), then renamed over it (`os.replace`, atomic); a failure removes the temporary.
- Object storage (s3fs, gcsfs, adlfs: fsspec's buffered files): written straight to the
  final key as an upload that is completed only on success (`autocommit=False`, then
  `commit()`; an S3 multipart upload appears whole or not at all) and aborted on failure
  (`discard()`). A killed writer leaves an incomplete upload, which never becomes the object
  (a bucket lifecycle rule removes such leftovers). Never delete-then-copy: there is no
  moment without the file.
- Any other fsspec filesystem: the file is written to a local temporary file, then put in
  one call.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
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
    A `with` block that raises discards what was written and keeps the old target.
    """

    def __init__(self, path: UPath, schema: pa.Schema, *, compression: str = "zstd") -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self.row_groups = 0
        self._sink: _Sink | None = None
        self._handle: IO[bytes] | None = None
        self._writer: pq.ParquetWriter | None = None
        self._compression = compression

    def open(self) -> ParquetStreamWriter:
        """Create the parent directory and start the file (nothing visible at the target yet)."""
        with contextlib.suppress(Exception):  # object stores have no directories
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sink = _Sink.open(self.path)
        self._handle = self._sink.handle
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
        """Finish the file and publish it at the target in one step; returns the final path."""
        if self._writer is None:
            self.open()
        assert self._writer is not None and self._sink is not None
        try:
            self._writer.close()  # an empty file still gets the schema
            self._writer = None
            self._sink.publish()
        except BaseException:
            self.abort()
            raise
        self._sink = None
        return self.path

    def abort(self) -> None:
        """Drop what was written; the target is left as it was."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._writer = None
        if self._sink is not None:
            self._sink.discard()
        self._sink = None

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


_UPLOADING = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"})
"""Object stores whose fsspec driver writes a buffered upload that only `commit()` completes."""


class _Sink:
    """Where a file is written until it is published (see the module docstring)."""

    def __init__(self, target: UPath, handle: IO[bytes], publish: Any, discard: Any) -> None:
        self.target = target
        self.handle = handle
        self._publish = publish
        self._discard = discard

    @classmethod
    def open(cls, target: UPath) -> _Sink:
        if target.protocol in ("", "file", "local"):
            return cls._local(target)
        fs = target.fs
        if target.protocol in _UPLOADING:
            from fsspec.spec import AbstractBufferedFile

            handle = fs.open(target.path, "wb", autocommit=False)
            if not isinstance(handle, AbstractBufferedFile):  # a driver that writes at once
                raise RuntimeError(f"{type(fs).__name__} does not write {target.protocol}:// objects as "
                                   "uploads completed on commit; cannot publish atomically")
            return cls(target, handle, lambda: _commit(handle), lambda: _discard(handle))
        spool = tempfile.NamedTemporaryFile(prefix="b24-publish-", suffix=".parquet", delete=False)  # noqa: SIM115

        def put() -> None:  # one call of the filesystem: the object is replaced as a whole
            spool.close()
            try:
                fs.put_file(spool.name, target.path)
            finally:
                os.unlink(spool.name)

        def drop() -> None:
            spool.close()
            with contextlib.suppress(OSError):
                os.unlink(spool.name)

        return cls(target, spool, put, drop)  # type: ignore[arg-type]

    @classmethod
    def _local(cls, target: UPath) -> _Sink:
        final = target.path
        tmp = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.{uuid.uuid4().hex[:12]}.tmp")
        handle = open(tmp, "wb")  # noqa: SIM115 (closed by publish or discard)

        def replace() -> None:
            handle.flush()
            os.fsync(handle.fileno())  # the bytes are on disk before the name points at them
            handle.close()
            os.replace(tmp, final)
            _fsync_dir(os.path.dirname(final))

        def drop() -> None:
            handle.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)

        return cls(target, handle, replace, drop)

    def publish(self) -> None:
        self._publish()

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._discard()


def _commit(handle: Any) -> None:
    handle.close()  # uploads the last part; with autocommit=False nothing is visible yet
    handle.commit()  # completes the upload: the object appears whole


def _discard(handle: Any) -> None:
    handle.discard()  # aborts the upload; the target keeps its previous object
    handle.closed = True  # never flushed again (fsspec's __del__ would try)


def _fsync_dir(folder: str) -> None:
    """Make a rename durable (where the OS lets a directory be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_parquet(path: UPath, **kwargs: Any) -> pa.Table:
    """Read a whole Parquet file written by this module."""
    with path.open("rb") as handle:
        return pq.read_table(handle, **kwargs)


def iter_parquet_batches(path: UPath, *, batch_size: int = 10_000) -> Any:
    """Yield the record batches of a Parquet file (memory stays at one batch)."""
    with path.open("rb") as handle:
        yield from pq.ParquetFile(handle).iter_batches(batch_size=batch_size)
