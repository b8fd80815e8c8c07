"""The locks of the write steps (`_lock`, `_key_space`), fast: the lease protocol on fsspec's
memory filesystem (the same conditional writes as S3, under a lock), flock on local disk.
moto's real S3 endpoint is in `tests/scaleout/test_lease_s3.py`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from upath import UPath

from b24_dagster.integration._key_space import (
    KeySpace,
    LockSettings,
    entity_of,
    send_spaces,
    sync_space,
    write_locks,
)
from b24_dagster.integration._lease_store import UnsupportedStore, conditional_object
from b24_dagster.integration._lock import LeaseLost, LockHeldError, StepLock
from tests.conftest import wait_for


def _lease(path: UPath, **fields: object) -> None:
    path.write_text(json.dumps({"owner": "run-1", "token": "t0", "since": time.time(),
                                "refreshed": time.time(), **fields}))  # fmt: skip


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lease_of_a_process_gone_from_this_host_is_taken_over_at_once(tmp_path) -> None:
    path = UPath(f"memory://{tmp_path.name}/dead/lock")
    _lease(path, host=socket.gethostname(), pid=_dead_pid())
    with StepLock(path, owner="run-2") as lock:
        assert json.loads(path.read_text())["token"] == lock.token


def test_a_fresh_lease_of_a_live_or_remote_holder_is_waited_for(tmp_path) -> None:
    for name, host, pid in (("live", socket.gethostname(), None), ("remote", "another-host", _dead_pid())):
        path = UPath(f"memory://{tmp_path.name}/{name}/lock")
        holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            _lease(path, host=host, pid=pid or holder.pid)
            with pytest.raises(LockHeldError, match="run-1"):
                StepLock(path, owner="run-2").acquire()
        finally:
            holder.kill()
            holder.wait()


def test_conditional_writes_let_one_writer_win() -> None:
    store = conditional_object(UPath("memory://cond/one"))
    first = store.create(b"a")
    assert first is not None and store.create(b"b") is None  # exists: refused
    second = store.replace(b"c", first)
    assert second is not None and store.replace(b"d", first) is None  # a stale version: refused
    assert store.read() == (b"c", second)


def test_a_store_without_conditional_writes_is_refused_with_what_works() -> None:
    with pytest.raises(UnsupportedStore, match="s3://.*local or NFS"):
        StepLock(UPath("gs://bucket/.locks/x"), owner="run").acquire()


def test_the_heartbeat_keeps_the_lease_past_its_length_and_release_frees_it(tmp_path) -> None:
    path = UPath(f"memory://{tmp_path.name}/beat/lock")
    lock = StepLock(path, owner="run-1", lease_seconds=0.6)
    lock.acquire()
    try:
        first = json.loads(path.read_text())["refreshed"]
        wait_for(lambda: json.loads(path.read_text())["refreshed"] > first, "a refresh", timeout=5)
        time.sleep(0.9)  # longer than the lease: still ours, refreshed meanwhile
        lock.check()
        with pytest.raises(LockHeldError, match="run-1"):
            StepLock(path, owner="run-2", lease_seconds=0.6).acquire()
    finally:
        lock.release()
    assert json.loads(path.read_text())["released"] is True
    with StepLock(path, owner="run-2", lease_seconds=0.6):
        pass


def test_a_holder_whose_lease_was_taken_over_stops(tmp_path) -> None:
    path = UPath(f"memory://{tmp_path.name}/taken/lock")
    lock = StepLock(path, owner="run-1", lease_seconds=0.6)
    lock.acquire()
    try:
        store = conditional_object(path)
        data, version = store.read()  # type: ignore[misc]
        store.replace(json.dumps({"owner": "run-2", "asset": "bitrix24/other", "expires": time.time() + 60})
                      .encode(), version)  # a rival's conditional write won  # fmt: skip
        with pytest.raises(LeaseLost, match="taken over by run run-2, asset bitrix24/other"):
            wait_for(lambda: lock.check() and False, "the heartbeat to notice", timeout=5)
    finally:
        lock.release()
    assert json.loads(path.read_text())["owner"] == "run-2"  # a lost lease is not released over its new holder


def test_a_holder_that_cannot_refresh_stops_before_its_lease_ends(tmp_path, monkeypatch) -> None:
    path = UPath(f"memory://{tmp_path.name}/silent/lock")
    lock = StepLock(path, owner="run-1", lease_seconds=1.0, margin_seconds=0.3)
    lock.acquire()
    taken = time.monotonic()
    try:
        def unreachable(*_: object) -> None:
            raise OSError("the store does not answer")

        monkeypatch.setattr(type(lock._object), "replace", unreachable)
        lock.check()
        with pytest.raises(LeaseLost, match="could not be refreshed"):
            wait_for(lambda: lock.check() and False, "the lease to run low", timeout=5)
        assert time.monotonic() - taken < 1.0  # stopped before the lease could end (0.7 s)
    finally:
        monkeypatch.undo()
        lock.release()


def test_key_spaces_name_one_entity_one_way() -> None:
    class Client:
        class webhook:  # noqa: N801
            origin = "https://example.bitrix24.com"

    assert entity_of("crm.item.add", {"entityTypeId": 1}) == entity_of("crm.lead.add") == "crm.lead"
    assert entity_of("crm.item.update", {"entityTypeId": "1032"}) == "crm.item:1032"
    assert sync_space(Client, "crm.item.add", "originId", {"entityTypeId": 2}) == KeySpace(
        "https://example.bitrix24.com", "crm.deal", "ORIGIN_ID")
    assert send_spaces(Client, {("crm.deal.add", None), ("crm.deal.update", None), ("tasks.task.add", None)}, None) == [
        KeySpace("https://example.bitrix24.com", "crm.deal", "ORIGIN_ID"),
        KeySpace("https://example.bitrix24.com", "tasks.task", "")]
    assert KeySpace("p", "crm.lead", "ORIGIN_ID").describe() == "crm.lead records keyed by ORIGIN_ID on p"


def test_two_steps_writing_one_key_space_exclude_each_other_on_local_disk(tmp_path) -> None:
    space = KeySpace("https://example.bitrix24.com", "crm.lead", "ORIGIN_ID")
    root = UPath(tmp_path / ".locks")
    first = write_locks(LockSettings(root=root, owner="run-1", asset="bitrix24/a"), UPath(tmp_path / "a.parquet"), [space])
    first.acquire()
    try:
        other = write_locks(LockSettings(root=root, owner="run-2", asset="bitrix24/b", wait_seconds=0.3),
                            UPath(tmp_path / "b.parquet"), [space])  # fmt: skip
        with pytest.raises(LockHeldError, match=r"writing crm.lead records keyed by ORIGIN_ID on https://example"
                                                r".bitrix24.com \(run run-1, asset bitrix24/a, on "):
            other.acquire()
        # what the lock file says, for a person looking at <base>/.locks
        described = json.loads((root / space.lock_name()).read_text())
        assert described["key_space"] == {"portal": space.portal, "entity": "crm.lead", "key_field": "ORIGIN_ID"}
        # another asset writing another key space is not held up
        with write_locks(LockSettings(root=root, owner="run-3", asset="bitrix24/c"), UPath(tmp_path / "c.parquet"),
                         [KeySpace(space.portal, "crm.deal", "ORIGIN_ID")]):  # fmt: skip
            pass
    finally:
        first.release()
    with other:  # free now
        pass
