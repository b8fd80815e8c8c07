"""A lone surrogate in a parameter is refused before anything is sent, naming where it is.

UTF-8 cannot carry one: v2's percent-encoding raises on it, and the ``\\ud800`` escape that
stdlib json would send in v3 makes PHP's json_decode refuse the whole body (JSON_ERROR_UTF16,
php-src ext/json/tests/bug62010.phpt); orjson refuses to encode one too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.client._transport import encode_json
from b24_dagster.emulator import PortalEmulator
from b24_dagster.errors import CommandValidationError

BAD = 120


def _adds(n: int, bad: int = BAD, where: str = "title") -> list[tuple[str, dict[str, Any]]]:
    calls = [("crm.item.add", {"entityTypeId": 2, "fields": {"title": f"Сделка {i}",
                                                             "originId": f"s-{i}"}})
             for i in range(n)]
    fields = calls[bad][1]["fields"]
    if where == "key":
        fields["UF_\ud800"] = "x"
    elif where == "phone":
        fields["fm"] = [{"valueType": "WORK", "value": "+7 900 \udc00"}]
    else:
        fields["title"] = "half a pair: \ud83d"
    return calls


@pytest.fixture
def client(b24_emulator: PortalEmulator) -> Iterator[Bitrix24Client]:
    with Bitrix24Client(b24_emulator.webhook_url, requests_per_second=None,
                        share_limits=False) as c:
        yield c


def _nothing_sent(emulator: PortalEmulator) -> None:
    assert emulator.request_log == []
    assert emulator.counts().get("deal", 0) == 0


@pytest.mark.parametrize("api", [2, 3])
@pytest.mark.parametrize(("where", "path", "code"), [
    ("title", "fields[title]", "U+D83D"),
    ("phone", "fields[fm][0][value]", "U+DC00"),
    ("key", "fields", "U+D800"),
])
def test_chunked_run_refuses_before_the_first_chunk(client: Bitrix24Client,
                                                    b24_emulator: PortalEmulator, api: int,
                                                    where: str, path: str, code: str) -> None:
    with pytest.raises(CommandValidationError) as caught:
        client.batch_by_chunk(_adds(130, where=where), api_version=api)
    err = caught.value
    assert (err.index, err.command_key) == (BAD, str(BAD))
    text = str(err)
    assert text.startswith(f"command '{BAD}' (crm.item.add): parameters cannot be sent: {path}: ")
    assert f"lone surrogate ({code})" in text
    text.encode()  # the message itself is printable as UTF-8 (a bad key is escaped)
    _nothing_sent(b24_emulator)


@pytest.mark.parametrize("api", [2, 3])
def test_batch_refuses_before_sending(client: Bitrix24Client, b24_emulator: PortalEmulator,
                                      api: int) -> None:
    with pytest.raises(CommandValidationError, match=r"'30' \(crm.item.add\).*fields\[title\]"
                       ) as caught:
        client.batch(_adds(50, bad=30), api_version=api)
    assert caught.value.index == 30
    named = {f"c{i}": {"method": m, "params": p} for i, (m, p) in enumerate(_adds(50, bad=7))}
    with pytest.raises(CommandValidationError, match=r"'c7'") as caught:
        client.batch(named, api_version=api)
    assert caught.value.command_key == "c7"
    _nothing_sent(b24_emulator)


@pytest.mark.parametrize("api", [2, 3])
def test_call_refuses_before_sending(client: Bitrix24Client, b24_emulator: PortalEmulator,
                                     api: int) -> None:
    params = _adds(1, bad=0, where="phone")[0][1]
    with pytest.raises(CommandValidationError,
                       match=r"^crm.item.add: .*fields\[fm\]\[0\]\[value\]: .*U\+DC00"):
        client.call("crm.item.add", params, api_version=api)
    _nothing_sent(b24_emulator)


def test_an_iterator_is_refused_at_the_bad_chunk_which_is_not_sent(
        client: Bitrix24Client, b24_emulator: PortalEmulator) -> None:
    """An iterator is checked chunk by chunk (documented): the chunks before it ran."""
    run = client.batch_by_chunk(iter(_adds(130)))
    with pytest.raises(CommandValidationError, match="lone surrogate") as caught:
        run.to_arrow()
    assert caught.value.index == BAD
    assert len(b24_emulator.request_log) == 2
    assert b24_emulator.counts()["deal"] == 100


def test_valid_pairs_and_other_scripts_pass(client: Bitrix24Client) -> None:
    rows = client.batch([("crm.item.add", {"entityTypeId": 2,
                                           "fields": {"title": "emoji 🎉 Сделка 日本語"}})])
    assert [r.status for r in rows] == ["ok"]


def test_encode_json_refuses_a_lone_surrogate_rather_than_escape_it() -> None:
    with pytest.raises(ValueError, match="surrogates not allowed"):
        encode_json({"title": "\ud800"})
