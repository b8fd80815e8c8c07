"""User fields end to end (issue 15): created with ``crm.deal.userfield.add``, listed in
``crm.deal.fields``, written by a batch asset, exported as typed Parquet columns.

Pages: ``api-reference/crm/deals/user-defined-fields/crm-deal-userfield-add.md``,
``crm/deals/crm-deal-fields.md``, ``crm/deals/crm-deal-list.md`` (``UF_*`` in ``select``).
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import requests

from b24_dagster.integration import build_bitrix24_batch_asset, build_bitrix24_export_asset


def _add_field(url: str, name: str, kind: str) -> None:
    answer = requests.post(url + "crm.deal.userfield.add", json={"fields": {
        "FIELD_NAME": name, "USER_TYPE_ID": kind, "LABEL": name.title()}}, timeout=10)
    assert answer.status_code == 200, answer.text


def test_user_fields_written_by_a_batch_asset_and_exported_typed(b24_emulator, resources, base, instance):
    url = b24_emulator.webhook_url
    _add_field(url, "SCORE", "double")
    _add_field(url, "SIGNED", "date")
    _add_field(url, "VIP", "boolean")
    _add_field(url, "NOTE", "string")
    frame = pd.DataFrame({"external_id": [f"D{i}" for i in range(30)],
                          "title": [f"Deal {i}" for i in range(30)],
                          "score": [i / 2 for i in range(30)],
                          "signed": [f"2026-03-{1 + i % 28:02d}" for i in range(30)],
                          "vip": ["Y" if i % 3 == 0 else "N" for i in range(30)],
                          "note": [f"note {i}" for i in range(30)]})

    @dg.asset(name="deals_csv")
    def source() -> pd.DataFrame:
        return frame

    writes = build_bitrix24_batch_asset(
        name="deal_import", method="crm.deal.add", source="deals_csv", key_column="external_id",
        fields={"title": "TITLE", "score": "UF_CRM_SCORE", "signed": "UF_CRM_SIGNED",
                "vip": "UF_CRM_VIP", "note": "UF_CRM_NOTE"}, sync="send")
    export = build_bitrix24_export_asset(
        name="deals", method="crm.deal.list",
        select=["ID", "TITLE", "UF_CRM_SCORE", "UF_CRM_SIGNED", "UF_CRM_VIP", "UF_CRM_NOTE"])
    result = dg.materialize([source, writes], resources=resources, instance=instance)
    assert result.success
    assert dg.materialize([export], resources=resources, instance=instance).success

    table = pq.read_table(base / "bitrix24" / "deals.parquet")
    assert table.num_rows == 30
    types = {f.name: f.type for f in table.schema}
    assert types["UF_CRM_SCORE"] == pa.float64() and types["UF_CRM_SIGNED"] == pa.date32()
    assert types["UF_CRM_VIP"] == pa.bool_() and types["UF_CRM_NOTE"] == pa.string()
    rows = table.to_pylist()
    assert [r["UF_CRM_SCORE"] for r in rows] == [i / 2 for i in range(30)]
    assert rows[1]["UF_CRM_SIGNED"] == dt.date(2026, 3, 2)
    assert [r["UF_CRM_VIP"] for r in rows[:3]] == [True, False, False]
    assert rows[29]["UF_CRM_NOTE"] == "note 29"
