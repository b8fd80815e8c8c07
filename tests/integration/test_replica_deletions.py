"""Finding what disappeared, against the emulator: counts of id ranges, ids read only where
the counts differ, and every difference found whatever its place (first, last, newest ids,
a block, scattered), at the cost the module documents."""

from __future__ import annotations

import numpy as np
import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.integration._replica_calls import probe
from b24_dagster.integration._replica_deletions import DeletionFinder
from b24_dagster.integration._replica_entities import replica_entity

DEALS = 3000


@pytest.fixture
def client(b24_emulator):
    b24_emulator.portal.seed("deal", DEALS)
    with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None, share_limits=False) as c:
        yield c


def _delete(client: Bitrix24Client, ids: list[int]) -> None:
    assert client.batch_by_chunk([("crm.deal.delete", {"id": i}) for i in ids]).run().is_success


@pytest.mark.parametrize("gone", [[1], [DEALS], [DEALS - 2, DEALS - 1, DEALS], list(range(1400, 1460)),
                                  [3, 777, 1500, 2222, 2999], []],
                         ids=["first", "newest", "three_newest", "block", "scattered", "none"])
def test_every_disappeared_id_is_found_and_nothing_else(client, gone) -> None:
    _delete(client, gone)
    deal = replica_entity("deal")
    found = probe(client, deal, {})
    finder = DeletionFinder(client, deal, {}, np.arange(1, DEALS + 1, dtype=np.int64))
    before = client.stats.requests
    diff = finder.find(found.max_id, found.total)
    assert sorted(diff.missing.tolist()) == sorted(gone) and diff.unknown.tolist() == []
    if not gone or gone == [DEALS - 2, DEALS - 1, DEALS] or gone == [DEALS]:
        assert client.stats.requests == before   # the probe's count and highest id tell it all
    else:
        assert client.stats.requests - before <= 6


def test_records_the_replica_lacks_are_found_too(client) -> None:
    """Ids the portal shows and the replica does not hold live (restored, or missed) are read."""
    _delete(client, [10, 20])
    deal = replica_entity("deal")
    live = np.setdiff1d(np.arange(1, DEALS + 1, dtype=np.int64), [2500, 2501, 2502])
    found = probe(client, deal, {})
    diff = DeletionFinder(client, deal, {}, live).find(found.max_id, found.total)
    assert diff.missing.tolist() == [10, 20] and diff.unknown.tolist() == [2500, 2501, 2502]


def test_only_the_sweep_sees_a_deletion_offset_by_a_record_the_replica_lacks(client) -> None:
    """The limit of counts: a deletion and a record the portal shows but the replica lacks (a
    restore from the recycle bin keeps its modification time) in the same id range cancel out.
    Neither is invented; the sweep (a run with `sweep: true`) finds both."""
    _delete(client, [10])
    deal = replica_entity("deal")
    live = np.setdiff1d(np.arange(1, DEALS + 1, dtype=np.int64), [11])
    found = probe(client, deal, {})
    counted = DeletionFinder(client, deal, {}, live).find(found.max_id, found.total)
    assert counted.missing.tolist() == [] and counted.unknown.tolist() == []
    swept = DeletionFinder(client, deal, {}, live).find(found.max_id, found.total, strategy="sweep")
    assert swept.missing.tolist() == [10] and swept.unknown.tolist() == [11]


def test_the_sweep_finds_the_same(client) -> None:
    gone = [5, 1234, 2999]
    _delete(client, gone)
    deal = replica_entity("deal")
    found = probe(client, deal, {})
    before = client.stats.requests
    diff = DeletionFinder(client, deal, {}, np.arange(1, DEALS + 1, dtype=np.int64)).find(
        found.max_id, found.total, strategy="sweep")
    assert diff.method == "sweep" and diff.missing.tolist() == gone
    assert client.stats.requests - before == 2   # 2,997 ids at 2,500 a request


def test_a_filter_narrows_what_is_compared(client) -> None:
    """With a filter, the counts are of the filtered records: one that left it is a candidate
    (the run's lookup then tells it from a deletion)."""
    flt = {"@ASSIGNED_BY_ID": [1, 2, 3]}
    deal = replica_entity("deal")
    inside = [int(r["ID"]) for page in client.iter_list("crm.deal.list", {"filter": flt, "select": ["ID"]})
              for r in page]
    moved, deleted = inside[100], inside[200]
    client.call("crm.deal.update", {"id": moved, "fields": {"ASSIGNED_BY_ID": 9}})
    _delete(client, [deleted])
    found = probe(client, deal, flt)
    diff = DeletionFinder(client, deal, flt, np.array(inside, dtype=np.int64)).find(found.max_id, found.total)
    assert sorted(diff.missing.tolist()) == sorted([moved, deleted])
