"""A v2 batch answer's results kept as JSON text until read (``_json.decode_batch_answer``).

The lazy path must give exactly what decoding the whole answer gives: the same ``data``, the
same statuses, and a ``result`` column holding the same JSON, on the docs' own batch answers
and on answers of the emulator; an answer simdjson refuses is decoded whole instead.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.client import _json
from b24_dagster.client._json import RawJson, decode_batch_answer, decode_json
from b24_dagster.client._results import CommandResult, LazyCommandResult
from b24_dagster.emulator import PortalEmulator

FIXTURES = Path(__file__).parent.parent / "fixtures"
# Real v2 batch answers from the official docs (sources in tests/fixtures/sources.txt).
BATCH_FIXTURES = ["batch_v2_errors_halt0.json", "batch_v2_success_named_keys.json"]

pytestmark = pytest.mark.skipif(_json._Parser is None, reason="simdjson is not installed")


def _eager(value: Any) -> Any:
    """The lazy answer with every RawJson decoded: it must equal the answer decoded whole."""
    if isinstance(value, RawJson):
        return decode_json(value.text)
    if isinstance(value, dict):
        return {k: _eager(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_eager(v) for v in value]
    return value


@pytest.mark.parametrize("name", BATCH_FIXTURES)
def test_docs_batch_answers_read_lazily_equal_the_whole_decode(name: str) -> None:
    content = (FIXTURES / name).read_bytes()
    lazy = decode_batch_answer(content)
    assert lazy is not None
    assert _eager(lazy) == json.loads(content)
    results = lazy["result"]["result"]
    values = list(results.values() if isinstance(results, dict) else results)
    assert all(isinstance(v, RawJson) for v in values), "object results stay text"


@pytest.mark.parametrize("content", [
    b'{"result":{"result":[{"title":"\\ud83d"}]},"time":{}}',   # a lone surrogate escape
    b'{"result":{"result":[{"id":123456789012345678901234567890}]}}',  # beyond 64 bits
    b'{"result":{"result":[{"id":1}]}',                           # cut short
    b'[1, 2]',                                                      # not an object
])
def test_answers_simdjson_refuses_are_left_to_the_whole_decode(content: bytes) -> None:
    assert decode_batch_answer(content) is None


def test_scalar_results_are_plain_values() -> None:
    lazy = decode_batch_answer(b'{"result":{"result":{"a":true,"b":null,"c":7,"d":"x","e":[]},'
                               b'"result_error":[],"result_time":{"a":{"operating":0.5}}}}')
    assert lazy is not None
    inner = lazy["result"]
    assert {k: v for k, v in inner["result"].items() if k != "e"} == {"a": True, "b": None, "c": 7, "d": "x"}
    assert isinstance(inner["result"]["e"], RawJson) and inner["result"]["e"].text == b"[]"
    assert inner["result_time"] == {"a": {"operating": 0.5}} and inner["result_error"] == []


def test_lazy_result_decodes_once_and_setting_data_replaces_the_text() -> None:
    row = LazyCommandResult(0, "0", "crm.item.add", 0, b'{"item":{"id":5}}', total=3)
    assert row.raw == b'{"item":{"id":5}}'
    assert row.data == {"item": {"id": 5}} and row.data is row.data
    assert row == LazyCommandResult(0, "0", "crm.item.add", 0, b'{"item": {"id": 5}}', total=3)
    plain = pickle.loads(pickle.dumps(row))
    assert type(plain) is CommandResult and plain.data == {"item": {"id": 5}} and plain.total == 3
    row.data = {"item": {"id": 6}}
    assert row.raw is None and row.data == {"item": {"id": 6}}


@pytest.fixture
def client(b24_emulator: PortalEmulator) -> Iterator[Bitrix24Client]:
    with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None,
                        share_limits=False) as c:
        yield c


def _calls(tag: str) -> list[tuple[str, dict[str, Any]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    for i in range(120):
        fields = {"title": f"Сделка «{tag}» {i} \U0001f600", "opportunity": 10.25 * i,
                  "originId": f"{tag}-{i}"}
        calls.append(("crm.item.add", {"entityTypeId": 2, "fields": fields}))
    calls[7] = ("crm.item.add", {"entityTypeId": 999_999, "fields": {"title": "no such type"}})
    calls[60] = ("crm.item.list", {"entityTypeId": 2, "select": ["id", "title"],
                                   "filter": {"originId": f"{tag}-1"}})
    return calls


def _shape(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must not depend on the decoding path (ids and titles differ by run)."""
    out = []
    for r in rows:
        data = json.loads(r["result"]) if r["result"] is not None else None
        item = data.get("item") if isinstance(data, dict) else None
        out.append((r["command_index"], r["status"], r["error_code"], r["total"],
                    sorted(item) if item else sorted(data) if isinstance(data, dict) else data))
    return out


def test_a_chunked_run_gives_the_same_rows_lazily_and_decoded_whole(
        client: Bitrix24Client, monkeypatch: pytest.MonkeyPatch) -> None:
    lazy_chunks = list(client.batch_by_chunk(_calls("lazy"), halt_on_error=False))
    lazy_rows = [r for chunk in lazy_chunks for r in chunk]
    lazy_table = client.batch_by_chunk(_calls("lazy2"), halt_on_error=False).to_arrow()
    with monkeypatch.context() as m:
        m.setattr(_json, "_Parser", None)   # as without simdjson installed
        whole_rows = [r for chunk in client.batch_by_chunk(_calls("whole"), halt_on_error=False)
                      for r in chunk]
        whole_table = client.batch_by_chunk(_calls("whole2"), halt_on_error=False).to_arrow()
    assert sum(type(r) is LazyCommandResult for r in lazy_rows) == 119  # every ok row
    assert not any(type(r) is LazyCommandResult for r in whole_rows)
    assert _shape(lazy_table.to_pylist()) == _shape(whole_table.to_pylist())
    by_index = {r["command_index"]: r for r in lazy_table.to_pylist()}
    assert by_index[7]["status"] == "error" and by_index[60]["total"] == 1
    item = json.loads(by_index[3]["result"])["item"]
    assert item["title"] == "Сделка «lazy2» 3 \U0001f600" and item["opportunity"] == 30.75
    for chunk in lazy_chunks:   # a row's data is what its result text says
        for row, text in zip(chunk, chunk.to_arrow()["result"].to_pylist(), strict=True):
            assert row.data == (None if text is None else json.loads(text))
