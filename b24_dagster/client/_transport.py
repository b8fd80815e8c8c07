"""The HTTP layer: JSON POST to the portal over kept-alive connections, response -> RawAnswer.

Two paths: the transport's own sockets (:mod:`._http11`, the default), or a ``requests``
session when one is injected or a proxy is configured.

What it guarantees:

* redirects are never followed (a 3xx is a :class:`ProtocolError`): a ``Location`` must not
  carry the webhook code to another host;
* TLS verification stays on (``verify`` may name a CA bundle);
* bodies are read streamed and bounded (``max_response_bytes``) and only ever JSON-decoded;
* a failure is classified by whether the request may have reached the portal:
  :class:`ConnectError` (not sent, safe to repeat), :class:`MaybeSent` (sent or partly sent,
  no answer), or an answer that is not JSON (:class:`ProtocolError`);
* exception messages and chained causes never show the request URL.

The session is injectable: a test can mount a ``requests`` adapter on it for the few cases
that no emulator can show (``tests/client/test_wire_adapter.py``); the default path is
tested over real sockets (``tests/client/test_wire_sockets.py``, the fault matrix).
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3.exceptions as u3
import urllib3.util
import urllib3.util.timeout as u3_timeout

from b24_dagster._redaction import scrub
from b24_dagster.errors import ConnectError, ProtocolError

from ._http11 import MaybeSent, RawAnswer, WirePool, too_large
from ._json import decode_json, encode_json

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "Envelope",
    "RawAnswer",
    "Transport",
    "decode_json",
    "encode_json",
]

log = logging.getLogger("b24_dagster.client")

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 60.0)
DEFAULT_MAX_RESPONSE_BYTES = 128 * 1024 * 1024
_STREAM_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded Bitrix24 answer.

    Attributes:
        status: The HTTP status.
        body: The decoded JSON body.
        headers: Response headers with lower-case names.
        replayed: True when a v3 portal replayed a cached answer (``Idempotent-Replayed``).
    """

    status: int
    body: Any
    headers: Mapping[str, str]
    replayed: bool = False


def _describe(exc: BaseException) -> str:
    """A short, URL-free description of a requests/urllib3 failure."""
    inner: BaseException | None = exc
    seen = 0
    while inner is not None and seen < 6:
        reason = getattr(inner, "reason", None)
        if isinstance(reason, BaseException):
            inner = reason
        elif inner.args and isinstance(inner.args[-1], BaseException):
            inner = inner.args[-1]
        else:
            break
        seen += 1
    name = type(inner or exc).__name__
    text = str(inner or exc)
    # urllib3 messages name the pool and the path; keep only the part after the last colon
    if "url:" in text or "/rest/" in text or "Pool(" in text:
        text = text.rsplit(":", 1)[-1].strip(" )'")
    return scrub(f"{name}: {text}" if text else name)


