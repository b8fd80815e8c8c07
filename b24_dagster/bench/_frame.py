"""The source DataFrame of scenario 4 (pandas is imported only by the processes that use it)."""

from __future__ import annotations

import pandas as pd

from ._workload import add_fields

__all__ = ["source_frame"]


def source_frame(tag: str, n: int) -> pd.DataFrame:
    """``n`` deals to create, with a unique ``source_id`` and title per row."""
    rows = [add_fields(tag, i) for i in range(n)]
    frame = pd.DataFrame.from_records(rows)
    frame.insert(0, "source_id", [f"{tag}-{i}" for i in range(n)])
    return frame
