"""Smart-process types over HTTP, on a portal without smart processes.

Pages: ``api-reference/crm/universal/user-defined-object-types/crm-type-{list,get,
get-by-entity-type-id}.md``.
"""

from __future__ import annotations

from typing import Any

import requests

from b24_dagster.emulator import PortalEmulator


def _call(emu: PortalEmulator, method: str, params: dict[str, Any] | None = None) -> requests.Response:
    return requests.post(emu.webhook_url + method, json=params or {}, timeout=10)


def test_no_types_and_the_pages_errors(b24_emulator: PortalEmulator) -> None:
    r = _call(b24_emulator, "crm.type.list", {"filter": {">entityTypeId": 1000, "logic": "OR",
                                                         "0": {"%title": "x"}}, "order": {"id": "ASC"}})
    assert r.status_code == 200 and r.json()["result"] == {"types": []} and r.json()["total"] == 0
    r = _call(b24_emulator, "crm.type.list", {"filter": {"nope": 1}})
    assert r.json() == {"error": "INVALID_ARG_VALUE",
                        "error_description": "Invalid filter: field 'nope' is not allowed in filter"}
    r = _call(b24_emulator, "crm.type.list", {"order": {"nope": "ASC"}})
    assert r.json()["error_description"] == "Invalid order: field 'nope' is not allowed in order"
    r = _call(b24_emulator, "crm.type.get", {"id": 16})
    assert r.status_code == 400 and r.json() == {"error": 0, "error_description": "SPA not found"}
    r = _call(b24_emulator, "crm.type.getByEntityTypeId", {"entityTypeId": 2024})
    assert r.json() == {"error": 0, "error_description": "Smart process not found"}
