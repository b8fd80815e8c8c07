"""Commands built slice by slice: same calls as the whole frame, errors at frame positions."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from b24_dagster.frames import commands_from_frame
from b24_dagster.integration._batch_core import BatchSpec, build_commands

SPEC = BatchSpec(method="crm.lead.add", fields={"title": "TITLE"}, key_column="k")


def frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"k": [f"K{i}" for i in range(n)], "title": [f"t{i}" for i in range(n)]}, dtype=object)


def test_slices_give_the_calls_and_keys_of_the_whole_frame():
    rows = frame(12_345)
    commands, keys = build_commands(SPEC, rows)
    whole = commands_from_frame(rows, "crm.lead.add", fields={"title": "TITLE"}, key_column="k")
    assert len(commands) == 12_345
    assert list(commands) == list(whole.calls)
    assert list(commands[12_000:]) == list(whole.calls[12_000:])
    assert commands[7_777] == whole.calls[7_777]
    assert keys.to_pylist() == whole.keys.to_pylist()


def test_bad_rows_are_named_by_their_frame_position_before_any_request():
    rows = frame(8_000)
    rows.loc[7_000, "title"] = b"x"
    with pytest.raises(dg.Failure, match=r"row 7000 \(index 7000\)"):
        build_commands(SPEC, rows)
    rows = frame(8_000)
    rows.loc[6_000, "k"] = "K10"  # a key repeated across slices
    with pytest.raises(dg.Failure, match="K10"):
        build_commands(SPEC, rows)