class Transport:
    """POST JSON to a portal over one pooled keep-alive session.

    With its own session (the default) and no proxy, requests go over the transport's own
    kept-alive sockets (:mod:`._http11`), with the CA bundle requests would use: a third of
    the CPU of urllib3's exchange for a batch answer. An injected session, or one with a
    proxy, is used through ``Session.post`` so that every adapter, hook and proxy it carries
    applies.

    Args:
        session: A ``requests.Session`` to use (it is not closed by :meth:`close` when
            injected). A new one is built when None.
        timeout: ``(connect, read)`` seconds.
        verify: True, False or the path of a CA bundle.
        max_response_bytes: Larger bodies raise :class:`ProtocolError`.
        user_agent: The User-Agent header.
        pool_maxsize: Connections kept per host.
        origin: The portal origin (``scheme://host[:port]``); every URL posted starts with it.
        keepalive_idle: A write is never sent on a connection idle for longer than this many
            seconds (the server may be closing it at that very moment, and a write that fails
            that way cannot be told from one that ran); the pool is emptied first.
    """

    def __init__(
        self,
        session: requests.Session | None = None,
        *,
        timeout: tuple[float, float] | float = DEFAULT_TIMEOUT,
        verify: bool | str = True,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        user_agent: str,
        pool_maxsize: int = 10,
        origin: str,
        keepalive_idle: float = 4.0,
    ) -> None:
        self._owns_session = session is None
        self.keepalive_idle = keepalive_idle
        self._last_answer = float("-inf")
        self.origin = origin
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(
                pool_connections=2, pool_maxsize=pool_maxsize, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            # Read the environment once here (proxies, CA bundle) instead of on every
            # request: trust_env makes requests re-read ~/.netrc and proxy settings per call.
            session.proxies.update(requests.utils.get_environ_proxies(origin))
            if verify is True:
                verify = (os.environ.get("REQUESTS_CA_BUNDLE")
                          or os.environ.get("CURL_CA_BUNDLE") or True)
            session.trust_env = False
        self.session = session
        self.timeout = timeout
        self.verify = verify
        self.max_response_bytes = max_response_bytes
        self.base_headers = {
            "User-Agent": user_agent,
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "Content-Type": "application/json",
            "Connection": "keep-alive",
        }
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self._u3_timeout = u3_timeout.Timeout(connect=connect, read=read)
        adapter = session.get_adapter(origin + "/")
        direct = (self._owns_session and not session.proxies
                  and type(adapter) is requests.adapters.HTTPAdapter)
        self._wire = _wire_pool(origin, verify, connect, read, pool_maxsize) if direct else None

    def close(self) -> None:
        """Close the pooled connections (of a session this transport created)."""
        if self._wire is not None:
            self._wire.clear()
        if self._owns_session:
            self.session.close()

    def post(self, url: str, body: bytes, headers: Mapping[str, str] | None = None, *,
             method: str, fresh: bool = False) -> RawAnswer:
        """POST ``body`` to ``url`` and read the whole answer.

        Args:
            url: The full URL (it holds the webhook code: it never appears in an error).
            body: The encoded JSON body.
            headers: Extra headers for this request.
            method: The REST method, for error messages.
            fresh: Do not reuse a connection idle for more than ``keepalive_idle`` seconds
                (for writes that must not be sent twice).

        Returns:
            The answer with its body read in full.

        Raises:
            ConnectError: The request was not sent.
            MaybeSent: It may have been sent, and no complete answer came back.
            ProtocolError: A redirect, or a body larger than ``max_response_bytes``.
        """
        hdrs = self.base_headers if not headers else {**self.base_headers, **headers}
        if fresh and time.monotonic() - self._last_answer > self.keepalive_idle:
            self._drop_idle_connections()
        if self._wire is not None and url.startswith(self.origin):
            path = url[len(self.origin):]
            answer = self._wire.post(path, body, hdrs, method=method,
                                     max_bytes=self.max_response_bytes)
            if log.isEnabledFor(logging.DEBUG):
                log.debug('"POST %s HTTP/1.1" %d %d', path, answer.status, len(answer.content))
            _refuse_redirect(answer.status, method)
        else:
            answer = self._session_answer(url, body, hdrs, method)
        self._last_answer = time.monotonic()
        return answer

    def _session_answer(self, url: str, body: bytes, headers: Mapping[str, str],
                        method: str) -> RawAnswer:
        raw = self._session_post(url, body, headers, method)
        done = False
        try:
            status = raw.status
            _refuse_redirect(status, method)
            raw_headers = raw.headers
            content = self._read_body(raw, raw_headers, method, status)
            headers_out = {k.lower(): v for k, v in raw_headers.items()}
            done = True
        finally:
            if done:
                raw.release_conn()  # read in full: the connection goes back to the pool
            else:
                raw.close()  # its state is unknown: never reuse it
        return RawAnswer(status, content, headers_out)

    def _session_post(self, url: str, body: bytes, headers: Mapping[str, str],
                      method: str) -> Any:
        try:
            resp = self.session.post(url, data=body, headers=headers, timeout=self.timeout,
                                     verify=self.verify, allow_redirects=False, stream=True)
        except requests.exceptions.SSLError as exc:
            raise ConnectError(f"{method}: TLS failure ({_describe(exc)})", method=method,
                               retryable=False) from None
        except requests.exceptions.ConnectTimeout as exc:
            raise ConnectError(f"{method}: connect timeout ({_describe(exc)})",
                               method=method) from None
        except requests.exceptions.ConnectionError as exc:
            if _not_sent(exc):
                raise ConnectError(f"{method}: could not connect ({_describe(exc)})",
                                   method=method) from None
            raise MaybeSent(f"{method}: connection lost after sending ({_describe(exc)})",
                             method=method) from None
        except requests.exceptions.Timeout as exc:
            raise MaybeSent(f"{method}: no answer within {self._u3_timeout.read_timeout} s "
                             f"({_describe(exc)})", method=method) from None
        except requests.exceptions.RequestException as exc:
            raise MaybeSent(f"{method}: request failed ({_describe(exc)})",
                             method=method) from None
        return resp.raw

    def _drop_idle_connections(self) -> None:
        if self._wire is not None:
            self._wire.clear()
        adapter = self.session.get_adapter(self.origin + "/")
        pool_manager = getattr(adapter, "poolmanager", None)
        if pool_manager is not None:
            pool_manager.clear()

    def _read_body(self, raw: Any, raw_headers: Any, method: str, status: int) -> bytes:
        limit = self.max_response_bytes
        length = raw_headers.get("Content-Length")
        encoded = raw_headers.get("Content-Encoding", "identity") not in ("identity", "")
        try:
            if length is not None and length.isdigit() and not encoded:
                if int(length) > limit:
                    raise too_large(method, status, limit)
                content = raw.read(decode_content=False)
                if len(content) != int(length):
                    raise MaybeSent(f"{method}: the answer was cut short", method=method,
                                     status=status)
                return content
            parts: list[bytes] = []
            size = 0
            for chunk in raw.stream(_STREAM_CHUNK, decode_content=True):
                size += len(chunk)
                if size > limit:
                    raise too_large(method, status, limit)
                parts.append(chunk)
            return b"".join(parts)
        except (u3.HTTPError, OSError, requests.exceptions.RequestException) as exc:
            raise MaybeSent(f"{method}: the answer broke off ({_describe(exc)})",
                             method=method, status=status) from None


def _refuse_redirect(status: int, method: str) -> None:
    if 300 <= status < 400:
        error = ProtocolError(
            f"{method}: the portal answered with a redirect (HTTP {status}); "
            "redirects are never followed (check the portal address)",
            method=method, status=status)
        error.redirect = True  # type: ignore[attr-defined]
        raise error


def _wire_pool(origin: str, verify: bool | str, connect: float, read: float,
               maxsize: int) -> WirePool:
    """The transport's own connections to ``origin``, trusting what requests would trust."""
    parsed = urllib3.util.parse_url(origin)
    https = parsed.scheme == "https"
    tls = None
    if https:
        if verify is False:
            tls = ssl.create_default_context()
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        else:
            bundle = requests.certs.where() if verify is True else str(verify)
            tls = (ssl.create_default_context(capath=bundle) if os.path.isdir(bundle)
                   else ssl.create_default_context(cafile=bundle))
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
    port = parsed.port or (443 if https else 80)
    return WirePool((parsed.host or "").strip("[]"), port, tls, connect_timeout=connect, read_timeout=read,
                    maxsize=maxsize)


def _not_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the failure happened before any byte of the request left this machine.

    requests raises ConnectionError both for a connection that could not be made and for
    one that broke after the request was written; only urllib3's reason tells them apart.
    """
    reason: Any = exc.args[0] if exc.args else None
    if isinstance(reason, u3.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, u3.NewConnectionError | u3.ConnectTimeoutError |
                      u3.NameResolutionError | u3.ProxyError)
