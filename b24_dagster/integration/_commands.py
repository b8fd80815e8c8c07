"""Commands built from a DataFrame slice by slice, so that memory does not grow with the rows.

`frames.commands_from_frame` turns a whole frame into a list of calls (about 0.5 KB per
command). `FrameCommands` runs it over slices of `SLICE_ROWS` rows instead: once up front to
check every row (bad input is refused before any request, as before) and to digest the
command set, then again while sending, handing the client an iterator of calls (which it
consumes chunk by chunk). Random access (`commands[i]`, for a re-drive or a journal)
rebuilds the slice that holds `i` (the last slice is kept).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

__all__ = ["SLICE_ROWS", "FrameCommands"]

SLICE_ROWS = 5_000
_ROW = re.compile(r"\brow (\d+)")


class FrameCommands:
    """The calls of a frame, built per slice by `build(slice_frame) -> (calls, keys)`.

    Args:
        frame: the source rows.
        build: turns a slice of the frame into its calls and their keys (strings or None).
        slice_rows: rows per slice.

    Raises:
        whatever `build` raises for bad rows, before anything is sent; and ValueError for a
        key that repeats across slices (each slice checks its own).
    """

    def __init__(
        self,
        frame: Any,
        build: Callable[[Any], tuple[list[Any], pa.Array | None]],
        *,
        slice_rows: int = SLICE_ROWS,
        key_column: str | None = None,
    ) -> None:
        self._frame = frame
        self._build = build
        self._rows = slice_rows
        self._cached: tuple[int, list[Any]] | None = None
        if key_column is not None:
            dupes = frame[key_column][frame[key_column].duplicated(keep=False)]
            if len(dupes):
                raise ValueError(
                    f"key column {key_column!r} has duplicate values, e.g. {dupes.iloc[0]!r} "
                    f"(rows {', '.join(map(str, dupes.index[:5].tolist()))})"
                )
        digest = hashlib.sha256()
        key_parts: list[pa.Array] = []
        has_keys = True
        #: The (method, entityTypeId) pairs the commands write (what the step locks).
        self.targets: set[tuple[str, Any]] = set()
        for start in range(0, len(frame), slice_rows):
            try:
                calls, keys = build(frame.iloc[start : start + slice_rows])
            except (ValueError, TypeError, KeyError) as exc:
                if not start:
                    raise
                # The slice's row positions start at 0: give the frame's positions instead.
                text = _ROW.sub(lambda m, at=start: f"row {int(m.group(1)) + at}", str(exc))
                raise ValueError(text) from exc
            for call in calls:
                digest.update(_call_bytes(call))
                self.targets.add(_target(call))
            if keys is None:
                has_keys = False
            else:
                key_parts.append(keys)
        self.digest = digest.hexdigest()[:24]
        self.keys: pa.Array | None = (
            (pa.concat_arrays(key_parts) if key_parts else pa.array([], pa.string()))
            if has_keys and (len(frame) or key_column is not None)
            else None  # an empty frame with a key column has no keys, not "no key column"
        )

    def __len__(self) -> int:
        return len(self._frame)

    def _slice(self, number: int) -> list[Any]:
        if self._cached is None or self._cached[0] != number:
            start = number * self._rows
            calls, _ = self._build(self._frame.iloc[start : start + self._rows])
            self._cached = (number, list(calls))
        return self._cached[1]

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("only contiguous ranges of commands")
            return self._iter_range(start, stop)
        if index < 0:
            index += len(self)
        return self._slice(index // self._rows)[index % self._rows]

    def _iter_range(self, start: int, stop: int) -> Iterator[Any]:
        position = start
        while position < stop:
            number, offset = divmod(position, self._rows)
            calls, _ = self._build(self._frame.iloc[number * self._rows : (number + 1) * self._rows])
            take = calls[offset : offset + (stop - position)]
            del calls
            yield from take
            position += len(take)
            if not take:
                break

    def __iter__(self) -> Iterator[Any]:
        return self._iter_range(0, len(self))


def _target(call: Any) -> tuple[str, Any]:
    method, params = (call["method"], call.get("params")) if isinstance(call, dict) else call
    type_id = params.get("entityTypeId") if isinstance(params, dict) else None
    return str(method), None if type_id is None else str(type_id)


def _call_bytes(call: Any) -> bytes:
    method, params = (call["method"], call.get("params")) if isinstance(call, dict) else call
    return json.dumps([method, params], sort_keys=True, default=str).encode() + b"\n"
