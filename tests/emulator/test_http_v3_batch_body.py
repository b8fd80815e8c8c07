"""REST v3 ``batch`` bodies as the official JS SDK sends them, over HTTP.

Page: ``api-reference/rest-v3.md``, section "Batch call" (a JSON array of ``{method, query}``
at the root; the v2 ``cmd`` format is ``BITRIX_REST_V3_EXCEPTION_INVALIDSELECTEXCEPTION``).
A portal decodes the body the PHP way, where an object with keys "0".."n-1" is that array:
the JS SDK's ``BatchV3.make`` sends ``{ ...commands }`` (``abstract-http.ts``,
``_prepareParams``).
"""

from __future__ import annotations

import requests

from b24_dagster.emulator import PortalEmulator

_GET_2 = {"method": "tasks.task.get", "query": {"id": 2, "select": ["id", "title"]}}
_GET_3 = {"method": "tasks.task.get", "query": {"id": 3, "select": ["id", "title"]}}


def _batch(emu: PortalEmulator, body: object) -> requests.Response:
    return requests.post(emu.webhook_url_v3 + "batch", json=body, timeout=10)


def test_array_and_object_with_index_keys_give_the_same_answer(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("task", 5)
    as_array = _batch(b24_emulator, [_GET_2, _GET_3])
    as_object = _batch(b24_emulator, {"1": _GET_3, "0": _GET_2})
    assert as_array.status_code == as_object.status_code == 200
    assert as_array.json()["result"] == as_object.json()["result"]
    assert [r["item"]["id"] for r in as_object.json()["result"]] == [2, 3]
    assert set(as_object.json()["time"]) >= {"start", "finish", "duration", "operating"}


def test_auth_key_is_ignored_and_refs_work_in_object_form(b24_emulator: PortalEmulator) -> None:
    b24_emulator.portal.seed("task", 5)
    body = {"0": {**_GET_2, "as": "first"},
            "1": {"method": "tasks.task.get",
                  "query": {"id": {"$ref": "first.item.id"}, "select": ["id"]}},
            "auth": "an-oauth-token-the-webhook-does-not-need"}
    r = _batch(b24_emulator, body)
    assert r.status_code == 200
    assert [x["item"]["id"] for x in r.json()["result"]] == [2, 2]


def test_other_bodies_are_the_validation_error(b24_emulator: PortalEmulator) -> None:
    for body in ({"a": _GET_2}, {"0": _GET_2, "2": _GET_3}, {"1": _GET_2}, "text"):
        r = _batch(b24_emulator, body)
        assert r.status_code == 400, body
        error = r.json()["error"]
        assert error["code"] == "BITRIX_REST_V3_EXCEPTION_VALIDATION_REQUESTVALIDATIONEXCEPTION"
        assert "The batch must be an array of commands" in str(error)
    r = _batch(b24_emulator, {"cmd": {"a": "server.time"}})
    assert r.json()["error"]["code"] == "BITRIX_REST_V3_EXCEPTION_INVALIDSELECTEXCEPTION"
