"""Typed export columns, the translator, and the resource's configuration errors."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pyarrow as pa
import pytest

from b24_dagster.integration import (
    Bitrix24AssetProps,
    Bitrix24Resource,
    Bitrix24Translator,
    build_bitrix24_export_asset,
    portal_env_var,
)
from b24_dagster.integration._typing import ColumnTyper

LEGACY_FIELDS = {
    "ID": {"type": "integer"},
    "OPPORTUNITY": {"type": "double"},
    "DATE_MODIFY": {"type": "datetime"},
    "BEGINDATE": {"type": "date"},
    "OPENED": {"type": "char"},
    "TITLE": {"type": "string"},
    "UF_MONEY": {"type": "money"},
    "OBSERVERS": {"type": "user", "isMultiple": True},
}


def test_legacy_strings_become_typed_columns():
    typer = ColumnTyper(LEGACY_FIELDS, list(LEGACY_FIELDS) + ["EXTRA"])
    table = typer.table([
        {"ID": "7", "OPPORTUNITY": "19999.99", "DATE_MODIFY": "2024-07-18T14:00:14+03:00",
         "BEGINDATE": "2024-07-18T00:00:00+03:00", "OPENED": "Y", "TITLE": "Deal",
         "UF_MONEY": "100.5|USD", "OBSERVERS": ["1", "2"], "EXTRA": {"a": 1}},
        {"ID": "", "OPPORTUNITY": None, "OPENED": "N", "DATE_MODIFY": "not a date"},
    ])  # fmt: skip
    assert table.schema.field("ID").type == pa.int64()
    assert table.schema.field("DATE_MODIFY").type == pa.timestamp("us", tz="UTC")
    row, empty = table.to_pylist()
    assert row["ID"] == 7 and row["OPPORTUNITY"] == 19999.99 and row["UF_MONEY"] == 100.5
    assert row["DATE_MODIFY"] == dt.datetime(2024, 7, 18, 11, 0, 14, tzinfo=dt.UTC)
    assert row["BEGINDATE"] == dt.date(2024, 7, 18)
    assert row["OPENED"] is True and empty["OPENED"] is False
    assert row["OBSERVERS"] == '["1","2"]' and row["EXTRA"] == '{"a":1}'
    assert empty["ID"] is None and empty["DATE_MODIFY"] is None
    assert typer.unparsed == 1


def test_camel_case_rows_match_upper_descriptions():
    typer = ColumnTyper({"CHANGED_DATE": {"type": "datetime"}}, ["changedDate"])
    assert typer.schema.field("changedDate").type == pa.timestamp("us", tz="UTC")


def test_translator_defaults_and_override():
    props = Bitrix24AssetProps(name="deals", kind="export", method="crm.deal.list", entity="deal")
    spec = Bitrix24Translator().get_asset_spec(props)
    assert spec.key == dg.AssetKey(["bitrix24", "deals"])
    assert spec.group_name == "bitrix24" and set(spec.kinds) == {"bitrix24", "parquet"}
    assert spec.metadata["bitrix24/method"] == "crm.deal.list"

    class Mine(Bitrix24Translator):
        def get_asset_key(self, props):
            return dg.AssetKey(["crm", props.name])

        def get_group_name(self, props):
            return "crm_raw"

    asset = build_bitrix24_export_asset(name="deals", method="crm.deal.list", translator=Mine())
    assert asset.key == dg.AssetKey(["crm", "deals"])
    assert asset.group_names_by_key[asset.key] == "crm_raw"


def test_plan_shortcut_and_portal_variables():
    assert Bitrix24Resource(plan="enterprise").limits() == (5.0, 250)
    assert Bitrix24Resource(plan="on_premise").limits() == (None, 50)
    assert Bitrix24Resource(requests_per_second=None).limits() == (None, 50)
    assert portal_env_var("eu-west") == "BITRIX24_WEBHOOK_URL__EU_WEST"


def test_missing_webhook_is_a_clear_failure(monkeypatch):
    monkeypatch.delenv("BITRIX24_WEBHOOK_URL__NOWHERE", raising=False)
    with pytest.raises(dg.Failure, match="BITRIX24_WEBHOOK_URL"):
        Bitrix24Resource().get_client()
    with pytest.raises(dg.Failure, match="BITRIX24_WEBHOOK_URL__NOWHERE"):
        Bitrix24Resource().get_client("nowhere")


def test_unset_env_var_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("BITRIX24_WEBHOOK_URL", raising=False)

    @dg.asset
    def uses(bitrix24: Bitrix24Resource) -> None:
        bitrix24.get_client()

    with pytest.raises(Exception, match="BITRIX24_WEBHOOK_URL"):
        dg.materialize(
            [uses], resources={"bitrix24": Bitrix24Resource(webhook_url=dg.EnvVar("BITRIX24_WEBHOOK_URL"))}
        )


def test_malformed_url_fails_without_echoing_it():
    secret = "s3cr3tc0de123"
    with pytest.raises(dg.Failure) as info:
        Bitrix24Resource(webhook_url=f"ftp://example.com/rest/1/{secret}/").get_client()
    assert secret not in str(info.value) and secret not in repr(info.value.metadata)
