"""The HTTP side of the emulator: routing, parameters, keep-alive, concurrency, redaction."""

from __future__ import annotations

import json
import logging
import socket
import threading

import requests

from b24_dagster.emulator import PortalEmulator


def _get_item(session: requests.Session, url: str) -> dict:
    return session.post(url + "crm.item.get", json={"entityTypeId": 2, "id": 3}).json()


def test_64_concurrent_keepalive_connections_all_answered(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("deal", 10)
    url = b24_emulator.webhook_url
    errors: list[str] = []
    answered = [0] * 64
    barrier = threading.Barrier(64)

    def worker(n: int) -> None:
        session = requests.Session()
        try:
            barrier.wait(10)
            for _ in range(5):
                r = session.post(url + "crm.deal.get", json={"id": 1 + n % 10}, timeout=10)
                if r.status_code != 200 or r.json()["result"]["ID"] != str(1 + n % 10):
                    errors.append(f"{n}: {r.status_code}")
                answered[n] += 1
        except Exception as exc:  # noqa: BLE001 - every failure is reported below
            errors.append(f"{n}: {exc!r}")
        finally:
            session.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sum(answered) == 320
    assert b24_emulator.stats["requests"] == 320


def test_wrong_code_is_401_and_unknown_method_404(b24_emulator: PortalEmulator) -> None:
    bad = b24_emulator.webhook_url.replace(b24_emulator.portal.settings.code, "wrongcode")
    r = requests.post(bad + "server.time")
    assert (r.status_code, r.json()["error"]) == (401, "NO_AUTH_FOUND")
    r = requests.post(b24_emulator.webhook_url + "no.such.method")
    assert (r.status_code, r.json()["error"]) == (404, "ERROR_METHOD_NOT_FOUND")
    assert requests.get(b24_emulator.base_url + "/elsewhere").status_code == 404


def test_parameters_parity_query_form_multipart_json(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("deal", 60)
    url = b24_emulator.webhook_url + "crm.deal.list"
    flat = {"filter[>ID]": "7", "filter[<=ID]": "12", "select[]": ["ID", "TITLE"],
            "order[ID]": "DESC"}
    nested = {"filter": {">ID": 7, "<=ID": 12}, "select": ["ID", "TITLE"], "order": {"ID": "DESC"}}
    answers = [
        requests.get(url, params=flat),
        requests.post(url, data=flat),
        requests.post(url, files=[(k, (None, v)) for k, vs in flat.items()
                                  for v in (vs if isinstance(vs, list) else [vs])]),
        requests.post(url, json=nested),
    ]
    results = [r.json()["result"] for r in answers]
    assert all(r.status_code == 200 for r in answers)
    assert [row["ID"] for row in results[0]] == ["12", "11", "10", "9", "8"]
    assert all(res == results[0] for res in results)
    assert set(results[0][0]) == {"ID", "TITLE"}


def test_body_overrides_query_as_php_does(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("deal", 5)
    r = requests.post(b24_emulator.webhook_url + "crm.deal.get?id=1", data={"id": "4"})
    assert r.json()["result"]["ID"] == "4"


def test_json_suffix_case_and_trailing_slash(b24_emulator: PortalEmulator) -> None:
    url = b24_emulator.webhook_url
    for path in ("server.time", "server.time.json", "SERVER.Time", "server.time/",
                 "Server.Time.JSON/"):
        r = requests.get(url + path)
        assert r.status_code == 200, path
        assert isinstance(r.json()["result"], str)
    r = requests.get(url + "server.time.xml")
    assert r.status_code == 400


def test_auth_parameter_route_and_v3_route(b24_emulator: PortalEmulator) -> None:
    code = b24_emulator.portal.settings.code
    r = requests.get(b24_emulator.base_url + "/rest/server.time", params={"auth": code})
    assert r.status_code == 200
    r = requests.get(b24_emulator.base_url + "/rest/server.time", params={"auth": "nope"})
    assert r.status_code == 401
    r = requests.post(b24_emulator.webhook_url_v3 + "tasks.task.list", json={})
    assert r.status_code == 200 and "items" in r.json()["result"]
    r = requests.post(b24_emulator.webhook_url_v3 + "tasks.task.list", data={"a": "b"})
    assert r.status_code == 400
    assert r.json()["error"]["code"].endswith("INVALIDJSONEXCEPTION")


def _raw_exchange(port: int, data: bytes, expect: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        while out.count(b"HTTP/1.1 ") < expect or not out.endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
        return out


def test_pipelined_chunked_and_expect_continue(b24_emulator: PortalEmulator) -> None:
    path = b24_emulator.portal.webhook_path(2)
    body = json.dumps({"entityTypeId": 2, "id": 1}).encode()
    chunked = (f"POST {path}server.time HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
               "Content-Type: application/json\r\n\r\n").encode() + (
        f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    plain = f"GET {path}server.time HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    out = _raw_exchange(b24_emulator.port, plain + chunked + plain, 3)
    assert out.count(b"HTTP/1.1 200 OK") == 3
    with socket.create_connection(("127.0.0.1", b24_emulator.port), timeout=5) as sock:
        sock.sendall((f"POST {path}server.time HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                      ).encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")


def test_answer_is_one_write_with_content_length(b24_emulator: PortalEmulator) -> None:
    r = requests.get(b24_emulator.webhook_url + "server.time")
    assert int(r.headers["Content-Length"]) == len(r.content)
    assert r.headers["Content-Type"].startswith("application/json")


def test_request_log_and_server_log_never_show_the_code(b24_emulator: PortalEmulator,
                                                        caplog) -> None:
    code = b24_emulator.portal.settings.code
    with caplog.at_level(logging.DEBUG, logger="b24_dagster.emulator"):
        requests.post(b24_emulator.webhook_url + "server.time",
                      headers={"X-Request-ID": "rid-1"})
        requests.get(b24_emulator.base_url + "/rest/server.time", params={"auth": code})
        requests.post(b24_emulator.webhook_url_v3 + "tasks.task.list", json={},
                      headers={"Idempotency-Key": "k-1"})
    log = b24_emulator.request_log
    assert len(log) == 3
    assert log[0].path.startswith("/rest/1/***/") and log[0].request_id == "rid-1"
    assert log[0].method == "server.time" and log[0].status == 200 and log[0].api_version == 2
    assert log[1].path == "/rest/server.time?auth=***"
    assert log[2].idempotency_key == "k-1" and log[2].api_version == 3
    assert all(code not in repr(rec) for rec in log)
    assert caplog.records, "the access log is at DEBUG"
    assert code not in caplog.text


def test_redact_path_covers_every_route() -> None:
    from b24_dagster.emulator._requestlog import redact_path

    assert redact_path("/rest/1/abc/x.y?auth=t&b=1") == "/rest/1/***/x.y?auth=***&b=1"
    assert redact_path("/rest/1/abc") == "/rest/1/***"
    assert redact_path("/rest/api/1/abc/batch") == "/rest/api/1/***/batch"
    assert redact_path("/rest/api/server.time") == "/rest/api/server.time"
    assert redact_path("/rest/server.time?access_token=zz") == "/rest/server.time?access_token=***"
