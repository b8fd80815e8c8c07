"""A DataFrame of leads through the chunked batch on the emulator, failures joined back."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from b24_dagster.client import Bitrix24Client
from b24_dagster.emulator import PortalEmulator
from b24_dagster.frames import commands_from_frame, failed_rows, results_to_frame

N_LEADS = 300
BAD_EMAIL = {17: "not-an-address", 150: "x@", 299: "two words@example.com"}
BAD_USER = {42: 999, 200: 12345}


def leads() -> pd.DataFrame:
    """300 leads, five of them invalid (a malformed e-mail, a user that does not exist)."""
    i = np.arange(N_LEADS)
    df = pd.DataFrame({
        "source_id": [f"crm-{k:04d}" for k in range(N_LEADS)],
        "title": [f"Lead #{k}" for k in range(N_LEADS)],
        "name": pd.Series(np.where(i % 11 == 0, None, [f"Name {k}" for k in range(N_LEADS)]),
                          dtype="str"),
        "email": [f"lead{k}@example.com" for k in range(N_LEADS)],
        "phone": [f"+49 30 {k:07d}" if k % 3 else None for k in range(N_LEADS)],
        "assigned": pd.array(np.where(i % 7 == 0, None, i % 10 + 1), dtype="Int64"),
        "opportunity": np.where(i % 5 == 0, np.nan, i * 10.5),
        "opened": i % 2 == 0,
        "created": pd.Series(pd.date_range("2024-03-01", periods=N_LEADS, freq="h",
                                           tz="Europe/Berlin")),
    })
    for row, email in BAD_EMAIL.items():
        df.loc[row, "email"] = email
    for row, user in BAD_USER.items():
        df.loc[row, "assigned"] = user
    return df


FIELDS = {"title": "TITLE", "name": "NAME", "email": "EMAIL", "phone": "PHONE",
          "assigned": "ASSIGNED_BY_ID", "opportunity": "OPPORTUNITY", "opened": "OPENED",
          "created": "BIRTHDATE"}


@pytest.fixture
def client(b24_emulator: PortalEmulator) -> Iterator[Bitrix24Client]:
    with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None) as c:
        yield c


@pytest.mark.parametrize("block_rows", [None, 64], ids=["list", "blocks"])
def test_invalid_rows_fail_and_join_back(client, block_rows: int | None) -> None:  # type: ignore[no-untyped-def]
    df = leads()
    field_types = client.call("crm.lead.fields").result
    commands = commands_from_frame(df, "crm.lead.add", fields=FIELDS, key_column="source_id",
                                   field_types=field_types, block_rows=block_rows)
    assert commands.calls[0][1]["fields"]["OPENED"] == "Y"
    run = client.batch_by_chunk(commands.calls, halt_on_error=False)
    table = commands.with_results(run.to_arrow())

    assert table.num_rows == N_LEADS
    frame = results_to_frame(table)
    assert frame["command_index"].tolist() == list(range(N_LEADS))
    assert frame["source_id"].tolist() == df["source_id"].tolist()
    counts = frame["status"].value_counts()
    assert counts["ok"] == N_LEADS - 5 and counts["error"] == 5
    assert counts["not_run"] == counts["unknown"] == 0

    failed = failed_rows(table, df, "source_id")
    bad_rows = sorted([*BAD_EMAIL, *BAD_USER])
    assert failed.index.tolist() == bad_rows
    assert failed["source_id"].tolist() == [f"crm-{k:04d}" for k in bad_rows]
    assert (failed["b24_status"] == "error").all()
    assert failed["b24_error_description"].str.contains("E-mail|User with ID").all()


def test_values_arrive_as_written(client) -> None:  # type: ignore[no-untyped-def]
    df = leads().iloc[:4]
    field_types = client.call("crm.lead.fields").result
    commands = commands_from_frame(df, "crm.lead.add", fields=FIELDS, key_column="source_id",
                                   field_types=field_types)
    table = commands.with_results(client.batch_by_chunk(commands.calls).to_arrow())
    ids = [json.loads(text) for text in table.column("result").to_pylist()]
    lead = client.call("crm.lead.get", {"id": ids[1]}).result
    assert lead["TITLE"] == "Lead #1"
    assert lead["NAME"] == "Name 1"
    assert lead["OPENED"] == "N"
    assert lead["ASSIGNED_BY_ID"] == "2"
    assert float(lead["OPPORTUNITY"]) == 10.5
    assert lead["PHONE"][0]["VALUE"] == "+49 30 0000001"
    assert lead["EMAIL"][0]["VALUE"] == "lead1@example.com"
    assert lead["BIRTHDATE"].startswith("2024-03-01")
    first = client.call("crm.lead.get", {"id": ids[0]}).result
    assert first["OPENED"] == "Y" and first["NAME"] in (None, "")  # row 0 had no name
