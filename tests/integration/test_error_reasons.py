"""Error reasons: legacy crm.* methods refuse rows with an empty code, the cause only in words.

The results get an `error_reason` column (the description with its values stripped) and the
materialization an `error_reasons` table (reason, code, count, one example), so three causes
show as three rows, not one empty code.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq
import pytest

from b24_dagster.integration import build_bitrix24_batch_asset
from b24_dagster.integration._batch_run import error_reason

BAD_EMAIL = "E-mail address '…' is invalid."
BAD_USER = "User with ID … not found (field 'ASSIGNED_BY_ID')."
BAD_STAGE = "Stage '…' does not exist (field 'STATUS_ID')."


def _leads() -> pd.DataFrame:
    rows = []
    for i in range(30):
        email, user, stage = f"lead{i}@example.com", "1", "NEW"
        if i % 10 == 1:
            email = f"broken-{i}@"
        elif i % 10 == 2:
            user = str(900 + i)
        elif i % 10 == 3:
            stage = f"NOPE_{i}"
        rows.append({"external_id": f"L{i:03d}", "TITLE": f"Lead {i}", "EMAIL": email,
                     "ASSIGNED_BY_ID": user, "STATUS_ID": stage})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize("sync", ["send", "upsert"])
def test_three_causes_give_three_reasons(b24_emulator, resources, base, instance, sync):
    @dg.asset(name="leads_csv")
    def source() -> pd.DataFrame:
        return _leads()

    asset = build_bitrix24_batch_asset(
        name="lead_import", method="crm.lead.add", source="leads_csv",
        fields=["TITLE", "EMAIL", "ASSIGNED_BY_ID", "STATUS_ID"], key_column="external_id", sync=sync,
    )  # fmt: skip
    result = dg.materialize([source, asset], resources=resources, instance=instance)
    assert result.success

    table = pq.read_table(base / "bitrix24" / "lead_import.parquet")
    assert table.schema.names[-1] == "error_reason"  # after every column of the contract
    rows = table.to_pylist()
    failed = {r["external_id"]: r for r in rows if r["status"] != "ok"}
    # The portal refuses with an empty code; a sync refuses a user or stage it knows is missing
    # before sending (SYNC_INVALID), in the portal's own words, so the reasons are the same.
    codes = {k: r["error_code"] or "" for k, r in failed.items()}
    assert codes == {k: "" if sync == "send" or int(k[1:]) % 10 == 1 else "SYNC_INVALID" for k in failed}
    by_reason = {k: r["error_reason"] for k, r in failed.items()}
    assert by_reason == {
        **{f"L{i:03d}": BAD_EMAIL for i in range(30) if i % 10 == 1},
        **{f"L{i:03d}": BAD_USER for i in range(30) if i % 10 == 2},
        **{f"L{i:03d}": BAD_STAGE for i in range(30) if i % 10 == 3},
    }
    assert all(r["error_reason"] is None for r in rows if r["status"] == "ok")

    [mat] = result.asset_materializations_for_node("bitrix24__lead_import")
    reasons = [r.data for r in mat.metadata["error_reasons"].records]
    assert sorted((r["error_reason"], r["count"]) for r in reasons) == sorted(
        [(BAD_EMAIL, 3), (BAD_USER, 3), (BAD_STAGE, 3)])  # fmt: skip
    examples = {r["error_reason"]: r["example"] for r in reasons}
    assert examples[BAD_EMAIL] == "E-mail address 'broken-1@' is invalid."
    assert "902" in examples[BAD_USER]
    schema = mat.metadata["dagster/column_schema"].schema
    assert schema.columns[-1].name == "error_reason" and schema.columns[-1].description


def test_reason_strips_values_and_keeps_field_names():
    assert error_reason("error", "", "E-mail address 'a@b' is invalid.") == BAD_EMAIL
    assert error_reason("error", "", "User with ID 17 not found (field 'ASSIGNED_BY_ID').") == BAD_USER
    assert error_reason("error", "ERROR_CORE", 'Value "x" of `FOO` is 12.5') == 'Value "…" of `…` is …'
    assert error_reason("ok", None, "reconciled: found by ORIGIN_ID") is None
    assert error_reason("not_run", "SYNC_MAX_ATTEMPTS", None) == "SYNC_MAX_ATTEMPTS"
    assert error_reason("unknown", None, None) == "(unknown)"
