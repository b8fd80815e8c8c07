"""The HTTP layer: JSON POST to the portal over kept-alive connections, response -> RawAnswer.

Two paths: the transport's own urllib3 pool manager (:mod:`._pool`: proxies and CA bundle from
the environment, as requests reads them), or a ``requests`` session when one is injected
(through ``Session.post``, so that every adapter, hook and proxy it carries applies).

What it guarantees on both:

* redirects are never followed (a 3xx is a :class:`ProtocolError`): a ``Location`` must not
  carry the webhook code to another host;
* TLS verification stays on (``verify`` may name a CA bundle);
* bodies are read streamed and bounded (``max_response_bytes``, before and after inflating)
  and only ever JSON-decoded;
* a failure is classified by whether the request may have reached the portal:
  :class:`ConnectError` (not sent, safe to repeat), :class:`MaybeSent` (sent or partly sent,
  no complete answer), or an answer that is not a usable one (:class:`ProtocolError`);
* an answer that came while the body was still going out (a proxy's early 413) is read and
  reported as it is: the request was refused, not lost;
* a write never goes out on a connection idle for longer than ``keepalive_idle``;
* exception messages and chained causes never show the request URL.

The default path is tested over real sockets (``tests/client/test_wire_sockets.py``,
``test_wire_proxy.py``, ``test_wire_tls.py``, the fault matrix); the session seam serves the
cases no server can show (``tests/client/test_wire_adapter.py``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
import urllib3.exceptions as u3

from b24_dagster._redaction import scrub
from b24_dagster.errors import ConnectError, ProtocolError, TransportError

from ._json import decode_json, encode_json
from ._pool import PoolSettings, begin, pool_manager, started_sending

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "Envelope",
    "MaybeSent",
    "RawAnswer",
    "Transport",
    "decode_json",
    "encode_json",
    "too_large",
]

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 60.0)
DEFAULT_MAX_RESPONSE_BYTES = 128 * 1024 * 1024
_STREAM_CHUNK = 1 << 20
#: urllib3 repeats nothing and follows no redirect: the client decides (``_retry.py``).
_NO_RETRIES = urllib3.Retry(total=False, redirect=False)


class MaybeSent(TransportError):
    """The request may have reached the portal, but no complete answer came back."""


@dataclass(frozen=True, slots=True)
class RawAnswer:
    """An HTTP answer whose body was read in full (not yet decoded).

    Attributes:
        status: The HTTP status.
        content: The body, inflated when it came compressed.
        headers: Response headers with lower-case names (repeated ones joined by ``", "``).
    """

    status: int
    content: bytes
    headers: dict[str, str]


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


def too_large(method: str, status: int, limit: int) -> ProtocolError:
    """The error for an answer larger than ``max_response_bytes``."""
    error = ProtocolError(f"{method}: the answer is larger than max_response_bytes={limit}",
                          method=method, status=status)
    error.oversized = True  # type: ignore[attr-defined]
    return error


def _describe(exc: BaseException) -> str:
    """A short, URL-free description of a requests/urllib3 failure."""
    inner: BaseException | None = exc
    seen = 0
    while inner is not None and seen < 6:
        reason = getattr(inner, "reason", None) or getattr(inner, "original_error", None)
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
    if "url:" in text or "/rest/" in text or "Pool(" in text or "object at 0x" in text:
        text = text.rsplit(":", 1)[-1].strip(" )'")
    elif "Connection(host=" in text:  # "HTTPConnection(host=..., port=...): Failed to ..."
        text = text.split("): ", 1)[-1]
    return scrub(f"{name}: {text}" if text else name)


class Transport:
    """POST JSON to a portal over kept-alive connections.

    With no session given, requests go through one ``urllib3.PoolManager`` (a
    ``ProxyManager`` when the environment names a proxy for the portal) that this transport
    owns; see :mod:`._pool` for what it reads from the environment. An injected session is
    used through ``Session.post``.

    Args:
        session: A ``requests.Session`` to send through (it is not closed by :meth:`close`).
            None: the transport's own pool manager.
        timeout: ``(connect, read)`` seconds.
        verify: True, False or the path of a CA bundle.
        max_response_bytes: Larger bodies raise :class:`ProtocolError`.
        user_agent: The User-Agent header.
        pool_maxsize: Connections kept per host.
        origin: The portal origin (``scheme://host[:port]``); every URL posted starts with it.
        keepalive_idle: A write is never sent on a connection idle for longer than this many
            seconds (the server may be closing it at that very moment, and a write that fails
            that way cannot be told from one that ran); the pool is emptied first.

    Raises:
        ConfigurationError: The environment names a proxy that cannot be used.
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
        self.session = session
        self.origin = origin
        self.keepalive_idle = keepalive_idle
        self._last_answer = float("-inf")
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
        self._u3_timeout = urllib3.Timeout(connect=connect, read=read)
        self._pool: urllib3.PoolManager | None = None
        self.settings: PoolSettings | None = None
        if session is None:
            self._pool, self.settings = pool_manager(origin, verify, maxsize=pool_maxsize)
        host = origin.split("://", 1)[-1]  # for messages: the origin holds no secret
        proxied = self.settings is not None and self.settings.proxy is not None
        self._where = f"{host} through the proxy" if proxied else host

    def close(self) -> None:
        """Close the pooled connections (an injected session is left open)."""
        if self._pool is not None:
            self._pool.clear()

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
        raw = self._pool_post(url, body, hdrs, method) if self._pool is not None \
            else self._session_post(url, body, hdrs, method)
        answer = self._read_answer(raw, method)
        self._last_answer = time.monotonic()
        return answer

    def _pool_post(self, url: str, body: bytes, headers: Mapping[str, str],
                   method: str) -> Any:
        begin()
        try:
            return self._pool.urlopen(  # type: ignore[union-attr]
                "POST", url, body=body, headers=headers, retries=_NO_RETRIES, redirect=False,
                preload_content=False, timeout=self._u3_timeout)
        except (u3.HTTPError, OSError) as exc:
            failure = self._failure(exc, method, sent=started_sending())
        # raised outside the except block: no trace of urllib3's error (it names the URL)
        raise failure

    def _failure(self, exc: BaseException, method: str, *, sent: bool) -> TransportError:
        why = _describe(exc)
        if not sent:
            where = self._where
            if _tls_failure(exc):
                return ConnectError(f"{method}: TLS failure with {where} ({why})", method=method,
                                    retryable=False)
            if isinstance(exc, u3.NewConnectionError) or not isinstance(
                    exc, u3.ConnectTimeoutError | u3.ReadTimeoutError):
                return ConnectError(f"{method}: could not connect to {where} ({why})",
                                    method=method)
            return ConnectError(f"{method}: connect timeout with {where} ({why})", method=method)
        if isinstance(exc, u3.ReadTimeoutError):
            return MaybeSent(f"{method}: no answer within {self._u3_timeout.read_timeout} s "
                             f"({why})", method=method)
        return MaybeSent(f"{method}: connection lost after sending ({why})", method=method)

    def _session_post(self, url: str, body: bytes, headers: Mapping[str, str],
                      method: str) -> Any:
        try:
            resp = self.session.post(  # type: ignore[union-attr]
                url, data=body, headers=headers, timeout=self.timeout, verify=self.verify,
                allow_redirects=False, stream=True)
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

    def _read_answer(self, raw: Any, method: str) -> RawAnswer:
        """Read a urllib3 response whole; its connection is kept only when that went well."""
        status = raw.status
        done = False
        try:
            _refuse_redirect(status, method)
            content = _read_body(raw, method, status, self.max_response_bytes)
            headers = {name.lower(): value for name, value in raw.headers.itermerged()}
            done = status >= 200  # after a 101 the connection speaks another protocol
        finally:
            if not done:
                raw.close()  # its state is unknown: never reuse it
            raw.release_conn()  # back to the pool (a closed one reconnects when next taken)
        return RawAnswer(status, content, headers)

    def _drop_idle_connections(self) -> None:
        if self._pool is not None:
            self._pool.clear()
            return
        adapter = self.session.get_adapter(self.origin + "/")  # type: ignore[union-attr]
        pool_manager_ = getattr(adapter, "poolmanager", None)
        if pool_manager_ is not None:
            pool_manager_.clear()


def _read_body(raw: Any, method: str, status: int, limit: int) -> bytes:
    """The body of ``raw``, inflated, at most ``limit`` bytes (else :func:`too_large`)."""
    length = raw.length_remaining  # Content-Length as sent (urllib3 refuses unequal copies)
    encoded = raw.headers.get("Content-Encoding", "identity") not in ("identity", "")
    try:
        if length is not None and length > limit:
            raise too_large(method, status, limit)
        if length is not None and not encoded:
            return raw.read(decode_content=False)  # urllib3 raises if it comes cut short
        parts: list[bytes] = []
        size = 0
        while chunk := raw.read(_STREAM_CHUNK, decode_content=True):
            size += len(chunk)
            if size > limit:
                raise too_large(method, status, limit)
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)
    except (u3.HTTPError, OSError, requests.exceptions.RequestException) as exc:
        why = _describe(exc)
    raise MaybeSent(f"{method}: the answer broke off ({why})", method=method, status=status)


def _tls_failure(exc: BaseException) -> bool:
    if isinstance(exc, u3.ProxyError):
        exc = exc.original_error
    return isinstance(exc, u3.SSLError)


def _refuse_redirect(status: int, method: str) -> None:
    if 300 <= status < 400:
        error = ProtocolError(
            f"{method}: the portal answered with a redirect (HTTP {status}); "
            "redirects are never followed (check the portal address)",
            method=method, status=status)
        error.redirect = True  # type: ignore[attr-defined]
        raise error


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
