"""Parsing of the documented batch answers (fixtures fed to the parser through a stub client)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from b24_dagster.client._batch import run_batch
from b24_dagster.client._chunked import ChunkedBatchRun
from b24_dagster.client._results import result_schema
from b24_dagster.client._transport import Envelope
from b24_dagster.errors import ConnectError, OutcomeUnknownError, error_from_response

FIXTURES = Path(__file__).parents[1] / "fixtures"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


class StubClient:
    """Answers each `_request` with the next body (or raises it); records what was sent."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[str, Any, dict[str, Any]]] = []

    def _request(self, method: str, payload: Any, **kwargs: Any) -> Envelope:
        self.sent.append((method, payload, kwargs))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            answer = answer(payload)
        return Envelope(200, answer, {}, False)


NAMED = {"get_user": ["user.current", {}], "get_department": ["department.get", {"ID": "$result[get_user][UF_DEPARTMENT][0]"}]}


def test_v2_named_success() -> None:
    client = StubClient(load("batch_v2_success_named_keys.json"))
    result = run_batch(client, NAMED, halt_on_error=False, return_ajax_result=True)
    assert result.is_success and result.error_messages == []
    data = result.data()
    assert set(data) == {"get_user", "get_department"}
    assert data["get_user"].data["NAME"] == "John"
    assert data["get_department"].total == 1 and data["get_department"].next is None
    assert data["get_department"].time["duration"] > 0
    method, payload, kwargs = client.sent[0]
    assert method == "batch" and payload["halt"] == 0
    assert payload["cmd"]["get_department"] == "department.get?ID=%24result%5Bget_user%5D%5BUF_DEPARTMENT%5D%5B0%5D"
    assert kwargs["writes"] is False and kwargs["methods"] == ["user.current", "department.get"]
    plain = run_batch(StubClient(load("batch_v2_success_named_keys.json")), NAMED).data()
    assert plain["get_department"] == [{"ID": "1", "NAME": "DEMO", "SORT": 500}]


def test_v2_errors_halt0() -> None:
    result = run_batch(StubClient(load("batch_v2_errors_halt0.json")), NAMED, halt_on_error=False)
    assert not result.is_success
    assert [r.status for r in result] == ["error", "error"]
    assert result.results["get_user"].error_code == "insufficient_scope"
    assert result.error_messages == ["get_user (user.current): insufficient_scope",
                                     "get_department (department.get): insufficient_scope"]
    assert result.data() == {"get_user": None, "get_department": None}


def test_v2_halt_leaves_the_rest_not_run() -> None:
    body = load("batch_v2_errors_halt0.json")
    del body["result"]["result_error"]["get_department"]  # the documented halt=1 answer
    result = run_batch(StubClient(body), NAMED, halt_on_error=True)
    assert [r.status for r in result] == ["error", "not_run"]
    assert result.error_messages == ["get_user (user.current): insufficient_scope"]


def test_v2_missing_without_halt_is_an_error() -> None:
    body = load("batch_v2_success_named_keys.json")
    del body["result"]["result"]["get_department"]
    result = run_batch(StubClient(body), NAMED, halt_on_error=False)
    assert [(r.status, r.error_code) for r in result] == [("ok", None), ("error", "MISSING_RESULT")]


def test_v2_numeric_keys_as_arrays() -> None:
    calls = [("crm.deal.list", {"start": 0}), ("crm.deal.list", {"start": 50})]
    result = run_batch(StubClient(load("derived/batch_v2_numeric_keys_lists_SYNTHETIC.json")), calls,
                       return_ajax_result=True)
    assert isinstance(result.data(), list)
    assert [(r.key, r.data[0]["ID"], r.total, r.next) for r in result] == [("0", "1", 120, 50), ("1", "51", 120, 100)]


def test_v3_success_and_payload() -> None:
    client = StubClient(load("batch_v3_success.json"))
    calls = [{"method": "tasks.task.get", "params": {"id": 289, "select": ["id", "title"]}, "as": "a"},
             ("tasks.task.get", {"id": 429, "select": ["id", "title"]})]
    result = run_batch(client, calls, api_version=3, halt_on_error=True, request_id="rid-1")
    assert result.data() == [{"item": {"id": 289, "title": "Test time 1"}},
                             {"item": {"id": 429, "title": "Deadline automation"}}]
    _, payload, kwargs = client.sent[0]
    assert payload[0] == {"method": "tasks.task.get", "query": {"id": 289, "select": ["id", "title"]},
                          "as": "a", "parallel": False}
    assert "as" not in payload[1]
    assert kwargs["api_version"] == 3 and kwargs["request_id"] == "rid-1"
    assert kwargs["idempotency_key"] is None  # reads: no replay of stale answers


