"""What differs between pandas 2.2 and 3.x, in one place.

pandas 3 copies on write and gives text columns the ``str`` dtype (NaN for missing); pandas
2.2 shares data between a frame and its shallow copies unless copy-on-write is switched on,
and its ``"str"`` means plain Python ``str`` conversion (``None`` becomes ``"None"``).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["PANDAS_MAJOR", "snapshot", "string_dtype"]

PANDAS_MAJOR = int(pd.__version__.split(".", 1)[0])


def _copy_on_write() -> bool:
    return PANDAS_MAJOR >= 3 or pd.options.mode.copy_on_write is True


def snapshot(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` that later edits of ``df`` do not reach.

    Shallow (free) under copy-on-write; a deep copy on pandas 2 without it.
    """
    return df.copy(deep=not _copy_on_write())


def string_dtype() -> pd.StringDtype:
    """The nullable ``string`` dtype (pyarrow storage, ``pd.NA`` for missing): one dtype with
    one name on 2.2 and 3.x. pandas 3's default ``str`` (NaN for missing) has no name of its
    own on 2.2, where the same storage prints as ``string``."""
    return pd.StringDtype("pyarrow")
