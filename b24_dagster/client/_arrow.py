"""Arrow columns of Python lists, assembled from buffers instead of ``pa.array``.

Why not ``pa.array``: the first time it is given a Python list, pyarrow's pandas shim imports
pandas to ask whether the list is a pandas object. That costs half a second of CPU in a
process that never uses pandas (a script, a notebook, an Airflow task), and the client's
first ``to_arrow()`` paid it. The result contract needs three column types only (int64,
int32, utf-8 string, each nullable), which are a validity bitmap, a values buffer and, for
strings, an offsets buffer: these functions build exactly those, so the client never loads
pandas, and they cost no more than ``pa.array`` does for a chunk of 50 rows.
"""

from __future__ import annotations

import array
import sys
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

import pyarrow as pa

__all__ = ["int_column", "string_column", "utf8_column"]

#: Arrow buffers are little-endian, with 32-bit string offsets; elsewhere pa.array builds them.
_NATIVE = sys.byteorder == "little" and array.array("i").itemsize == 4
_INT_CODES = {pa.int64(): "q", pa.int32(): "i"}


def _validity(values: Sequence[Any], nulls: int) -> pa.Buffer | None:
    """The validity bitmap (bit i set = value i present, least significant bit first)."""
    if not nulls:
        return None
    bits = bytearray((len(values) + 7) // 8)
    for i, value in enumerate(values):
        if value is not None:
            bits[i >> 3] |= 1 << (i & 7)
    return pa.py_buffer(bits)


def int_column(values: Sequence[int | None], type: pa.DataType) -> pa.Array:
    """An int64 or int32 array of Python ints and None.

    Raises:
        OverflowError: A value outside the type's range.
    """
    n = len(values)
    nulls = values.count(None)
    if nulls == n:
        return pa.nulls(n, type)
    if not _NATIVE:
        return pa.array(values, type)
    data = array.array(_INT_CODES[type], values if not nulls else [0 if v is None else v for v in values])
    return pa.Array.from_buffers(type, n, [_validity(values, nulls), pa.py_buffer(data)],
                                 null_count=nulls)  # fmt: skip


def string_column(values: Sequence[str | None]) -> pa.Array:
    """A utf-8 string array of Python strings and None.

    A lone surrogate, which no UTF-8 text can hold, becomes ``?`` (``pa.array`` refuses the
    whole column).

    Raises:
        OverflowError: More than 2 GiB of text (the int32 offsets of ``pa.string()``).
    """
    n = len(values)
    nulls = values.count(None)
    if nulls == n:
        return pa.nulls(n, pa.string())
    if not _NATIVE:
        return pa.array([None if v is None else _utf8(v).decode() for v in values], pa.string())
    texts = values if not nulls else ["" if v is None else v for v in values]
    joined = "".join(texts)
    if joined.isascii():  # the common case: one encode, and the offsets are the lengths
        return _utf8_array(values, nulls, texts, joined.encode("ascii"))
    encoded = [_utf8(v) for v in texts]
    return _utf8_array(values, nulls, encoded, b"".join(encoded))


def utf8_column(values: Sequence[bytes | None]) -> pa.Array:
    """A utf-8 string array of UTF-8 encoded texts (bytes) and None, taken as they are."""
    n = len(values)
    nulls = values.count(None)
    if nulls == n:
        return pa.nulls(n, pa.string())
    if not _NATIVE:
        return pa.array([None if v is None else v.decode() for v in values], pa.string())
    parts = values if not nulls else [b"" if v is None else v for v in values]
    return _utf8_array(values, nulls, parts, b"".join(parts))


def _utf8_array(values: Sequence[Any], nulls: int, parts: Sequence[Any], data: bytes) -> pa.Array:
    """The array of ``data``, the concatenated ``parts`` (whose lengths are their byte lengths)."""
    offsets = array.array("i", accumulate(map(len, parts), initial=0))
    buffers = [_validity(values, nulls), pa.py_buffer(offsets), pa.py_buffer(data)]
    return pa.Array.from_buffers(pa.string(), len(values), buffers, null_count=nulls)


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")
