"""TLS over real sockets: verification is on, a CA bundle path is accepted, and with
``verify=True`` the bundle comes from the environment as requests reads it
(``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``), then ``SSL_CERT_FILE``, else certifi's."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from b24_dagster import Bitrix24Client
from b24_dagster.client import RetryPolicy
from b24_dagster.emulator import PortalEmulator, PortalSettings
from b24_dagster.errors import ConfigurationError, ConnectError

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

CODE = "tlscode123456789"
BODY = b'{"result":"2024-08-05T09:02:13+00:00","time":{"start":1.0}}'


def _cert(tmp: Path) -> tuple[Path, Path, Path]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wire test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    import socket

    ca_path, cert_path, key_path = _cert(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)
    port = sock.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = sock.accept()
            except OSError:
                return
            try:
                conn = context.wrap_socket(raw, server_side=True)
                reader = conn.makefile("rb")
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                reader.read(length)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)
                conn.close()
            except (OSError, ssl.SSLError):
                raw.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{port}/rest/1/{CODE}/", ca_path
    stop.set()
    sock.close()


def test_ca_bundle_path_is_used(tls_server: tuple[str, Path]) -> None:
    url, ca_path = tls_server
    with Bitrix24Client(url, requests_per_second=None, share_limits=False,
                        verify=str(ca_path)) as client:
        assert client.call("server.time").result == "2024-08-05T09:02:13+00:00"


def test_unknown_ca_is_refused_without_retry(tls_server: tuple[str, Path]) -> None:
    url, _ = tls_server
    with Bitrix24Client(url, requests_per_second=None, share_limits=False,
                        retry=RetryPolicy(max_retries=3, backoff_base=0.01)) as client, \
            pytest.raises(ConnectError, match="TLS") as info:
        client.call("crm.item.add", {"fields": {}})
    assert not info.value.retryable and client.stats.requests == 1
    assert CODE not in str(info.value)


def test_verify_false_only_for_loopback() -> None:
    with pytest.raises(ConfigurationError, match="loopback"):
        Bitrix24Client(f"https://portal.example.com/rest/1/{CODE}/", verify=False)
    Bitrix24Client(f"https://127.0.0.1:1/rest/1/{CODE}/", verify=False, share_limits=False)


CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@pytest.fixture(scope="module")
def tls_portal() -> Iterator[PortalEmulator]:
    """An https emulator with its own CA (the emulator's ``--tls``)."""
    with PortalEmulator(PortalSettings(rate=0), tls=True) as emu:
        yield emu


@pytest.fixture
def no_ca_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("variable", CA_VARIABLES)
def test_the_ca_bundle_comes_from_the_environment(tls_portal: PortalEmulator,
                                                  no_ca_settings: pytest.MonkeyPatch,
                                                  variable: str) -> None:
    no_ca_settings.setenv(variable, str(tls_portal.ca_file))
    with Bitrix24Client(tls_portal.webhook_url, requests_per_second=None,
                        share_limits=False) as client:
        assert client._transport.settings.ca == tls_portal.ca_file  # type: ignore[union-attr]
        added = client.call("crm.item.add", {"entityTypeId": 2, "fields": {"title": variable}})
        assert added.result["item"]["title"] == variable


def test_requests_variable_comes_before_ssl_cert_file(tls_portal: PortalEmulator,
                                                      no_ca_settings: pytest.MonkeyPatch) -> None:
    import certifi

    no_ca_settings.setenv("SSL_CERT_FILE", str(tls_portal.ca_file))
    no_ca_settings.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    with Bitrix24Client(tls_portal.webhook_url, requests_per_second=None, share_limits=False,
                        retry=RetryPolicy(max_retries=3)) as client, \
            pytest.raises(ConnectError, match="TLS") as info:
        client.call("crm.item.add", {"entityTypeId": 2, "fields": {"title": "never"}})
    assert not info.value.retryable and client.stats.requests == 1


def test_without_the_ca_in_the_environment_certifi_is_used(tls_portal: PortalEmulator,
                                                           no_ca_settings: pytest.MonkeyPatch) -> None:
    import certifi

    with Bitrix24Client(tls_portal.webhook_url, requests_per_second=None,
                        share_limits=False) as client, pytest.raises(ConnectError, match="TLS"):
        assert client._transport.settings.ca == certifi.where()  # type: ignore[union-attr]
        client.call("server.time")
