"""Proxies from the environment, over real sockets: a proxy started by the test
(``tests/client/http_proxy.py``) records what went through it.

The rules are requests' own: ``https_proxy`` / ``http_proxy`` / ``all_proxy`` in either case,
``no_proxy`` for the hosts that go direct; an https portal is reached with ``CONNECT``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.client import RetryPolicy
from b24_dagster.emulator import PortalEmulator, PortalSettings
from b24_dagster.errors import ConfigurationError, ConnectError
from tests.client.http_proxy import HttpProxy

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start from an environment without proxies (the machine running the tests may set some)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="module")
def tls_portal() -> Iterator[PortalEmulator]:
    """An https emulator with its own CA (the emulator's ``--tls``)."""
    with PortalEmulator(PortalSettings(rate=0), tls=True) as emu:
        yield emu


@pytest.fixture
def proxy() -> Iterator[HttpProxy]:
    with HttpProxy() as p:
        yield p


def _client(url: str, **kwargs: object) -> Bitrix24Client:
    kwargs.setdefault("requests_per_second", None)
    kwargs.setdefault("retry", RetryPolicy(max_retries=2, backoff_base=0.01))
    return Bitrix24Client(url, share_limits=False, **kwargs)  # type: ignore[arg-type]


def _created(client: Bitrix24Client, title: str) -> int:
    return client.call("crm.item.add", {"entityTypeId": 2, "fields": {"title": title}}).result["item"]["id"]


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY"])
def test_https_goes_through_the_proxy_with_connect(tls_portal: PortalEmulator, proxy: HttpProxy,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   variable: str) -> None:
    monkeypatch.setenv(variable, proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_portal.ca_file))
    with _client(tls_portal.webhook_url) as client:
        assert client._transport.settings.proxy == proxy.url  # type: ignore[union-attr]
        first = _created(client, f"through {variable}")
        assert client.call("crm.item.get", {"entityTypeId": 2, "id": first}).result["item"]["title"] \
            == f"through {variable}"
        client.call("server.time")
    assert proxy.tunnels == [f"127.0.0.1:{tls_portal.port}"], "one kept-alive tunnel for all three"


def test_no_proxy_sends_its_hosts_direct(tls_portal: PortalEmulator, proxy: HttpProxy,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_portal.ca_file))
    for no_proxy in ("NO_PROXY", "no_proxy"):
        with monkeypatch.context() as m:
            m.setenv(no_proxy, "example.com,127.0.0.1")
            with _client(tls_portal.webhook_url) as client:
                assert client._transport.settings.proxy is None  # type: ignore[union-attr]
                client.call("server.time")
    assert proxy.tunnels == []
    with _client(tls_portal.webhook_url) as client:  # the same host without no_proxy: proxied
        client.call("server.time")
    assert len(proxy.tunnels) == 1


def test_no_proxy_alone_changes_nothing(tls_portal: PortalEmulator,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_portal.ca_file))
    with _client(tls_portal.webhook_url) as client:
        assert client._transport.settings.proxy is None  # type: ignore[union-attr]
        assert client.call("server.time").status == 200


def test_http_portal_goes_through_the_proxy_with_its_credentials(
        b24_emulator: PortalEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    with HttpProxy(auth="bob:s3cr3t p@ss") as proxy:
        monkeypatch.setenv("http_proxy", f"http://bob:s3cr3t%20p%40ss@127.0.0.1:{proxy.port}")
        with _client(b24_emulator.webhook_url) as client:
            assert "s3cr3t" not in repr(client._transport.settings)
            _created(client, "forwarded")
            client.call("server.time")
        assert proxy.forwarded == 2 and proxy.denied == 0 and proxy.tunnels == []


def test_a_proxy_that_is_down_is_a_connect_error_without_its_password(
        b24_emulator: PortalEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once it is closed
    monkeypatch.setenv("HTTP_PROXY", f"http://bob:hunter22@127.0.0.1:{port}")
    with _client(b24_emulator.webhook_url) as client, pytest.raises(ConnectError) as info:
        client.call("crm.item.add", {"entityTypeId": 2, "fields": {"title": "never"}})
    assert client.stats.requests == 3, "not sent: safe to repeat"
    assert "hunter22" not in str(info.value) and b24_emulator.portal.webhook_path(2) not in str(info.value)


def test_a_proxy_that_refuses_the_credentials_is_a_connect_error(
        tls_portal: PortalEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    with HttpProxy(auth="bob:right") as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://bob:wrong@127.0.0.1:{proxy.port}")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_portal.ca_file))
        with _client(tls_portal.webhook_url) as client, pytest.raises(ConnectError) as info:
            client.call("crm.item.add", {"entityTypeId": 2, "fields": {"title": "never"}})
        assert proxy.denied == 3 and proxy.tunnels == []
    assert "wrong" not in str(info.value)


def test_a_socks_proxy_is_refused_before_the_first_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://user:pw123456@127.0.0.1:1080")
    with pytest.raises(ConfigurationError, match="socks5 proxy") as info:
        _client("https://portal.example.com/rest/1/proxycode123456/")
    assert "pw123456" not in str(info.value)


@pytest.mark.parametrize("where", ["environment proxy", "portal front"])
def test_a_proxys_early_413_refuses_a_bulk_import_it_is_not_unknown(
        b24_emulator: PortalEmulator, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """nginx's ``client_max_body_size``: the 413 comes before the body is read, and the
    connection closes under a client still sending. The records were not created.

    The proxy is either the environment's (``HTTP_PROXY``) or a reverse proxy the webhook
    URL points at (nginx in front of the portal)."""
    notes = "x" * 4000
    calls = [("crm.item.add", {"entityTypeId": 2, "fields": {"title": f"big {i}",
                                                              "comments": notes}})
             for i in range(1000)]  # one chunk, one request of about 4 MB
    before = len(b24_emulator.portal.store.tables["deal"].rows)
    with HttpProxy(max_body=256 * 1024, upstream=f"127.0.0.1:{b24_emulator.port}") as proxy:
        url = b24_emulator.webhook_url
        if where == "environment proxy":
            monkeypatch.setenv("HTTP_PROXY", proxy.url)
        else:
            url = url.replace(f":{b24_emulator.port}/", f":{proxy.port}/")
        with _client(url) as client:
            assert client.call("server.time").status == 200  # a small request goes through
            table = client.batch_by_chunk(calls, halt_on_error=False, bulk_import=True).to_arrow()
            stats = client.stats
        assert proxy.refused == 1 and proxy.forwarded == 1
    assert set(table["status"].to_pylist()) == {"error"}, "refused, not unknown"
    assert set(table["error_code"].to_pylist()) == {"PROTOCOL_ERROR"}
    assert "HTTP 413" in table["error_description"][0].as_py()
    assert stats.requests == 2 and stats.unknown_outcomes == 0
    assert len(b24_emulator.portal.store.tables["deal"].rows) == before
