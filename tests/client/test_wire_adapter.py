"""Client behaviour no emulator can show, through a scripted ``requests`` adapter.

The session seam: a ``requests.Session`` with an adapter mounted that answers from a script.
Used for malformed and HTML bodies, redirects, oversized bodies, a 429 carrying a reset
time, and the exact retry/wait sequence on a fake clock.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
import urllib3
from requests.adapters import BaseAdapter

from b24_dagster import Bitrix24Client
from b24_dagster.client import RetryPolicy
from b24_dagster.errors import (
    AuthError,
    CommandValidationError,
    ConnectError,
    OperationTimeLimitError,
    OutcomeUnknownError,
    ProtocolError,
    RateLimitError,
    ServerError,
)

CODE = "adaptercode12345"
URL = f"https://portal.example.com/rest/1/{CODE}/"

Answer = tuple[int, bytes | str | dict[str, Any], dict[str, str]] | BaseException


class Scripted(BaseAdapter):
    """Answers each request with the next item of a script; records what was sent."""

    def __init__(self, script: list[Answer] | Callable[[requests.PreparedRequest], Answer]):
        super().__init__()
        self.script = script
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # type: ignore[no-untyped-def]
        self.sent.append(request)
        answer = self.script(request) if callable(self.script) else self.script.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        status, body, headers = answer
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        headers = {"Content-Length": str(len(body)), **headers}
        raw = urllib3.HTTPResponse(body=io.BytesIO(body), headers=headers, status=status,
                                   preload_content=False, decode_content=False)
        resp = requests.Response()
        resp.status_code = status
        resp.raw = raw
        resp.headers = requests.structures.CaseInsensitiveDict(headers)
        resp.url = request.url
        resp.request = request
        return resp

    def close(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def _client(script: Any, **kwargs: Any) -> tuple[Bitrix24Client, Scripted, FakeClock]:
    adapter = Scripted(script)
    session = requests.Session()
    session.mount("https://", adapter)
    clock = FakeClock()
    kwargs.setdefault("requests_per_second", None)
    kwargs.setdefault("retry", RetryPolicy(max_retries=3, backoff_base=1.0))
    client = Bitrix24Client(URL, session=session, clock=clock, sleep=clock.sleep,
                            share_limits=False, **kwargs)
    return client, adapter, clock


OK = (200, {"result": {"item": {"id": 1}}, "time": {"operating": 0.1}}, {})


def test_request_shape() -> None:
    client, adapter, _ = _client([OK])
    client._request("crm.item.get", {"id": 1, "name": "Ёж & co"}, api_version=2, writes=False,
                    request_id="rid-1")
    sent = adapter.sent[0]
    assert sent.url == f"https://portal.example.com/rest/1/{CODE}/crm.item.get"
    assert sent.method == "POST"
    assert sent.body == '{"id":1,"name":"Ёж & co"}'.encode()
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["Accept"] == "application/json"
    assert sent.headers["X-Request-ID"] == "rid-1"
    assert sent.headers["User-Agent"].startswith("b24-dagster/")
    assert "python-requests" not in sent.headers["User-Agent"]  # an injected session too
    assert "Idempotency-Key" not in sent.headers


def test_v3_url_and_idempotency_key() -> None:
    client, adapter, _ = _client([(200, {"result": {"item": {}}}, {"Idempotent-Replayed": "true"})])
    env = client._request("tasks.task.add", {"fields": {}}, api_version=3, writes=True,
                          idempotency_key="k-1")
    assert adapter.sent[0].url.endswith(f"/rest/api/1/{CODE}/tasks.task.add")
    assert adapter.sent[0].headers["Idempotency-Key"] == "k-1"
    assert env.replayed and env.headers["idempotent-replayed"] == "true"


def test_call_result_fields() -> None:
    client, _, _ = _client([(200, {"result": [{"ID": "1"}], "total": 120, "next": 50,
                                   "time": {"start": 1}}, {})])
    res = client.call("crm.deal.list", {"select": ["ID"]})
    assert (res.result, res.total, res.next, res.time, res.status) == (
        [{"ID": "1"}], 120, 50, {"start": 1}, 200)


def test_redirect_is_never_followed() -> None:
    client, adapter, _ = _client([(302, "", {"Location": f"https://evil.example/rest/1/{CODE}/"})])
    with pytest.raises(ProtocolError) as info:
        client.call("server.time")
    assert len(adapter.sent) == 1
    assert "redirect" in str(info.value) and CODE not in str(info.value)


@pytest.mark.parametrize("body", ["<html><body>Bad gateway</body></html>", "{not json", ""])
def test_broken_body_read_is_retried_write_is_unknown(body: str) -> None:
    client, adapter, _ = _client([(502, body, {}), OK])
    assert client.call("crm.item.get", {"id": 1}).result == {"item": {"id": 1}}
    assert client.stats.retries == 1
    client, adapter, _ = _client([(502, body, {}), OK])
    with pytest.raises(OutcomeUnknownError) as info:
        client.call("crm.item.add", {"fields": {}})
    assert len(adapter.sent) == 1 and client.stats.unknown_outcomes == 1
    assert info.value.method == "crm.item.add"


def test_malformed_200_for_a_write_is_unknown() -> None:
    client, adapter, _ = _client([(200, {"unexpected": True}, {})])
    with pytest.raises(OutcomeUnknownError):
        client.call("crm.item.update", {"id": 1, "fields": {}})
    assert len(adapter.sent) == 1


def test_500_json_read_retried_write_unknown_v3_idempotent_retried() -> None:
    err = (500, {"error": "INTERNAL_SERVER_ERROR", "error_description": "x"}, {})
    client, _, _ = _client([err, OK])
    assert client.call("crm.item.list").status == 200
    client, _, _ = _client([err])
    with pytest.raises(OutcomeUnknownError):
        client.call("crm.item.delete", {"id": 1})
    client, adapter, _ = _client([err, OK])
    client._request("tasks.task.add", {}, api_version=3, writes=True, idempotency_key="key")
    assert len(adapter.sent) == 2


def test_retries_run_out_for_a_read() -> None:
    err = (500, {"error": "INTERNAL_SERVER_ERROR"}, {})
    client, adapter, clock = _client([err] * 4)
    with pytest.raises(ServerError):
        client.call("crm.item.list")
    assert len(adapter.sent) == 4 and len(clock.slept) == 3


def test_read_timeout_read_retried_write_unknown() -> None:
    timeout = requests.exceptions.ReadTimeout("read timed out")
    client, adapter, _ = _client([timeout, OK])
    assert client.call("crm.item.get", {"id": 1}).status == 200
    client, adapter, _ = _client([timeout, OK])
    with pytest.raises(OutcomeUnknownError):
        client.call("crm.item.add", {"fields": {}})
    assert len(adapter.sent) == 1


def test_connect_failure_is_retried_even_for_writes() -> None:
    not_sent = requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(
        None, f"/rest/1/{CODE}/x",  # type: ignore[arg-type]
        urllib3.exceptions.NewConnectionError(None, "refused")))  # type: ignore[arg-type]
    client, adapter, _ = _client([not_sent, OK])
    assert client.call("crm.item.add", {"fields": {}}).status == 200
    assert len(adapter.sent) == 2
    client, adapter, _ = _client([not_sent] * 4)
    with pytest.raises(ConnectError) as info:
        client.call("crm.item.add", {"fields": {}})
    assert CODE not in str(info.value) and info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_503_empties_the_bucket_and_retries_after_one_interval() -> None:
    refused = (503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}, {})
    client, adapter, clock = _client([refused, OK], requests_per_second=2.0, burst=50)
    assert client.call("crm.item.add", {"fields": {}}).status == 200
    assert clock.slept == [0.5]
    assert client.stats.refused == 1 and client.stats.retries == 1


def test_429_waits_for_the_reset_time_then_retries() -> None:
    clock_now = 1_700_000_000.0
    blocked = (429, {"error": "OPERATION_TIME_LIMIT", "error_description": "blocked",
                     "time": {"operating_reset_at": clock_now + 30}}, {})
    client, adapter, clock = _client([blocked, OK])
    assert client.call("crm.item.list").status == 200
    assert clock.slept == [31.0]
    assert client.stats.blocked == 1 and client.stats.operating_wait_seconds == 31.0


def test_429_without_reset_uses_the_fallback_and_gives_up() -> None:
    blocked = (429, {"error": "OPERATION_TIME_LIMIT", "error_description": "blocked"}, {})
    client, adapter, clock = _client([blocked] * 4,
                                     retry=RetryPolicy(max_retries=3, blocked_wait=2.0))
    with pytest.raises(OperationTimeLimitError):
        client.call("crm.item.list")
    assert clock.slept == [2.0, 4.0, 8.0]


def test_operating_budget_pauses_the_method_before_the_portal_blocks() -> None:
    clock_now = 1_700_000_000.0
    near = (200, {"result": [], "time": {"operating": 478.0,
                                         "operating_reset_at": clock_now + 20}}, {})
    client, adapter, clock = _client([near, OK, OK])
    client.call("crm.item.list")
    client.call("crm.deal.list")  # another method is not paused
    assert clock.slept == []
    client.call("crm.item.list")
    assert clock.slept == [21.0]


def test_rate_limit_error_after_retries() -> None:
    refused = (503, {"error": "QUERY_LIMIT_EXCEEDED"}, {})
    client, _, _ = _client([refused] * 4)
    with pytest.raises(RateLimitError):
        client.call("server.time")


def test_oversized_body() -> None:
    big = (200, {"result": "x" * 1000}, {})
    client, _, _ = _client([big], max_response_bytes=100)
    with pytest.raises(ProtocolError, match="max_response_bytes"):
        client.call("server.time")
    client, _, _ = _client([big], max_response_bytes=100)
    with pytest.raises(OutcomeUnknownError):
        client.call("crm.item.add", {})


def test_error_body_with_200_status_is_an_error() -> None:
    client, _, _ = _client([(200, {"error": "NO_AUTH_FOUND", "error_description": "x"}, {})])
    with pytest.raises(AuthError):
        client.call("server.time")


def test_params_must_be_json() -> None:
    client, adapter, _ = _client([])
    with pytest.raises(CommandValidationError):
        client.call("crm.item.add", {"x": float("nan")})
    with pytest.raises(CommandValidationError):
        client.call("crm.item.add", {"x": object()})
    with pytest.raises(CommandValidationError):
        client.call("crm.item.add/../x")
    assert adapter.sent == []


def test_repr_and_stats_delta() -> None:
    client, _, _ = _client([OK, OK])
    assert CODE not in repr(client)
    before = client.stats.snapshot()
    client.call("crm.item.get", {"id": 1})
    client.call("crm.item.get", {"id": 1})
    delta = client.stats - before
    assert delta.requests == 2 and delta.retries == 0
    assert client.stats.as_dict()["requests"] == 2


def test_429_on_a_batch_pauses_its_methods() -> None:
    blocked = (429, {"error": "OPERATION_TIME_LIMIT", "error_description": "blocked"}, {})
    ok = (200, {"result": {"result": [], "result_error": [], "result_time": []}}, {})
    client, adapter, clock = _client([blocked, ok], retry=RetryPolicy(blocked_wait=3.0))
    client._request("batch", {"halt": 0, "cmd": {"a": "crm.item.list", "b": "user.get"}},
                    api_version=2, writes=False, methods=["crm.item.list", "user.get"])
    assert clock.slept == [3.0] and len(adapter.sent) == 2


def test_blocked_commands_inside_a_batch_are_counted_and_paused() -> None:
    body = {"result": {"result": {"a": []}, "result_error": {
        "b": {"error": "OPERATION_TIME_LIMIT", "error_description": "blocked"}},
        "result_time": {"a": {"duration": 0.1, "operating": 1.0,
                              "operating_reset_at": 1_700_000_100}}}}
    client, _, clock = _client([(200, body, {}), OK])
    client._request("batch", {"halt": 0, "cmd": {"a": "crm.item.list", "b": "crm.deal.list"}},
                    api_version=2, writes=False, methods=["crm.item.list", "crm.deal.list"])
    assert client.stats.blocked == 1
    assert client._budget.pause_needed(["crm.deal.list"]) == pytest.approx(10.0)
    assert client._budget.pause_needed(["crm.item.list"]) == 0.0
