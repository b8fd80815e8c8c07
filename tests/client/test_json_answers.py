"""Answers decoded whole (orjson, the standard library where orjson refuses), and each
command's result stored as the JSON text of its data.

orjson refuses a lone surrogate escape (a truncated emoji in a title), which a portal may
send; the standard library takes it, and the ``result`` column keeps it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.client._batch import parse_v2
from b24_dagster.client._commands import Command
from b24_dagster.client._json import decode_json
from b24_dagster.client._results import rows_to_arrow
from b24_dagster.emulator import PortalEmulator

FIXTURES = Path(__file__).parent.parent / "fixtures"
# Real v2 batch answers from the official docs (sources in tests/fixtures/sources.txt).
BATCH_FIXTURES = ["batch_v2_errors_halt0.json", "batch_v2_success_named_keys.json"]


@pytest.mark.parametrize("name", BATCH_FIXTURES)
def test_docs_batch_answers_decode_as_the_standard_library_reads_them(name: str) -> None:
    content = (FIXTURES / name).read_bytes()
    assert decode_json(content) == json.loads(content)


@pytest.mark.parametrize(("content", "data"), [
    (b'{"result":{"result":[{"title":"\\ud83d"}]}}', {"title": "\ud83d"}),
])
def test_what_orjson_refuses_is_decoded_and_stored(content: bytes, data: dict[str, Any]) -> None:
    body = decode_json(content)
    [row] = parse_v2([Command(0, "0", "crm.item.get", {})], ["0"], body["result"], 0,
                     halt_on_error=False)
    assert row.status == "ok" and row.data == data
    text = rows_to_arrow([row])["result"][0].as_py()
    assert json.loads(text) == data


def test_each_rows_result_is_the_json_of_its_data(b24_emulator: PortalEmulator) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("crm.item.add", {"entityTypeId": 2, "fields": {
            "title": f"Сделка «{i}» \U0001f600", "opportunity": 10.25 * i, "originId": f"j-{i}"}})
        for i in range(120)]
    calls[7] = ("crm.item.add", {"entityTypeId": 999_999, "fields": {"title": "no such type"}})
    calls[60] = ("crm.item.list", {"entityTypeId": 2, "select": ["id", "title"],
                                   "filter": {"originId": "j-1"}})
    with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None,
                        share_limits=False) as client:
        chunks = list(client.batch_by_chunk(calls, halt_on_error=False))
    rows = [row for chunk in chunks for row in chunk]
    assert [r.status for r in rows].count("ok") == 119 and rows[7].status == "error"
    assert rows[60].total == 1
    assert rows[3].data["item"]["title"] == "Сделка «3» \U0001f600"
    assert rows[3].data["item"]["opportunity"] == 30.75
    for chunk in chunks:
        for row, text in zip(chunk, chunk.to_arrow()["result"].to_pylist(), strict=True):
            assert row.data == (None if text is None else json.loads(text))


def test_a_result_text_holds_no_more_memory_than_its_length() -> None:
    """Thousands of result texts wait for their table: each must cost what it says (orjson
    hands out a 32 KiB buffer for any text, which once took 150 MB for 5,000 rows)."""
    import tracemalloc

    from b24_dagster.client._results import _dump_utf8

    data = json.loads((FIXTURES / "batch_v2_success_named_keys.json").read_bytes())
    value = data["result"]["result"]
    tracemalloc.start()
    try:
        texts = [_dump_utf8(value) for _ in range(200)]
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert json.loads(texts[0]) == value
    assert held < 200 * (len(texts[0]) + 200), f"{held / 200:.0f} bytes a text of {len(texts[0])}"
