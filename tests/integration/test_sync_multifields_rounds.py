"""Issue 21's acceptance test: 1,000 contacts with one to three e-mails and phones each, synced,
then five rounds of random edits (a value changed, added, removed, its type changed, the order
changed) and one round with the sync state deleted. After every round each contact holds exactly
the source's values, and the writes are the changed rows (none in the state-deleted round).
Materialized against the emulator over HTTP."""

from __future__ import annotations

import random
import shutil

import dagster as dg
import pandas as pd

from b24_dagster.client import Bitrix24Client
from b24_dagster.integration import build_bitrix24_batch_asset

N = 1_000
EMAIL_TYPES = ("WORK", "HOME", "MAILING", "OTHER")
PHONE_TYPES = ("WORK", "MOBILE", "HOME", "FAX")


def _values(rng: random.Random, i: int, kind: str, n: int) -> list[dict[str, str]]:
    types = EMAIL_TYPES if kind == "EMAIL" else PHONE_TYPES
    make = (lambda j: f"c{i}.{j}.{rng.randrange(10**6)}@example.com") if kind == "EMAIL" else (
        lambda j: f"+1 {rng.randrange(100, 999)} {rng.randrange(10**6):06d}")
    return [{"VALUE": make(j), "VALUE_TYPE": rng.choice(types)} for j in range(n)]


def _edit(rng: random.Random, values: list[dict[str, str]], kind: str, i: int) -> list[dict[str, str]]:
    values = [dict(v) for v in values]
    move = rng.choice(["change", "add", "remove", "type", "order"])
    if move == "change":
        values[rng.randrange(len(values))]["VALUE"] = _values(rng, i, kind, 1)[0]["VALUE"]
    elif move == "add" and len(values) < 3:
        values.append(_values(rng, i, kind, 1)[0])
    elif move == "remove" and len(values) > 1:
        values.pop(rng.randrange(len(values)))
    elif move == "type":
        v = values[rng.randrange(len(values))]
        v["VALUE_TYPE"] = rng.choice([t for t in (EMAIL_TYPES if kind == "EMAIL" else PHONE_TYPES)
                                      if t != v["VALUE_TYPE"]])  # fmt: skip
    else:
        rng.shuffle(values)
    return values


def _normal(kind: str, values: list[dict[str, str]]) -> list[tuple[str, str]]:
    def norm(text: str) -> str:
        return "".join(c for c in text if c.isdigit()) if kind == "PHONE" else text.lower()

    return sorted((norm(v["VALUE"]), v["VALUE_TYPE"]) for v in values)


def test_five_rounds_of_edits_and_a_lost_state_leave_exactly_the_sources_values(b24_emulator, resources, base,
                                                                                instance):  # fmt: skip
    rng = random.Random(21)
    frame = pd.DataFrame({
        "external_id": [f"C{i:05d}" for i in range(N)],
        "name": [f"Contact {i}" for i in range(N)],
        "email": [_values(rng, i, "EMAIL", rng.randint(1, 3)) for i in range(N)],
        "phone": [_values(rng, i, "PHONE", rng.randint(1, 3)) for i in range(N)],
    })  # fmt: skip
    holder = {"frame": frame}

    @dg.asset(name="contacts_source")
    def source() -> pd.DataFrame:
        return holder["frame"]

    sync = build_bitrix24_batch_asset(name="contact_sync", method="crm.contact.add", source="contacts_source",
                                      fields={"name": "NAME", "email": "EMAIL", "phone": "PHONE"},
                                      key_column="external_id", reconcile_delay_seconds=0.0)  # fmt: skip

    def materialize() -> int:
        before = sum(r.commands for r in b24_emulator.request_log if r.committed)
        assert dg.materialize([source, sync], resources=resources, instance=instance).success
        return sum(r.commands for r in b24_emulator.request_log if r.committed) - before

    def check_portal() -> None:
        with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None, share_limits=False) as b24:
            held = {r["ORIGIN_ID"]: r for page in b24.iter_list(
                "crm.contact.list", {"select": ["ID", "ORIGIN_ID", "EMAIL", "PHONE"]}) for r in page}  # fmt: skip
        current = holder["frame"]
        assert len(held) == N
        for key, email, phone in zip(current["external_id"], current["email"], current["phone"], strict=True):
            record = held[key]
            assert _normal("EMAIL", record.get("EMAIL", [])) == _normal("EMAIL", email), key
            assert _normal("PHONE", record.get("PHONE", [])) == _normal("PHONE", phone), key

    assert materialize() == N
    check_portal()
    for _ in range(5):
        previous = holder["frame"]
        edited = previous.copy()
        rows = rng.sample(range(N), 80)
        for i in rows:
            kind = rng.choice(["EMAIL", "PHONE"])
            column = kind.lower()
            edited.at[i, column] = _edit(rng, previous.at[i, column], kind, i)
        changed = sum(1 for i in range(N) if any(
            _normal(k, previous.at[i, k.lower()]) != _normal(k, edited.at[i, k.lower()]) for k in ("EMAIL", "PHONE")))
        holder["frame"] = edited
        assert materialize() == changed
        check_portal()
    shutil.rmtree(base / "bitrix24" / ".contact_sync.parquet.sync")
    assert materialize() == 0
    check_portal()
