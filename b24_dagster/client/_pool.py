"""The transport's connections: one urllib3 pool manager, set up from the environment as
requests would set up its own, whose connections note when a request starts to go out.

What it reads, once, when the client is made:

* the proxy for the portal's origin: ``https_proxy`` / ``http_proxy`` / ``all_proxy`` and
  ``no_proxy`` (lower or upper case), chosen by requests' own functions
  (``get_environ_proxies``, ``select_proxy``); a user and password in the proxy's URL become
  a ``Proxy-Authorization`` header. An https portal is reached through the proxy with
  ``CONNECT`` (the proxy sees neither the path nor the body), an http (loopback) portal
  through the proxy directly. SOCKS proxies are refused (requests needs an extra for them
  too);
* the CA bundle when ``verify`` is True: ``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE``
  (requests' order), then ``SSL_CERT_FILE`` (OpenSSL's), else certifi's bundle. A directory
  is taken as a hashed certificate directory.

Why the connections are marked: a failure before the first byte of a request leaves the
portal untouched and the request may be repeated, while a failure after it may hide a write
that ran. urllib3's exception types do not say which (a TLS handshake that times out and an
answer that does not come both raise ``ReadTimeoutError``), so each connection records, per
thread, the moment it starts to send (:func:`begin`, :func:`started_sending`).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import requests.certs
import requests.utils
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from b24_dagster._redaction import redact_url
from b24_dagster.errors import ConfigurationError

__all__ = ["PoolSettings", "begin", "ca_bundle", "environ_proxy", "pool_manager",
           "started_sending"]

_progress = threading.local()


def begin() -> None:
    """Mark, for this thread, that the next request has not started to go out."""
    _progress.sent = False


def started_sending() -> bool:
    """Whether the request begun on this thread may have left this machine, even in part.

    True unless a marked connection got as far as its first byte and no further; a
    connection urllib3 made without the mark counts as sent (the safe side).
    """
    return getattr(_progress, "sent", True)


class _Marked:
    """A connection that connects before it sends, and notes when it starts sending."""

    def request(self, method: str, url: str, body: Any = None, headers: Any = None,
                **kwargs: Any) -> None:
        if self.is_closed:  # type: ignore[attr-defined]
            # http.client would connect inside the send: connect first, so that a failure
            # to connect is known to have sent nothing.
            self.connect()  # type: ignore[attr-defined]
        _progress.sent = True
        super().request(method, url, body=body, headers=headers, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Marked, HTTPConnection):
    pass


class _HTTPSConnection(_Marked, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class PoolSettings:
    """What :func:`pool_manager` chose, for a message or a test (never holds a password).

    Attributes:
        proxy: The proxy's URL with its password masked, or None for a direct connection.
        ca: The CA bundle file or directory, or None when verification is off.
    """

    __slots__ = ("ca", "proxy")

    def __init__(self, proxy: str | None, ca: str | None) -> None:
        self.proxy, self.ca = proxy, ca

    def __repr__(self) -> str:
        return f"PoolSettings(proxy={self.proxy!r}, ca={self.ca!r})"


def environ_proxy(origin: str) -> str | None:
    """The proxy URL the environment gives for ``origin`` (requests' rules), or None."""
    proxies = requests.utils.get_environ_proxies(origin)
    proxy = requests.utils.select_proxy(origin + "/", proxies) if proxies else None
    return requests.utils.prepend_scheme_if_needed(proxy, "http") if proxy else None


def ca_bundle(verify: bool | str) -> str | None:
    """The CA bundle to trust: ``verify`` when it is a path, None when it is False, else the
    environment's (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE``) or certifi's."""
    if verify is False:
        return None
    if verify is not True:
        return str(verify)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        path = os.environ.get(name)
        if path:
            return path
    return requests.certs.where()


def pool_manager(origin: str, verify: bool | str, *, maxsize: int,
                 ) -> tuple[urllib3.PoolManager, PoolSettings]:
    """A pool manager for ``origin``: direct, or a ProxyManager for the environment's proxy.

    Args:
        origin: ``scheme://host[:port]`` of the portal.
        verify: True, False or the path of a CA bundle (file or directory).
        maxsize: Connections kept per host.

    Raises:
        ConfigurationError: The environment names a proxy this transport cannot use.
    """
    ca = ca_bundle(verify)
    tls: dict[str, Any] = {"cert_reqs": "CERT_NONE"} if ca is None else (
        {"cert_reqs": "CERT_REQUIRED", "ca_cert_dir": ca} if os.path.isdir(ca)
        else {"cert_reqs": "CERT_REQUIRED", "ca_certs": ca})
    proxy = environ_proxy(origin)
    manager: urllib3.PoolManager
    if proxy is None:
        manager = urllib3.PoolManager(num_pools=2, maxsize=maxsize, block=False, **tls)
    else:
        scheme = urllib3.util.parse_url(proxy).scheme
        if scheme not in ("http", "https"):
            raise ConfigurationError(
                f"the environment's proxy {redact_url(proxy)} for {origin} is a {scheme} proxy; "
                "only http and https proxies are supported (set no_proxy for this host, or "
                "pass a requests session)")
        user, password = requests.utils.get_auth_from_url(proxy)
        headers = urllib3.util.make_headers(proxy_basic_auth=f"{user}:{password}") \
            if user else None
        manager = urllib3.ProxyManager(proxy, num_pools=2, maxsize=maxsize, block=False,
                                       proxy_headers=headers, **tls)
    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return manager, PoolSettings(redact_url(proxy) if proxy else None, ca)