def test_v3_write_carries_an_idempotency_key() -> None:
    client = StubClient({"result": [{"item": {"id": 1}}]})
    run_batch(client, [("tasks.task.add", {"fields": {"title": "x"}})], api_version=3, request_id="job-7")
    assert client.sent[0][2]["idempotency_key"] == "job-7-0"
    assert client.sent[0][2]["writes"] is True


def test_v3_null_and_missing_entries() -> None:
    calls = [("tasks.task.get", {"id": 1}), ("tasks.task.get", {"id": 2}), ("tasks.task.get", {"id": 3})]
    result = run_batch(StubClient({"result": [{"item": {"id": 1}}, None, {"item": {"id": 3}}]}),
                       calls, api_version=3, return_ajax_result=True)
    assert [(r.status, r.data, r.error_code) for r in result] == [
        ("ok", {"item": {"id": 1}}, None), ("ok", None, None), ("ok", {"item": {"id": 3}}, None)]
    assert result.to_arrow()["result"].to_pylist()[1] is None
    # One entry short: which one is missing is unknowable, so no entry is read by position.
    result = run_batch(StubClient({"result": [{"item": {"id": 1}}, None]}), calls, api_version=3)
    assert [(r.status, r.data, r.error_code) for r in result] == [
        ("error", None, "MISSING_RESULT")] * 3


def test_v3_failed_batch_fails_every_command() -> None:
    error = error_from_response(400, load("derived/batch_v3_error_SYNTHETIC.json"), method="batch", api_version=3)
    calls = [("tasks.task.get", {"id": 1}), ("tasks.task.get", {"id": 2})]
    result = run_batch(StubClient(error), calls, api_version=3)
    assert [(r.status, r.error_code) for r in result] == [
        ("error", "BITRIX_REST_V3_EXCEPTION_INVALIDSELECTEXCEPTION")] * 2
    assert not result.is_success and len(result.error_messages) == 2


def test_unknown_outcome_marks_writes_unknown_and_reads_error() -> None:
    calls = [("crm.item.add", {"fields": {}}), ("crm.item.get", {"id": 1})]
    result = run_batch(StubClient(OutcomeUnknownError("batch: no answer", method="batch")), calls)
    assert [(r.status, r.error_code) for r in result] == [("unknown", "OUTCOME_UNKNOWN"), ("error", "NO_RESPONSE")]
    result = run_batch(StubClient(ConnectError("refused", method="batch")), calls)
    assert {r.error_code for r in result} == {"CONNECT_ERROR"}


def test_to_arrow_schema() -> None:
    result = run_batch(StubClient(load("batch_v2_success_named_keys.json")), NAMED)
    table = result.to_arrow()
    assert table.schema == result_schema()
    assert table.schema.field("chunk_index").type == pa.int32()
    row = table.to_pylist()[1]
    assert row["command_key"] == "get_department" and row["command_index"] == 1
    assert json.loads(row["result"]) == [{"ID": "1", "NAME": "DEMO", "SORT": 500}]
    assert row["result"] == '[{"ID":"1","NAME":"DEMO","SORT":500}]'  # compact JSON


def test_chunked_run_with_a_failing_chunk_goes_on() -> None:
    def answer(payload: Any) -> Any:
        keys = list(payload["cmd"])
        return {"result": {"result": {k: i for i, k in enumerate(keys)}, "result_error": [],
                           "result_total": [], "result_next": [], "result_time": []}}

    failure = ConnectError("down", method="batch")
    client = StubClient(answer, failure, answer)
    seen = []
    run = ChunkedBatchRun(client, iter([("crm.item.add", {"fields": {"T": i}}) for i in range(120)]),
                          halt_on_error=False, progress=seen.append, progress_bar=False)
    chunks = list(run)
    assert [c.chunk_index for c in chunks] == [0, 1, 2]
    assert [len(c) for c in chunks] == [50, 50, 20]
    assert chunks[1].error_messages[0].startswith("50 (crm.item.add): CONNECT_ERROR")
    assert [p.commands_done for p in seen] == [50, 100, 120]
    assert run.stats.ok == 70 and run.stats.error == 50 and run.stats.failed_chunks == 1
    assert not run.is_success
    with pytest.raises(RuntimeError, match="handed out"):
        run.to_arrow()


def test_chunked_whole_run_views() -> None:
    def answer(payload: Any) -> Any:
        return {"result": [{"item": {"n": c["query"]["n"]}} for c in payload]}

    calls = [("tasks.task.get", {"n": i}) for i in range(75)]
    run = ChunkedBatchRun(StubClient(answer), calls, api_version=3, progress_bar=False)
    table = run.to_arrow()
    assert table.num_rows == 75 and table["command_index"].to_pylist() == list(range(75))
    assert table["chunk_index"].to_pylist() == [0] * 50 + [1] * 25
    assert run.data() == [{"item": {"n": i}} for i in range(75)]
    assert run.is_success and run.error_messages == []
