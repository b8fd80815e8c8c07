"""v3 ``Idempotency-Key`` answers survive a restart on the same ``--state`` file.

Doc page: ``api-reference/rest-v3.md`` ("The first call runs as usual, and its response is
stored for 24 hours. When the call is repeated with the same key and the same request body, the
method does not run: Bitrix24 returns the stored response and adds the ``Idempotent-Replayed:
true`` header"; a key reused with another body -> 422 ``IDEMPOTENCYKEYREUSEDEXCEPTION``).
A portal does not forget its stored answers when one of its servers restarts; the emulator keeps
them in the SQLite state like the rest of its state.
"""

from __future__ import annotations

from pathlib import Path

import requests

from b24_dagster.emulator import start_subprocess


def test_kept_answer_replayed_after_restart_and_write_not_applied_twice(tmp_path: Path) -> None:
    args = ["--code", "idemcode", "--state", str(tmp_path / "portal.sqlite"), "--rate", "0"]
    body = {"fields": {"title": "Once", "responsibleId": 1}}
    key = {"Idempotency-Key": "9f1c1a7e-5f1b-4a1e-9a2c-2f5f2b6c7d80"}
    with start_subprocess(args) as emu:
        v3 = emu.webhook_url.replace("/rest/", "/rest/api/")
        first = requests.post(v3 + "tasks.task.add", json=body, headers=key, timeout=10)
        assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    with start_subprocess(args) as emu:   # another port, the same file
        v3 = emu.webhook_url.replace("/rest/", "/rest/api/")
        again = requests.post(v3 + "tasks.task.add", json=body, headers=key, timeout=10)
        assert again.status_code == 200
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["Idempotency-Key"] == key["Idempotency-Key"]
        assert again.content == first.content
        other = requests.post(v3 + "tasks.task.add", json={"fields": {"title": "Other"}},
                              headers=key, timeout=10)
        assert other.status_code == 422
        assert other.json()["error"]["code"] == "BITRIX_REST_V3_EXCEPTION_IDEMPOTENCYKEYREUSEDEXCEPTION"
        listed = requests.post(emu.webhook_url + "tasks.task.list", json={}, timeout=10).json()
        assert [t["title"] for t in listed["result"]["tasks"]] == ["Once"]


def test_kept_answers_expire_and_go_with_a_reset(tmp_path: Path) -> None:
    from b24_dagster.emulator._portal import Portal, PortalRequest
    from b24_dagster.emulator._settings import PortalSettings

    state = str(tmp_path / "portal.sqlite")
    now = [1_750_000_000.0]
    settings = PortalSettings(code="c", rate=0, state_path=state, idempotency_ttl=60)
    portal = Portal(settings, clock=lambda: now[0])
    req = PortalRequest(3, "tasks.task.add", {"fields": {"title": "T"}}, "1", "c",
                        headers={"idempotency-key": "k"})
    assert portal.handle(req).status == 200
    portal.close()
    now[0] += 61   # past the ttl: the restarted portal runs the call again
    portal = Portal(PortalSettings(code="c", rate=0, state_path=state, idempotency_ttl=60),
                    clock=lambda: now[0])
    second = portal.handle(req)
    assert second.status == 200 and ("Idempotent-Replayed", "true") not in second.headers
    assert portal.counts()["task"] == 2
    portal.reset()
    portal.close()
    portal = Portal(PortalSettings(code="c", rate=0, state_path=state), clock=lambda: now[0])
    assert ("Idempotent-Replayed", "true") not in portal.handle(req).headers
    portal.close()
