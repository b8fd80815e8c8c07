"""Bad configuration: each mistake is a clear b24_dagster error at or before the first request.

The message must name the problem on its own (not only a library traceback chained behind
it) and never contain the webhook code.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.emulator import PortalEmulator, PortalSettings
from b24_dagster.errors import (
    AuthError,
    Bitrix24Error,
    ConfigurationError,
    ConnectError,
)

CODE = "k3ysecretc0de9x7"


def _client(url: str, **options: object) -> Bitrix24Client:
    return Bitrix24Client(url, requests_per_second=None, share_limits=False, **options)


def _check_message(exc: BaseException, *needles: str) -> str:
    """The message stands alone: names the problem, carries no code, no bare traceback."""
    assert isinstance(exc, Bitrix24Error), type(exc)
    text = str(exc)
    assert CODE not in text and CODE not in repr(exc)
    assert "Traceback" not in text and text.strip()
    for needle in needles:
        assert needle.lower() in text.lower(), (needle, text)
    if exc.__cause__ is not None:   # a cause may be chained, but the message is not just it
        assert text != str(exc.__cause__)
    return text


@pytest.mark.parametrize(("url", "needles"), [
    ("not a url", ("invalid webhook URL",)),
    (f"portal.example.com/rest/1/{CODE}/", ("invalid webhook URL", "https")),
    (f"ftp://portal.example.com/rest/1/{CODE}/", ("invalid webhook URL", "scheme")),
    (f"https://portal.example.com/rest/{CODE}/", ("invalid webhook URL", "path")),
    (f"https://portal.example.com/api/1/{CODE}/", ("invalid webhook URL", "path")),
    (f"https:///rest/1/{CODE}/", ("invalid webhook URL",)),
])
def test_malformed_url(url: str, needles: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError) as info:
        _client(url)
    _check_message(info.value, *needles)


def test_plain_http_to_a_non_loopback_host() -> None:
    with pytest.raises(ConfigurationError) as info:
        _client(f"http://portal.example.com/rest/1/{CODE}/")
    _check_message(info.value, "https is required", "loopback")


def test_wrong_webhook_code_fails_at_the_first_request() -> None:
    with PortalEmulator(PortalSettings(rate=0, code="rightcode1234567")) as emu:
        url = emu.webhook_url.replace("rightcode1234567", CODE)
        with _client(url) as client, pytest.raises(AuthError) as info:
            client.call("server.time")
        assert client.stats.requests == 1   # a 401 is not retried
        assert emu.stats["unauthorized_401"] == 1
    _check_message(info.value, "NO_AUTH_FOUND", "401")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_port() -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/rest/1/{CODE}/"
    with _client(url, max_retries=1) as client, pytest.raises(ConnectError) as info:
        client.call("server.time")
    _check_message(info.value, "could not connect", str(port))


@pytest.fixture(scope="module")
def tls_emulator() -> PortalEmulator:
    """An https emulator whose certificate is signed by a CA the system does not trust."""
    emu = PortalEmulator(PortalSettings(rate=0, code=CODE), tls=True)
    emu.start()
    yield emu  # type: ignore[misc]
    emu.stop()


@pytest.mark.parametrize("call", [
    lambda c: c.call("server.time"),
    lambda c: c.batch([("server.time", {})]),
])
def test_tls_portal_without_the_ca(tls_emulator: PortalEmulator,
                                   call: Callable[[Bitrix24Client], object]) -> None:
    with _client(tls_emulator.webhook_url, max_retries=0) as client:
        try:
            result = call(client)
        except ConnectError as exc:
            _check_message(exc, "TLS", "certificate")
        else:   # a batch never raises: the rows carry the error
            rows = list(result)  # type: ignore[call-overload]
            assert rows and all(r.status == "error" for r in rows)
            assert all("TLS" in (r.error_description or "") for r in rows)
            assert all(CODE not in (r.error_description or "") for r in rows)


def test_tls_portal_with_the_ca(tls_emulator: PortalEmulator) -> None:
    assert tls_emulator.ca_file is not None
    with _client(tls_emulator.webhook_url, verify=tls_emulator.ca_file) as client:
        assert client.call("server.time").result
